//! boto3 (botocore's AWS Signature V4, `s3v4`, path-style) as referee of the AWS4 rules:
//! runs `tests/sdk/test_boto3.py` against the built `ks3-local` binary, and checks that the
//! committed V4 vectors are still what botocore computes (`make_v4_vectors.py --check`).
//! Fails when python3 or boto3 is missing, unless `KS3_SKIP_BOTO3=1`.
use std::path::PathBuf;
use std::process::Command;

/// The interpreter to use, or `None` when the referee is explicitly skipped.
fn python_with_boto3() -> Option<String> {
    if std::env::var("KS3_SKIP_BOTO3").as_deref() == Ok("1") {
        eprintln!("KS3_SKIP_BOTO3=1: skipping the boto3 referee");
        return None;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import boto3, botocore; print(boto3.__version__)"])
        .output();
    match probe {
        Err(e) => panic!(
            "cannot run {python:?} ({e}). The boto3 referee needs python3 with boto3: \
             `pip install boto3` (or set KS3_SKIP_BOTO3=1 to skip)"
        ),
        Ok(out) if !out.status.success() => panic!(
            "boto3 is not importable by {python:?}: {}\n\
             Install it with `pip install boto3` (or set KS3_SKIP_BOTO3=1 to skip)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(out) => eprintln!("boto3 {}", String::from_utf8_lossy(&out.stdout).trim()),
    }
    Some(python)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("sdk")
        .join(name)
}

fn run(python: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(python)
        .args(args)
        .output()
        .expect("running the boto3 script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or("").to_string();
    (out.status.success(), last)
}

#[test]
fn boto3_s3_client_accepts_the_server() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let s = script("test_boto3.py");
    let exe = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_ks3-local"));
    let (ok, last) = run(&python, &[s.as_os_str(), exe]);
    assert!(
        ok && last.ends_with(" passed, 0 failed"),
        "boto3 referee failed: {last}"
    );
}

#[test]
fn committed_v4_vectors_are_botocores() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let s = script("make_v4_vectors.py");
    let (ok, last) = run(&python, &[s.as_os_str(), std::ffi::OsStr::new("--check")]);
    assert!(
        ok && last == "2 passed, 0 failed",
        "the committed V4 vectors differ from a fresh botocore run: {last}"
    );
}
