//! A chaos test of the whole registry (issue 28), every part a real process: ks3-local
//! (`ks3-driver serve-local`) on a disk store with its admin endpoint, two
//! `ks3-driver registry` instances on it, `ks3-driver gc -m` in a loop; concurrent clients
//! push images sharing layers (a few bytes to 6 MiB; monolithic, one-PUT and chunked
//! uploads; cross-repository mounts), pull, delete tags and manifests, re-tag, against
//! either instance at random; random faults go to ks3-local (500, SlowDown, cut
//! connections, lost answers, delays); one instance is SIGKILLed and restarted, then
//! ks3-local itself.
//!
//! The oracle is the clients' model of acknowledged outcomes (`model.rs`). At the end,
//! faults cleared: `ks3-driver fsck` is clean, every tag answers as the model allows from
//! both instances (an acknowledged one byte for byte), no deleted manifest is served, and
//! `purge-uploads --age 0s` leaves no KS3 multipart upload.
//!
//! `KS3_CHAOS_SECONDS` (default 70) sets the chaos time, `KS3_CHAOS_SEED` replays a run
//! (the seed is printed first; the interleaving of processes is not replayed).
mod background;
mod checks;
mod client;
mod model;
mod ops;
mod procs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::client::Http;
use crate::model::Model;
use crate::procs::{Instance, Ks3Local};

const CLIENTS: usize = 6;
const REPOS: usize = 4;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// `ks3-driver fsck`: exit 0 clean, 1 problems, 2 unreadable.
async fn fsck(bin: &std::path::Path, config: &std::path::Path) -> procs::Ran {
    procs::run(bin, config, &["fsck"], Duration::from_secs(120)).await
}

fn fsck_line(r: &procs::Ran) -> String {
    let last = r.stdout.lines().last().unwrap_or("");
    format!("exit {:?}: {last} {}", r.code, r.stderr.trim())
}

/// The `request failed error=…` lines of the registries' logs, grouped by their text with
/// digests, ids and numbers elided.
fn logged_failures(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for name in ["registry-a.log", "registry-b.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        for line in text.lines() {
            let Some(i) = line.find("error=") else {
                continue;
            };
            let mut what = String::new();
            let mut run = 0;
            for c in line[i..].chars().take(200) {
                if c.is_ascii_hexdigit() {
                    run += 1;
                    if run == 8 {
                        what.push('…');
                    }
                    if run >= 8 {
                        continue;
                    }
                } else {
                    run = 0;
                }
                what.push(c);
            }
            *counts.entry(what).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v.truncate(12);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_of_the_whole_registry() {
    let seconds = env_u64("KS3_CHAOS_SECONDS").unwrap_or(70);
    let seed = env_u64("KS3_CHAOS_SEED").unwrap_or_else(|| rand::thread_rng().gen());
    // Short, so the collector sweeps during the run (its default, an hour, would keep
    // everything a bounded run writes).
    let min_age = env_u64("KS3_CHAOS_GC_MIN_AGE").unwrap_or(5);
    // More of the collector's options, to explore (`--settle 0`: no second look).
    let gc_args: Vec<String> = std::env::var("KS3_CHAOS_GC_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    println!(
        "chaos: seed {seed}, {seconds} s of chaos, gc -m --min-age {min_age}s {} (replay: \
         KS3_CHAOS_SEED={seed}; longer: KS3_CHAOS_SECONDS=600)",
        gc_args.join(" ")
    );
    let bin = tokio::task::spawn_blocking(procs::ks3_driver)
        .await
        .expect("build");
    let work = tempfile::tempdir().expect("tempdir");
    let mut ks3 = Ks3Local::start(&bin, work.path()).await;
    let endpoint = ks3.endpoint();
    let mut instances = [
        Instance::start(&bin, work.path(), "registry-a", &endpoint).await,
        Instance::start(&bin, work.path(), "registry-b", &endpoint).await,
    ];
    let bases: Vec<String> = instances.iter().map(Instance::base).collect();
    let commands = work.path().join("commands.yml");
    procs::write_config(&commands, &endpoint, 0);
    println!(
        "chaos: ks3-local {endpoint} (data and logs in {}), registries {bases:?}",
        work.path().display()
    );

    let repos: Vec<String> = (0..REPOS).map(|i| format!("chaos/app{i}")).collect();
    let model = Arc::new(Model::new(&repos));
    let pool = Arc::new(ops::layer_pool(seed));
    let http = Http::new();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let mut c = ops::Client {
            id,
            seed,
            rng: rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(id as u64 * 7919)),
            http: http.clone(),
            bases: bases.clone(),
            model: Arc::clone(&model),
            pool: Arc::clone(&pool),
            pushes: 0,
            gc_min_age: Duration::from_secs(min_age),
        };
        let stop = Arc::clone(&stop);
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                c.step().await;
            }
        }));
    }
    let gc = tokio::spawn(background::gc_loop(
        bin.clone(),
        commands.clone(),
        [
            vec!["-m".into(), "--min-age".into(), format!("{min_age}s")],
            gc_args,
        ]
        .concat(),
        seed,
        Arc::clone(&stop),
    ));
    let faults = tokio::spawn(background::fault_loop(
        http.clone(),
        endpoint.clone(),
        seed,
        Arc::clone(&stop),
    ));

    // The kills: an instance at a third of the run, ks3-local at three fifths.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x4b);
    let victim = rng.gen_range(0..instances.len());
    let at = |fraction: f64| started + Duration::from_secs_f64(seconds as f64 * fraction);
    let mut kills = Vec::new();
    let mut windows = Vec::new();
    tokio::time::sleep_until(at(0.33).into()).await;
    instances[victim].kill().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2000))).await;
    instances[victim].restart().await;
    windows.push((down, Instant::now()));
    kills.push(format!(
        "registry instance {victim} SIGKILLed at {:.0} s, serving again after {:.1} s",
        (down - started).as_secs_f64(),
        down.elapsed().as_secs_f64()
    ));
    tokio::time::sleep_until(at(0.6).into()).await;
    ks3.kill().await;
    let down = Instant::now();
    // Longer than the driver's retries last: the registries answer 5xx meanwhile.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(2000..4000))).await;
    ks3.restart().await;
    windows.push((down, Instant::now()));
    kills.push(format!(
        "ks3-local SIGKILLed at {:.0} s, serving again (same port and disk) after {:.1} s",
        (down - started).as_secs_f64(),
        down.elapsed().as_secs_f64()
    ));
    tokio::time::sleep_until(deadline.into()).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let faults = faults.await.expect("fault task");
    let gc = gc.await.expect("gc task");
    let chaos_seconds = started.elapsed().as_secs_f64();
    let pending = ks3.clear_faults(&http).await;

    // The end state.
    let ending = Instant::now();
    let fsck_before = fsck(&bin, &commands).await;
    let figures = checks::verify(&http, &bases, &model).await;
    let prefix = ks3_tests::key_prefix(procs::ROOT);
    let uploads_before = ks3_tests::list_uploads_on(&endpoint, &prefix).await;
    let purge = procs::run(
        &bin,
        &commands,
        &["purge-uploads", "--age", "0s"],
        Duration::from_secs(120),
    )
    .await;
    let uploads_after = ks3_tests::list_uploads_on(&endpoint, &prefix).await;
    let fsck_after = fsck(&bin, &commands).await;
    let end_seconds = ending.elapsed().as_secs_f64();

    // The report.
    println!("\n=== chaos report (seed {seed}) ===");
    println!(
        "{chaos_seconds:.0} s of chaos (the clients' last operations included), {CLIENTS} clients, {REPOS} repositories, {} layers in the pool",
        pool.len()
    );
    println!("operations (kind: outcome count):");
    for ((kind, outcome), n) in model.counts() {
        println!("  {kind}: {outcome:?} {n}");
    }
    // What went wrong for the clients, during the kills (an instance down, ks3-local down
    // and the driver's retries a few seconds after) and outside them.
    let during = |t: Instant| {
        windows.iter().any(|(from, to)| {
            t + Duration::from_secs(1) >= *from && t <= *to + Duration::from_secs(5)
        })
    };
    let mut trouble: std::collections::BTreeMap<(bool, String), u64> = Default::default();
    let mut outside = Vec::new();
    for (t, what) in client::trouble() {
        *trouble.entry((during(t), what.clone())).or_default() += 1;
        if !during(t) {
            outside.push(format!("{:.1} s: {what}", (t - started).as_secs_f64()));
        }
    }
    println!("requests answered 5xx or not at all (registry side):");
    for ((kill, what), n) in &trouble {
        let when = if *kill {
            "during a kill"
        } else {
            "OUTSIDE the kills"
        };
        println!("  {when}: {what}: {n}");
    }
    for o in outside.iter().take(10) {
        println!("    at {o}");
    }
    let posted = faults.injected.values().sum::<u64>();
    let unused = faults.unused + pending;
    println!(
        "faults: {} injected of {posted} posted {:?} ({unused} unused: in rules dropped after \
         going unmatched, {} times, or pending at the end; {} posts missed during the restart)",
        posted.saturating_sub(unused),
        faults.injected,
        faults.cleared,
        faults.unposted
    );
    for k in &kills {
        println!("kill: {k}");
    }
    println!(
        "gc runs by exit status: {:?} ({:.1} s each on average); deleted {} blobs and {} manifests",
        gc.runs,
        gc.seconds / gc.runs.values().sum::<u64>().max(1) as f64,
        gc.blobs_deleted,
        gc.manifests_deleted
    );
    for f in &gc.failures {
        println!("  a failed gc run: {f}");
    }
    println!("end ({end_seconds:.0} s of checks): {figures:?}");
    println!(
        "KS3 multipart uploads: {} before purge-uploads --age 0s (exit {:?}), {} after",
        uploads_before.len(),
        purge.code,
        uploads_after.len()
    );
    println!("the registries' logged request failures (digests and ids elided):");
    for (what, n) in logged_failures(work.path()) {
        println!("  {n} × {what}");
    }
    println!("fsck: {}", fsck_line(&fsck_before));
    println!("fsck after the purge: {}", fsck_line(&fsck_after));

    let mut violations = model.violations();
    if fsck_before.code != Some(0) {
        violations.push(format!(
            "fsck (exit {:?}):\n{}{}",
            fsck_before.code, fsck_before.stdout, fsck_before.stderr
        ));
    }
    if purge.code != Some(0) {
        violations.push(format!(
            "purge-uploads --age 0s failed ({:?}): {}",
            purge.code, purge.stderr
        ));
    }
    if !uploads_after.is_empty() {
        violations.push(format!(
            "KS3 multipart uploads left after purge-uploads --age 0s: {uploads_after:?}"
        ));
    }
    println!("violations: {}", violations.len());
    for v in &violations {
        println!("  - {v}");
    }
    if std::env::var_os("KS3_CHAOS_KEEP").is_some() {
        println!("kept: {}", work.keep().display());
        assert!(
            violations.is_empty(),
            "the chaos run (seed {seed}) found violations"
        );
        return;
    }
    assert!(
        violations.is_empty(),
        "the chaos run (seed {seed}) found {} violations (above; logs in {})",
        violations.len(),
        work.keep().display()
    );
}
