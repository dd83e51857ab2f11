//! `trailwatch backtest s3://…` against the AWS emulator started by `./scripts/test`: an
//! archive uploaded to a bucket gives the same findings (but for the origin's prefix) and the
//! same summary as the same files on disk; --since/--until, --accounts and --regions list
//! less; a missing bucket stops the run with one line; an unreadable object is an input
//! problem and the run goes on.

mod common;

use common::{endpoint, gz, root, rt, run, stderr, stdout, write};
use serde_json::Value;
use std::path::{Path, PathBuf};
use trailwatch::source::s3::{S3Error, get_object, s3_client};
use trailwatch::util::aws::{Stop, sdk_config};

const ORG: &str = "AWSLogs/o-abc1234567/111122223333";
const SAMPLE_ACCOUNT: &str = "218007301253";

/// A client of the emulator.
async fn client() -> aws_sdk_s3::Client {
    endpoint();
    s3_client(&sdk_config(None).await)
}

/// A bucket of its own for each test (they run in parallel).
fn bucket_name(test: &str) -> String {
    format!("tw-{test}-{}", common::now_ms())
}

/// A local archive in the S3 layout: the sample trail's day, a second day, an organisation
/// trail (Stratus Red Team detonations, with CloudTrail names), an Insights file, a digest,
/// and a README that is not CloudTrail.
fn archive(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    let samples = root().join("fixtures/samples");
    let day = format!("AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail/us-east-1/2023/07/10");
    let mut names: Vec<PathBuf> = std::fs::read_dir(samples.join(&day))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in &names {
        let name = p.file_name().unwrap().to_str().unwrap();
        write(&tree, &format!("{day}/{name}"), std::fs::read(p).unwrap());
    }
    // The next day: one of the same files, delivered again (read once: duplicates).
    write(
        &tree,
        &format!(
            "AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail/us-east-1/2023/07/11/{SAMPLE_ACCOUNT}_CloudTrail_us-east-1_20230711T0905Z_Late0000000000a.json.gz"
        ),
        std::fs::read(&names[0]).unwrap(),
    );
    for (i, f) in [
        "aws.defense-evasion.cloudtrail-stop.json",
        "aws.persistence.iam-create-admin-user.json",
        "aws.discovery.ec2-download-user-data.json",
    ]
    .iter()
    .enumerate()
    {
        let text = std::fs::read_to_string(samples.join("stratus-red-team").join(f)).unwrap();
        let records: Value = serde_json::from_str(&text).unwrap();
        let last = records
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["eventTime"].as_str())
            .max()
            .unwrap()
            .to_string();
        // Delivered a few minutes after its last event, as CloudTrail does.
        let t = chrono::DateTime::parse_from_rfc3339(&last).unwrap() + chrono::Duration::minutes(5);
        let (path, stamp) = (t.format("%Y/%m/%d"), t.format("%Y%m%dT%H%MZ"));
        write(
            &tree,
            &format!(
                "{ORG}/CloudTrail/eu-west-1/{path}/111122223333_CloudTrail_eu-west-1_{stamp}_Stratus{i:010}.json.gz"
            ),
            gz(text),
        );
    }
    write(
        &tree,
        &format!(
            "{ORG}/CloudTrail-Insight/eu-west-1/2023/07/10/111122223333_CloudTrail-Insight_eu-west-1_20230710T1210Z_Insight0000000a.json.gz"
        ),
        gz(serde_json::json!({"Records": [{
            "eventVersion": "1.07",
            "eventTime": "2023-07-10T12:01:30Z",
            "awsRegion": "eu-west-1",
            "eventID": "ins-1",
            "eventType": "AwsCloudTrailInsight",
            "recipientAccountId": "111122223333",
            "sharedEventID": "s-1",
            "insightDetails": {"state": "Start", "eventSource": "iam.amazonaws.com",
                "eventName": "CreateUser", "insightType": "ApiCallRateInsight"},
            "eventCategory": "Insight"
        }]})
        .to_string()),
    );
    write(
        &tree,
        &format!(
            "AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail-Digest/us-east-1/2023/07/10/{SAMPLE_ACCOUNT}_CloudTrail-Digest_us-east-1_trail_us-east-1_20230710T1300Z.json.gz"
        ),
        gz(
            r#"{"awsAccountId":"218007301253","digestStartTime":"2023-07-10T12:00:00Z","digestEndTime":"2023-07-10T13:00:00Z","digestS3Bucket":"b","digestS3Object":"x","digestPublicKeyFingerprint":"00","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":null,"oldestEventTime":null,"previousDigestS3Bucket":null,"previousDigestHashValue":null,"logFiles":[]}"#,
        ),
    );
    write(&tree, "README.md", "# Trail bucket\n\nNot CloudTrail.\n");
    tree
}

/// Every file under `dir`, as (key relative to `dir`, path).
fn files_under(dir: &Path) -> Vec<(String, PathBuf)> {
    common::files(dir)
        .into_iter()
        .map(|p| {
            let key = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
            (key, p)
        })
        .collect()
}

/// Creates `bucket` and uploads the tree at `dir` to it, keys relative to `dir`.
fn upload(bucket: &str, dir: &Path) {
    rt().block_on(async {
        let c = client().await;
        c.create_bucket().bucket(bucket).send().await.unwrap();
        for (key, p) in files_under(dir) {
            c.put_object()
                .bucket(bucket)
                .key(&key)
                .body(std::fs::read(&p).unwrap().into())
                .send()
                .await
                .unwrap();
        }
    });
}

/// An uploaded archive and the same files on disk.
struct Fixture {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    bucket: String,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tree = archive(dir.path());
        let bucket = bucket_name(test);
        upload(&bucket, &tree);
        Fixture {
            _dir: dir,
            tree,
            bucket,
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    fn local(&self, sub: &str) -> String {
        let p = if sub.is_empty() {
            self.tree.clone()
        } else {
            self.tree.join(sub)
        };
        p.to_str().unwrap().to_string()
    }

    /// `s` with the local tree's place written as the bucket's.
    fn as_s3(&self, s: &str) -> String {
        s.replace(&format!("{}/", self.local("")), &self.url(""))
    }
}

/// `backtest --format jsonl ARGS…`: (stdout, stderr), exit 0 asserted.
fn jsonl(args: &[&str]) -> (String, String) {
    let mut all = vec!["backtest", "--format", "jsonl"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{all:?}\n{}", stderr(&o));
    (stdout(&o), stderr(&o))
}

/// `backtest --format json ARGS…`: the document, exit 0 asserted.
fn json(args: &[&str]) -> Value {
    let mut all = vec!["backtest", "--format", "json"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "{all:?}\n{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn count(v: &Value, key: &str) -> u64 {
    v["summary"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{key} in {}", v["summary"]))
}

/// The summary without what only S3 counts (objects listed and read, digests it never lists).
fn common_summary(v: &Value) -> Value {
    let mut s = v["summary"].clone();
    for k in [
        "objects_listed",
        "objects_read",
        "objects_pruned_by_date",
        "digest_files_skipped",
    ] {
        s.as_object_mut().unwrap().remove(k);
    }
    s
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The same findings and summary from S3 as from disk, with `flags` on both runs.
fn assert_same(f: &Fixture, prefix: &str, flags: &[&str]) -> (String, Value) {
    assert_same_as(f, prefix, prefix, flags)
}

/// [`assert_same`] for a directory `sub` of the local tree and an S3 `prefix` that lists the
/// same objects.
fn assert_same_as(f: &Fixture, sub: &str, prefix: &str, flags: &[&str]) -> (String, Value) {
    let local = f.local(sub);
    let url = f.url(prefix);
    let with = |input: &str| {
        let mut a: Vec<&str> = flags.to_vec();
        a.push(input);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (l_args, s_args) = (with(&local), with(&url));
    let (l_out, _) = jsonl(&refs(&l_args));
    let (s_out, s_err) = jsonl(&refs(&s_args));
    assert!(!s_out.is_empty(), "no findings from {url}: {s_err}");
    assert_eq!(
        f.as_s3(&l_out),
        s_out,
        "findings from {url} and {local} differ ({flags:?})"
    );
    let l_doc = json(&refs(&l_args));
    let s_doc = json(&refs(&s_args));
    assert_eq!(
        f.as_s3(&common_summary(&l_doc).to_string()),
        common_summary(&s_doc).to_string(),
        "summaries differ ({flags:?})"
    );
    (s_out, s_doc)
}

#[test]
fn the_same_findings_and_summary_as_the_same_files_on_disk() {
    let f = Fixture::new("same");
    let (out, doc) = assert_same(&f, "", &[]);
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let origin = first.to_string();
    assert!(
        origin.contains(&format!("s3://{}/AWSLogs/", f.bucket)) && origin.contains(": record "),
        "the origin names the object and the record: {origin}"
    );
    // Every object of the tree was listed; the digest folder never was.
    let files = files_under(&f.tree).len() as u64;
    assert_eq!(
        count(&doc, "objects_listed"),
        files - 1,
        "{}",
        doc["summary"]
    );
    assert_eq!(count(&doc, "digest_files_skipped"), 0);
    assert_eq!(count(&doc, "objects_read"), files - 1);
    assert_eq!(count(&doc, "files_skipped"), 1, "the README");
    assert!(count(&doc, "bytes_read") > 0);
    // The organisation trail and the Insights file are read.
    assert!(out.contains("/AWSLogs/o-abc1234567/111122223333/CloudTrail/eu-west-1/"));
    assert!(out.contains("CloudTrail-Insight") || count(&doc, "records") > 0);
    // The output does not depend on the number of threads.
    let url = f.url("");
    let (one, _) = jsonl(&["--threads", "1", &url]);
    let (three, _) = jsonl(&["--threads", "3", "--s3-concurrency", "2", &url]);
    assert_eq!(one, out);
    assert_eq!(three, out);
    // The text summary says what S3 did.
    let o = run(&["backtest", &url]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "S3: {} objects listed, {} read",
            files - 1,
            files - 1
        )),
        "{text}"
    );
}

#[test]
fn a_prefix_may_stop_anywhere_in_the_layout() {
    let f = Fixture::new("prefix");
    let day = format!("AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail/us-east-1/2023/07/10/");
    // An account, a day, and a prefix that ends inside a name.
    assert_same(&f, &format!("AWSLogs/{SAMPLE_ACCOUNT}/"), &[]);
    let (_, doc) = assert_same(&f, &day, &[]);
    let in_day = files_under(&f.tree.join(&day)).len() as u64;
    assert_eq!(count(&doc, "objects_listed"), in_day);
    let (_, doc) = assert_same_as(&f, "AWSLogs/o-abc1234567/", "AWSLogs/o-abc", &[]);
    assert_eq!(count(&doc, "objects_listed"), 4, "{}", doc["summary"]);
    // One object.
    let one = files_under(&f.tree.join(&day))[0].0.clone();
    let doc = json(&[&f.url(&format!("{day}{one}"))]);
    assert_eq!(count(&doc, "objects_listed"), 1);
    assert_eq!(count(&doc, "files_read"), 1);
}

#[test]
fn since_and_until_list_fewer_objects() {
    let f = Fixture::new("range");
    let (_, all) = assert_same(&f, "", &[]);
    let flags = [
        "--since",
        "2023-07-10T12:10:00Z",
        "--until",
        "2023-07-10T12:20:00Z",
        "--delivery-margin",
        "1h",
    ];
    let (_, doc) = assert_same(&f, "", &flags);
    assert!(
        count(&doc, "objects_listed") < count(&all, "objects_listed"),
        "{}",
        doc["summary"]
    );
    // The 11th and the Stratus days (2024) are not listed at all; the 10th's files before
    // 12:10 (less the clock skew) are pruned by their stamps.
    assert!(
        count(&doc, "days_pruned_by_date") >= 2,
        "{}",
        doc["summary"]
    );
    assert!(
        count(&doc, "objects_pruned_by_date") >= 1,
        "{}",
        doc["summary"]
    );
    assert_eq!(
        count(&doc, "objects_pruned_by_date"),
        count(&doc, "files_pruned_by_date")
    );
    assert!(count(&doc, "objects_read") < count(&all, "objects_read"));
}

#[test]
fn accounts_and_regions_filter_in_s3_and_on_disk() {
    let f = Fixture::new("filter");
    let (out, doc) = assert_same(&f, "", &["--accounts", "111122223333"]);
    for line in out.lines() {
        assert!(
            line.contains("/AWSLogs/o-abc1234567/111122223333/"),
            "{line}"
        );
    }
    // The organisation trail's three files and the Insights file, and the README (outside the
    // layout, not filtered).
    assert_eq!(count(&doc, "objects_listed"), 5, "{}", doc["summary"]);
    let (out, doc) = assert_same(&f, "", &["--regions", "us-east-1"]);
    assert!(!out.contains("eu-west-1/"), "{out}");
    // The sample account's two days, and the README.
    let us_east_1 = files_under(&f.tree.join(format!("AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail"))).len();
    assert_eq!(
        count(&doc, "objects_listed"),
        us_east_1 as u64 + 1,
        "{}",
        doc["summary"]
    );
    // Both: nothing is left but the README.
    let doc = json(&[
        "--accounts",
        "111122223333",
        "--regions",
        "us-east-1",
        &f.url(""),
    ]);
    assert_eq!(count(&doc, "objects_listed"), 1);
    // A bad value is a usage error naming it.
    let o = run(&["backtest", "--accounts", "1234", &f.url("")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`1234` is not an AWS account id"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_bucket_stops_the_run_with_one_line() {
    let o = run(&["backtest", "s3://tw-no-such-bucket-here/AWSLogs/"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with(
            "error: bucket tw-no-such-bucket-here: An error occurred (NoSuchBucket) when \
             calling the ListObjectsV2 operation"
        ),
        "{err}"
    );
    assert!(
        lines[0].contains("aws s3 ls s3://tw-no-such-bucket-here/"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
    // A bad address, before any call.
    let o = run(&["backtest", "s3://Bad_Name/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("s3://Bad_Name/: not a bucket name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_unreadable_object_is_an_input_problem_and_the_run_goes_on() {
    let bucket = bucket_name("unreadable");
    let samples = root().join("fixtures/samples");
    let day = format!("AWSLogs/{SAMPLE_ACCOUNT}/CloudTrail/us-east-1/2023/07/10");
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples.join(&day))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    let archived = format!("{day}/{}", name(&files[0]));
    rt().block_on(async {
        let c = client().await;
        c.create_bucket().bucket(&bucket).send().await.unwrap();
        for (i, p) in files.iter().take(3).enumerate() {
            let mut put = c
                .put_object()
                .bucket(&bucket)
                .key(format!("{day}/{}", name(p)))
                .body(std::fs::read(p).unwrap().into());
            if i == 0 {
                // Moved to Glacier: listed, but GetObject refuses it until restored.
                put = put.storage_class(aws_sdk_s3::types::StorageClass::Glacier);
            }
            put.send().await.unwrap();
        }
    });
    let url = format!("s3://{bucket}/");
    let o = run(&["backtest", "--format", "json", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let place = format!("s3://{bucket}/{archived}");
    let issues = doc["summary"]["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{}", doc["summary"]);
    assert_eq!(issues[0]["place"], place.as_str());
    let message = issues[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "cannot read: An error occurred (InvalidObjectState) when calling the GetObject \
             operation"
        ),
        "{message}"
    );
    assert!(
        stderr(&o).contains(&format!("warning: {place}: cannot read: ")),
        "{}",
        stderr(&o)
    );
    assert_eq!(count(&doc, "objects_listed"), 3);
    assert_eq!(count(&doc, "objects_read"), 2);
    assert_eq!(count(&doc, "files_read"), 2);
    // --strict makes it an error.
    let o = run(&["backtest", "--strict", &url]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn get_object_names_a_missing_object() {
    let bucket = bucket_name("get");
    rt().block_on(async {
        let c = client().await;
        c.create_bucket().bucket(&bucket).send().await.unwrap();
        c.put_object()
            .bucket(&bucket)
            .key("a/b.json")
            .body(b"{}".to_vec().into())
            .send()
            .await
            .unwrap();
        let stop = Stop::new();
        assert_eq!(
            get_object(&c, &bucket, "a/b.json", &stop).await.unwrap(),
            b"{}"
        );
        // Deleted after it was listed: an error naming it, at once (not retried).
        c.delete_object()
            .bucket(&bucket)
            .key("a/b.json")
            .send()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let e = get_object(&c, &bucket, "a/b.json", &stop)
            .await
            .unwrap_err();
        assert!(matches!(e, S3Error::Get { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "s3://{bucket}/a/b.json: An error occurred (NoSuchKey) when calling the \
                 GetObject operation"
            )),
            "{text}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    });
}

/// A stand-in for S3 in `eu-west-1`: a request signed for another region gets the `301
/// PermanentRedirect` S3 answers with (naming the bucket's region); one signed for `eu-west-1`
/// lists one object, `x.json`, and reads it.
fn redirecting_s3(object: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Listing (twice: the redirect, then the bucket's region) and reading: 3 requests; the
        // SDK may retry nothing here (a 301 and two 200s).
        for stream in listener.incoming().take(3) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let request = head.first().cloned().unwrap_or_default();
            let auth = head
                .iter()
                .find(|h| h.to_ascii_lowercase().starts_with("authorization:"))
                .cloned()
                .unwrap_or_default();
            let (status, headers, body) = if !auth.contains("/eu-west-1/s3/") {
                (
                    "301 Moved Permanently",
                    "x-amz-bucket-region: eu-west-1\r\nContent-Type: application/xml\r\n",
                    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Bucket>far-bucket</Bucket></Error>".to_vec(),
                )
            } else if request.contains("list-type=2") {
                (
                    "200 OK",
                    "Content-Type: application/xml\r\n",
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>far-bucket</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated><Contents><Key>x.json</Key><Size>{}</Size></Contents></ListBucketResult>",
                        object.len()
                    )
                    .into_bytes(),
                )
            } else {
                (
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    object.clone(),
                )
            };
            seen.push(format!("{request} -> {status}"));
            write!(
                stream,
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            stream.write_all(&body).unwrap();
        }
        seen
    });
    (url, server)
}

#[test]
fn a_bucket_in_another_region_is_followed_there() {
    let sample =
        root().join("fixtures/samples/stratus-red-team/aws.defense-evasion.cloudtrail-stop.json");
    let (url, server) = redirecting_s3(std::fs::read(&sample).unwrap());
    let o = common::bin()
        .args(["backtest", "--format", "jsonl", "s3://far-bucket/"])
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_REGION", "us-east-1")
        .current_dir(root())
        .output()
        .unwrap();
    let seen = server.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{seen:?}", stderr(&o));
    assert!(seen[0].ends_with("301 Moved Permanently"), "{seen:?}");
    assert!(
        seen[1].contains("list-type=2") && seen[1].ends_with("200 OK"),
        "{seen:?}"
    );
    assert!(seen[2].starts_with("GET /far-bucket/x.json"), "{seen:?}");
    let out = stdout(&o);
    assert!(
        out.contains("\"s3://far-bucket/x.json: record ") && out.contains("StopLogging"),
        "{out}"
    );
}
