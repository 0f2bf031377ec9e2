//! `ks3-driver bench --stat-loop N`: nothing but stats of one small object, so that a
//! profiler sees the per-call path alone (docs/benchmarks.md, "Where a stat's time
//! goes"): `perf record` for where the time goes, `valgrind --tool=callgrind` for the
//! instructions per call (two runs of different N, subtracted, take the start out).
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ks3_driver_host::Params;

use crate::sides::blocking;
use crate::{err, lat_stats, SMALL, SMALL_ROUNDS};

/// Which side a loop runs through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Through {
    Component,
    Native,
}

impl Through {
    fn name(self) -> &'static str {
        match self {
            Through::Component => "component",
            Through::Native => "native",
        }
    }
}

pub(crate) async fn run(
    runtime: ks3_driver_host::Runtime,
    params: Params,
    n: usize,
    side: Option<&str>,
) -> Result<String, String> {
    let sides: &[Through] = match side {
        None => &[Through::Component, Through::Native],
        Some("component") => &[Through::Component],
        Some("native") => &[Through::Native],
        Some(other) => return Err(format!("--side {other}: expected `component` or `native`")),
    };
    if n == 0 {
        return Err("--stat-loop 0: nothing to measure; give a number of stats".into());
    }
    let (driver, _, native) = crate::drivers(&runtime, params).await?;
    let path = format!("{}/stat-loop", crate::run_root());
    driver
        .put_content(&path, &[7u8; SMALL])
        .await
        .map_err(err)?;
    let per_round = n.div_ceil(SMALL_ROUNDS);
    let mut out = String::new();
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    for round in 0..SMALL_ROUNDS {
        let count = per_round.min(n.saturating_sub(round * per_round));
        if count == 0 {
            break;
        }
        for (i, through) in sides.iter().enumerate() {
            let lat = match through {
                Through::Component => {
                    let mut v = Vec::with_capacity(count);
                    for _ in 0..count {
                        let t = Instant::now();
                        driver.stat(&path).await.map_err(err)?;
                        v.push(t.elapsed());
                    }
                    v
                }
                Through::Native => {
                    let (native, path) = (native.clone(), path.clone());
                    blocking(move || {
                        let mut v = Vec::with_capacity(count);
                        for _ in 0..count {
                            let t = Instant::now();
                            native.stat(&path)?;
                            v.push(t.elapsed());
                        }
                        Ok(v)
                    })
                    .await?
                }
            };
            all[i].extend(&lat);
            let _ = writeln!(out, "{}", line(*through, &format!("round {round}"), lat));
        }
    }
    for (through, lat) in sides.iter().zip(all) {
        let _ = writeln!(out, "{}", line(*through, "all", lat));
    }
    driver.delete(&path).await.map_err(err)?;
    Ok(out)
}

fn line(through: Through, what: &str, lat: Vec<Duration>) -> String {
    let count = lat.len();
    let total: Duration = lat.iter().sum();
    let mean = total.as_secs_f64() * 1e6 / count.max(1) as f64;
    let (_, p50, p99) = lat_stats(lat);
    format!(
        "stat {} {what}: {count} stats, p50 {p50:.1} µs, p99 {p99:.1} µs, mean {mean:.1} µs",
        through.name()
    )
}
