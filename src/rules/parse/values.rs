//! A field's values: text, regex, CIDR, comparisons, fieldref, base64(offset), placeholders.

use super::Ctx;
use super::detection::{Mods, Wrap};
use super::pattern::{Tok, compile_pattern, parse_wildcards};
use crate::event::FieldPath;
use crate::rules::condition;
use crate::rules::matcher::{Cidr, Needle, REGEX_DFA_LIMIT, REGEX_SIZE_LIMIT, RefHow};
use crate::rules::yaml::Node;
use base64::Engine as _;

pub(super) fn compile_value(
    ctx: &mut Ctx<'_>,
    mods: &Mods,
    v: &Node,
    key_text: &str,
) -> Option<Needle> {
    if v.is_null() {
        if mods.re
            || mods.cidr
            || mods.cmp.is_some()
            || mods.fieldref
            || mods.wrap.is_some()
            || mods.base64
            || mods.base64offset
            || mods.expand
        {
            ctx.error(
                v.pos,
                format!("null cannot be used with the modifiers of `{key_text}`"),
                Some("a plain `null` matches a missing or null field".into()),
            );
            return None;
        }
        return Some(Needle::Null);
    }
    let text = v.scalar_text().unwrap_or_default();
    let texts: Vec<String> = if mods.expand {
        expand_placeholders(ctx, v, text)?
    } else {
        vec![text.to_string()]
    };
    let mut alts = Vec::new();
    for t in &texts {
        alts.push(compile_text(ctx, mods, v, t)?);
    }
    Some(if alts.len() == 1 {
        alts.remove(0)
    } else {
        Needle::Any(alts)
    })
}

fn compile_text(ctx: &mut Ctx<'_>, mods: &Mods, v: &Node, t: &str) -> Option<Needle> {
    if mods.re {
        let (i, m, s) = mods.re_flags;
        return match regex::RegexBuilder::new(t)
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_LIMIT)
            .nest_limit(100)
            .build()
        {
            Ok(re) => Some(Needle::Re(re)),
            Err(e) => {
                let (msg, hint) = match &e {
                    regex::Error::CompiledTooBig(limit) => (
                        format!("regex is too large: it compiles to more than {limit} bytes"),
                        Some("simplify the pattern (large counted repetitions multiply its size)".to_string()),
                    ),
                    _ => (
                        format!(
                            "invalid regex: {}",
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("")
                                .trim_start_matches("error: ")
                        ),
                        Some("trailwatch uses Rust regex syntax: no look-around and no back-references".to_string()),
                    ),
                };
                ctx.error(v.pos, msg, hint);
                None
            }
        };
    }
    if mods.cidr {
        return match Cidr::parse(t) {
            Ok(c) => Some(Needle::Cidr(c)),
            Err(e) => {
                ctx.error(
                    v.pos,
                    format!("invalid CIDR `{t}`: {e}"),
                    Some("e.g. `10.0.0.0/8` or `2001:db8::/32`".into()),
                );
                None
            }
        };
    }
    if let Some(op) = mods.cmp {
        return match t.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Some(Needle::Cmp(op, n)),
            _ => {
                ctx.error(
                    v.pos,
                    format!("`{t}` is not a number; lt/lte/gt/gte compare numbers"),
                    None,
                );
                None
            }
        };
    }
    if mods.fieldref {
        if t.trim().is_empty() {
            ctx.error(v.pos, "`fieldref` needs a field name", None);
            return None;
        }
        return Some(Needle::FieldRef {
            path: FieldPath::new(t.trim()),
            how: match mods.wrap {
                None => RefHow::Equal,
                Some(Wrap::Contains) => RefHow::Contains,
                Some(Wrap::StartsWith) => RefHow::StartsWith,
                Some(Wrap::EndsWith) => RefHow::EndsWith,
            },
            cased: mods.cased,
        });
    }
    // Base64 forms are literal and case-sensitive (base64 alphabets differ by case).
    let (variants, cased): (Vec<Vec<Tok>>, bool) = if mods.base64 {
        (vec![vec![Tok::Lit(b64(t.as_bytes()))]], true)
    } else if mods.base64offset {
        (
            base64_offsets(t.as_bytes())
                .into_iter()
                .map(|s| vec![Tok::Lit(s)])
                .collect(),
            true,
        )
    } else {
        (vec![parse_wildcards(t)], mods.cased)
    };
    let mut alts = Vec::new();
    for mut toks in variants {
        match mods.wrap {
            Some(Wrap::Contains) => {
                toks.insert(0, Tok::Star);
                toks.push(Tok::Star);
            }
            Some(Wrap::StartsWith) => toks.push(Tok::Star),
            Some(Wrap::EndsWith) => toks.insert(0, Tok::Star),
            None => {}
        }
        match compile_pattern(toks, cased) {
            Ok(pat) => alts.push(Needle::Str { pat, cased }),
            Err(e) => {
                ctx.error(v.pos, e.to_string(), None);
                return None;
            }
        }
    }
    Some(if alts.len() == 1 {
        alts.remove(0)
    } else {
        Needle::Any(alts)
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The three encodings of `value` as it may appear at any offset inside a base64 string
/// (the Sigma `base64offset` modifier): encode with 0, 1 and 2 bytes of padding before it and
/// cut the characters that depend on the unknown neighbours.
pub(super) fn base64_offsets(value: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut buf = vec![b' '; i];
            buf.extend_from_slice(value);
            let enc = b64(&buf);
            let cut_end = END[(value.len() + i) % 3];
            let end = enc.len().saturating_sub(cut_end);
            enc.get(START[i]..end.max(START[i]))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Most alternatives one value may expand to through placeholders.
const MAX_EXPANSIONS: usize = 10_000;

fn expand_placeholders(ctx: &mut Ctx<'_>, v: &Node, text: &str) -> Option<Vec<String>> {
    let Some(ph) = ctx.placeholders else {
        ctx.error(
            v.pos,
            "`expand` needs placeholder values",
            Some(
                "pass --placeholders FILE (a YAML mapping of placeholder name to list of values)"
                    .into(),
            ),
        );
        return None;
    };
    let mut results = vec![String::new()];
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        let Some(values) = ph.get(name) else {
            let hint = condition::did_you_mean(name, ph.names())
                .map(|s| format!("did you mean `%{s}%`?"))
                .or_else(|| {
                    Some(format!(
                        "the placeholders file defines: {}",
                        ph.names().collect::<Vec<_>>().join(", ")
                    ))
                });
            ctx.error(
                v.pos,
                format!("placeholder `%{name}%` is not defined"),
                hint,
            );
            return None;
        };
        let prefix = &rest[..start];
        let mut next = Vec::new();
        for r in &results {
            for val in values {
                next.push(format!("{r}{prefix}{val}"));
            }
        }
        if next.len() > MAX_EXPANSIONS {
            ctx.error(
                v.pos,
                format!("placeholders expand to more than {MAX_EXPANSIONS} values"),
                None,
            );
            return None;
        }
        results = next;
        rest = &rest[start + len + 2..];
    }
    for r in &mut results {
        r.push_str(rest);
    }
    Some(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64offset_matches_pysigma() {
        // Values computed with pySigma's SigmaBase64OffsetModifier for "/bin/bash".
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
    }
}
