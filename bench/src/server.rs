//! The local KS3 server for the benchmark, in a child process (`ks3-driver bench
//! --serve-local`): its memory then stays out of the peak-memory measurement, and its
//! request counters are asked for over the child's stdin/stdout.
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub const BUCKET: &str = "bench-bucket";
pub const AK: &str = "AKLTbenchmark";
pub const SK: &str = "bench-secret-key-0123456789";

/// The child's side: serve until stdin closes; answer `count METHOD NEEDLE` lines.
pub fn serve() -> Result<(), String> {
    let server = ks3_local::start_in_background(ks3_local::ServerConfig::memory(BUCKET, AK, SK))
        .map_err(|e| format!("cannot start ks3-local: {e:#}"))?;
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}").and_then(|_| out.flush())
    };
    say(&mut out, server.endpoint()).map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut parts = line.splitn(3, ' ');
        let reply = match (parts.next(), parts.next(), parts.next()) {
            (Some("count"), Some(method), needle) => server
                .requests_matching(method, needle.unwrap_or(""))
                .to_string(),
            _ => "?".to_string(),
        };
        if say(&mut out, reply).is_err() {
            break;
        }
    }
    server.shutdown();
    Ok(())
}

/// The parent's handle on the child server.
pub struct LocalServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub endpoint: String,
}

impl LocalServer {
    pub fn start() -> Result<LocalServer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(["bench", "--serve-local"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the local server: {e}"))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut endpoint = String::new();
        stdout
            .read_line(&mut endpoint)
            .map_err(|e| format!("local server: {e}"))?;
        let endpoint = endpoint.trim().to_string();
        if !endpoint.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the local server did not start".into());
        }
        Ok(LocalServer {
            child,
            stdin,
            stdout,
            endpoint,
        })
    }

    /// `host:port`.
    pub fn host_port(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// Requests so far with `method` whose target contains `needle`.
    pub fn count(&mut self, method: &str, needle: &str) -> Option<u64> {
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "count {method} {needle}").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        line.trim().parse().ok()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // Closing stdin ends the child; kill it if it lingers.
        self.stdin.take();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A key of this process's own for a scratch object: `<what>/<pid>-<unix seconds>`.
pub fn scratch_key(what: &str) -> String {
    format!("{what}/{}-{}", std::process::id(), unix_now())
}

/// A V2-presigned URL for `method` on `key` of the local server at `endpoint`, valid for
/// an hour: what the plain clients (hyper, curl) use.
pub fn presigned_url(endpoint: &str, key: &str, method: &str) -> String {
    use ks3_proto::encode::encode_key;
    use ks3_proto::sign::{canonical_resource, presigned_query};
    let resource = canonical_resource(BUCKET, key, &[]);
    let q = presigned_query(AK, SK, method, &resource, unix_now() + 3600);
    format!("{endpoint}/{BUCKET}/{}?{q}", encode_key(key))
}
