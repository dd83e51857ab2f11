//! Archived CloudTrail files: walk directories (including the S3 layout
//! `AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/`), order files by the delivery
//! time in their names, and read them (standard input for `-`).

use crate::util::time::Millis;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    pub fn label(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".into(),
        }
    }

    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Input::File(p) => std::fs::read(p),
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin().lock().read_to_end(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

/// What walking the paths found.
#[derive(Debug, Default)]
pub struct Discovery {
    pub inputs: Vec<Input>,
    /// `CloudTrail-Digest/` files: integrity digests, not events.
    pub digests: usize,
    /// Paths that could not be listed or do not exist.
    pub errors: Vec<(String, std::io::Error)>,
}

fn is_digest_path(p: &Path) -> bool {
    p.components()
        .any(|c| c.as_os_str().to_str() == Some("CloudTrail-Digest"))
}

/// The `YYYYMMDDTHHMMZ` delivery stamp of a CloudTrail file name, for ordering.
pub fn time_key(p: &Path) -> Option<&str> {
    let name = p.file_name()?.to_str()?;
    name.split('_').find(|part| {
        let b = part.as_bytes();
        b.len() == 14
            && b[8] == b'T'
            && b[13] == b'Z'
            && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    })
}

/// `YYYYMMDDTHHMMZ` as milliseconds.
fn stamp_millis(stamp: &str) -> Option<Millis> {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// How much of a file is read to find its first event time.
const PEEK_BYTES: u64 = 64 * 1024;

/// The first `eventTime` (or `@timestamp`) in the first 64 KiB of a file, inflated if gzip.
pub fn peek_time(p: &Path) -> Option<Millis> {
    let mut head = Vec::new();
    std::fs::File::open(p)
        .ok()?
        .take(PEEK_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let text = if crate::event::decode::is_gzip(&head) {
        let mut out = Vec::new();
        // A truncated member is expected here (only the head was read); keep what inflated.
        let _ = flate2::read::MultiGzDecoder::new(&head[..])
            .take(PEEK_BYTES)
            .read_to_end(&mut out);
        out
    } else {
        head
    };
    let text = String::from_utf8_lossy(&text);
    ["\"eventTime\"", "\"@timestamp\""].iter().find_map(|key| {
        let at = text.find(key)? + key.len();
        let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
        let value = rest.strip_prefix('"')?;
        let end = value.find('"')?;
        crate::util::time::parse_event_time(&value[..end])
    })
}

fn walk(dir: &Path, d: &mut Discovery, files: &mut Vec<PathBuf>, ancestors: &mut Vec<PathBuf>) {
    // Symbolic links to directories are followed, except into a directory being walked
    // already (a loop).
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if ancestors.contains(&canonical) {
        return;
    }
    ancestors.push(canonical);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            d.errors.push((dir.display().to_string(), e));
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let ft = match entry.file_type() {
            Ok(ft) if ft.is_symlink() => match std::fs::metadata(&p) {
                Ok(m) => m.file_type(),
                Err(e) => {
                    d.errors.push((p.display().to_string(), e));
                    continue;
                }
            },
            Ok(ft) => ft,
            Err(e) => {
                d.errors.push((p.display().to_string(), e));
                continue;
            }
        };
        if ft.is_dir() {
            walk(&p, d, files, ancestors);
        } else if is_digest_path(&p) {
            d.digests += 1;
        } else if ft.is_file() {
            files.push(p);
        }
    }
    ancestors.pop();
}

/// Expands `paths` (files, directories, `-`) into inputs, ordered by the delivery time in
/// CloudTrail file names, then by path.
pub fn discover(paths: &[PathBuf]) -> Discovery {
    let mut d = Discovery::default();
    let mut files = Vec::new();
    let mut stdin = false;
    for p in paths {
        if p.as_os_str() == "-" {
            stdin = true;
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut d, &mut files, &mut Vec::new()),
            Ok(_) if is_digest_path(p) => d.digests += 1,
            Ok(_) => files.push(p.clone()),
            Err(e) => d.errors.push((p.display().to_string(), e)),
        }
    }
    files.sort();
    files.dedup();
    // Order by time: the delivery stamp in CloudTrail file names, else the first event time
    // found at the start of the file; files with neither come last, by path.
    let mut keyed: Vec<(Option<Millis>, PathBuf)> = files
        .into_iter()
        .map(|p| {
            let key = time_key(&p)
                .and_then(stamp_millis)
                .or_else(|| peek_time(&p));
            (key, p)
        })
        .collect();
    keyed.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => (x, &a.1).cmp(&(y, &b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    let files: Vec<PathBuf> = keyed.into_iter().map(|(_, p)| p).collect();
    d.inputs = files.into_iter().map(Input::File).collect();
    if stdin {
        d.inputs.push(Input::Stdin);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_stamps_are_ordered_by_their_first_event_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"eventTime": "2024-01-01T00:00:00Z"}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"Records":[{"eventTime":"2020-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("c.txt"), "no time here").unwrap();
        let d = discover(&[dir.path().to_path_buf()]);
        let names: Vec<String> = d
            .inputs
            .iter()
            .map(|i| i.label().rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["b.json", "a.json", "c.txt"]);
    }

    #[test]
    fn time_key_from_cloudtrail_names() {
        let p = Path::new(
            "x/218007301253_CloudTrail_us-east-1_20230710T1145Z_7xgocspSowgK0Gto.json.gz",
        );
        assert_eq!(time_key(p), Some("20230710T1145Z"));
        assert_eq!(time_key(Path::new("events.json")), None);
    }

    #[cfg(unix)]
    #[test]
    fn follows_directory_links_but_not_loops() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("a.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), real.join("loop")).unwrap();
        let d = discover(&[dir.path().to_path_buf()]);
        assert_eq!(d.inputs.len(), 2, "{:?}", d.inputs);
    }

    #[test]
    fn walks_and_skips_digests() {
        let dir = tempfile::tempdir().unwrap();
        let ct = dir.path().join("AWSLogs/1/CloudTrail/us-east-1/2023/07/10");
        let dg = dir
            .path()
            .join("AWSLogs/1/CloudTrail-Digest/us-east-1/2023/07/10");
        std::fs::create_dir_all(&ct).unwrap();
        std::fs::create_dir_all(&dg).unwrap();
        std::fs::write(
            ct.join("1_CloudTrail_us-east-1_20230710T1200Z_b.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            ct.join("1_CloudTrail_us-east-1_20230710T1145Z_a.json.gz"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            dg.join("1_CloudTrail-Digest_us-east-1_20230710T1200Z.json.gz"),
            b"x",
        )
        .unwrap();
        let d = discover(&[dir.path().to_path_buf()]);
        assert_eq!(d.digests, 1);
        let names: Vec<String> = d
            .inputs
            .iter()
            .map(|i| match i {
                Input::File(p) => p.file_name().unwrap().to_string_lossy().to_string(),
                Input::Stdin => "-".into(),
            })
            .collect();
        assert_eq!(
            names,
            vec![
                "1_CloudTrail_us-east-1_20230710T1145Z_a.json.gz",
                "1_CloudTrail_us-east-1_20230710T1200Z_b.json.gz"
            ]
        );
    }
}
