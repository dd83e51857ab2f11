//! The state directory: the live tail's checkpoint, the outbox and learned state, written
//! atomically (temporary file, fsync, rename, fsync of the directory) and locked so two
//! instances cannot run on it at once.
//!
//! The outbox holds findings (principals, source addresses, redacted events): the directory
//! is created owner-only (0700) and every file in it 0600, whatever the umask, and an
//! existing directory that other users can write to is refused, as ssh refuses such keys.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state directory {dir} is in use by another trailwatch process (lock held on {dir}/LOCK); \
         stop it first, or give this one its own --state-dir"
    )]
    Locked { dir: String },
    #[error("state directory {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "state directory {dir} can be written by other users (mode {mode:04o}): they could forge \
         the checkpoint or the outbox; trailwatch refuses it, as ssh refuses such keys. Make it \
         yours alone: chmod 700 {dir}"
    )]
    TooOpen { dir: String, mode: u32 },
}

/// Permission bits of the state directory and of its files.
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// `opts` creating files owner-only (0600 before the umask; [`make_private`] makes it exact).
pub fn private(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, FILE_MODE);
    opts
}

/// Sets `file` to 0600, whatever the umask was when it was created (and for files an older
/// version left readable by others).
pub fn make_private(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Refuses `dir` when it exists and other users can write to it; `Ok` when it does not exist.
pub fn check_dir(dir: &Path) -> Result<(), StateError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StateError::Io {
                    dir: dir.display().to_string(),
                    source,
                });
            }
        };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() && mode & 0o022 != 0 {
            return Err(StateError::TooOpen {
                dir: dir.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` (and missing parents) owner-only, 0700 whatever the umask, or checks an
/// existing one with [`check_dir`].
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    check_dir(dir)?;
    let io = |source| StateError::Io {
        dir: dir.display().to_string(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(DIR_MODE);
        b.create(dir).map_err(io)?;
        // The umask may have taken bits away: set exactly 0700.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)).map_err(io)?;
    }
    #[cfg(not(unix))]
    b.create(dir).map_err(io)?;
    Ok(())
}

/// Writes `name` in `dir` atomically: a reader sees the old content or the new, never a mix,
/// and the new content is on disk when this returns.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(dir, name, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], the content written by `fill` through a buffer: large state
/// (millions of remembered ids) goes to disk without first being built in memory.
pub fn write_atomic_with(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let f = private(OpenOptions::new().write(true).create(true).truncate(true)).open(&tmp)?;
        make_private(&f)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    // The rename itself must reach the disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An open, locked state directory. The lock is released when this is dropped (or the
/// process dies: it is an OS file lock, not a marker file).
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Opens (creating it owner-only if needed) and locks `dir`; refuses a directory that
    /// other users can write to ([`check_dir`]).
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let io = |source| StateError::Io {
            dir: dir.display().to_string(),
            source,
        };
        create_dir(dir)?;
        let lock = private(OpenOptions::new().create(true).truncate(false).write(true))
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        make_private(&lock).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    dir: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        write_atomic(&self.dir, name, bytes).map_err(|source| StateError::Io {
            dir: self.dir.display().to_string(),
            source,
        })
    }

    /// Writes `name` atomically from `fill` (see [`write_atomic_with`]).
    pub fn write_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), StateError> {
        write_atomic_with(&self.dir, name, fill).map_err(|source| StateError::Io {
            dir: self.dir.display().to_string(),
            source,
        })
    }

    /// The content of `name`, or `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                dir: self.dir.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let a = StateDir::open(d.path()).unwrap();
        let err = StateDir::open(d.path()).unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        drop(a);
        StateDir::open(d.path()).unwrap();
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn created_owner_only_and_files_0600() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/state");
        let s = StateDir::open(&dir).unwrap();
        s.write("checkpoint.json", b"{}").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        assert_eq!(mode(&dir.join("checkpoint.json")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_refused_and_files_left_open_are_closed() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = StateDir::open(&dir).unwrap_err();
        assert!(
            matches!(err, StateError::TooOpen { mode: 0o775, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("chmod 700 {}", dir.display())) && text.contains("0775"),
            "{text}"
        );
        // Readable by others (an older version's 0755): accepted; its files become 0600.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join(LOCK_FILE), b"").unwrap();
        std::fs::set_permissions(dir.join(LOCK_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let s = StateDir::open(&dir).unwrap();
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        s.write("x", b"1").unwrap();
        assert_eq!(mode(&dir.join("x")), 0o600);
    }

    #[test]
    fn atomic_write_replaces_content() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        assert_eq!(s.read("x").unwrap(), None);
        s.write("x", b"one").unwrap();
        s.write("x", b"two").unwrap();
        assert_eq!(s.read("x").unwrap().as_deref(), Some(&b"two"[..]));
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }
}
