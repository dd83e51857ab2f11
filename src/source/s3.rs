//! CloudTrail archives straight from S3: `s3://bucket/prefix/` addresses, listing the
//! `AWSLogs/[o-org/]<account>/<service>/<region>/YYYY/MM/DD/` layout with `ListObjectsV2`
//! (one level at a time, so days outside the time range, digest folders and accounts or
//! regions left out are never listed), and reading objects with `GetObject`: retried, a few
//! at a time, in reading order, with a bounded read-ahead.
//!
//! The layout, the time range and the filters are judged by [`crate::source::files`], as for
//! a local copy of the same archive: the same objects are read in the same order.
//!
//! The API is blocking at its edge ([`Reader`] owns the runtime its requests run on), so the
//! backtest driver stays synchronous; [`get_object`] and [`s3_client`] are the async pieces
//! other sources reuse.

use crate::source::files::{self, AWS_LOGS, DIGEST_DIR, DirVerdict, Discovery, Input, Selection};
use crate::util::aws::{
    AwsError, AwsErrorClass, AwsErrorKind, Backoff, SetupError, Stop, chain_text,
};
use crate::util::time::Millis;
use aws_sdk_s3::Client;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `GetObject` requests in flight by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// How many bytes of objects may be downloaded ahead of the reader (in flight or waiting):
/// memory stays flat whatever the size of the archive.
pub const READ_AHEAD_BYTES: u64 = 64 << 20;

/// Our attempts of one request, each of them the SDK's own (which already retries throttling
/// and 5xx three times): an object or a listing page is given up after this many.
const ATTEMPTS: u32 = 4;
/// Waits between our attempts: 1 s, 2 s, 4 s.
const RETRY_BASE: Millis = 1_000;
const RETRY_CAP: Millis = 8_000;

/// What went wrong with S3.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// Not a usable `s3://bucket/prefix` address.
    #[error("{url}: {why} (expected s3://bucket/prefix/)")]
    Url { url: String, why: &'static str },
    /// No region or no credentials: nothing can be called.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Listing a bucket failed (after retries when it was transient).
    #[error("{0}")]
    List(Box<AwsError>),
    /// The bucket is in another region than the one called, and following it failed too.
    #[error("bucket {bucket} is in region {region}: {error}")]
    Redirect {
        bucket: String,
        region: String,
        error: Box<AwsError>,
    },
    /// Reading an object failed (after retries when it was transient).
    #[error("{url}: {error}")]
    Get { url: String, error: Box<AwsError> },
    /// Asked to stop before the request was done.
    #[error("{url}: stopped")]
    Stopped { url: String },
    /// The runtime the requests run on could not start.
    #[error("cannot start the runtime of S3 requests: {0}")]
    Runtime(std::io::Error),
}

impl S3Error {
    /// What went wrong, without the object's address (for a report that names it already).
    pub fn detail(&self) -> String {
        match self {
            S3Error::Get { error, .. } => error.to_string(),
            S3Error::Stopped { .. } => "stopped".into(),
            other => other.to_string(),
        }
    }
}

/// `s3://bucket/prefix`: a bucket and a key prefix (possibly empty, possibly a whole key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    /// Reads an `s3://` address; `None` when `s` is not one (a local path).
    pub fn parse(s: &str) -> Option<Result<S3Url, S3Error>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bad = |why| {
            Some(Err(S3Error::Url {
                url: s.to_string(),
                why,
            }))
        };
        if bucket.is_empty() {
            return bad("no bucket name");
        }
        // S3's rules for bucket names: 3 to 63 lowercase letters, digits, dots and hyphens.
        let name_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !name_ok {
            return bad("not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)");
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }))
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// An S3 client built from the one SDK configuration ([`crate::util::aws::sdk_config`]):
/// path-style addressing when an endpoint is configured (`AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_S3`: an emulator, a gateway), virtual-hosted style otherwise.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> Client {
    let custom_endpoint = sdk.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom_endpoint)
        .build();
    Client::from_conf(conf)
}

/// Why a retried call ended without a result.
#[derive(Debug)]
enum Failed {
    Aws(Box<AwsError>),
    Stopped,
}

/// Runs `call` until it succeeds, fails for good (an error that is not transient), fails
/// [`ATTEMPTS`] times, or `stop` is given; waits with exponential backoff between attempts.
async fn retrying<T, F, Fut>(stop: &Stop, base: Millis, mut call: F) -> Result<T, Failed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut backoff = Backoff::default();
    loop {
        if stop.is_set() {
            return Err(Failed::Stopped);
        }
        let err = tokio::select! {
            r = call() => match r {
                Ok(v) => return Ok(v),
                Err(e) => e,
            },
            _ = stop.wait() => return Err(Failed::Stopped),
        };
        if err.class != AwsErrorClass::Transient || backoff.failures() + 1 >= ATTEMPTS {
            return Err(Failed::Aws(Box::new(err)));
        }
        let wait = backoff.failed(base, RETRY_CAP);
        tracing::debug!("S3 call failed, retrying in {wait} ms: {err}");
        if stop.sleep(Duration::from_millis(wait.max(0) as u64)).await {
            return Err(Failed::Stopped);
        }
    }
}

/// The bytes of one object, retried: throttling (`SlowDown`, 503) and 5xx by the SDK's
/// standard retry, then by ours with backoff, as is a download that broke off. An error
/// retrying cannot fix (`NoSuchKey`, `AccessDenied`, an archived object) is returned at once.
pub async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
    stop: &Stop,
) -> Result<Vec<u8>, S3Error> {
    let url = || format!("s3://{bucket}/{key}");
    retrying(stop, RETRY_BASE, || get_once(client, bucket, key))
        .await
        .map_err(|f| match f {
            Failed::Aws(error) => S3Error::Get { url: url(), error },
            Failed::Stopped => S3Error::Stopped { url: url() },
        })
}

async fn get_once(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    const ACTION: &str = "s3:GetObject";
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e, ACTION))?;
    let size = out
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.min(1 << 30));
    let mut body = out.body;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => bytes.extend_from_slice(&c),
            Err(e) => {
                return Err(AwsError {
                    action: ACTION,
                    resource: None,
                    region: None,
                    kind: AwsErrorKind::NoAnswer(format!(
                        "the download broke off after {} bytes: {}",
                        bytes.len(),
                        chain_text(&e)
                    )),
                    class: AwsErrorClass::Transient,
                    request_id: None,
                });
            }
        }
    }
    Ok(bytes)
}

/// One page of a listing: the keys (with sizes) and the common prefixes.
struct Page {
    objects: Vec<(String, u64)>,
    prefixes: Vec<String>,
}

/// The region S3 says the bucket is in, when a call went to another one (`301
/// PermanentRedirect`, or a 400 naming the region, with the `x-amz-bucket-region` header).
fn bucket_region<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Option<String> {
    err.raw_response()?
        .headers()
        .get("x-amz-bucket-region")
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// A listing error: the AWS error, and the bucket's region when S3 said it is elsewhere.
struct ListError {
    error: Box<AwsError>,
    region: Option<String>,
}

/// Every key and common prefix under `prefix` (all pages), one level (`delimited`) or all.
async fn list_prefix(
    client: &Client,
    bucket: &str,
    prefix: &str,
    delimited: bool,
    stop: &Stop,
) -> Result<Page, Result<ListError, Failed>> {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
    };
    let mut token: Option<String> = None;
    loop {
        let redirect: Mutex<Option<String>> = Mutex::new(None);
        let out = retrying(stop, RETRY_BASE, || {
            let req = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimited.then(|| "/".to_string()))
                .set_continuation_token(token.clone());
            let redirect = &redirect;
            async move {
                req.send().await.map_err(|e| {
                    if let Ok(mut r) = redirect.lock() {
                        *r = bucket_region(&e);
                    }
                    AwsError::from_sdk(&e, "s3:ListObjectsV2").on("bucket", bucket)
                })
            }
        })
        .await
        .map_err(|f| match f {
            Failed::Aws(error) => Ok(ListError {
                error,
                region: redirect.lock().ok().and_then(|r| r.clone()),
            }),
            f => Err(f),
        })?;
        for o in out.contents() {
            if let Some(k) = o.key() {
                let size = o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                page.objects.push((k.to_string(), size));
            }
        }
        for p in out.common_prefixes() {
            if let Some(p) = p.prefix() {
                page.prefixes.push(p.to_string());
            }
        }
        token = out.next_continuation_token().map(str::to_string);
        if !out.is_truncated().unwrap_or(false) || token.is_none() {
            return Ok(page);
        }
    }
}

/// The path segments of a prefix or key (`a/b/` → `["a", "b"]`).
fn segments(path: &str) -> Vec<&str> {
    path.strip_suffix('/')
        .unwrap_or(path)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// How a prefix is listed: one level at a time (the layout, where prefixes are judged before
/// they are listed), or everything under it at once (a tree that is not the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Delimited,
    Flat,
}

/// Is a directory (its segments) inside the `AWSLogs/` layout?
fn in_layout(segs: &[&str]) -> bool {
    segs.contains(&AWS_LOGS)
}

/// What a listing found, before ordering.
#[derive(Default)]
struct Found {
    keyed: Vec<(Option<Millis>, Input)>,
    digests: usize,
    pruned_files: usize,
    pruned_days: usize,
    listed: usize,
}

impl Found {
    /// Judges one listed key: a digest, left out by the filters, pruned by date, or read.
    fn key(&mut self, bucket: &str, key: &str, size: u64, sel: &Selection) {
        self.listed += 1;
        // A "folder" made in the console: a zero-byte key ending in `/`.
        if key.ends_with('/') {
            return;
        }
        let segs = segments(key);
        let Some((name, dir)) = segs.split_last() else {
            return;
        };
        if dir.contains(&DIGEST_DIR) {
            self.digests += 1;
            return;
        }
        let stamp = files::delivery_time(name);
        match sel.dir(dir) {
            DirVerdict::Filtered => {}
            DirVerdict::PrunedDay => self.pruned_files += 1,
            DirVerdict::Read if !sel.keeps_delivery(stamp) => self.pruned_files += 1,
            DirVerdict::Read => self.keyed.push((
                stamp,
                Input::Object {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    size,
                },
            )),
        }
    }

    /// Judges one common prefix of a delimited listing: what to list next, if anything.
    fn prefix(&mut self, prefix: String, sel: &Selection) -> Option<(String, Mode)> {
        let segs = segments(&prefix);
        if !in_layout(&segs) {
            // Outside the layout: the layout's own top is listed level by level, anything
            // else flat.
            let mode = if segs.last() == Some(&AWS_LOGS) {
                Mode::Delimited
            } else {
                Mode::Flat
            };
            return Some((prefix, mode));
        }
        if segs.last() == Some(&DIGEST_DIR) {
            return None;
        }
        match sel.dir(&segs) {
            DirVerdict::Read => Some((prefix, Mode::Delimited)),
            DirVerdict::PrunedDay => {
                self.pruned_days += 1;
                None
            }
            DirVerdict::Filtered => None,
        }
    }
}

/// Lists `url` as [`crate::source::files::discover_in`] walks a directory: the layout level by
/// level (`concurrency` prefixes at a time), objects judged by `sel`, in reading order.
async fn discover(
    client: &Client,
    url: &S3Url,
    sel: &Selection,
    concurrency: usize,
    stop: &Stop,
) -> Result<Discovery, Result<ListError, Failed>> {
    let mut found = Found::default();
    // The address itself: its complete directories are judged like any listed prefix.
    let start_dirs = segments(url.prefix.rsplit_once('/').map_or("", |(d, _)| d));
    if !url.prefix.is_empty() && !start_dirs.is_empty() {
        match sel.dir(&start_dirs) {
            DirVerdict::Read => {}
            DirVerdict::PrunedDay => {
                found.pruned_days += 1;
                return Ok(finish(found));
            }
            DirVerdict::Filtered => return Ok(finish(found)),
        }
    }
    let mut queue: VecDeque<(String, Mode)> =
        VecDeque::from([(url.prefix.clone(), Mode::Delimited)]);
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < concurrency.max(1)
            && let Some((prefix, mode)) = queue.pop_front()
        {
            let (client, bucket, stop) = (client.clone(), url.bucket.clone(), stop.clone());
            running.spawn(async move {
                list_prefix(&client, &bucket, &prefix, mode == Mode::Delimited, &stop).await
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let page = match done {
            Ok(r) => r?,
            Err(_) => return Err(Err(Failed::Stopped)),
        };
        for (key, size) in page.objects {
            found.key(&url.bucket, &key, size, sel);
        }
        for p in page.prefixes {
            if let Some(next) = found.prefix(p, sel) {
                queue.push_back(next);
            }
        }
    }
    Ok(finish(found))
}

fn finish(found: Found) -> Discovery {
    let mut d = Discovery::from_keyed(found.keyed);
    d.digests = found.digests;
    d.pruned_files = found.pruned_files;
    d.pruned_days = found.pruned_days;
    d.objects_listed = found.listed;
    d.objects_pruned = found.pruned_files;
    d
}

/// An object to read: bucket, key and its size as listed.
type ObjectRef = (String, String, u64);

/// One object read (or not), with its share of the read-ahead budget.
type Fetched = (Result<Vec<u8>, S3Error>, tokio::sync::OwnedSemaphorePermit);

/// What the reader's thread is asked to do.
enum Job {
    Discover {
        url: S3Url,
        sel: Selection,
        reply: std::sync::mpsc::Sender<Result<Discovery, S3Error>>,
    },
    Fetch {
        objects: Vec<ObjectRef>,
        out: tokio::sync::mpsc::Sender<Fetched>,
        stop: Stop,
    },
}

/// Reads `s3://` inputs from synchronous code: a thread owns the async runtime, the SDK
/// configuration and the clients (one more per bucket found in another region), and runs
/// what it is asked (listings, reads) there.
#[derive(Debug)]
pub struct Reader {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    concurrency: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Discover { url, .. } => write!(f, "Discover({url})"),
            Job::Fetch { objects, .. } => write!(f, "Fetch({} objects)", objects.len()),
        }
    }
}

/// The reader thread's state: the configuration and the clients.
struct Clients {
    sdk: aws_config::SdkConfig,
    default: Client,
    /// Clients of buckets in another region than the configured one.
    by_bucket: HashMap<String, Client>,
}

impl Clients {
    fn of(&self, bucket: &str) -> Client {
        self.by_bucket.get(bucket).unwrap_or(&self.default).clone()
    }

    /// Lists `url`; a bucket in another region is followed there (S3 names the region in
    /// its redirect).
    async fn discover(
        &mut self,
        url: &S3Url,
        sel: &Selection,
        concurrency: usize,
    ) -> Result<Discovery, S3Error> {
        let stop = Stop::new();
        let stopped = || S3Error::Stopped {
            url: url.to_string(),
        };
        let first = discover(&self.of(&url.bucket), url, sel, concurrency, &stop).await;
        let region = match first {
            Ok(d) => return Ok(d),
            Err(Err(_)) => return Err(stopped()),
            Err(Ok(ListError { error, region })) => match region {
                Some(r) if self.sdk.region().is_none_or(|c| c.as_ref() != r.as_str()) => r,
                _ => return Err(S3Error::List(error)),
            },
        };
        tracing::info!(bucket = %url.bucket, %region, "the bucket is in another region: following it");
        let sdk = self
            .sdk
            .to_builder()
            .region(aws_config::Region::new(region.clone()))
            .build();
        let client = s3_client(&sdk);
        self.by_bucket.insert(url.bucket.clone(), client.clone());
        discover(&client, url, sel, concurrency, &stop)
            .await
            .map_err(|e| match e {
                Ok(ListError { error, .. }) => S3Error::Redirect {
                    bucket: url.bucket.clone(),
                    region,
                    error,
                },
                Err(_) => stopped(),
            })
    }
}

/// Reads `objects` in order into `out`: `concurrency` requests in flight, at most `budget`
/// bytes downloaded ahead of the reader (at least one object).
async fn fetch(
    objects: Vec<(Client, ObjectRef)>,
    out: tokio::sync::mpsc::Sender<Fetched>,
    concurrency: usize,
    budget: u64,
    stop: Stop,
) {
    let total = u32::try_from(budget).unwrap_or(u32::MAX).max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(total as usize));
    let (started, mut in_order) = tokio::sync::mpsc::channel(concurrency.max(1));
    // The spawner owns `started`: when every object is started it ends, the channel closes,
    // and the forwarder ends after the last one.
    let spawner = async move {
        for (client, (bucket, key, size)) in objects {
            let need = u32::try_from(size).unwrap_or(u32::MAX).clamp(1, total);
            let permit = tokio::select! {
                p = permits.clone().acquire_many_owned(need) => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = stop.wait() => return,
            };
            let stop = stop.clone();
            let download = tokio::spawn(async move {
                let r = get_object(&client, &bucket, &key, &stop).await;
                (r, permit)
            });
            if started.send(download).await.is_err() {
                return;
            }
        }
    };
    let forwarder = async move {
        while let Some(download) = in_order.recv().await {
            let Ok(done) = download.await else {
                return;
            };
            if out.send(done).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(spawner, forwarder);
}

impl Reader {
    /// Starts the reader's thread: the SDK configuration from the standard chain, checked (a
    /// region, credentials), and a client; `concurrency` requests at a time.
    pub fn connect(concurrency: usize) -> Result<Reader, S3Error> {
        let concurrency = concurrency.max(1);
        let read_ahead = READ_AHEAD_BYTES;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), S3Error>>();
        let (jobs_tx, mut jobs) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("s3-reader".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(S3Error::Runtime(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let sdk = crate::util::aws::sdk_config(None).await;
                    if let Err(e) = crate::util::aws::check_setup(&sdk).await {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    let mut clients = Clients {
                        default: s3_client(&sdk),
                        sdk,
                        by_bucket: HashMap::new(),
                    };
                    while let Some(job) = jobs.recv().await {
                        match job {
                            Job::Discover { url, sel, reply } => {
                                let r = clients.discover(&url, &sel, concurrency).await;
                                let _ = reply.send(r);
                            }
                            Job::Fetch { objects, out, stop } => {
                                let objects =
                                    objects.into_iter().map(|o| (clients.of(&o.0), o)).collect();
                                tokio::spawn(fetch(objects, out, concurrency, read_ahead, stop));
                            }
                        }
                    }
                });
            })
            .map_err(S3Error::Runtime)?;
        let reader = Reader {
            jobs: Some(jobs_tx),
            thread: Some(thread),
            concurrency,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(reader),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(S3Error::Runtime(std::io::Error::other(
                "the S3 reader's thread ended at start",
            ))),
        }
    }

    fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Lists `url` (see the module's documentation), `concurrency` prefixes at a time. An error
    /// retrying cannot fix (no such bucket, access denied) is returned at once.
    pub fn discover(&self, url: &S3Url, sel: &Selection) -> Result<Discovery, S3Error> {
        let (reply, answer) = std::sync::mpsc::channel();
        let gone = || S3Error::Stopped {
            url: url.to_string(),
        };
        if !self.send(Job::Discover {
            url: url.clone(),
            sel: sel.clone(),
            reply,
        }) {
            return Err(gone());
        }
        answer.recv().unwrap_or_else(|_| Err(gone()))
    }

    /// Starts reading the objects among `inputs`, in their order: `concurrency` requests in
    /// flight, at most [`READ_AHEAD_BYTES`] downloaded ahead of the caller (at least one
    /// object). Local inputs are left out.
    pub fn fetch(&self, inputs: &[Input]) -> Fetch {
        let objects: Vec<ObjectRef> = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Object { bucket, key, size } => Some((bucket.clone(), key.clone(), *size)),
                _ => None,
            })
            .collect();
        // What waits for the caller is bounded by the budget; the channel by the count.
        let (out, rx) = tokio::sync::mpsc::channel(self.concurrency);
        let stop = Stop::new();
        self.send(Job::Fetch {
            objects,
            out,
            stop: stop.clone(),
        });
        Fetch { rx, stop }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Closing the job queue ends the thread (and whatever it still runs).
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Objects being read, in order: an iterator of their bytes (or why one could not be read).
/// Dropping it stops the downloads.
pub struct Fetch {
    rx: tokio::sync::mpsc::Receiver<Fetched>,
    stop: Stop,
}

impl Iterator for Fetch {
    type Item = Result<Vec<u8>, S3Error>;

    /// The next object's bytes, waiting for them (call it outside any async runtime). The
    /// read-ahead budget it held is given back as the bytes leave.
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.blocking_recv().map(|(r, _permit)| r)
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.stop.set();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_addresses() {
        let u = S3Url::parse("s3://my-trail/AWSLogs/").unwrap().unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("my-trail", "AWSLogs/")
        );
        let u = S3Url::parse("s3://my-trail").unwrap().unwrap();
        assert_eq!(u.prefix, "");
        assert_eq!(u.to_string(), "s3://my-trail/");
        assert!(S3Url::parse("fixtures/samples").is_none());
        let e = S3Url::parse("s3:///x").unwrap().unwrap_err().to_string();
        assert_eq!(e, "s3:///x: no bucket name (expected s3://bucket/prefix/)");
        assert!(S3Url::parse("s3://My_Bucket/x").unwrap().is_err());
    }

    fn objects(found: &Found) -> Vec<&str> {
        found
            .keyed
            .iter()
            .map(|(_, i)| match i {
                Input::Object { key, .. } => key.as_str(),
                _ => "?",
            })
            .collect()
    }

    #[test]
    fn keys_are_judged_like_files() {
        let ms = |t: &str| crate::util::time::parse_event_time(t).unwrap();
        let sel = Selection {
            range: Some(files::DeliveryRange {
                since: Some(ms("2023-07-10T00:00:00Z")),
                until: Some(ms("2023-07-10T12:00:00Z")),
                margin: 3_600_000,
            }),
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into()],
        };
        let ct = "AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2023/07";
        let mut f = Found::default();
        for key in [
            format!("{ct}/10/111122223333_CloudTrail_us-east-1_20230710T1145Z_a.json.gz"),
            format!("{ct}/10/111122223333_CloudTrail_us-east-1_20230710T1400Z_b.json.gz"),
            format!("{ct}/12/111122223333_CloudTrail_us-east-1_20230712T0005Z_c.json.gz"),
            "AWSLogs/o-abc123/111122223333/CloudTrail-Digest/us-east-1/2023/07/10/d.json.gz".into(),
            "AWSLogs/999988887777/CloudTrail/us-east-1/2023/07/10/e.json.gz".into(),
            "AWSLogs/111122223333/CloudTrail/eu-west-1/2023/07/10/f.json.gz".into(),
            "exports/".into(),
            "exports/lookup.json".into(),
        ] {
            f.key("b", &key, 10, &sel);
        }
        assert_eq!(
            objects(&f),
            [
                format!("{ct}/10/111122223333_CloudTrail_us-east-1_20230710T1145Z_a.json.gz")
                    .as_str(),
                "exports/lookup.json"
            ]
        );
        // The 14:00 file by its stamp, the 12th's by its day.
        assert_eq!((f.pruned_files, f.digests, f.listed), (2, 1, 8));
        assert_eq!(f.keyed[0].0, Some(ms("2023-07-10T11:45:00Z")));
    }

    #[test]
    fn prefixes_are_judged_before_they_are_listed() {
        let ms = |t: &str| crate::util::time::parse_event_time(t).unwrap();
        let sel = Selection {
            range: Some(files::DeliveryRange {
                since: Some(ms("2023-07-10T00:00:00Z")),
                until: None,
                margin: 0,
            }),
            accounts: vec!["111122223333".into()],
            regions: Vec::new(),
        };
        let mut f = Found::default();
        let mut next = |p: &str| f.prefix(p.to_string(), &sel).map(|(_, m)| m);
        assert_eq!(next("AWSLogs/"), Some(Mode::Delimited));
        assert_eq!(next("trail/AWSLogs/"), Some(Mode::Delimited));
        assert_eq!(next("exports/"), Some(Mode::Flat), "not the layout: flat");
        assert_eq!(next("AWSLogs/o-abc123/"), Some(Mode::Delimited));
        assert_eq!(
            next("AWSLogs/o-abc123/111122223333/"),
            Some(Mode::Delimited)
        );
        assert_eq!(next("AWSLogs/999988887777/"), None, "--accounts");
        assert_eq!(next("AWSLogs/111122223333/CloudTrail-Digest/"), None);
        assert_eq!(
            next("AWSLogs/111122223333/CloudTrail-Insight/"),
            Some(Mode::Delimited)
        );
        let day = "AWSLogs/111122223333/CloudTrail/us-east-1/2023/07";
        assert_eq!(next(&format!("{day}/08/")), None, "a day before --since");
        assert_eq!(
            next(&format!("{day}/09/")),
            Some(Mode::Delimited),
            "its last files may hold events of the 10th"
        );
        assert_eq!(next(&format!("{day}/10/")), Some(Mode::Delimited));
        assert_eq!(f.pruned_days, 1);
        let sel = Selection {
            regions: vec!["eu-west-1".into()],
            ..Selection::default()
        };
        assert_eq!(
            f.prefix("AWSLogs/111122223333/CloudTrail/us-east-1/".into(), &sel),
            None,
            "--regions"
        );
    }

    fn transient() -> AwsError {
        AwsError {
            action: "s3:GetObject",
            resource: None,
            region: None,
            kind: AwsErrorKind::Service {
                code: Some("SlowDown".into()),
                message: Some("Please reduce your request rate.".into()),
                status: Some(503),
            },
            class: AwsErrorClass::Transient,
            request_id: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn transient_errors_are_retried_and_others_are_not() {
        let stop = Stop::new();
        let mut calls = 0;
        let r = retrying(&stop, 1, || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(transient()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
        let mut calls = 0;
        let r: Result<(), Failed> = retrying(&stop, 1, || {
            calls += 1;
            async { Err(transient()) }
        })
        .await;
        assert!(matches!(r, Err(Failed::Aws(_))));
        assert_eq!(calls, ATTEMPTS, "given up after {ATTEMPTS} attempts");
        let mut calls = 0;
        let r: Result<(), Failed> = retrying(&stop, 1, || {
            calls += 1;
            let mut e = transient();
            e.class = AwsErrorClass::Denied;
            async move { Err(e) }
        })
        .await;
        assert!(matches!(r, Err(Failed::Aws(_))));
        assert_eq!(calls, 1, "an error retrying cannot fix is returned at once");
        stop.set();
        let r: Result<(), Failed> = retrying(&stop, 1, || async { Err(transient()) }).await;
        assert!(matches!(r, Err(Failed::Stopped)));
    }

    #[test]
    fn the_region_of_a_redirect() {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::SdkError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let mut raw = HttpResponse::new(301.try_into().unwrap(), SdkBody::from(""));
        raw.headers_mut().insert("x-amz-bucket-region", "eu-west-1");
        let meta = ErrorMetadata::builder().code("PermanentRedirect").build();
        let err = SdkError::service_error(meta, raw);
        assert_eq!(bucket_region(&err).as_deref(), Some("eu-west-1"));
        let e = AwsError::from_sdk(&err, "s3:ListObjectsV2").on("bucket", "b");
        assert!(
            e.to_string()
                .starts_with("bucket b: An error occurred (PermanentRedirect)")
        );
    }

    #[test]
    fn key_segments() {
        assert_eq!(segments("a/b/"), ["a", "b"]);
        assert_eq!(segments("a/b/c.json"), ["a", "b", "c.json"]);
        assert!(segments("").is_empty());
    }
}
