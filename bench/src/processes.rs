//! Whole processes, as a user's shell runs them: `ks3-driver put` and `ks3-driver get` of
//! one object against `curl` on a presigned URL of the same server (start-up, signing,
//! hashing and checks included on our side; none of them on curl's). Only against the
//! local server, whose keys the benchmark knows.
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::server::{presigned_url, scratch_key};
use super::{err, MIB};

/// Best wall times of the four commands.
pub struct ProcessFigures {
    pub ours_put: Duration,
    pub curl_put: Duration,
    pub ours_get: Duration,
    pub curl_get: Duration,
}

/// Where the commands go and with what.
pub struct Processes {
    /// `ks3-driver` and its global options (the local server's parameters).
    pub exe: PathBuf,
    pub base_args: Vec<String>,
    /// `http://host:port` of the local server.
    pub endpoint: String,
    /// The driver path of our object (under the benchmark's root).
    pub path: String,
}

impl Processes {
    /// Puts and gets `mib` times `data` (1 MiB) `runs` times each way, alternating ours
    /// and curl's; the best of each. Downloads go to /dev/null, as a pipe's copy would
    /// weigh on both sides; curl reports its size, ours checks length and CRC-64 itself.
    pub fn measure(
        &self,
        data: &[u8],
        mib: usize,
        runs: usize,
        say: &dyn Fn(&str),
    ) -> Result<ProcessFigures, String> {
        let curl = Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !curl.is_ok_and(|s| s.success()) {
            return Err("curl is not installed".into());
        }
        let dir = tempfile::tempdir().map_err(err)?;
        let file = dir.path().join("payload");
        write_payload(&file, data, mib)?;
        let size = mib.checked_mul(MIB).ok_or("payload size overflows")?;
        let key = scratch_key("ks3-driver-bench-processes");
        let url = |method: &str| presigned_url(&self.endpoint, &key, method);
        let mut best = [Duration::MAX; 4];
        for _ in 0..runs {
            let times = [
                self.time(|c| Ok(c.args(["put", &self.path]).stdin(open(&file)?)))?,
                time_curl(
                    &["-sf", "-o", "/dev/null", "-T"],
                    Some(&file),
                    &url("PUT"),
                    None,
                )?,
                self.time(|c| Ok(c.args(["get", &self.path])))?,
                time_curl(
                    &["-sf", "-o", "/dev/null", "-w", "%{size_download}"],
                    None,
                    &url("GET"),
                    Some(size),
                )?,
            ];
            say(&format!(
                "whole processes, ms: put {} (curl {}), get {} (curl {})",
                times[0].as_millis(),
                times[1].as_millis(),
                times[2].as_millis(),
                times[3].as_millis()
            ));
            for (b, t) in best.iter_mut().zip(times) {
                *b = (*b).min(t);
            }
        }
        let _ = Command::new("curl")
            .args(["-sf", "-X", "DELETE", &url("DELETE")])
            .stdout(Stdio::null())
            .status();
        Ok(ProcessFigures {
            ours_put: best[0],
            curl_put: best[1],
            ours_get: best[2],
            curl_get: best[3],
        })
    }

    /// One `ks3-driver` process, its stdout to /dev/null: its wall time.
    fn time(
        &self,
        setup: impl FnOnce(&mut Command) -> Result<&mut Command, String>,
    ) -> Result<Duration, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.base_args).stdin(Stdio::null());
        setup(&mut cmd)?;
        cmd.stdout(dev_null()?);
        let (took, _) = run(cmd, "ks3-driver")?;
        Ok(took)
    }
}

fn dev_null() -> Result<File, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))
}

fn open(file: &Path) -> Result<File, String> {
    File::open(file).map_err(|e| format!("{}: {e}", file.display()))
}

fn write_payload(file: &Path, data: &[u8], mib: usize) -> Result<(), String> {
    let mut f = File::create(file).map_err(err)?;
    for _ in 0..mib {
        f.write_all(data).map_err(err)?;
    }
    f.sync_all().map_err(err)
}

/// One `curl` process on `url`, uploading `upload` if given: its wall time; with `size`,
/// what curl prints (`-w %{size_download}`) must be that many bytes.
fn time_curl(
    flags: &[&str],
    upload: Option<&Path>,
    url: &str,
    size: Option<usize>,
) -> Result<Duration, String> {
    let mut cmd = Command::new("curl");
    cmd.args(flags);
    if let Some(f) = upload {
        cmd.arg(f);
    }
    cmd.arg(url).stdin(Stdio::null()).stdout(Stdio::piped());
    let (took, printed) = run(cmd, "curl")?;
    if let Some(want) = size {
        if printed.trim() != want.to_string() {
            return Err(format!(
                "curl downloaded {} of {want} bytes",
                printed.trim()
            ));
        }
    }
    Ok(took)
}

/// Runs `cmd` to its end: its wall time and what it printed (if stdout was piped).
fn run(mut cmd: Command, name: &str) -> Result<(Duration, String), String> {
    let t = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}
