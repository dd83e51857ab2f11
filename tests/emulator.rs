//! Proves the AWS emulator started by `./scripts/test` is reachable from the
//! test suite.
//!
//! `scripts/test` launches a local moto server and exports `AWS_ENDPOINT_URL`
//! (plus dummy credentials and region) before running `cargo test`. This test
//! only speaks plain HTTP over `std::net::TcpStream`; later live-mode tests use
//! the real AWS SDK against this same emulator via the same environment.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Splits `http://host:port[/...]` into `(host, port)`.
fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("AWS_ENDPOINT_URL must start with http://, got {url:?}"));
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("AWS_ENDPOINT_URL must include an explicit port, got {url:?}"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("bad port in AWS_ENDPOINT_URL {url:?}"));
    (host.to_owned(), port)
}

#[test]
fn emulator_answers_http() {
    let url = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the suite through ./scripts/test, \
             which starts the AWS emulator"
        )
    });
    let (host, port) = host_port(&url);

    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {host}:{port}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("no address for {host}:{port}"));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to emulator at {url}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();

    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("failed to send request to emulator");

    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .expect("failed to read response from emulator");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    assert!(
        version.starts_with("HTTP/1.") && code == "200",
        "expected HTTP 200 from {url}/moto-api/data.json, got status line {:?}",
        status_line.trim_end()
    );
}
