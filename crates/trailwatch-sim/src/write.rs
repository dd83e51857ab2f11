//! The archive: gzip files of records in the S3 layout CloudTrail delivers to, and the
//! output directory made ready for them.

use crate::rng::Rng;
use crate::{ACCOUNTS, GeneratorInfo, Labels, REGIONS, SimError, io_err};
use chrono::{DateTime, Datelike, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`generate`](crate::generate) wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub files: u64,
    /// Compressed bytes of the archive files.
    pub bytes: u64,
    pub principals: usize,
    pub anomalies: usize,
    pub periodic_jobs: usize,
    /// Whether an earlier, identical simulation was kept (`reuse`).
    pub reused: bool,
}

pub(crate) struct Writer {
    pub(crate) root: PathBuf,
    pub(crate) made: HashSet<PathBuf>,
    pub(crate) summary: Summary,
}

impl Writer {
    /// Writes one archive file of `records` for an account and region, named by delivery
    /// time `stamp_ms`.
    pub(crate) fn file(
        &mut self,
        rng: &mut Rng,
        account: usize,
        region: usize,
        stamp_ms: i64,
        records: &[Vec<u8>],
    ) -> Result<(), SimError> {
        let Some(t) = DateTime::<Utc>::from_timestamp_millis(stamp_ms) else {
            return Ok(());
        };
        let acct = ACCOUNTS[account];
        let reg = REGIONS[region];
        let dir = self
            .root
            .join("AWSLogs")
            .join(acct)
            .join("CloudTrail")
            .join(reg)
            .join(format!("{:04}", t.year()))
            .join(format!("{:02}", t.month()))
            .join(format!("{:02}", t.day()));
        if !self.made.contains(&dir) {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            self.made.insert(dir.clone());
        }
        let unique: String = {
            const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            (0..16)
                .map(|_| ALNUM[rng.range(0, ALNUM.len() as u64) as usize] as char)
                .collect()
        };
        let path = dir.join(format!(
            "{acct}_CloudTrail_{reg}_{}_{unique}.json.gz",
            t.format("%Y%m%dT%H%MZ")
        ));
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::default());
        let mut write = || -> std::io::Result<()> {
            gz.write_all(b"{\"Records\":[")?;
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    gz.write_all(b",")?;
                }
                gz.write_all(r)?;
            }
            gz.write_all(b"]}")
        };
        write().map_err(io_err(&path))?;
        let mut inner = gz.finish().map_err(io_err(&path))?;
        inner.flush().map_err(io_err(&path))?;
        drop(inner);
        let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
        self.summary.files += 1;
        self.summary.bytes += len;
        self.summary.records += records.len() as u64;
        Ok(())
    }
}

/// Gets `dir` ready: created if missing; an earlier simulation in it is removed (or kept
/// with `reuse` when it has the same parameters). Returns true when kept.
pub(crate) fn prepare(dir: &Path, info: &GeneratorInfo, reuse: bool) -> Result<bool, SimError> {
    let labels = dir.join("labels.json");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_none();
        if !empty {
            if !labels.exists() {
                return Err(SimError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            if reuse
                && Labels::read(&labels)
                    .ok()
                    .and_then(|l| l.generator_info())
                    .is_some_and(|g| &g == info)
            {
                return Ok(true);
            }
            let logs = dir.join("AWSLogs");
            if logs.exists() {
                std::fs::remove_dir_all(&logs).map_err(io_err(&logs))?;
            }
            std::fs::remove_file(&labels).map_err(io_err(&labels))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    Ok(false)
}
