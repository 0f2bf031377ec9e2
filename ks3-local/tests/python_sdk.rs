//! The official KS3 Python SDK (`ks3sdk==1.18.0`) as referee: runs `tests/sdk/test_ks3sdk.py`
//! against the built `ks3-local` binary. Fails when python3 or the SDK is missing, unless
//! `KS3_SKIP_SDK=1`.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn official_python_sdk_accepts_the_server() {
    if std::env::var("KS3_SKIP_SDK").as_deref() == Ok("1") {
        eprintln!("KS3_SKIP_SDK=1: skipping the official-SDK referee");
        return;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import ks3.connection, importlib.metadata as m; print(m.version('ks3sdk'))",
        ])
        .output();
    match probe {
        Err(e) => panic!(
            "cannot run {python:?} ({e}). The SDK referee needs python3 with ks3sdk: \
             `pip install ks3sdk==1.18.0` (or set KS3_SKIP_SDK=1 to skip)"
        ),
        Ok(out) if !out.status.success() => panic!(
            "the official KS3 SDK is not importable by {python:?}: {}\n\
             Install it with `pip install ks3sdk==1.18.0` (or set KS3_SKIP_SDK=1 to skip)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(out) => eprintln!("ks3sdk {}", String::from_utf8_lossy(&out.stdout).trim()),
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("sdk")
        .join("test_ks3sdk.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_ks3-local"))
        .output()
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        out.status.success() && last.ends_with(" passed, 0 failed"),
        "SDK referee failed ({}): {last}",
        out.status
    );
}
