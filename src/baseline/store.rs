//! Persisting the learned baselines in a state directory: one JSON file,
//! `baselines.json`, written atomically (temporary file in the same directory, fsync,
//! rename, fsync of the directory) with a format version checked on load.

use super::{SNAPSHOT_VERSION, Snapshot};
use std::path::{Path, PathBuf};

/// File name of the baselines inside a state directory.
pub const FILE_NAME: &str = "baselines.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a trailwatch baselines file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path}: baselines format version {found} is not supported (this trailwatch reads version {SNAPSHOT_VERSION}); rebuild it with `trailwatch baseline build`"
    )]
    Version { path: PathBuf, found: u32 },
    /// The state directory itself (other users can write to it, or it cannot be made).
    #[error(transparent)]
    Dir(#[from] crate::util::state::StateError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Path of the baselines file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `snap` into `dir` atomically; `dir` is created owner-only if missing (a state
/// directory: see `util::state`), and refused when other users can write to it.
pub fn save(dir: &Path, snap: &Snapshot) -> Result<PathBuf, StoreError> {
    crate::util::state::create_dir(dir)?;
    let target = path_in(dir);
    let text = serde_json::to_vec(snap).map_err(|e| StoreError::Corrupt {
        path: target.clone(),
        message: e.to_string(),
    })?;
    crate::util::state::write_atomic(dir, FILE_NAME, &text).map_err(io(&target))?;
    Ok(target)
}

/// Reads the baselines from `dir`; `Ok(None)` when the directory has none yet.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, StoreError> {
    crate::util::state::check_dir(dir)?;
    let path = path_in(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    #[derive(serde::Deserialize)]
    struct Head {
        version: u32,
    }
    let head: Head = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if head.version != SNAPSHOT_VERSION {
        return Err(StoreError::Version {
            path,
            found: head.version,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path,
            message: e.to_string(),
        })
}
