//! Secrets stay off command lines and out of output: `--secret-key-file` (a file, or `-`
//! for stdin) and the environment give `ks3-driver` its secret key, and with `-v` no
//! command — nor the registry serving a request — prints the secret in any form.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::*;
use ks3_local::{RunningServer, ServerConfig};

const SECRET_AK: &str = "AKLTsecretstest01";
/// Distinctive, with characters that URL encoding and base64 change.
const SECRET: &str = "Zq7/distinctive+SECRET=key~42";

fn own_server() -> RunningServer {
    ks3_local::start_in_background(ServerConfig::memory(BUCKET, SECRET_AK, SECRET)).unwrap()
}

/// `ks3-driver` for `server` with every parameter but the secret key.
fn cli_without_secret(server: &RunningServer, root: &str) -> Command {
    let mut c = bare_cli();
    for kv in [
        format!("accesskey={SECRET_AK}"),
        "region=ks3-cn-beijing".to_string(),
        format!("bucket={BUCKET}"),
        format!("regionendpoint={}", server.endpoint()),
        format!("rootdirectory={root}"),
    ] {
        c.arg("-p").arg(kv);
    }
    c
}

/// Every form of the secret that could leak: as is, URL-encoded, base64.
fn forms() -> Vec<String> {
    vec![
        SECRET.to_string(),
        ks3_proto::encode::encode_component(SECRET),
        base64::engine::general_purpose::STANDARD.encode(SECRET),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET),
        // A fragment, in case of truncation.
        "distinctive+SECRET".to_string(),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what} shows the secret as {f:?}:\n{text}"
        );
    }
}

fn output(c: &mut Command, stdin: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ks3-driver");
    let mut i = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = i.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    o
}

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn secret_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

#[test]
fn secret_key_from_a_file_from_stdin_and_from_the_environment() {
    let server = own_server();
    let root = format!("/secrets/{}", unique());
    let file = secret_file(&format!("  {SECRET}\n"));

    // A file (surrounding whitespace ignored).
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file").arg(file.path());
    let o = output(c.args(["put", "/a"]), b"from a file");
    assert!(o.status.success(), "{}", both(&o));
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file").arg(file.path());
    let o = output(c.args(["get", "/a"]), b"");
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(o.stdout, b"from a file");

    // Stdin.
    let mut c = cli_without_secret(&server, &root);
    let o = output(
        c.args(["--secret-key-file", "-", "stat", "--json", "/a"]),
        format!("{SECRET}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"size\":11"),
        "{}",
        both(&o)
    );

    // The environment, both variables.
    for var in ["KS3_SECRET_ACCESS_KEY", "REGISTRY_STORAGE_KS3_SECRETKEY"] {
        let mut c = cli_without_secret(&server, &root);
        let o = output(c.env(var, SECRET).args(["ls", "/"]), b"");
        assert!(o.status.success(), "{var}: {}", both(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "/a", "{var}");
    }

    // The file is what signs: a wrong secret in it is refused by the server.
    let wrong = secret_file("not-the-secret");
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file").arg(wrong.path());
    let o = output(c.args(["get", "/a"]), b"");
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(both(&o).contains("secret key"), "{}", both(&o));
}

#[test]
fn bad_secret_key_files_are_usage_errors_that_do_not_show_the_content() {
    let server = own_server();
    let root = format!("/secrets/{}", unique());
    let empty = secret_file(" \n");
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file").arg(empty.path());
    let o = output(c.args(["ls", "/"]), b"");
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("empty"), "{}", both(&o));

    let mut c = cli_without_secret(&server, &root);
    let o = output(
        c.args(["--secret-key-file", "/nonexistent/sk", "ls", "/"]),
        b"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("/nonexistent/sk"), "{}", both(&o));

    // Two sources of the secret: refused, neither shown.
    let file = secret_file(SECRET);
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file")
        .arg(file.path())
        .args(["-p", &format!("secretkey={SECRET}")]);
    let o = output(c.args(["ls", "/"]), b"");
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(both(&o).contains("use one"), "{}", both(&o));
    assert_no_secret("the conflict error", &both(&o));
}

#[test]
fn no_command_shows_the_secret_with_verbose() {
    let server = own_server();
    let root = format!("/secrets/{}", unique());
    let file = secret_file(SECRET);
    let run = |args: &[&str], stdin: &[u8], via_flag: bool| -> Output {
        let mut c = cli_without_secret(&server, &root);
        if via_flag {
            c.args(["-p", &format!("secretkey={SECRET}")]);
        } else {
            c.arg("--secret-key-file").arg(file.path());
        }
        c.arg("-v").args(args);
        output(&mut c, stdin)
    };
    let mut seen = String::new();
    for via_flag in [false, true] {
        for (args, stdin, ok) in [
            (&["put", "/d/x"][..], &b"verbose"[..], true),
            (&["get", "/d/x"][..], &b""[..], true),
            (&["stat", "/d/x"][..], &b""[..], true),
            (&["ls", "/d"][..], &b""[..], true),
            (&["walk", "/"][..], &b""[..], true),
            (&["du", "/"][..], &b""[..], true),
            (&["url", "/d/x"][..], &b""[..], true),
            (&["mv", "/d/x", "/d/y"][..], &b""[..], true),
            (&["config"][..], &b""[..], true),
            (&["get", "/d/missing"][..], &b""[..], false),
            (&["rm", "/d"][..], &b""[..], true),
        ] {
            let o = run(args, stdin, via_flag);
            let text = both(&o);
            assert_eq!(o.status.success(), ok, "{args:?}: {text}");
            assert_no_secret(&format!("`ks3-driver -v {}`", args.join(" ")), &text);
            seen.push_str(&text);
        }
    }
    // The verbose log was on: requests were logged.
    assert!(seen.contains("PUT /") && seen.contains(" 200 "), "{seen}");

    // A signature failure (the server has another secret) in verbose mode.
    let mut c = cli_without_secret(&server, &root);
    c.args([
        "-p",
        "secretkey=Another/distinctive+SECRET=x",
        "-v",
        "ls",
        "/",
    ]);
    let o = output(&mut c, b"");
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(!both(&o).contains("Another/distinctive"), "{}", both(&o));
}

#[test]
fn the_registry_with_verbose_does_not_show_the_secret() {
    let server = own_server();
    let root = format!("/secrets/{}", unique());
    let file = secret_file(SECRET);
    let mut c = cli_without_secret(&server, &root);
    c.arg("--secret-key-file").arg(file.path()).arg("-v");
    let mut child = c
        .args(["registry", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    let mut statuses = Vec::new();
    for target in [
        "/v2/",
        "/v2/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "/v2/app/tags/list",
    ] {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert_no_secret("a registry response", &text);
        statuses.push(text.split(' ').nth(1).unwrap_or("").to_string());
    }
    assert_eq!(statuses, ["200", "404", "404"]);
    let _ = child.kill();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    // The driver's requests to KS3 were logged, without the secret.
    assert!(err.contains("HEAD /") || err.contains("GET /"), "{err}");
    assert_no_secret("`ks3-driver -v registry`", &format!("{line}{rest}{err}"));
}
