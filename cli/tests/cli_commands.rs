//! Every `ks3-driver` command, run as a process against a ks3-local server started by this
//! test process: exit codes, JSON shapes, stdin/stdout, error messages, help, config,
//! demo, serve-local.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `ks3-driver` with no KS3 configuration from the environment.
fn bare() -> Command {
    bare_cli()
}

/// `ks3-driver -p …` for the shared server under `root`.
fn cli(root: &str) -> Command {
    cli_for(&server().endpoint(), root)
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run ks3-driver")
}

fn ok(c: &mut Command) -> String {
    let o = run(c);
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `put PATH` with `body` on stdin.
fn put_stdin(root: &str, path: &str, body: &[u8], extra: &[&str]) -> Output {
    let mut c = cli(root);
    c.args(["put", path])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn put");
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    o
}

fn new_root() -> String {
    format!("/cli-cmd/{}", unique())
}

fn check_info(v: &Value, path: &str, size: u64, isdir: bool) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<_> = o.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["isdir", "modtime", "path", "size"], "{v}");
    assert_eq!(o["path"], path, "{v}");
    assert_eq!(o["size"], size, "{v}");
    assert_eq!(o["isdir"], isdir, "{v}");
    let t = o["modtime"].as_str().unwrap();
    // RFC 3339, UTC.
    assert!(
        t.len() >= 20 && t.ends_with('Z') && &t[4..5] == "-" && &t[10..11] == "T",
        "{t}"
    );
    if !isdir {
        assert!(t.starts_with("20"), "{t}");
    }
}

#[test]
fn stat_ls_walk_du_text_and_json() {
    let root = new_root();
    for (p, n) in [
        ("/d/a", 10usize),
        ("/d/b", 2000),
        ("/d/sub/c", 3),
        ("/e", 0),
    ] {
        let o = put_stdin(&root, p, &data(n, n as u64), &[]);
        assert!(o.status.success(), "put {p}: {}", err(&o));
    }

    let v: Value = serde_json::from_str(&ok(cli(&root).args(["stat", "--json", "/d/b"]))).unwrap();
    check_info(&v, "/d/b", 2000, false);
    let v: Value = serde_json::from_str(&ok(cli(&root).args(["stat", "--json", "/d"]))).unwrap();
    check_info(&v, "/d", 0, true);
    let text = ok(cli(&root).args(["stat", "/d/a"]));
    assert!(
        text.contains("path: /d/a\n") && text.contains("size: 10\n"),
        "{text}"
    );

    let v: Value = serde_json::from_str(&ok(cli(&root).args(["ls", "--json", "/d"]))).unwrap();
    assert_eq!(v, serde_json::json!(["/d/a", "/d/b", "/d/sub"]));
    assert_eq!(ok(cli(&root).args(["ls", "/"])), "/d\n/e\n");

    let out = ok(cli(&root).args(["walk", "--json", "/"]));
    let entries: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let paths: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/d", "/d/a", "/d/b", "/d/sub", "/d/sub/c", "/e"]);
    check_info(&entries[2], "/d/b", 2000, false);
    check_info(&entries[3], "/d/sub", 0, true);
    let out = ok(cli(&root).args(["walk", "/d"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("f 10 20") && lines[0].ends_with(" /d/a"),
        "{out}"
    );
    assert_eq!(lines[2], "d /d/sub");

    let v: Value = serde_json::from_str(&ok(cli(&root).args(["du", "--json", "/d"]))).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"path": "/d", "objects": 3, "bytes": 2013})
    );
    let v: Value = serde_json::from_str(&ok(cli(&root).args(["du", "--json", "/d/b"]))).unwrap();
    assert_eq!(v["objects"], 1);
    assert_eq!(v["bytes"], 2000);
    let text = ok(cli(&root).args(["du", "/"]));
    assert!(text.starts_with("4 objects, 2013 bytes"), "{text}");

    // Not found: exit 1, one line naming the path.
    for args in [
        &["stat", "/nope"][..],
        &["ls", "/nope"],
        &["stat", "--json", "/nope"],
    ] {
        let o = run(cli(&root).args(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(o.stdout.is_empty());
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("path-not-found") && e.contains("/nope"), "{e}");
    }
}

#[test]
fn get_offset_output_file_mv_rm() {
    let root = new_root();
    let body = data(6 * MIB + 77, 3); // two parts
    let o = put_stdin(&root, "/src", &body, &[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "put prints nothing: {}",
        err(&o)
    );

    let o = run(cli(&root).args(["get", "/src", "--offset", "5000000"]));
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        o.stdout == body[5_000_000..],
        "offset read: {} bytes",
        o.stdout.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.bin");
    let o = run(cli(&root).args(["get", "/src", "-o"]).arg(&file));
    assert!(o.status.success(), "{}", err(&o));
    assert!(o.stdout.is_empty());
    assert!(std::fs::read(&file).unwrap() == body);

    let o = run(cli(&root).args(["get", "/src", "--offset", "-1"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("invalid-offset"), "{}", err(&o));

    ok(cli(&root).args(["mv", "/src", "/dst/moved"]));
    let o = run(cli(&root).args(["stat", "/src"]));
    assert_eq!(o.status.code(), Some(1));
    let o = run(cli(&root).args(["get", "/dst/moved"]));
    assert!(o.stdout == body);
    let o = run(cli(&root).args(["mv", "/src", "/elsewhere"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).starts_with("ks3-driver: mv /src: path-not-found"),
        "{}",
        err(&o)
    );

    ok(cli(&root).args(["rm", "/dst"]));
    let o = run(cli(&root).args(["get", "/dst/moved"]));
    assert_eq!(o.status.code(), Some(1));

    // `url` prints a presigned URL the server accepts.
    let o = put_stdin(&root, "/u", b"presigned", &[]);
    assert!(o.status.success());
    let url = ok(cli(&root).args(["url", "/u"]));
    assert!(
        url.starts_with(&server().endpoint()) && url.contains("Signature="),
        "{url}"
    );
    assert_eq!(http_get(url.trim()), b"presigned");
}

/// A plain HTTP/1.0 GET; the body.
fn http_get(url: &str) -> Vec<u8> {
    use std::io::Read;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..head_end]);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    resp[head_end + 4..].to_vec()
}

#[test]
fn put_no_commit_is_invisible_until_append_commits() {
    let root = new_root();
    let o = put_stdin(&root, "/p", b"hello ", &["--no-commit"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(cli(&root).args(["stat", "/p"]));
    assert_eq!(
        o.status.code(),
        Some(1),
        "an uncommitted upload is not visible"
    );
    let o = put_stdin(&root, "/p", b"world", &["--append"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(run(cli(&root).args(["get", "/p"])).stdout, b"hello world");

    // --append with nothing to resume: exit 1, one line.
    let o = put_stdin(&root, "/never", b"x", &["--append"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    assert!(err(&o).contains("/never"), "{}", err(&o));
}

#[test]
fn stdout_closed_early_is_not_an_error() {
    let root = new_root();
    let o = put_stdin(&root, "/big", &data(3 * MIB, 5), &[]);
    assert!(o.status.success());
    let mut child = cli(&root)
        .args(["get", "/big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(o.stderr.is_empty(), "{}", err(&o));
}

#[test]
fn progress_only_when_asked_or_on_a_terminal() {
    let root = new_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.bin");
    std::fs::write(&file, data(9 * MIB, 8)).unwrap();
    // stderr is a pipe here: nothing extra.
    let o = run(cli(&root)
        .args(["put", "/q"])
        .arg(&file)
        .env_remove("KS3_DRIVER_PROGRESS"));
    assert!(o.status.success() && o.stderr.is_empty(), "{}", err(&o));
    // Forced on: a bar with rate and ETA on stderr, stdout untouched.
    for args in [&["put", "/q2"][..], &["get", "/q"], &["mv", "/q", "/q3"]] {
        let mut c = cli(&root);
        c.args(args).env("KS3_DRIVER_PROGRESS", "always");
        if args[0] == "put" {
            c.arg(&file);
        }
        let o = run(&mut c);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains("/s"), "{args:?}: {e}");
        assert!(e.contains("9.0 MiB"), "{args:?}: {e}");
        if args[0] == "put" {
            assert!(e.contains("ETA"), "{e}");
            assert!(o.stdout.is_empty());
        }
        if args[0] == "get" {
            assert_eq!(o.stdout.len(), 9 * MIB);
        }
    }
}

#[test]
fn verbose_logs_requests_without_secrets() {
    let root = new_root();
    let o = put_stdin(&root, "/v", b"logged", &["-v"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(cli(&root).args(["-v", "get", "/v"]));
    assert!(o.status.success());
    assert_eq!(o.stdout, b"logged");
    let e = err(&o);
    assert!(
        e.contains("GET /") && e.contains(" 200 ") && e.contains("request-id"),
        "{e}"
    );
    for secret in [SK, AK, "Signature", "KSS ", "Authorization"] {
        assert!(!e.contains(secret), "stderr shows {secret}: {e}");
    }
}

#[test]
fn errors_say_what_to_do() {
    let root = new_root();
    // No configuration at all: exit 2, pointing to the ways to configure and to demo.
    for cmd in [
        &["stat", "/x"][..],
        &["get", "/x"],
        &["ls", "/"],
        &["du", "/"],
    ] {
        let o = run(bare().args(cmd));
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains("-p KEY=VALUE") && e.contains("demo") && e.contains("serve-local"),
            "{e}"
        );
    }

    // A missing bucket names the parameter and how to set it.
    let o = run(bare().args([
        "-p",
        "accesskey=a",
        "-p",
        "secretkey=s",
        "-p",
        "region=ks3-cn-beijing",
        "stat",
        "/x",
    ]));
    assert_eq!(o.status.code(), Some(2));
    let e = err(&o);
    assert!(
        e.contains("`bucket`") && e.contains("REGISTRY_STORAGE_KS3_BUCKET"),
        "{e}"
    );

    // A wrong secret: SignatureDoesNotMatch, with the hint, without the secret.
    let wrong = "wrongSecretNeverPrinted42";
    // (a GET: the answer to a HEAD has no body, so no error code).
    let o = run(cli(&root).args(["-p", &format!("secretkey={wrong}"), "get", "/x"]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("SignatureDoesNotMatch") && e.contains("secret key") && e.contains("clock"),
        "{e}"
    );
    // The hint names the scheme in use (the server may expect another).
    assert!(e.contains("signatureversion=v2"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(SK), "{e}");
    let o = run(cli(&root).args(["-p", &format!("secretkey={wrong}"), "stat", "/x"]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("secret key") && e.contains("clock"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(SK), "{e}");
    let o = run(cli(&root).args([
        "-p",
        &format!("secretkey={wrong}"),
        "-p",
        "signatureversion=aws4",
        "get",
        "/x",
    ]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains("SignatureDoesNotMatch")
            && e.contains("signatureversion=aws4 (AWS4-HMAC-SHA256, V4 region"),
        "{e}"
    );
    assert!(!e.contains(wrong) && !e.contains(SK), "{e}");

    // An unknown access key.
    let o = run(cli(&root).args(["-p", "accesskey=AKLTnobody", "stat", "/x"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("access key"), "{}", err(&o));

    // Nothing listening: the hint names regionendpoint.
    let o = run(cli(&root).args([
        "-p",
        "regionendpoint=http://127.0.0.1:9",
        "-p",
        "maxretries=0",
        "stat",
        "/x",
    ]));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("regionendpoint"), "{e}");

    // Usage errors from clap: 2.
    assert_eq!(
        run(bare().args(["url", "/x", "--method", "PUT"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(bare().args(["get"])).status.code(), Some(2));
    assert_eq!(run(bare().args(["serve-local"])).status.code(), Some(2));
}

#[test]
fn help_on_every_command_has_an_example() {
    let o = run(bare().arg("--help"));
    assert!(o.status.success());
    let top = String::from_utf8(o.stdout).unwrap();
    assert!(top.contains("Example"), "{top}");
    for cmd in [
        "get",
        "put",
        "stat",
        "ls",
        "walk",
        "mv",
        "rm",
        "url",
        "du",
        "config",
        "demo",
        "serve-local",
        "component",
    ] {
        assert!(
            top.contains(&format!("  {cmd} ")),
            "{cmd} missing from --help"
        );
        let o = run(bare().args([cmd, "--help"]));
        assert!(o.status.success(), "{cmd} --help");
        let h = String::from_utf8(o.stdout).unwrap();
        assert!(h.contains("Example"), "{cmd} --help has no example:\n{h}");
    }
}

#[test]
fn config_shows_sources_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, "storage:\n  ks3:\n    region: ks3-cn-shanghai\n    accesskey: fileAccessKeyHidden\n    chunksize: 5242880\n").unwrap();
    let secret = "configSecretNeverShown99";
    let o = run(bare()
        .arg("-c")
        .arg(&cfg)
        .args([
            "-p",
            &format!("secretkey={secret}"),
            "-p",
            "rootdirectory=/r",
            "config",
        ])
        .env("REGISTRY_STORAGE_KS3_BUCKET", "env-bucket"));
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        !out.contains(secret) && !out.contains("fileAccessKeyHidden"),
        "{out}"
    );
    let line = |k: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .unwrap_or_else(|| panic!("no {k} in {out}"))
            .to_string()
    };
    assert!(
        line("secretkey").contains("****") && line("secretkey").contains("-p flag"),
        "{out}"
    );
    assert!(
        line("accesskey").contains("****") && line("accesskey").contains("file "),
        "{out}"
    );
    assert!(
        line("bucket").contains("env-bucket")
            && line("bucket").contains("env REGISTRY_STORAGE_KS3_BUCKET"),
        "{out}"
    );
    assert!(
        line("region").contains("ks3-cn-shanghai") && line("region").contains("file"),
        "{out}"
    );
    assert!(line("chunksize").contains("5242880"), "{out}");
    assert!(line("maxretries").contains("(default)"), "{out}");
    assert!(line("rootdirectory").contains("/r"), "{out}");
    assert!(
        line("signatureversion").contains("v2") && line("signatureversion").contains("(default)"),
        "{out}"
    );
    assert!(line("v4region").contains("not set"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("# valid") && last.ends_with("signed v2"),
        "{out}"
    );
    // Under V4 the region name of the credential scope is shown, derived or overridden.
    for (extra, shown) in [
        (vec![], "signed aws4 (V4 region SHANGHAI)"),
        (
            vec!["-p", "v4region=OTHER"],
            "signed aws4 (V4 region OTHER)",
        ),
    ] {
        let o = run(bare()
            .args(["-c", cfg.to_str().unwrap(), "-p", "signatureversion=aws4"])
            .args(extra)
            .args(["-p", &format!("secretkey={secret}"), "config"])
            .env("REGISTRY_STORAGE_KS3_BUCKET", "env-bucket"));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(out.lines().last().unwrap().ends_with(shown), "{out}");
    }

    // The credential fallback variable is a source too; an unknown parameter is flagged.
    let o = run(bare()
        .args(["-p", "bukcet=x", "config"])
        .env("KS3_SECRET_ACCESS_KEY", secret));
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(!out.contains(secret), "{out}");
    assert!(
        out.contains("env KS3_SECRET_ACCESS_KEY") && out.contains("unknown parameter"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().starts_with("# invalid"),
        "{out}"
    );
}

#[test]
fn demo_quick_runs_to_completion() {
    let t = Instant::now();
    let o = run(bare().args(["demo", "--quick"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "demo failed:\n{out}\n{}", err(&o));
    for needle in [
        "local KS3 server http://127.0.0.1:",
        "registry http://127.0.0.1:",
        "push demo/app:latest",
        // Each HTTP request, then the driver calls it caused.
        "POST /v2/demo/app/blobs/uploads/ → 202",
        "put-content-writerless _uploads/",
        "PATCH /v2/demo/app/blobs/uploads/",
        "writer _uploads/",
        "commit _uploads/",
        "move-to-writerless _uploads/",
        "→ blobs/sha256/",
        "put-content-writerless _layers/sha256/",
        "PUT /v2/demo/app/manifests/latest → 201",
        "_manifests/tags/latest/current/link",
        "pull demo/app:latest",
        "GET /v2/demo/app/manifests/latest → 200",
        "→ 307",
        "redirect-url blobs/sha256/",
        "every layer's bytes verified",
        "sha256 verified",
        "range of 4194304 bytes verified",
        "tags of demo/app: [\"latest\"]; catalog: [\"demo/app\"]",
        "every upload was cleaned up",
    ] {
        assert!(out.contains(needle), "no `{needle}` in:\n{out}");
    }
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("demo done: ") && last.contains("objects") && last.contains("/s"),
        "{last}"
    );
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn serve_local_prints_listening_first_and_serves() {
    let mut child = bare()
        .args([
            "serve-local",
            "--memory",
            "--addr",
            "127.0.0.1:0",
            "--bucket",
            "served",
            "--access-key",
            "AKLTserve",
            "--secret-key",
            "serveSecret123",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let endpoint = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let with = |c: &mut Command| {
        for kv in [
            "accesskey=AKLTserve",
            "secretkey=serveSecret123",
            "region=ks3-cn-beijing",
            "bucket=served",
            &format!("regionendpoint={endpoint}"),
        ] {
            c.arg("-p").arg(kv);
        }
    };
    let mut c = bare();
    with(&mut c);
    c.args(["put", "/x"]).stdin(Stdio::null());
    let o = run(&mut c);
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn demo_with_stdout_closed_does_not_panic() {
    let mut child = bare()
        .args(["demo", "--quick"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ks3-driver demo"), "{first}");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
}

#[test]
fn demo_keep_serves_until_terminated() {
    let mut child = bare()
        .args(["demo", "--quick", "--keep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let flags = loop {
        let line = lines
            .next()
            .expect("demo ended before printing the flags")
            .unwrap();
        if let Some(rest) = line.trim().strip_prefix("ks3-driver -p ") {
            break format!("-p {rest}");
        }
    };
    // The printed command works as printed (with `du` instead of `walk`).
    let args: Vec<&str> = flags.split_whitespace().collect();
    let (params, last) = args.split_at(args.len() - 2);
    assert_eq!(params[0], "-p");
    assert_eq!(last[0], "walk");
    let out = ok(bare().args(params).args(["du", "--json", last[1]]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["objects"], 12, "{out}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo --keep did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
