//! The finding as one JSON line, written by hand into a buffer: exactly the bytes serialising
//! it with `serde_json` gives (tests compare the two), without re-checking the redacted record
//! and without serde's machinery for the fields every finding has. The form every finding of a
//! backtest is written in.

use super::details::Details;
use super::{Finding, RuleRef};
use crate::event::first_json_special;

type Written = Result<(), serde_json::Error>;

impl Finding {
    /// Appends the finding's JSON to `out` (nothing on error).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Written {
        let start = out.len();
        let written = self.write_json_fields(out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write_json_fields(&self, out: &mut Vec<u8>) -> Written {
        out.extend_from_slice(b"{\"id\":");
        string(out, &self.id)?;
        key(out, "incident");
        string(out, &self.incident)?;
        key(out, "kind");
        serde_json::to_writer(&mut *out, &self.kind())?;
        key(out, "rule");
        rule(out, &self.rule)?;
        key(out, "time");
        optional(out, self.time.as_deref())?;
        key(out, "principal");
        string(out, &self.principal)?;
        key(out, "account");
        optional(out, self.account.as_deref())?;
        key(out, "region");
        optional(out, self.region.as_deref())?;
        key(out, "event_ids");
        strings(out, &self.event_ids)?;
        key(out, "event_count");
        serde_json::to_writer(&mut *out, &self.event_count)?;
        key(out, "summary");
        string(out, &self.summary)?;
        key(out, "details");
        details(out, &self.details)?;
        key(out, "event");
        match &self.event {
            // Valid JSON already (see `RedactedRecord`): copied.
            Some(record) => out.extend_from_slice(record.get().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(())
    }
}

/// `,"name":`
#[inline]
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `s` as a JSON string: copied between quotes when nothing in it is escaped (no quote,
/// backslash or control character), else escaped by serde_json.
fn string(out: &mut Vec<u8>, s: &str) -> Written {
    let b = s.as_bytes();
    if first_json_special(b, 0) == b.len() {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) -> Written {
    match s {
        Some(s) => string(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn strings(out: &mut Vec<u8>, items: &[String]) -> Written {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s)?;
    }
    out.push(b']');
    Ok(())
}

/// The rule as `RuleRef`'s derived serialisation writes it.
fn rule(out: &mut Vec<u8>, r: &RuleRef) -> Written {
    out.extend_from_slice(b"{\"id\":");
    string(out, &r.id)?;
    key(out, "title");
    string(out, &r.title)?;
    key(out, "level");
    serde_json::to_writer(&mut *out, &r.level)?;
    key(out, "tags");
    strings(out, &r.tags)?;
    out.push(b'}');
    Ok(())
}

/// A match's details (most findings) with its keys in sorted order, absent ones left out,
/// as `Details`' serialisation writes them; any other kind through that serialisation.
fn details(out: &mut Vec<u8>, d: &Details) -> Written {
    let Some(entries) = d.match_entries() else {
        return serde_json::to_writer(&mut *out, d);
    };
    out.push(b'{');
    let mut first = true;
    for (name, value) in entries {
        let Some(value) = value else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        string(out, name)?;
        out.push(b':');
        string(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Body, MatchDetails};
    use crate::rules::Level;

    /// Strings that need escaping, and some that do not, in every field.
    #[test]
    fn hand_written_json_is_serde_json_s() {
        let texts = [
            "",
            "plain",
            "quote \" inside",
            "back\\slash",
            "line\nbreak\tand\u{1}control",
            "ünïcödé — \u{2028} 🦀",
            "a longer text of more than sixteen bytes, then a quote: \"",
            "\u{7f} delete is not escaped",
        ];
        for (i, t) in texts.iter().enumerate() {
            let rule = RuleRef {
                id: t.to_string(),
                title: format!("{t}{t}"),
                level: Level::High,
                tags: vec![t.to_string(), "attack.t1".into()],
            };
            let body = Body::Match(MatchDetails {
                rule_file: t.to_string(),
                event_type: (i % 2 == 0).then(|| t.to_string()),
                identity_account: (i % 3 == 0).then(|| t.to_string()),
            });
            let mut f = Finding::new(t.to_string(), rule, body)
                .with_time((i % 2 == 1).then(|| t.to_string()), None)
                .with_who(t.to_string(), Some(t.to_string()), None)
                .with_events(vec![t.to_string(); i % 3], i as u64)
                .with_summary(t.to_string())
                .with_incident(format!("{t}!"));
            f.details.origin = (i % 2 == 0).then(|| t.to_string());
            f.details.time_field = (i % 4 == 0).then(|| t.to_string());
            if i % 2 == 0 {
                let ev =
                    crate::event::Event::parse(r#"{"a":"b","password":"x","n":[1,{"c":null}]}"#)
                        .unwrap();
                f = f.with_event(crate::finding::redacted_json(&ev));
            }
            let mut line = Vec::new();
            f.write_json(&mut line).unwrap();
            assert_eq!(
                String::from_utf8(line).unwrap(),
                serde_json::to_string(&f).unwrap(),
                "{t:?}"
            );
        }
    }
}
