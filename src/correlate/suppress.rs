//! Suppression: repeated findings with the same key inside a period become one finding.
//!
//! The first finding of a key is held until the period (in event time) has passed the
//! watermark; later findings with the same key inside the period are merged into it: its
//! `event_count` grows, its event-id sample takes their ids, `details.suppressed` counts
//! them, and its `incident` id is theirs too. Then it is released — one alert per incident.

use super::IdSample;
use crate::finding::Finding;
use crate::rules::correlation::Suppress;
use crate::time::Millis;
use std::collections::HashMap;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    finding: Finding,
    until: Millis,
    ids: IdSample,
    merged: u64,
}

/// Holds and merges findings per (rule, key).
#[derive(Debug, Default)]
pub struct Suppressor {
    held: HashMap<(String, String), Held>,
    /// (until, key) of held findings, earliest first; entries may be stale.
    due: std::collections::BinaryHeap<std::cmp::Reverse<(Millis, (String, String))>>,
    /// Findings merged into an earlier one.
    pub merged: u64,
}

impl Suppressor {
    /// Takes a finding under `rule` suppression `s`; findings that must go out now are pushed
    /// to `out` (a held one whose period ended before this finding's time).
    pub fn offer(&mut self, s: &Suppress, f: Finding, out: &mut Vec<Finding>) {
        let t = f.time_ms.unwrap_or(Millis::MIN);
        let key = (
            f.rule.id.clone(),
            f.suppress_key.clone().unwrap_or_default(),
        );
        if let Some(h) = self.held.get_mut(&key) {
            if t < h.until {
                h.finding.event_count += f.event_count;
                h.ids.extend(f.event_ids);
                h.merged += 1;
                self.merged += 1;
                // The merged finding keeps the first one's time; the latest time is recorded.
                if let Some(d) = h.finding.details.as_object_mut() {
                    d.insert("last_time".into(), f.time.clone().into());
                }
                return;
            }
            if let Some(old) = self.held.remove(&key) {
                out.push(release(old));
            }
        }
        let mut ids = IdSample::default();
        ids.extend(f.event_ids.iter().cloned());
        let until = t.saturating_add(s.period);
        self.due.push(std::cmp::Reverse((until, key.clone())));
        self.held.insert(
            key,
            Held {
                until,
                finding: f,
                ids,
                merged: 0,
            },
        );
    }

    /// Releases every held finding whose period ended at or before `watermark` (all of them
    /// when `None`), in (time, id) order.
    pub fn release_until(&mut self, watermark: Option<Millis>, out: &mut Vec<Finding>) {
        let Some(w) = watermark else {
            // Everything, in (time, id) order.
            let mut all: Vec<Held> = self.held.drain().map(|(_, h)| h).collect();
            self.due.clear();
            all.sort_by(|a, b| {
                (a.finding.time_ms, &a.finding.id).cmp(&(b.finding.time_ms, &b.finding.id))
            });
            out.extend(all.into_iter().map(release));
            return;
        };
        let mut ready = Vec::new();
        while let Some(std::cmp::Reverse((until, _))) = self.due.peek() {
            if *until > w {
                break;
            }
            let Some(std::cmp::Reverse((until, key))) = self.due.pop() else {
                break;
            };
            // Stale entries (the key was released and held again) have another `until`.
            if self.held.get(&key).is_some_and(|h| h.until == until)
                && let Some(h) = self.held.remove(&key)
            {
                ready.push(h);
            }
        }
        ready.sort_by(|a, b| {
            (a.finding.time_ms, &a.finding.id).cmp(&(b.finding.time_ms, &b.finding.id))
        });
        out.extend(ready.into_iter().map(release));
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The held findings, to persist across restarts (JSON).
    pub fn snapshot(&self) -> serde_json::Value {
        let mut held: Vec<SavedHeld<'_>> = self
            .held
            .iter()
            .map(|((rule, key), h)| SavedHeld {
                rule: rule.as_str().into(),
                key: key.as_str().into(),
                time_ms: h.finding.time_ms,
                held: std::borrow::Cow::Borrowed(h),
            })
            .collect();
        held.sort_by(|a, b| (&a.rule, &a.key).cmp(&(&b.rule, &b.key)));
        serde_json::json!({"version": 1, "held": held, "merged": self.merged})
    }

    /// Restores what [`Suppressor::snapshot`] saved.
    pub fn restore(&mut self, v: &serde_json::Value) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        struct Saved {
            version: u32,
            held: Vec<SavedHeld<'static>>,
            merged: u64,
        }
        let s: Saved = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        if s.version != 1 {
            return Err(format!(
                "unsupported suppression state version {}",
                s.version
            ));
        }
        self.held.clear();
        self.due.clear();
        for h in s.held {
            let mut held = h.held.into_owned();
            held.finding.time_ms = h.time_ms;
            held.finding.suppress_key = Some(h.key.to_string());
            let key = (h.rule.into_owned(), h.key.into_owned());
            self.due.push(std::cmp::Reverse((held.until, key.clone())));
            self.held.insert(key, held);
        }
        self.merged = s.merged;
        Ok(())
    }
}

/// One held finding in a snapshot (fields the finding's JSON form does not carry included).
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedHeld<'a> {
    rule: std::borrow::Cow<'a, str>,
    key: std::borrow::Cow<'a, str>,
    time_ms: Option<Millis>,
    held: std::borrow::Cow<'a, Held>,
}

fn release(h: Held) -> Finding {
    let mut f = h.finding;
    f.event_ids = h.ids.to_vec();
    if h.merged > 0
        && let Some(d) = f.details.as_object_mut()
    {
        d.insert("suppressed".into(), h.merged.into());
        f.summary = format!(
            "{} ({} similar findings merged into this one)",
            f.summary.trim_end_matches('.'),
            h.merged
        );
    }
    f
}
