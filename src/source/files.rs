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
    /// An object of an S3 bucket (read by `source::s3`), with its size as listed.
    Object {
        bucket: String,
        key: String,
        size: u64,
    },
    Stdin,
}

impl Input {
    pub fn label(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Object { bucket, key, .. } => format!("s3://{bucket}/{key}"),
            Input::Stdin => "<stdin>".into(),
        }
    }

    /// Reads a local input (a file or standard input); an S3 object is read by `source::s3`.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Input::File(p) => std::fs::read(p),
            Input::Object { .. } => Err(std::io::Error::other(
                "an S3 object is read through source::s3, not from the file system",
            )),
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin().lock().read_to_end(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// The order of inputs with the same time: files by path, then objects by bucket and key
    /// (compared segment by segment, as paths are), then standard input.
    fn cmp_place(&self, other: &Input) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (Input::File(a), Input::File(b)) => a.cmp(b),
            (
                Input::Object {
                    bucket: a, key: k, ..
                },
                Input::Object {
                    bucket: b, key: l, ..
                },
            ) => a.cmp(b).then_with(|| k.split('/').cmp(l.split('/'))),
            (Input::Stdin, Input::Stdin) => Ordering::Equal,
            (Input::File(_), _) | (Input::Object { .. }, Input::Stdin) => Ordering::Less,
            _ => Ordering::Greater,
        }
    }
}

/// What walking the paths (or listing S3 prefixes) found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// In reading order: see [`Discovery::from_keyed`].
    pub inputs: Vec<Input>,
    /// The time each input is ordered by (parallel to `inputs`), to merge discoveries.
    keys: Vec<Option<Millis>>,
    /// `CloudTrail-Digest/` files: integrity digests, not events.
    pub digests: usize,
    /// Paths that could not be listed or do not exist.
    pub errors: Vec<(String, std::io::Error)>,
    /// Files (local or S3 objects) left unread because the delivery date in their name is
    /// outside the time range.
    pub pruned_files: usize,
    /// `YYYY/MM/DD` directories (or S3 prefixes) of the S3 layout left unlisted for the same
    /// reason.
    pub pruned_days: usize,
    /// S3 objects listed (every key a listing returned, digests and pruned ones included).
    pub objects_listed: usize,
    /// Of `pruned_files`, those that were S3 objects.
    pub objects_pruned: usize,
}

impl Discovery {
    /// Inputs with the time they are ordered by, put in reading order: by that time (the
    /// delivery stamp in CloudTrail file names, else the first event time), then by place;
    /// inputs without a time come last, by place.
    pub fn from_keyed(mut keyed: Vec<(Option<Millis>, Input)>) -> Discovery {
        keyed.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.1.cmp_place(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp_place(&b.1),
        });
        let (keys, inputs) = keyed.into_iter().unzip();
        Discovery {
            inputs,
            keys,
            ..Discovery::default()
        }
    }

    /// Adds what another discovery found (another source), keeping one reading order.
    pub fn merge(&mut self, other: Discovery) {
        let keyed = std::mem::take(&mut self.keys)
            .into_iter()
            .zip(std::mem::take(&mut self.inputs))
            .chain(other.keys.into_iter().zip(other.inputs))
            .collect();
        let merged = Discovery::from_keyed(keyed);
        self.inputs = merged.inputs;
        self.keys = merged.keys;
        self.digests += other.digests;
        self.errors.extend(other.errors);
        self.pruned_files += other.pruned_files;
        self.pruned_days += other.pruned_days;
        self.objects_listed += other.objects_listed;
        self.objects_pruned += other.objects_pruned;
    }
}

/// Clock skew allowed between an event's time and its file's delivery stamp.
const DELIVERY_SKEW: Millis = 15 * 60_000;
/// By default, events may be delivered this long after they happened (CloudTrail delivers
/// within minutes, but gives no guarantee; a day covers its documented late deliveries).
pub const DEFAULT_DELIVERY_MARGIN: Millis = 24 * 3_600_000;

/// Which files can hold events of a time range, judged by the delivery time CloudTrail
/// writes in the S3 key: a file delivered at `d` holds events from before `d` (give or take
/// the clock skew) and, with late delivery, from at most `margin` before `d`.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRange {
    /// Events at or after this time are wanted.
    pub since: Option<Millis>,
    /// Events before this time are wanted.
    pub until: Option<Millis>,
    /// How long after an event its file may be delivered.
    pub margin: Millis,
}

impl DeliveryRange {
    /// Can files delivered between `first` and `last` hold events of the range?
    fn keeps(&self, first: Millis, last: Millis) -> bool {
        let after_since = self
            .since
            .is_none_or(|s| last.saturating_add(DELIVERY_SKEW) >= s);
        let before_until = self
            .until
            .is_none_or(|u| first.saturating_sub(self.margin) < u);
        after_since && before_until
    }
}

/// The top directory of the S3 layout.
pub const AWS_LOGS: &str = "AWSLogs";
/// The service directory of integrity digests (not events).
pub const DIGEST_DIR: &str = "CloudTrail-Digest";

/// Where a directory sits in the S3 layout `AWSLogs/[o-org/]<account>/<service>/<region>/
/// YYYY/MM/DD/`, read from its path segments (as far as the path shows it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayoutPlace<'a> {
    pub account: Option<&'a str>,
    pub service: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// The layout place of a directory given as path segments (`["AWSLogs", "o-abc", "1111…"]`).
pub fn layout_place<'a>(segments: &[&'a str]) -> LayoutPlace<'a> {
    let Some(at) = segments.iter().rposition(|s| *s == AWS_LOGS) else {
        return LayoutPlace::default();
    };
    let mut rest = &segments[at + 1..];
    if rest.first().is_some_and(|s| s.starts_with("o-")) {
        rest = &rest[1..];
    }
    let get = |i: usize| rest.get(i).copied().filter(|s| !s.is_empty());
    LayoutPlace {
        account: get(0),
        service: get(1),
        region: get(2),
    }
}

/// `…/YYYY/MM/DD` of the S3 layout (the last three segments of a directory): the day's start
/// and end (exclusive) in milliseconds.
pub fn day_of(segments: &[&str]) -> Option<(Millis, Millis)> {
    let [.., y, m, d] = segments else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let start = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some((start, start + 86_400_000))
}

/// The segments of a local path (a segment that is not UTF-8 matches nothing).
fn segments(p: &Path) -> Vec<&str> {
    p.iter().map(|c| c.to_str().unwrap_or("")).collect()
}

fn is_digest_path(p: &Path) -> bool {
    p.iter().any(|c| c == DIGEST_DIR)
}

/// What an archive run reads: the delivery time range and, in the S3 layout, the accounts
/// and regions (empty: all).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub range: Option<DeliveryRange>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// Whether a directory (or S3 prefix) of an archive is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirVerdict {
    Read,
    /// A `YYYY/MM/DD` day whose files cannot hold events of the time range.
    PrunedDay,
    /// An account or region left out by `--accounts`/`--regions`.
    Filtered,
}

impl Selection {
    /// Is a directory with these path segments read? Judged by what the path shows: an
    /// account or region outside the filters, or a day outside the time range.
    pub fn dir(&self, segments: &[&str]) -> DirVerdict {
        let place = layout_place(segments);
        let left_out = |filter: &[String], value: Option<&str>| {
            !filter.is_empty() && value.is_some_and(|v| !filter.iter().any(|f| f == v))
        };
        if left_out(&self.accounts, place.account) || left_out(&self.regions, place.region) {
            return DirVerdict::Filtered;
        }
        if let (Some(r), Some((start, end))) = (&self.range, day_of(segments))
            && !r.keeps(start, end)
        {
            return DirVerdict::PrunedDay;
        }
        DirVerdict::Read
    }

    /// Can a file delivered at `stamp` (its delivery stamp) hold events of the time range?
    /// Files without a stamp are always read.
    pub fn keeps_delivery(&self, stamp: Option<Millis>) -> bool {
        match (&self.range, stamp) {
            (Some(r), Some(t)) => r.keeps(t, t + 60_000),
            _ => true,
        }
    }
}

/// The `YYYYMMDDTHHMMZ` delivery stamp of a CloudTrail file name, for ordering.
pub fn delivery_stamp(name: &str) -> Option<&str> {
    name.split('_').find(|part| {
        let b = part.as_bytes();
        b.len() == 14
            && b[8] == b'T'
            && b[13] == b'Z'
            && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    })
}

/// The delivery time in a CloudTrail file name (`…_20230710T1145Z_…`), in milliseconds.
pub fn delivery_time(name: &str) -> Option<Millis> {
    chrono::NaiveDateTime::parse_from_str(delivery_stamp(name)?, "%Y%m%dT%H%MZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// The `YYYYMMDDTHHMMZ` delivery stamp of a CloudTrail file's name, for ordering.
pub fn time_key(p: &Path) -> Option<&str> {
    delivery_stamp(p.file_name()?.to_str()?)
}

/// The delivery time in the name of a local file.
fn file_delivery_time(p: &Path) -> Option<Millis> {
    p.file_name()?.to_str().and_then(delivery_time)
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

fn walk(
    dir: &Path,
    d: &mut Discovery,
    files: &mut Vec<PathBuf>,
    ancestors: &mut Vec<PathBuf>,
    sel: &Selection,
) {
    // A day directory of the S3 layout outside the range, or an account or region left out,
    // is not even listed.
    match sel.dir(&segments(dir)) {
        DirVerdict::Read => {}
        DirVerdict::PrunedDay => {
            d.pruned_days += 1;
            return;
        }
        DirVerdict::Filtered => return,
    }
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
            walk(&p, d, files, ancestors, sel);
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
    discover_in(paths, &Selection::default())
}

/// [`discover`], leaving out files (and S3-layout day directories) whose delivery date cannot
/// hold events of the selection's range, and accounts and regions it leaves out. Files
/// without a delivery stamp in their name are always kept.
pub fn discover_in(paths: &[PathBuf], sel: &Selection) -> Discovery {
    let mut d = Discovery::default();
    let mut files = Vec::new();
    let mut stdin = false;
    for p in paths {
        if p.as_os_str() == "-" {
            stdin = true;
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut d, &mut files, &mut Vec::new(), sel),
            Ok(_) if is_digest_path(p) => d.digests += 1,
            Ok(_) => {
                let dir = p.parent().map(segments).unwrap_or_default();
                if sel.dir(&dir) != DirVerdict::Filtered {
                    files.push(p.clone());
                }
            }
            Err(e) => d.errors.push((p.display().to_string(), e)),
        }
    }
    files.sort();
    files.dedup();
    let before = files.len();
    files.retain(|p| sel.keeps_delivery(file_delivery_time(p)));
    d.pruned_files = before - files.len();
    // Order by time: the delivery stamp in CloudTrail file names, else the first event time
    // found at the start of the file; files with neither come last, by path.
    let mut keyed: Vec<(Option<Millis>, Input)> = files
        .into_iter()
        .map(|p| {
            let key = file_delivery_time(&p).or_else(|| peek_time(&p));
            (key, Input::File(p))
        })
        .collect();
    if stdin {
        keyed.push((None, Input::Stdin));
    }
    let ordered = Discovery::from_keyed(keyed);
    d.inputs = ordered.inputs;
    d.keys = ordered.keys;
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
    fn delivery_dates_prune_files_and_day_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ms = |t: &str| crate::util::time::parse_event_time(t).unwrap();
        for (day, stamp) in [
            ("09", "20230709T2355Z"),
            ("10", "20230710T0005Z"),
            ("10", "20230710T1145Z"),
            ("12", "20230712T0005Z"),
        ] {
            let ct = dir
                .path()
                .join(format!("AWSLogs/1/CloudTrail/us-east-1/2023/07/{day}"));
            std::fs::create_dir_all(&ct).unwrap();
            std::fs::write(
                ct.join(format!("1_CloudTrail_us-east-1_{stamp}_x.json")),
                b"{}",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("export.json"), b"{}").unwrap();
        let range = DeliveryRange {
            since: Some(ms("2023-07-10T00:00:00Z")),
            until: Some(ms("2023-07-10T12:00:00Z")),
            margin: 3_600_000,
        };
        let d = discover_in(
            &[dir.path().to_path_buf()],
            &Selection {
                range: Some(range),
                ..Selection::default()
            },
        );
        let names: Vec<String> = d
            .inputs
            .iter()
            .map(|i| i.label().rsplit('/').next().unwrap().to_string())
            .collect();
        // The 9th's last file (delivered 5 minutes before the range, within the clock skew)
        // and the 10th's are read; the 12th's day is not even listed; a file without a stamp
        // is always read.
        assert_eq!(
            names,
            [
                "1_CloudTrail_us-east-1_20230709T2355Z_x.json",
                "1_CloudTrail_us-east-1_20230710T0005Z_x.json",
                "1_CloudTrail_us-east-1_20230710T1145Z_x.json",
                "export.json"
            ]
        );
        assert_eq!((d.pruned_days, d.pruned_files), (1, 0));
        // From 06:00: the 9th's directory is skipped, and the 10th's early file by its stamp.
        let range = DeliveryRange {
            since: Some(ms("2023-07-10T06:00:00Z")),
            ..range
        };
        let d = discover_in(
            &[dir.path().to_path_buf()],
            &Selection {
                range: Some(range),
                ..Selection::default()
            },
        );
        assert_eq!((d.inputs.len(), d.pruned_days, d.pruned_files), (2, 2, 1));
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
                Input::Stdin | Input::Object { .. } => "-".into(),
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
