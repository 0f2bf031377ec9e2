//! The component is a plain WASI component: the stock `wasmtime` CLI (48.0.8, which
//! `.ci/run` installs) can call every export that takes and returns plain values, with the
//! configuration in the environment the way distribution passes it. This is the README's
//! "Calling the component from the stock wasmtime CLI" section, run for real against
//! ks3-local; nothing of this project's host is involved.
mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use common::{AK, BUCKET, SK};

/// The stock `wasmtime` CLI (`$WASMTIME`, `PATH` or cargo's bin directory); missing, the
/// test fails: a skipped test would hide a broken promise of the README.
fn wasmtime() -> PathBuf {
    ks3_test_support::tool(
        "wasmtime",
        "WASMTIME",
        "cargo install --locked wasmtime-cli --version 48.0.8",
    )
}

struct Stock {
    wasmtime: PathBuf,
    component: tempfile::NamedTempFile,
    endpoint: String,
    root: String,
}

impl Stock {
    fn new() -> Stock {
        let mut component = tempfile::NamedTempFile::new().expect("temporary file");
        component
            .write_all(ks3_driver_host::EMBEDDED_COMPONENT)
            .expect("write the component");
        Stock {
            wasmtime: wasmtime(),
            component,
            endpoint: common::server().endpoint(),
            root: format!("/stock-wasmtime/{}", common::unique()),
        }
    }

    /// `wasmtime run -S http --env … --invoke CALL component`; returns stdout. The secret
    /// key is inherited from this process's environment (`--env NAME` without a value),
    /// never put on the command line.
    fn invoke(&self, call: &str) -> String {
        let vars = [
            ("ACCESSKEY", AK.to_string()),
            ("SECRETKEY", SK.to_string()),
            ("REGION", "ks3-cn-beijing".to_string()),
            ("BUCKET", BUCKET.to_string()),
            ("REGIONENDPOINT", self.endpoint.clone()),
            ("ROOTDIRECTORY", self.root.clone()),
        ];
        let mut cmd = Command::new(&self.wasmtime);
        cmd.args(["run", "-S", "http"]);
        for (name, value) in &vars {
            let var = format!("REGISTRY_STORAGE_KS3_{name}");
            cmd.arg("--env").arg(&var).env(&var, value);
        }
        cmd.arg("--invoke").arg(call).arg(self.component.path());
        let out = cmd.output().expect("run wasmtime");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "wasmtime --invoke '{call}' failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            !stdout.contains(SK) && !stderr.contains(SK),
            "the secret key appeared in the output of '{call}'"
        );
        stdout
    }
}

/// A plain HTTP/1.1 GET of `url` (http only); returns (status line, body).
fn http_get(url: &str) -> (String, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, response[split + 4..].to_vec())
}

/// Every plain-value export of the world, through the stock CLI.
#[test]
fn stock_wasmtime_invokes_every_plain_value_export() {
    let stock = Stock::new();

    assert_eq!(stock.invoke("name()"), "\"ks3\"");
    assert_eq!(stock.invoke("validate-config()"), "ok");

    // "hi" as a WAVE list<u8>.
    assert_eq!(stock.invoke(r#"put-content("/dir/a", [104, 105])"#), "ok");
    assert_eq!(
        stock.invoke(r#"get-content("/dir/a")"#),
        "ok([104, 105])",
        "get-content returns what put-content stored"
    );
    let stat = stock.invoke(r#"stat("/dir/a")"#);
    assert!(
        stat.starts_with("ok(") && stat.contains("size: 2") && stat.contains("is-dir: false"),
        "stat of a 2-byte file: {stat}"
    );
    let dir = stock.invoke(r#"stat("/dir")"#);
    assert!(dir.contains("is-dir: true"), "stat of a directory: {dir}");
    assert_eq!(
        stock.invoke(r#"list-children("/dir")"#),
        r#"ok(["/dir/a"])"#
    );

    // A presigned GET, fetched by a plain client: ks3-local checks its signature.
    let redirect = stock.invoke(r#"redirect-url("GET", "/dir/a")"#);
    let url = redirect
        .strip_prefix("ok(some(\"")
        .and_then(|r| r.strip_suffix("\"))"))
        .unwrap_or_else(|| panic!("redirect-url answers a URL: {redirect}"));
    assert!(
        url.starts_with(&stock.endpoint),
        "the URL points at the endpoint: {url}"
    );
    let (status, body) = http_get(url);
    assert!(status.contains(" 200 "), "presigned GET: {status}");
    assert_eq!(body, b"hi");

    assert_eq!(stock.invoke(r#"move("/dir/a", "/dir/b")"#), "ok");
    assert!(
        stock
            .invoke(r#"stat("/dir/a")"#)
            .starts_with("err(path-not-found("),
        "the source of a move is gone"
    );
    assert_eq!(stock.invoke(r#"get-content("/dir/b")"#), "ok([104, 105])");
    assert_eq!(stock.invoke(r#"delete("/dir/b")"#), "ok");
    let gone = stock.invoke(r#"get-content("/dir/b")"#);
    assert!(
        gone.starts_with("err(path-not-found("),
        "a deleted file is not found: {gone}"
    );
    // Bad input gets the driver's typed error, through the stock CLI too.
    let invalid = stock.invoke(r#"stat("relative")"#);
    assert!(
        invalid.starts_with("err(invalid-path("),
        "a relative path is refused: {invalid}"
    );
}
