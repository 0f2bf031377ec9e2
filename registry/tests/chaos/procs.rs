//! The processes of the chaos test: `ks3-driver serve-local` (ks3-local on a disk store,
//! its admin endpoint on, one fixed port so it restarts on the same address), two
//! `ks3-driver registry` instances, and the one-shot commands (`gc`, `fsck`,
//! `purge-uploads`). Each is a real process of the `ks3-driver` binary (see
//! [`ks3_driver`] for how the test finds it).
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The bucket key prefix of the registry's `rootdirectory`.
pub const ROOT: &str = "/chaos";

/// The `ks3-driver` binary of this test's target directory and profile (the test binary
/// is `<target>/<profile>/deps/chaos-…`). `cargo test --workspace` has just built it (the
/// CLI's tests need it), so it is used as it is when it is newer than every source it is
/// built from; otherwise (`cargo test -p ks3-registry --test chaos` after an edit) it is
/// built here: `cargo test` has released the build lock by the time tests run. (Always
/// running `cargo build -p ks3-driver` is not free: its dependencies' features unify over
/// that one package, not the workspace, and a minute of rebuilding followed.)
pub fn ks3_driver() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    let bin = profile_dir.join("ks3-driver");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let newest = newest_source();
    if built.is_some_and(|b| b >= newest) {
        return bin;
    }
    let target_dir = profile_dir.parent().expect("<target>");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let status = std::process::Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "-p",
            "ks3-driver",
            "--bin",
            "ks3-driver",
            "--profile",
        ])
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo build -p ks3-driver runs");
    assert!(status.success(), "cargo build -p ks3-driver failed");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// The latest modification time of what `ks3-driver` is built from: the sources and
/// manifests of the crates it depends on, the WIT contract, the lock file.
fn newest_source() -> std::time::SystemTime {
    fn walk(p: &Path, newest: &mut std::time::SystemTime) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), newest);
            }
        } else if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for krate in [
        "cli",
        "registry",
        "host",
        "driver",
        "ks3-local",
        "ks3-proto",
        "bench",
    ] {
        for part in ["src", "build.rs", "Cargo.toml"] {
            walk(&root.join(krate).join(part), &mut newest);
        }
    }
    for part in ["wit", "Cargo.lock", "Cargo.toml"] {
        walk(&root.join(part), &mut newest);
    }
    newest
}

/// A free loopback port (bound, then released: the process binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `bin args…`, its stderr appended to `log`, and waits (up to 60 s) for the
/// `listening on URL` line on stdout; stdout is drained afterwards.
async fn start_server(bin: &Path, args: &[String], env: &[(&str, &str)], log: &Path) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("server process starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    match first {
        Ok(Ok(Some(line))) if line.starts_with("listening on ") => {}
        other => panic!(
            "{} {args:?} did not start ({other:?}); its log: {}",
            bin.display(),
            log.display()
        ),
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// `ks3-driver serve-local` on a disk directory, with the admin endpoint.
pub struct Ks3Local {
    bin: PathBuf,
    pub port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Ks3Local {
    pub async fn start(bin: &Path, work: &Path) -> Ks3Local {
        let mut k = Ks3Local {
            bin: bin.to_path_buf(),
            port: free_port(),
            dir: work.join("ks3-data"),
            log: work.join("ks3-local.log"),
            child: None,
        };
        k.restart().await;
        k
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and directory.
    pub async fn restart(&mut self) {
        let args: Vec<String> = [
            "serve-local",
            "--addr",
            &format!("127.0.0.1:{}", self.port),
            "--data",
            &self.dir.to_string_lossy(),
            "--bucket",
            ks3_tests::BUCKET,
            "--access-key",
            ks3_tests::ACCESS_KEY,
            "--admin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = [("KS3_LOCAL_SECRET_KEY", ks3_tests::SECRET_KEY)];
        // A port just released by a killed process can take a moment to bind again.
        for attempt in 0.. {
            let port_free = std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok();
            if port_free || attempt == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child = Some(start_server(&self.bin, &args, &env, &self.log).await);
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Clears the rules; returns how many faults they still held.
    pub async fn clear_faults(&self, http: &crate::client::Http) -> u64 {
        let url = format!("{}/_ks3local/faults", self.endpoint());
        let pending = match http.send(http::Method::GET, &url, &[], Vec::new()).await {
            Ok(r) => crate::background::remaining(&String::from_utf8_lossy(&r.body)),
            Err(_) => 0,
        };
        let r = http
            .send(http::Method::DELETE, &url, &[], Vec::new())
            .await
            .expect("DELETE /_ks3local/faults");
        assert_eq!(r.status, 204, "faults cleared");
        pending
    }
}

/// The registry's configuration (also the commands'): distribution's `config.yml` with
/// `storage.ks3`, deletes on, the background purger off (the test purges at the end).
pub fn write_config(path: &Path, ks3_endpoint: &str, port: u16) {
    let yaml = format!(
        "version: 0.1\n\
         http:\n  addr: 127.0.0.1:{port}\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  ks3:\n    accesskey: {ak}\n    secretkey: {sk}\n    region: ks3-cn-beijing\n    \
         bucket: {bucket}\n    regionendpoint: {ks3_endpoint}\n    rootdirectory: {ROOT}\n    \
         chunksize: 5242880\n  \
         delete:\n    enabled: true\n  \
         redirect:\n    disable: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n",
        ak = ks3_tests::ACCESS_KEY,
        sk = ks3_tests::SECRET_KEY,
        bucket = ks3_tests::BUCKET,
    );
    std::fs::write(path, yaml).expect("config.yml");
}

/// One `ks3-driver -c config.yml registry` on a fixed port.
pub struct Instance {
    bin: PathBuf,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    pub async fn start(bin: &Path, work: &Path, name: &str, ks3_endpoint: &str) -> Instance {
        let port = free_port();
        let config = work.join(format!("{name}.yml"));
        write_config(&config, ks3_endpoint, port);
        let mut i = Instance {
            bin: bin.to_path_buf(),
            port,
            config,
            log: work.join(format!("{name}.log")),
            child: None,
        };
        i.restart().await;
        i
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let args = vec![
            "-c".to_string(),
            self.config.to_string_lossy().into_owned(),
            "registry".to_string(),
        ];
        for attempt in 0.. {
            let port_free = std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok();
            if port_free || attempt == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child = Some(start_server(&self.bin, &args, &[], &self.log).await);
    }

    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// What a one-shot command did.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `ks3-driver -c config args…`, with a deadline (a command that hangs is a finding).
pub async fn run(bin: &Path, config: &Path, args: &[&str], limit: Duration) -> Ran {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(out)) => Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("cannot run {}: {e}", bin.display()),
        Err(_) => Ran {
            code: None,
            stdout: String::new(),
            stderr: format!("ks3-driver {args:?} still running after {limit:?}: killed"),
        },
    }
}
