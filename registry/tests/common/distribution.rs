//! CNCF distribution's own registry (Debian's `docker-registry`, 2.8.2) as a real process:
//! its `s3` storage driver pointed at a `ks3-local` bucket (AWS Signature V4, path-style,
//! plain HTTP), so tests can check this registry against the original on one store.
//!
//! A missing `docker-registry` fails the test with how to install it (never a skip).
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where distribution's `s3` driver should store: a ks3-local endpoint and bucket.
#[derive(Clone, Debug)]
pub struct S3Target {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub bucket: String,
    pub accesskey: String,
    pub secretkey: String,
    /// distribution's `rootdirectory` (`""` or e.g. `/reg`).
    pub rootdirectory: String,
}

impl S3Target {
    /// The target of [`super::SharedKs3`] (its bucket and credentials).
    pub fn of(ks3: &super::SharedKs3, rootdirectory: &str) -> S3Target {
        S3Target {
            endpoint: ks3.server.endpoint().to_string(),
            bucket: ks3.params["bucket"].clone(),
            accesskey: ks3.params["accesskey"].clone(),
            secretkey: ks3.params["secretkey"].clone(),
            rootdirectory: rootdirectory.to_string(),
        }
    }
}

/// How to run it.
#[derive(Clone, Debug)]
pub struct Options {
    /// `storage.redirect.disable` is the negation: true = blob GETs answer 307 to a
    /// presigned (AWS4) URL of ks3-local.
    pub redirect: bool,
    /// `health.storagedriver.interval` (the threshold is 2).
    pub health_interval: Duration,
    /// Top-level sections appended to the config (e.g. `auth:`).
    pub extra_yaml: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redirect: true,
            health_interval: Duration::from_secs(1),
            extra_yaml: String::new(),
        }
    }
}

/// Panics (fails the test) when `docker-registry` is not installed.
pub fn require_docker_registry() {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v docker-registry")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`docker-registry` (CNCF distribution 2.8.2, the cross-check of this registry) is \
         not installed: apt-get install -y docker-registry (.ci/run does this)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// distribution's `config.yml` for `target`, listening on `addr` (debug server on
/// `debug_addr`, which serves `/debug/health`).
pub fn config_yaml(target: &S3Target, opts: &Options, addr: &str, debug_addr: &str) -> String {
    format!(
        "version: 0.1
log:
  level: info
http:
  addr: {addr}
  secret: ks3-registry-cross-check
  debug:
    addr: {debug_addr}
storage:
  s3:
    accesskey: {ak}
    secretkey: {sk}
    region: us-east-1
    regionendpoint: {endpoint}
    bucket: {bucket}
    v4auth: true
    secure: false
    rootdirectory: \"{root}\"
  delete:
    enabled: true
  redirect:
    disable: {disable}
  maintenance:
    uploadpurging:
      enabled: false
health:
  storagedriver:
    enabled: true
    interval: {interval}ms
    threshold: 2
{extra}",
        ak = target.accesskey,
        sk = target.secretkey,
        endpoint = target.endpoint,
        bucket = target.bucket,
        root = target.rootdirectory,
        disable = !opts.redirect,
        interval = opts.health_interval.as_millis(),
        extra = opts.extra_yaml,
    )
}

/// A running `docker-registry serve`, killed when dropped.
pub struct Distribution {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// `127.0.0.1:<port>` (for skopeo's `docker://` references).
    pub host: String,
    /// `http://127.0.0.1:<port>` of the debug server (`/debug/health`).
    pub debug_base: String,
    /// The config file it runs with (for `garbage-collect`).
    pub config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts it and waits until `GET /v2/` answers (at most 30 s).
    pub fn start(target: &S3Target, opts: &Options) -> Distribution {
        require_docker_registry();
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!("127.0.0.1:{}", free_port());
        let debug = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(&config, config_yaml(target, opts, &host, &debug)).expect("config");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            // Its AWS SDK panics (LoadCustomCABundleError) on the bundle some machines name.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("docker-registry starts");
        let mut d = Distribution {
            child,
            base: format!("http://{host}"),
            host,
            debug_base: format!("http://{debug}"),
            config,
            log,
            _dir: dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            // 401 is ready too: with auth configured, /v2/ asks for credentials.
            if matches!(http_status(&self.host, "/v2/"), Some(200 | 401)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer GET /v2/ within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The lines it logged at level error.
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("level=error") || l.contains("level=panic"))
            .map(str::to_string)
            .collect()
    }

    /// `docker-registry garbage-collect` with this instance's config.
    pub fn garbage_collect(&self, dry_run: bool, delete_untagged: bool) -> GcOutput {
        garbage_collect(&self.config, dry_run, delete_untagged)
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `garbage-collect` printed.
pub struct GcOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl GcOutput {
    /// The digests of `<repo>: marking manifest|blob <digest>` lines.
    pub fn marked(&self) -> std::collections::BTreeSet<String> {
        self.stdout
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(": marking ")?;
                let d = rest.split_whitespace().nth(1)?;
                Some(d.to_string())
            })
            .collect()
    }

    /// The digests of `blob eligible for deletion: <digest>` lines.
    pub fn eligible_blobs(&self) -> std::collections::BTreeSet<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
            .map(|d| d.trim().to_string())
            .collect()
    }

    /// The summary line's counts: blobs marked, blobs and manifests eligible.
    pub fn summary(&self) -> (usize, usize, usize) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.contains(" blobs marked, "))
            .unwrap_or_else(|| panic!("no summary line in:\n{}", self.stdout));
        let n: Vec<usize> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(n.len(), 3, "summary line {line:?}");
        (n[0], n[1], n[2])
    }
}

/// `docker-registry garbage-collect [--dry-run] [--delete-untagged] <config>`.
pub fn garbage_collect(config: &Path, dry_run: bool, delete_untagged: bool) -> GcOutput {
    require_docker_registry();
    let mut cmd = Command::new("docker-registry");
    cmd.arg("garbage-collect");
    if dry_run {
        cmd.arg("--dry-run");
    }
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    let out = cmd
        .arg(config)
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .expect("docker-registry garbage-collect runs");
    GcOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A blocking `GET path` on `host`: the status, or `None` when nothing answers.
fn http_status(host: &str, path: &str) -> Option<u16> {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
