//! The two scenarios of issue 10, as a user meets them from the command line: a transient
//! error on Complete must not destroy the upload, and a stale upload must never come back
//! over newer content.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use ks3_local::{FaultAction, FaultRule};

fn run(endpoint: &str, root: &str, args: &[&str], stdin: &[u8], extra: &[&str]) -> Output {
    let mut c: Command = cli_for(endpoint, root);
    for kv in extra {
        c.arg("-p").arg(kv);
    }
    let mut child = c
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_failed_complete_keeps_the_upload_and_a_retry_commits_it() {
    let endpoint = server().endpoint();
    let root = format!("/integrity/{}", unique());
    let body = data(12_000_000, 11);
    ok(
        &run(&endpoint, &root, &["put", "/f", "--no-commit"], &body, &[]),
        "put --no-commit",
    );
    // Two 500s on the Complete: more than `maxretries=1` absorbs.
    server().faults().inject(FaultRule {
        method: Some("POST".into()),
        path_pattern: format!("{}/f?uploadId=", root.trim_start_matches('/')),
        count: 2,
        action: FaultAction::Error {
            status: 500,
            code: "InternalError".into(),
        },
    });
    let o = run(
        &endpoint,
        &root,
        &["put", "/f", "--append"],
        b"",
        &["maxretries=1"],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "the commit fails while KS3 answers 500"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("InternalError"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(server().faults().remaining(), 0);
    // Nothing was lost: the retry commits every byte.
    ok(
        &run(
            &endpoint,
            &root,
            &["put", "/f", "--append"],
            b"",
            &["maxretries=1"],
        ),
        "retried commit",
    );
    let got = run(&endpoint, &root, &["get", "/f"], b"", &[]);
    ok(&got, "get");
    assert!(got.stdout == body, "the object is the 12 MB written");
}

#[test]
fn a_stale_upload_never_comes_back_over_newer_content() {
    let endpoint = server().endpoint();
    let root = format!("/integrity/{}", unique());
    ok(
        &run(&endpoint, &root, &["put", "/f", "--no-commit"], b"AAA", &[]),
        "put AAA --no-commit",
    );
    ok(
        &run(&endpoint, &root, &["put", "/f"], b"BBB", &[]),
        "put BBB",
    );
    let o = run(&endpoint, &root, &["put", "/f", "--append"], b"C", &[]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "appending to a committed object fails"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = run(&endpoint, &root, &["get", "/f"], b"", &[]);
    ok(&got, "get");
    assert_eq!(got.stdout, b"BBB");
}
