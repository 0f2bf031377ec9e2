//! The benchmark's steps, in the order the run takes them: each measures both sides
//! of the table where it compares them (and the plain client, the SDK, the whole
//! processes, the signature schemes and the registries where it has them).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use ks3_driver_host::{Driver, Params};

use super::*;

/// One upload and one download of `stream_mib` per side, with the resident memory sampled
/// during the upload (the writer's buffers are what the memory row judges).
pub(crate) async fn streams(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let (mib, big) = (run.sizes.stream_mib, run.sizes.stream_mib * MIB);
    for (side, f) in table.iter_mut() {
        let path = format!("{}/stream/{}", run.root, side.name());
        let base = rss();
        let sampler = RssSampler::start();
        let took = side.upload(path.clone(), run.data.clone(), mib).await?;
        f.peak_mib = sampler.peak().saturating_sub(base) as f64 / MIB as f64;
        f.write_mibps = mibps(big, took);
    }
    // Reads are short (a 1 GiB read takes ~0.4 s here) and swing with where the
    // scheduler puts the threads: each side reads in turn, `STREAM_READS` times, the
    // first side alternating, and its best read counts.
    for round in 0..STREAM_READS {
        for i in 0..table.len() {
            let (side, f) = &mut table[(i + round) % table.len()];
            let path = format!("{}/stream/{}", run.root, side.name());
            let (took, got) = side.download(path).await?;
            if got != big {
                return Err(format!("{} read {got} of {big} bytes", side.name()));
            }
            f.read_mibps = f.read_mibps.max(mibps(big, took));
        }
    }
    Ok(())
}

/// The same stream by a plain HTTP client, (write, read) MiB/s: the stream rows' physical
/// limit. Local server only: the client signs with its keys.
pub(crate) async fn plain_http_limit(run: &Run) -> Option<(f64, f64)> {
    let server = run.server.as_ref()?;
    let (mib, big) = (run.sizes.stream_mib, run.sizes.stream_mib * MIB);
    match limit::limit(&server.endpoint, mib, run.data.clone(), STREAM_READS).await {
        Ok((up, down)) => Some((mibps(big, up), mibps(big, down))),
        Err(e) => {
            (run.say)(&format!("plain-HTTP figures skipped: {e}"));
            None
        }
    }
}

/// Put, get and stat of 4 KiB, one at a time, `small_ops` times per side, in
/// `SMALL_ROUNDS` rounds that alternate the sides (and which goes first), so that both
/// sample the same stretches of the machine's time; the latencies of all rounds count.
pub(crate) async fn small_objects(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let body = Arc::new(vec![7u8; SMALL]);
    let per_round = run.sizes.small_ops.div_ceil(SMALL_ROUNDS);
    let mut all: Vec<sides::Latencies> = vec![Default::default(); table.len()];
    for round in 0..SMALL_ROUNDS {
        let ops = round * per_round..((round + 1) * per_round).min(run.sizes.small_ops);
        for i in 0..table.len() {
            let at = (i + round) % table.len();
            let (side, _) = &table[at];
            let paths = ops
                .clone()
                .map(|i| run.path("small", *side, &format!("{i:06}")))
                .collect();
            for (op, v) in side.small_objects(paths, body.clone()).await? {
                all[at].entry(op).or_default().extend(v);
            }
        }
    }
    for ((_, f), lat) in table.iter_mut().zip(all) {
        for (op, v) in lat {
            f.small.insert(op, lat_stats(v));
        }
    }
    Ok(())
}

/// A directory of `keys` keys per side for `listing`. Filled by the native driver on 8
/// blocking threads for both sides alike, and not timed: only the listing is measured.
pub(crate) async fn fill_directories(
    run: &Run,
    native: &Native,
    table: &Table<'_>,
) -> Result<(), String> {
    const THREADS: usize = 8;
    for (side, _) in table {
        let dir = run.key_dir(*side);
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let (native, dir, keys) = (native.clone(), dir.clone(), run.sizes.keys);
                tokio::task::spawn_blocking(move || {
                    for i in (t..keys).step_by(THREADS) {
                        native.put(&format!("{dir}/k{i:06}"), b"x")?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(err)??;
        }
    }
    Ok(())
}

/// List, walk (counting the listing requests it makes, when the local server can tell)
/// and delete of each side's directory of `keys` keys.
pub(crate) async fn listing(run: &mut Run, table: &mut Table<'_>) -> Result<(), String> {
    let keys = run.sizes.keys;
    for (side, f) in table.iter_mut() {
        let dir = run.key_dir(*side);
        let (took, listed) = side.list(dir.clone()).await?;
        f.list_ms = ms(took);
        check_count(&format!("{} list", side.name()), listed, keys)?;

        let before = run.list_requests();
        let (took, seen) = side.walk(dir.clone()).await?;
        f.walk_ms = ms(took);
        f.walk_lists = before.zip(run.list_requests()).map(|(b, a)| a - b);
        check_count(&format!("{} walk", side.name()), seen, keys)?;

        f.delete_ms = ms(side.delete(dir).await?);
    }
    Ok(())
}

fn check_count(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got} entries, expected {want}"))
    }
}

/// `writers` uploads of `writer_mib` each at once per side: the aggregate rate.
pub(crate) async fn concurrent_writers(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let (writers, mib) = (run.sizes.writers, run.sizes.writer_mib);
    let total = writers * mib * MIB;
    for (side, f) in table.iter_mut() {
        let paths = (0..writers)
            .map(|i| run.path("conc", *side, &i.to_string()))
            .collect();
        let t = Instant::now();
        side.concurrent_uploads(paths, run.data.clone(), mib)
            .await?;
        f.concurrent_mibps = mibps(total, t.elapsed());
    }
    Ok(())
}

/// Fresh processes, each doing one stat of an object this step puts: per side the median
/// wall times of [`ColdFigures`] (all the same figure for a side that keeps no compiled
/// code).
pub(crate) async fn cold_starts(
    run: &Run,
    driver: &Driver,
    params: &Params,
    child_args: Vec<String>,
    table: &mut Table<'_>,
) -> Result<(), String> {
    let path = format!("{}/cold", run.root);
    driver.put_content(&path, b"cold").await.map_err(err)?;
    let children = ColdStarts::new(child_args, run.server.is_some(), params, run.sizes)?;
    for (side, f) in table.iter_mut() {
        let (args, caches) = (side.cold_stat_args(&path), side.caches_code());
        let children = children.clone();
        f.cold = blocking(move || children.measure(&args, caches)).await?;
    }
    Ok(())
}

/// `ks3-driver put` and `get` as whole processes against curl on presigned URLs, or
/// `None` (and why, on stderr). Only on the local server, whose keys make the URLs.
pub(crate) async fn whole_processes(
    run: &Run,
    params: &Params,
    child_args: Vec<String>,
) -> Option<processes::ProcessFigures> {
    let measured = match &run.server {
        None => Err("only run against the local server".to_string()),
        Some(server) => match std::env::current_exe() {
            Err(e) => Err(e.to_string()),
            Ok(exe) => {
                let mut base_args = child_args;
                for (k, v) in params {
                    base_args.push("-p".into());
                    base_args.push(format!("{k}={v}"));
                }
                let p = processes::Processes {
                    exe,
                    base_args,
                    endpoint: format!("http://{}", server.host_port()),
                    path: format!("{}/processes", run.root),
                };
                let (data, mib, runs, say) = (
                    Arc::clone(&run.data),
                    run.sizes.process_mib,
                    run.sizes.process_runs,
                    Arc::clone(&run.say),
                );
                blocking(move || p.measure(&data, mib, runs, &*say)).await
            }
        },
    };
    match measured {
        Ok(f) => {
            (run.say)("whole processes done");
            Some(f)
        }
        Err(why) => {
            (run.say)(&format!("whole-process figures skipped: {why}"));
            None
        }
    }
}

/// The official SDK's figures against the same server, or `None` (and why, on stderr).
pub(crate) async fn sdk(run: &Run, no_sdk: bool) -> Result<Option<BTreeMap<String, f64>>, String> {
    let sdk = match (&run.server, no_sdk) {
        (_, true) => Err("left out (--no-sdk)".to_string()),
        (None, _) => Err("only run against the local server".to_string()),
        (Some(s), _) => {
            let (hp, sizes) = (s.host_port().to_string(), run.sizes);
            blocking(move || Ok(run_sdk(&hp, sizes))).await?
        }
    };
    if let Err(why) = &sdk {
        (run.say)(&format!("ks3sdk figures skipped: {why}"));
    }
    Ok(sdk.ok())
}

/// The signature schemes side by side (component only): their table.
pub(crate) async fn signature_schemes(
    run: &Run,
    runtime: &ks3_driver_host::Runtime,
    params: &Params,
) -> Result<String, String> {
    let table = schemes::compare(
        runtime,
        params,
        &run.root,
        run.sizes.stream_mib,
        run.sizes.small_ops,
        &run.data,
    )
    .await?;
    (run.say)("signature schemes done");
    Ok(table)
}

/// The registries side by side, or why not. Only on the local server: distribution's s3
/// driver is pointed at it with the same keys.
pub(crate) async fn registries(
    run: &Run,
    runtime: &ks3_driver_host::Runtime,
    params: &Params,
) -> Result<String, String> {
    let registries = match &run.server {
        None => Err("only run against the local server".to_string()),
        Some(_) => registries::compare(runtime, params, run.sizes.quick).await,
    };
    match &registries {
        Ok(_) => (run.say)("registries done"),
        Err(why) => (run.say)(&format!("registry comparison skipped: {why}")),
    }
    registries
}

/// The official SDK's figures, or why there are none.
fn run_sdk(host_port: &str, sizes: Sizes) -> Result<BTreeMap<String, f64>, String> {
    let script = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/bench_ks3sdk.py"),
        PathBuf::from("tests/sdk/bench_ks3sdk.py"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or("tests/sdk/bench_ks3sdk.py not found")?;
    let probe = Command::new("python3")
        .args(["-c", "import ks3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => {}
        Ok(_) => return Err("python3 has no ks3sdk (pip install ks3sdk==1.18.0)".into()),
        Err(_) => return Err("no python3".into()),
    }
    let out = Command::new("python3")
        .arg(&script)
        .args([host_port, server::BUCKET, server::AK, server::SK])
        .args(["--size-mib", &sizes.stream_mib.to_string()])
        .args(["--small", &sizes.small_ops.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!(
            "bench_ks3sdk.py failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(err)?;
    let map = v
        .as_object()
        .ok_or("bench_ks3sdk.py: not a JSON object")?
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .collect();
    Ok(map)
}
