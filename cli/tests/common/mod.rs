//! Shared by the command-line tests: the workspace's test bootstrap (`ks3-test-support`:
//! one local KS3 server per test binary, parameters, data) and the `ks3-driver` binary
//! under test.
#![allow(dead_code)]
// Each test binary uses a different part of the shared fixtures.
#![allow(unused_imports)]
pub use ks3_test_support::{data, server, start_server, unique, Params, BUCKET, MIB};
pub use ks3_test_support::{ACCESS_KEY as AK, SECRET_KEY as SK};

/// Parameters for `endpoint` under a root directory unique to `test`.
pub fn params_for(endpoint: &str, test: &str) -> Params {
    ks3_test_support::params_on(endpoint, &ks3_test_support::unique_root(test))
}

/// Parameters for the shared server under a root directory unique to `test`.
pub fn params(test: &str) -> Params {
    ks3_test_support::params(&ks3_test_support::unique_root(test))
}

/// The `ks3-driver` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ks3-driver");

/// `ks3-driver` with no KS3 configuration from the environment and no progress output.
pub fn bare_cli() -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("REGISTRY_STORAGE_KS3_") || k.starts_with("KS3_") {
            c.env_remove(k);
        }
    }
    c.env("KS3_DRIVER_PROGRESS", "never");
    c
}

/// `ks3-driver -p …` for the server at `endpoint`, under `root`.
pub fn cli_for(endpoint: &str, root: &str) -> std::process::Command {
    let mut c = bare_cli();
    for kv in [
        format!("accesskey={AK}"),
        format!("secretkey={SK}"),
        "region=ks3-cn-beijing".to_string(),
        format!("bucket={BUCKET}"),
        format!("regionendpoint={endpoint}"),
        format!("rootdirectory={root}"),
        "chunksize=5242880".to_string(),
    ] {
        c.arg("-p").arg(kv);
    }
    c
}

/// `c registry --addr 127.0.0.1:0`, started with `stderr`; the child (its stdout taken)
/// and its `HOST:PORT`, read from the first line it prints.
pub fn start_registry(
    mut c: std::process::Command,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = c
        .args(["registry", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    (child, addr)
}

/// One HTTP/1.1 request to `addr` with `headers` (`Name: value` each) and `body`, on a
/// connection closed after it; the status and the body of the answer.
pub fn http_request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => raw[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}
