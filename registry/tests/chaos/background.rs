//! What runs beside the clients: `ks3-driver gc -m` in a loop, and random faults posted
//! to ks3-local's admin endpoint.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::client::Http;

#[derive(Default, Debug)]
pub struct GcFigures {
    /// Runs by exit status (`None`: killed at the time limit).
    pub runs: BTreeMap<Option<i32>, u64>,
    /// Their wall time, together.
    pub seconds: f64,
    pub blobs_deleted: u64,
    pub manifests_deleted: u64,
    /// The last lines of stderr of a few failed runs.
    pub failures: Vec<String>,
}

/// `deleted N blobs (B bytes) and M manifests` of gc's summary line.
fn deleted(stdout: &str) -> (u64, u64) {
    let Some(line) = stdout.lines().rev().find(|l| l.contains("; deleted ")) else {
        return (0, 0);
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| {
        words
            .iter()
            .position(|x| *x == w)
            .and_then(|i| words.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (after("deleted"), after("and"))
}

/// `ks3-driver -c config gc OPTIONS` (`-m --min-age AGE …`) back to back (a short random pause between runs) until
/// `stop`; the run in progress then finishes.
pub async fn gc_loop(
    bin: PathBuf,
    config: PathBuf,
    options: Vec<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> GcFigures {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6c);
    let mut f = GcFigures::default();
    while !stop.load(Ordering::Relaxed) {
        let mut args = vec!["gc"];
        args.extend(options.iter().map(String::as_str));
        let started = std::time::Instant::now();
        let ran = crate::procs::run(&bin, &config, &args, Duration::from_secs(120)).await;
        f.seconds += started.elapsed().as_secs_f64();
        *f.runs.entry(ran.code).or_default() += 1;
        let (b, m) = deleted(&ran.stdout);
        f.blobs_deleted += b;
        f.manifests_deleted += m;
        if ran.code != Some(0) && f.failures.len() < 3 {
            let tail: Vec<&str> = ran.stderr.lines().rev().take(2).collect();
            f.failures.push(tail.join(" / "));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
    }
    f
}

#[derive(Default, Debug)]
pub struct FaultFigures {
    /// Faults posted and accepted, by action (each rule's count).
    pub injected: BTreeMap<String, u64>,
    /// Posts that did not reach the server (it was restarting).
    pub unposted: u64,
    /// Times a dozen pending rules were dropped (unmatched for a while).
    pub cleared: u64,
    /// Faults of the rules dropped then: never injected.
    pub unused: u64,
}

/// Random rules, one to three requests each, every 100–400 ms: errors, `SlowDown`, cut
/// connections, lost answers and delays, on any method or one, on any key or a part of
/// the layout. Each rule is consumed by the next requests that match it, so the rate is
/// a few faults a second spread over whoever talks to KS3.
pub async fn fault_loop(
    http: Http,
    endpoint: String,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> FaultFigures {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa);
    let mut f = FaultFigures::default();
    let url = format!("{endpoint}/_ks3local/faults");
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        let action = match rng.gen_range(0..10) {
            0 | 1 => "500:InternalError".to_string(),
            2 | 3 => "503:SlowDown".to_string(),
            4 | 5 => "drop".to_string(),
            6 | 7 => "lost".to_string(),
            _ => format!("delay={}", rng.gen_range(50..1500)),
        };
        // A method and a part of the request each request of that method can have
        // (the layout's directories are in the keys, under the root `chaos/`).
        let (method, patterns): (&str, &[&str]) = *[
            ("*", &["", "/_uploads/", "/blobs/", "/_manifests/"][..]),
            ("*", &[""][..]),
            ("GET", &["", "prefix=", "/_manifests/", "/blobs/"][..]),
            (
                "PUT",
                &["", "partNumber=", "/_uploads/", "/blobs/", "/_manifests/"][..],
            ),
            ("POST", &["", "uploadId=", "uploads"][..]),
            ("HEAD", &[""][..]),
            ("DELETE", &[""][..]),
        ]
        .choose(&mut rng)
        .expect("methods");
        let pattern = *patterns.choose(&mut rng).expect("patterns");
        let count: u32 = rng.gen_range(1..=3);
        // Rules that few requests match pile up while the load moves elsewhere: past a
        // dozen pending, they are dropped and the round passes, so faults neither stop
        // nor come in long bursts.
        if let Ok(r) = http.send(http::Method::GET, &url, &[], Vec::new()).await {
            let pending = String::from_utf8_lossy(&r.body).into_owned();
            if pending.lines().count() > 12 {
                f.cleared += 1;
                f.unused += remaining(&pending);
                let _ = http.send(http::Method::DELETE, &url, &[], Vec::new()).await;
                continue;
            }
        }
        let rule = format!("{method}:{pattern}:{count}:{action}");
        match http
            .send(http::Method::POST, &url, &[], rule.into_bytes())
            .await
        {
            Ok(r) if r.status == 200 => {
                let kind = action.split('=').next().unwrap_or("").to_string();
                *f.injected.entry(kind).or_default() += u64::from(count);
            }
            Ok(r) => panic!("fault rule refused: {}", String::from_utf8_lossy(&r.body)),
            Err(_) => f.unposted += 1,
        }
    }
    f
}

/// The faults left in `GET /_ks3local/faults`'s rules (`METHOD:PATTERN:COUNT:ACTION`;
/// this test's patterns have no `:`).
pub fn remaining(rules: &str) -> u64 {
    rules
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_summary() {
        let out =
            "x\n1 repositories, 3 manifests kept; deleted 4 blobs (10 bytes) and 2 manifests\n";
        assert_eq!(super::deleted(out), (4, 2));
        assert_eq!(
            super::remaining("*::2:drop\nGET:/blobs/:1:500:InternalError\n"),
            3
        );
    }
}
