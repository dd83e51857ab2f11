//! The durable outbox: every finding meant for SNS is first appended here (and synced to
//! disk), then published in order; a publish is recorded as delivered once SNS accepted it.
//!
//! The file is an append-only JSON-lines log in the state directory:
//! - `{"op":"enqueue","seq":N,"at":MS,"finding":{…},"rule":{…}}` — a finding waiting;
//! - `{"op":"delivered","seqs":[N,…],"message_id":"…","at":MS}` — SNS accepted it (a digest
//!   delivers several);
//! - `{"op":"failed","seq":N,"error":"…","at":MS}` — SNS refused it for good (kept here, and
//!   reported, never silently dropped);
//! - `{"op":"known","id":"…","at":MS}` — the id of a finding already handled (after compaction).
//!
//! Finding ids are remembered, so a finding produced again after a restart (the tail re-reads
//! events past the last checkpoint) is not queued twice. The only duplicate left is the one
//! the issue allows: a crash between SNS accepting a message and its `delivered` line reaching
//! the disk; every message carries the finding id, so consumers can de-duplicate that.

use crate::sink::message::EmailContext;
use crate::util::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub(crate) const FILE_NAME: &str = "outbox.jsonl";
/// Finding ids are remembered this long (wall clock) after they were handled.
pub(crate) const KNOWN_RETENTION: Millis = 7 * 24 * 3_600_000;
/// And at most this many of them.
pub(crate) const MAX_KNOWN: usize = 1_000_000;
/// The log is compacted when it grows past this size and nothing is pending.
const COMPACT_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A finding waiting to be published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Wall-clock time it was queued (ms since the epoch).
    pub at: Millis,
    pub finding: Value,
    #[serde(default)]
    pub rule: EmailContext,
}

impl Entry {
    pub fn id(&self) -> &str {
        self.finding.get("id").and_then(Value::as_str).unwrap_or("")
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line {
    Enqueue(Entry),
    Delivered {
        seqs: Vec<u64>,
        message_id: String,
        at: Millis,
    },
    Failed {
        seq: u64,
        error: String,
        at: Millis,
    },
    Known {
        id: String,
        at: Millis,
    },
}

/// What opening the outbox found.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    pub pending: usize,
    /// Lines that could not be read (a torn last line after a crash is normal).
    pub bad_lines: Vec<(usize, String)>,
}

pub struct Outbox {
    path: PathBuf,
    file: File,
    pending: VecDeque<Entry>,
    /// Finding id → when it was handled (queued).
    known: HashMap<String, Millis>,
    next_seq: u64,
    pub delivered: u64,
    pub failed: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Outbox {
    /// Opens (or creates) `dir/outbox.jsonl` and replays it.
    pub fn open(dir: &Path, now: Millis) -> Result<(Outbox, Recovered), OutboxError> {
        let path = dir.join(FILE_NAME);
        let mut rec = Recovered::default();
        let mut pending: Vec<Entry> = Vec::new();
        let mut known: HashMap<String, Millis> = HashMap::new();
        let mut next_seq = 1u64;
        let mut done: std::collections::HashSet<u64> = std::collections::HashSet::new();
        if path.exists() {
            let f = File::open(&path).map_err(io_err(&path))?;
            for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
                let line = line.map_err(io_err(&path))?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Line>(&line) {
                    Ok(Line::Enqueue(e)) => {
                        next_seq = next_seq.max(e.seq + 1);
                        known.insert(e.id().to_string(), e.at);
                        pending.push(e);
                    }
                    Ok(Line::Delivered { seqs, .. }) => done.extend(seqs),
                    Ok(Line::Failed { seq, .. }) => {
                        done.insert(seq);
                    }
                    Ok(Line::Known { id, at }) => {
                        known.insert(id, at);
                    }
                    Err(e) => rec.bad_lines.push((i + 1, e.to_string())),
                }
            }
        }
        pending.retain(|e| !done.contains(&e.seq));
        pending.sort_by_key(|e| e.seq);
        rec.pending = pending.len();
        // Findings: owner-only, whatever the umask (see `util::state`).
        let file = crate::util::state::private(OpenOptions::new().create(true).append(true))
            .open(&path)
            .map_err(io_err(&path))?;
        crate::util::state::make_private(&file).map_err(io_err(&path))?;
        let mut ob = Outbox {
            path,
            file,
            pending: pending.into(),
            known,
            next_seq,
            delivered: 0,
            failed: 0,
        };
        ob.forget_old(now);
        if !rec.bad_lines.is_empty() || ob.size() > COMPACT_BYTES {
            // Rewrite without the unreadable lines (a torn tail would corrupt the next append).
            ob.compact(now)?;
        }
        Ok((ob, rec))
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn forget_old(&mut self, now: Millis) {
        self.known.retain(|_, at| *at >= now - KNOWN_RETENTION);
        if self.known.len() > MAX_KNOWN {
            let mut ats: Vec<Millis> = self.known.values().copied().collect();
            ats.sort_unstable();
            let cut = ats[ats.len() - MAX_KNOWN];
            self.known.retain(|_, at| *at >= cut);
        }
    }

    /// Has a finding with this id been queued already?
    pub fn knows(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// Queues findings not seen before and syncs them to disk; returns how many were queued.
    pub fn enqueue(
        &mut self,
        items: impl IntoIterator<Item = (Value, EmailContext)>,
        now: Millis,
    ) -> Result<usize, OutboxError> {
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for (finding, rule) in items {
            let id = finding
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !id.is_empty() && self.known.contains_key(&id) {
                continue;
            }
            let e = Entry {
                seq: self.next_seq,
                at: now,
                finding,
                rule,
            };
            self.next_seq += 1;
            self.known.insert(id, now);
            let line = Line::Enqueue(e);
            // Serialising our own types cannot fail; a failure would be a bug worth surfacing.
            serde_json::to_writer(&mut buf, &line).map_err(|e| OutboxError::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            buf.push(b'\n');
            if let Line::Enqueue(e) = line {
                added.push(e);
            }
        }
        if added.is_empty() {
            return Ok(0);
        }
        self.append(&buf)?;
        let n = added.len();
        self.pending.extend(added);
        Ok(n)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), OutboxError> {
        self.file.write_all(bytes).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }

    fn append_line(&mut self, line: &Line) -> Result<(), OutboxError> {
        let mut buf = serde_json::to_vec(line).map_err(|e| OutboxError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        buf.push(b'\n');
        self.append(&buf)
    }

    /// Findings waiting, oldest first.
    pub fn pending(&self) -> &VecDeque<Entry> {
        &self.pending
    }

    /// Records that SNS accepted the message carrying these entries.
    pub fn delivered(
        &mut self,
        seqs: &[u64],
        message_id: &str,
        now: Millis,
    ) -> Result<(), OutboxError> {
        self.append_line(&Line::Delivered {
            seqs: seqs.to_vec(),
            message_id: message_id.to_string(),
            at: now,
        })?;
        self.pending.retain(|e| !seqs.contains(&e.seq));
        self.delivered += seqs.len() as u64;
        self.maybe_compact(now)
    }

    /// Records that SNS refused this entry for good (it stays in the log for inspection).
    pub fn failed(&mut self, seq: u64, error: &str, now: Millis) -> Result<(), OutboxError> {
        self.append_line(&Line::Failed {
            seq,
            error: error.to_string(),
            at: now,
        })?;
        self.pending.retain(|e| e.seq != seq);
        self.failed += 1;
        Ok(())
    }

    fn maybe_compact(&mut self, now: Millis) -> Result<(), OutboxError> {
        if self.pending.is_empty() && self.size() > COMPACT_BYTES {
            self.compact(now)?;
        }
        Ok(())
    }

    /// Rewrites the log with only what is still needed: known ids and pending entries.
    pub fn compact(&mut self, now: Millis) -> Result<(), OutboxError> {
        self.forget_old(now);
        let mut buf = Vec::new();
        let mut known: Vec<(&String, &Millis)> = self.known.iter().collect();
        known.sort();
        let pending_ids: std::collections::HashSet<&str> =
            self.pending.iter().map(Entry::id).collect();
        for (id, at) in known {
            if pending_ids.contains(id.as_str()) {
                continue;
            }
            let line = serde_json::json!({"op": "known", "id": id, "at": at});
            buf.extend_from_slice(line.to_string().as_bytes());
            buf.push(b'\n');
        }
        for e in &self.pending {
            let v = serde_json::json!({"op": "enqueue", "seq": e.seq, "at": e.at,
                "finding": e.finding, "rule": e.rule});
            buf.extend_from_slice(v.to_string().as_bytes());
            buf.push(b'\n');
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::util::state::write_atomic(dir, FILE_NAME, &buf).map_err(io_err(&self.path))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(id: &str) -> (Value, EmailContext) {
        (json!({"id": id, "summary": "s"}), EmailContext::default())
    }

    #[cfg(unix)]
    #[test]
    fn the_outbox_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(FILE_NAME);
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let (mut ob, _) = Outbox::open(d.path(), 0).unwrap();
        ob.enqueue([f("a")], 1).unwrap();
        assert_eq!(mode(), 0o600);
        // Compaction rewrites it: still 0600. A file an older version left 0644 is closed.
        ob.compact(2).unwrap();
        assert_eq!(mode(), 0o600);
        drop(ob);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Outbox::open(d.path(), 3).unwrap();
        assert_eq!(mode(), 0o600);
    }

    #[test]
    fn survives_reopen_and_keeps_order() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut ob, _) = Outbox::open(d.path(), 0).unwrap();
            assert_eq!(ob.enqueue([f("a"), f("b"), f("c")], 10).unwrap(), 3);
            ob.delivered(&[1], "m1", 11).unwrap();
        }
        let (mut ob, rec) = Outbox::open(d.path(), 20).unwrap();
        assert_eq!(rec.pending, 2);
        let ids: Vec<&str> = ob.pending().iter().map(Entry::id).collect();
        assert_eq!(ids, ["b", "c"]);
        // Already handled ids are not queued again (a restart re-reads events).
        assert_eq!(ob.enqueue([f("a"), f("c"), f("d")], 21).unwrap(), 1);
        assert_eq!(ob.pending().back().unwrap().seq, 4);
    }

    #[test]
    fn torn_last_line_is_reported_and_repaired() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut ob, _) = Outbox::open(d.path(), 0).unwrap();
            ob.enqueue([f("a")], 1).unwrap();
        }
        let p = d.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&p).unwrap();
        file.write_all(b"{\"op\":\"enqueue\",\"seq\":2,\"fi")
            .unwrap();
        drop(file);
        let (mut ob, rec) = Outbox::open(d.path(), 2).unwrap();
        assert_eq!(rec.bad_lines.len(), 1);
        assert_eq!(rec.pending, 1);
        ob.enqueue([f("b")], 3).unwrap();
        drop(ob);
        let (ob, rec) = Outbox::open(d.path(), 4).unwrap();
        assert!(rec.bad_lines.is_empty(), "{:?}", rec.bad_lines);
        assert_eq!(ob.pending().len(), 2);
    }

    #[test]
    fn compaction_keeps_pending_and_known_ids() {
        let d = tempfile::tempdir().unwrap();
        let (mut ob, _) = Outbox::open(d.path(), 0).unwrap();
        ob.enqueue([f("a"), f("b")], 1).unwrap();
        ob.delivered(&[1], "m", 2).unwrap();
        ob.compact(3).unwrap();
        ob.enqueue([f("c")], 4).unwrap();
        drop(ob);
        let (mut ob, _) = Outbox::open(d.path(), 5).unwrap();
        let ids: Vec<&str> = ob.pending().iter().map(Entry::id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(ob.enqueue([f("a")], 6).unwrap(), 0);
        ob.failed(2, "InvalidParameter", 7).unwrap();
        assert_eq!(ob.pending().len(), 1);
    }
}
