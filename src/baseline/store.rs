//! Persisting the learned baselines in a state directory: one JSON file,
//! `baselines.json`, written atomically (temporary file in the same directory, fsync,
//! rename, fsync of the directory) with a format version checked on load.

use super::{SNAPSHOT_VERSION, Snapshot};
use std::io::Write;
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

/// Writes `snap` into `dir` (created if missing) atomically.
pub fn save(dir: &Path, snap: &Snapshot) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = path_in(dir);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp-{}", std::process::id()));
    let text = serde_json::to_vec(snap).map_err(|e| StoreError::Corrupt {
        path: target.clone(),
        message: e.to_string(),
    })?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    // Make the rename durable; not every platform can open a directory (ignored there).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Reads the baselines from `dir`; `Ok(None)` when the directory has none yet.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, StoreError> {
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
