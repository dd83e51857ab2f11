//! The checkpoint: the persisted position of a live run (the source's position: tail
//! positions and seen event ids, or Kinesis shard positions; engine state, silent groups), its
//! file format, and reading and writing it.

use super::wall_ms;
use crate::engine::SnapshotRef;
use crate::source::cloudwatch::{GroupPosition, SeenSet};
use crate::source::kinesis::StreamPosition;
use crate::util::state::{StateDir, StateError};
use crate::util::time::format_millis;
use serde::{Deserialize, Serialize};

pub const CHECKPOINT_FILE: &str = "checkpoint.json";
pub const CHECKPOINT_FORMAT: &str = "trailwatch-live-checkpoint";
pub const CHECKPOINT_VERSION: u32 = 1;

/// The checkpoint as written: like [`Checkpoint`], the seen ids streamed from the set.
#[derive(Serialize)]
struct CheckpointOut<'a> {
    format: &'a str,
    version: u32,
    written_at: String,
    groups: Vec<SavedGroup>,
    seen: SeenOut<'a>,
    engine: SnapshotRef<'a, 'a>,
    silent: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kinesis: Option<StreamPosition>,
}

/// Serialises the seen ids as their base64 text without building it.
struct SeenOut<'a>(&'a SeenSet);

impl Serialize for SeenOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.base64())
    }
}

/// The persisted position of the live run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub version: u32,
    pub written_at: String,
    pub groups: Vec<SavedGroup>,
    /// Seen event ids (see `SeenSet::to_base64`).
    pub seen: String,
    /// Correlation windows, baselines and open incidents.
    pub engine: serde_json::Value,
    /// Groups currently reported silent.
    #[serde(default)]
    pub silent: Vec<String>,
    /// Shard positions of a `--kinesis-stream` run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<StreamPosition>,
}

/// The source's part of a checkpoint.
pub(super) enum SourceState<'a> {
    /// The tail: per group (in the order of the run's groups) its position; the seen ids.
    Tail {
        positions: &'a [GroupPosition],
        seen: &'a SeenSet,
    },
    /// Kinesis: shard positions and the event ids seen in the de-duplication window.
    Kinesis(StreamPosition, &'a SeenSet),
    /// SQS: the objects read in the last day (their messages are deleted after this
    /// checkpoint).
    Sqs(&'a SeenSet),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedGroup {
    pub name: String,
    #[serde(flatten)]
    pub position: GroupPosition,
}

/// Reads and checks a checkpoint.
pub fn read_checkpoint(state: &StateDir) -> Result<Option<Checkpoint>, StateError> {
    let Some(bytes) = state.read(CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let file = state.path().join(CHECKPOINT_FILE).display().to_string();
    let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| StateError::Invalid {
        file: file.clone(),
        message: format!("not a readable checkpoint ({e}); move it away to start afresh"),
    })?;
    if cp.format != CHECKPOINT_FORMAT || cp.version != CHECKPOINT_VERSION {
        return Err(StateError::Invalid {
            file,
            message: format!(
                "checkpoint format {} version {} is not {CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION}",
                cp.format, cp.version
            ),
        });
    }
    Ok(Some(cp))
}

/// Writes the checkpoint atomically: the source's position (for the tail, per group of
/// `groups` its position, and the seen ids), the names of the sources reported silent, and the
/// engine's state.
pub(super) fn write_checkpoint(
    state: &StateDir,
    groups: &[String],
    source: SourceState<'_>,
    engine: SnapshotRef<'_, '_>,
    silent: Vec<String>,
) -> Result<(), StateError> {
    let (positions, seen, kinesis) = match source {
        SourceState::Tail { positions, seen } => (positions, seen, None),
        SourceState::Kinesis(k, seen) => (&[][..], seen, Some(k)),
        SourceState::Sqs(processed) => (&[][..], processed, None),
    };
    let cp = CheckpointOut {
        format: CHECKPOINT_FORMAT,
        version: CHECKPOINT_VERSION,
        written_at: format_millis(wall_ms()),
        groups: groups
            .iter()
            .zip(positions)
            .map(|(name, p)| SavedGroup {
                name: name.clone(),
                position: p.clone(),
            })
            .collect(),
        seen: SeenOut(seen),
        engine,
        silent,
        kinesis,
    };
    state.write_with(CHECKPOINT_FILE, |w| {
        serde_json::to_writer(w, &cp).map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Pipeline, Settings};
    use crate::rules::RuleSet;
    use crate::rules::exceptions::Exceptions;
    use crate::source::cloudwatch::id_key;

    fn groups() -> Vec<String> {
        vec!["/trail/a".to_string(), "/trail/b".to_string()]
    }

    #[test]
    fn write_then_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(
            read_checkpoint(&state).unwrap().is_none(),
            "no checkpoint yet"
        );

        let (rules, exceptions, settings) = (
            RuleSet::default(),
            Exceptions::default(),
            Settings::default(),
        );
        let pipeline = Pipeline::new(&rules, &exceptions, &settings);
        let positions = vec![
            GroupPosition {
                cursor: 1_700_000_060_000,
                floor: 1_700_000_000_000,
            },
            GroupPosition {
                cursor: 1_700_000_120_000,
                floor: 1_700_000_000_000,
            },
        ];
        let mut seen = SeenSet::default();
        for (i, id) in [
            "0f6c2d4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
            "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
            "not-a-uuid",
        ]
        .into_iter()
        .enumerate()
        {
            assert!(seen.insert(id_key(id), 1_700_000_000_000 + i as i64 * 1_000, 1_000));
        }
        write_checkpoint(
            &state,
            &groups(),
            SourceState::Tail {
                positions: &positions,
                seen: &seen,
            },
            pipeline.snapshot_ref(),
            vec!["/trail/b".to_string()],
        )
        .unwrap();

        let cp = read_checkpoint(&state).unwrap().expect("a checkpoint");
        assert_eq!(cp.format, CHECKPOINT_FORMAT);
        assert_eq!(cp.version, CHECKPOINT_VERSION);
        assert!(!cp.written_at.is_empty());
        let names: Vec<&str> = cp.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["/trail/a", "/trail/b"]);
        for (saved, p) in cp.groups.iter().zip(&positions) {
            assert_eq!(
                (saved.position.cursor, saved.position.floor),
                (p.cursor, p.floor)
            );
        }
        assert_eq!(cp.silent, ["/trail/b"]);
        assert_eq!(cp.seen, seen.to_base64());
        let back = SeenSet::from_base64(&cp.seen).expect("seen ids readable");
        assert_eq!(back.len(), 3);
        assert_eq!(cp.engine, pipeline.snapshot());
        let mut restored = Pipeline::new(&rules, &exceptions, &settings);
        restored.restore(&cp.engine).expect("engine state restores");
    }

    /// Writes `format`/`version` with otherwise valid content, and reads it back.
    fn read_with(format: &str, version: u32) -> Result<Option<Checkpoint>, StateError> {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let cp = Checkpoint {
            format: format.to_string(),
            version,
            written_at: "2024-01-01T00:00:00Z".into(),
            groups: vec![],
            seen: SeenSet::default().to_base64(),
            engine: serde_json::Value::Null,
            silent: vec![],
            kinesis: None,
        };
        state
            .write(CHECKPOINT_FILE, &serde_json::to_vec(&cp).unwrap())
            .unwrap();
        read_checkpoint(&state)
    }

    #[test]
    fn unknown_format_or_version_is_rejected() {
        assert!(
            read_with(CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
                .unwrap()
                .is_some()
        );
        for (format, version) in [
            ("some-other-tool-state", CHECKPOINT_VERSION),
            (CHECKPOINT_FORMAT, CHECKPOINT_VERSION + 1),
            (CHECKPOINT_FORMAT, 0),
        ] {
            let err = read_with(format, version).expect_err("must be rejected");
            let StateError::Invalid { file, message } = &err else {
                panic!("not an Invalid error: {err:?}");
            };
            assert!(file.ends_with(CHECKPOINT_FILE), "{file}");
            assert_eq!(
                message,
                &format!(
                    "checkpoint format {format} version {version} is not \
                     {CHECKPOINT_FORMAT} version {CHECKPOINT_VERSION}"
                )
            );
            let shown = err.to_string();
            assert!(shown.contains(CHECKPOINT_FILE), "{shown}");
        }
    }

    #[test]
    fn unreadable_checkpoint_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.write(CHECKPOINT_FILE, b"{\"format\": 7").unwrap();
        let err = read_checkpoint(&state).expect_err("must be rejected");
        let shown = err.to_string();
        assert!(shown.contains("not a readable checkpoint"), "{shown}");
        assert!(shown.contains("move it away to start afresh"), "{shown}");
    }
}
