//! The `ks3-driver` binary against a ks3-local server started by this test process.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

/// `ks3-driver -p …` for the shared server under `root`, with a clean environment.
fn cli(root: &str) -> Command {
    cli_for(&server().endpoint(), root)
}

fn run(mut c: Command) -> Output {
    c.output().expect("run ks3-driver")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn put_file_then_get_returns_the_same_bytes() {
    let root = format!("/cli/{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.bin");
    let body = data(12 * MIB + 123, 9); // three parts
    std::fs::write(&file, &body).unwrap();

    let o = run({
        let mut c = cli(&root);
        c.args(["put", "/a/b"]).arg(&file);
        c
    });
    assert!(o.status.success(), "put: {}", stderr(&o));

    let o = run({
        let mut c = cli(&root);
        c.args(["get", "/a/b"]);
        c
    });
    assert!(o.status.success(), "get: {}", stderr(&o));
    assert!(o.stdout == body, "get returned {} bytes", o.stdout.len());

    let o = run({
        let mut c = cli(&root);
        c.args(["stat", "/a/b"]);
        c
    });
    assert!(o.status.success(), "stat: {}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("path: /a/b\n"), "{out}");
    assert!(out.contains("type: file\n"), "{out}");
    assert!(out.contains(&format!("size: {}\n", body.len())), "{out}");
    assert!(out.contains("modified: 20"), "{out}");

    let o = run({
        let mut c = cli(&root);
        c.args(["stat", "/a"]);
        c
    });
    assert!(String::from_utf8_lossy(&o.stdout).contains("type: directory"));
}

#[test]
fn put_from_stdin_url_and_rm() {
    let root = format!("/cli/{}", unique());
    let mut c = cli(&root);
    c.args(["put", "/from/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello from stdin")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "put: {}", stderr(&o));

    let o = run({
        let mut c = cli(&root);
        c.args(["get", "/from/stdin"]);
        c
    });
    assert_eq!(o.stdout, b"hello from stdin");

    let o = run({
        let mut c = cli(&root);
        c.args(["url", "/from/stdin", "--method", "HEAD"]);
        c
    });
    assert!(o.status.success(), "url: {}", stderr(&o));
    let url = String::from_utf8(o.stdout).unwrap();
    assert!(url.starts_with(&server().endpoint()), "{url}");
    assert!(url.contains("Signature="), "{url}");

    let o = run({
        let mut c = cli(&root);
        c.args(["rm", "/from"]);
        c
    });
    assert!(o.status.success(), "rm: {}", stderr(&o));

    let o = run({
        let mut c = cli(&root);
        c.args(["get", "/from/stdin"]);
        c
    });
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("path-not-found"), "{err}");
    assert!(err.contains("/from/stdin"), "{err}");
}

#[test]
fn exit_status_and_messages() {
    let root = format!("/cli/{}", unique());
    // Usage error (clap): 2.
    let o = run({
        let mut c = Command::new(BIN);
        c.arg("frobnicate");
        c
    });
    assert_eq!(o.status.code(), Some(2));

    // Configuration error: 2, naming the parameter.
    let o = run({
        let mut c = cli(&root);
        c.args(["-p", "chunksize=12", "stat", "/x"]);
        c
    });
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chunksize"), "{}", stderr(&o));
    let o = run({
        let mut c = cli(&root);
        c.args(["-p", "novalue", "stat", "/x"]);
        c
    });
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A backend error: 1, with KS3's code, without the secret.
    let wrong = "cliWrongSecretNeverPrinted0123456789";
    let o = run({
        let mut c = cli(&root);
        c.args(["-p", &format!("secretkey={wrong}"), "stat", "/x"]);
        c
    });
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("backend"), "{err}");
    assert!(err.contains("/x"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(SK), "{err}");

    // Invalid path: 1.
    let o = run({
        let mut c = cli(&root);
        c.args(["get", "relative"]);
        c
    });
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid-path"), "{}", stderr(&o));

    // Missing input file: 2.
    let o = run({
        let mut c = cli(&root);
        c.args(["put", "/x", "/definitely/not/here"]);
        c
    });
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_file_env_and_flags_merge() {
    let root = format!("/cli/{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    // A distribution config: storage.ks3, non-string values, a wrong bucket that the
    // environment overrides, a wrong root that -p overrides.
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  ks3:\n    accesskey: {AK}\n    region: ks3-cn-beijing\n    bucket: not-this-one\n    regionendpoint: {}\n    secure: false\n    chunksize: 5242880\n    rootdirectory: /wrong\n",
            server().endpoint()
        ),
    )
    .unwrap();
    let base = || {
        let mut c = Command::new(BIN);
        c.arg("-c")
            .arg(&cfg)
            .env("REGISTRY_STORAGE_KS3_BUCKET", BUCKET)
            .env("KS3_SECRET_ACCESS_KEY", SK)
            .env_remove("KS3_ACCESS_KEY_ID")
            .args(["-p", &format!("rootdirectory={root}")]);
        c
    };
    let o = run({
        let mut c = base();
        c.args(["put", "/merged"]).stdin(Stdio::null());
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run({
        let mut c = base();
        c.args(["stat", "/merged"]);
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("size: 0"));
}
