//! The sandbox: egress allow-list, memory limit, wall-clock limit, request timeouts,
//! traps that do not outlive their operation, and the compiled-component cache.
mod common;

use std::time::{Duration, Instant};

use common::*;
use ks3_driver_host::{Driver, Error, IoKind, Runtime, RuntimeOptions};
use ks3_local::{FaultAction, FaultRule, ServerConfig};

fn runtime(opts: RuntimeOptions) -> Runtime {
    Runtime::new(opts).expect("runtime")
}

#[tokio::test]
async fn egress_to_another_host_is_refused() {
    // Server A is what the driver is configured for; the allow-list names only B. The
    // guest really sends to A (its configuration says so); the host must refuse it, and
    // A must never see a request.
    let a = ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK)).unwrap();
    let b = ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK)).unwrap();
    let rt = Runtime::shared().unwrap();

    let d = Driver::with_egress_override(&rt, params_for(&a.endpoint(), "egress"), &b.endpoint())
        .await
        .unwrap();
    let started = Instant::now();
    let e = d.put_content("/x", b"data").await.unwrap_err();
    let msg = e.to_string();
    let a_authority = a.endpoint().trim_start_matches("http://").to_string();
    assert!(matches!(e, Error::Sandbox(_)), "{e:?}");
    assert!(msg.starts_with("ks3: sandbox: "), "{msg}");
    assert!(msg.contains("refused"), "{msg}");
    assert!(
        msg.contains(&a_authority),
        "the error must name the refused host: {msg}"
    );
    assert!(msg.contains(&b.endpoint()), "and what is allowed: {msg}");
    // Denied is not retried: refused at once.
    assert!(started.elapsed() < Duration::from_secs(2));
    for r in [
        d.get_content("/x").await.map(|_| ()),
        d.stat("/x").await.map(|_| ()),
        d.delete("/x").await,
    ] {
        assert!(
            matches!(r, Err(Error::Sandbox(ref m)) if m.message.contains("refused")),
            "{r:?}"
        );
    }
    assert_eq!(a.request_count(), 0, "A was reached");
    assert_eq!(b.request_count(), 0);

    // Same address, another name: the allow-list is on what the guest asked for.
    let localhost_a = format!("http://localhost:{}", a.addr().port());
    let d = Driver::with_egress_override(&rt, params_for(&localhost_a, "egress"), &a.endpoint())
        .await
        .unwrap();
    let e = d.stat("/x").await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("localhost:{}", a.addr().port())),
        "{e}"
    );
    assert_eq!(a.request_count(), 0);

    // Control: the normal allow-list (the configured endpoint) reaches A.
    let d = Driver::with_runtime(&rt, params_for(&a.endpoint(), "egress"))
        .await
        .unwrap();
    d.put_content("/x", b"data").await.unwrap();
    assert!(a.request_count() > 0);
    assert_eq!(b.request_count(), 0);
}

#[tokio::test]
async fn memory_limit_trap_does_not_poison_the_next_call() {
    let writer = Driver::new(params("memory")).await.unwrap();
    let big = data(40 * MIB, 40);
    let mut w = writer.writer("/big", false).await.unwrap();
    w.write(&big).await.unwrap();
    w.commit().await.unwrap();
    writer.put_content("/small", b"small").await.unwrap();

    // The same root, in a runtime whose instances get 24 MiB.
    let mut limited_params = params("memory");
    limited_params.insert(
        "rootdirectory".into(),
        format!("/{}", writer.config().expect("KS3").root_directory),
    );
    let rt = runtime(RuntimeOptions {
        memory_limit: Some(24 * MIB),
        ..RuntimeOptions::default()
    });
    let d = Driver::with_runtime(&rt, limited_params).await.unwrap();

    let e = d.get_content("/big").await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Sandbox(_)), "{e:?}");
    assert!(msg.contains("memory limit of 24 MiB"), "{msg}");
    assert!(msg.contains("get-content /big"), "{msg}");

    // The next operations on the same driver work.
    assert_eq!(d.get_content("/small").await.unwrap(), b"small");
    assert_eq!(d.stat("/big").await.unwrap().size, big.len() as u64);
    // And the big object streams fine within the limit.
    let mut r = d.reader("/big", 0).await.unwrap();
    let mut n = 0;
    loop {
        let c = r.read(MIB).await.unwrap();
        if c.is_empty() {
            break;
        }
        n += c.len();
    }
    assert_eq!(n, big.len());
}

#[tokio::test]
async fn wall_clock_limit_stops_a_slow_operation() {
    let rt = runtime(RuntimeOptions {
        op_timeout: Some(Duration::from_millis(600)),
        ..RuntimeOptions::default()
    });
    let d = Driver::with_runtime(&rt, params("wallclock"))
        .await
        .unwrap();
    d.put_content("/slow", b"zzz").await.unwrap();
    server().faults().inject(FaultRule {
        method: Some("GET".into()),
        path_pattern: format!("{}/slow", d.config().expect("KS3").root_directory),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(4)),
    });
    let started = Instant::now();
    let e = d.get_content("/slow").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&e, Error::Sandbox(m) if m.message.contains("wall-clock")),
        "{e:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The next operation is fine.
    assert_eq!(d.get_content("/slow").await.unwrap(), b"zzz");
}

/// Stateless operations reuse warm instances; one whose call was cancelled mid-way (its
/// future dropped while the guest waited on the network) must not be among them.
#[tokio::test]
async fn a_cancelled_operation_does_not_poison_warm_instances() {
    let d = Driver::new(params("cancelled")).await.unwrap();
    d.put_content("/c", b"ccc").await.unwrap();
    server().faults().inject(FaultRule {
        method: Some("GET".into()),
        path_pattern: format!("{}/c", d.config().expect("KS3").root_directory),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(2)),
    });
    let cancelled = tokio::time::timeout(Duration::from_millis(300), d.get_content("/c")).await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    for _ in 0..3 {
        assert_eq!(d.get_content("/c").await.unwrap(), b"ccc");
    }
    let (a, b, c) = tokio::join!(d.stat("/c"), d.get_content("/c"), d.list("/"));
    assert_eq!(a.unwrap().size, 3);
    assert_eq!(b.unwrap(), b"ccc");
    assert_eq!(c.unwrap(), vec!["/c".to_string()]);
}

#[tokio::test]
async fn request_timeout_reaches_the_guest() {
    let mut p = params("reqtimeout");
    p.insert("requesttimeout".into(), "1".into());
    p.insert("maxretries".into(), "0".into());
    let d = Driver::new(p).await.unwrap();
    d.put_content("/t", b"t").await.unwrap();
    server().faults().inject(FaultRule {
        method: Some("GET".into()),
        path_pattern: format!("{}/t", d.config().expect("KS3").root_directory),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(3)),
    });
    let started = Instant::now();
    let e = d.get_content("/t").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        e.io_kind() == Some(IoKind::Timeout) && e.to_string().contains("timed out"),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(d.get_content("/t").await.unwrap(), b"t");
}

#[tokio::test]
async fn compiled_component_cache() {
    let dir = tempfile::tempdir().unwrap();
    // The disk cache serves when the build's precompiled artifact is not used (refused by
    // another CPU, or switched off as here).
    let opts = RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ignore_embedded_artifact: true,
        ..RuntimeOptions::default()
    };
    let first = runtime(opts.clone());
    assert_eq!(first.load_info().cache, "miss");
    let file = first.load_info().path.clone().unwrap();
    assert!(file.starts_with(dir.path()));

    let second = runtime(opts.clone());
    assert_eq!(second.load_info().cache, "hit");
    eprintln!(
        "compile {:?}, cache hit {:?}",
        first.load_info().elapsed,
        second.load_info().elapsed
    );

    // A corrupt artifact is never trusted: it is recompiled and rewritten.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let third = runtime(opts.clone());
    assert_eq!(third.load_info().cache, "miss");
    std::fs::write(&file, b"KS3CWSM1 truncated").unwrap();
    assert_eq!(runtime(opts.clone()).load_info().cache, "miss");
    assert_eq!(runtime(opts).load_info().cache, "hit");

    // And the runtime from the cache works.
    let d = Driver::with_runtime(&second, params("cache"))
        .await
        .unwrap();
    d.put_content("/c", b"cached").await.unwrap();
    assert_eq!(d.get_content("/c").await.unwrap(), b"cached");
}

#[tokio::test]
async fn another_component_file_can_be_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("driver.wasm");
    std::fs::write(&file, ks3_driver_host::EMBEDDED_COMPONENT).unwrap();
    // Same bytes as the embedded component: the default cache already has it.
    let rt = runtime(RuntimeOptions {
        component: Some(file),
        ..RuntimeOptions::default()
    });
    let d = Driver::with_runtime(&rt, params("component"))
        .await
        .unwrap();
    d.put_content("/x", b"1").await.unwrap();

    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm not really").unwrap();
    let e = Runtime::new(RuntimeOptions {
        component: Some(bad),
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    })
    .unwrap_err();
    assert!(!format!("{e:#}").is_empty());
    let e = Runtime::new(RuntimeOptions {
        component: Some(dir.path().join("missing.wasm")),
        ..RuntimeOptions::default()
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("missing.wasm"), "{e:#}");
}

/// A TCP forwarder to the shared server that counts the connections it accepts.
async fn counting_proxy() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let upstream = server().addr();
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_pooled_and_reused() {
    use std::sync::atomic::Ordering;
    let (endpoint, accepted) = counting_proxy().await;
    let d = Driver::new(params_for(&endpoint, "pool")).await.unwrap();
    d.put_content("/p", b"pooled").await.unwrap();
    for _ in 0..30 {
        assert_eq!(d.get_content("/p").await.unwrap(), b"pooled");
        d.stat("/p").await.unwrap();
    }
    let sequential = accepted.load(Ordering::SeqCst);
    // The put sends its PUT and its tail's GET together (two connections); a connection
    // the pool has not taken back yet when the next request starts (hyper returns it
    // after it sees the answer's end, on its own task) can add one more now and then
    // (4 runs in 30 on a loaded machine). Without pooling this would be 61.
    assert!(
        sequential <= 3,
        "61 sequential requests used {sequential} connections"
    );

    // Concurrent operations open more, then reuse those.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                d.stat("/p").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Concurrent checkouts race a new connection against one being returned, so the
    // count depends on scheduling; it must still be well below one per request.
    let total = accepted.load(Ordering::SeqCst);
    assert!(
        total - sequential < 40,
        "40 concurrent requests used {} new connections",
        total - sequential
    );
    eprintln!("connections: {sequential} for 61 sequential requests, {total} in all");
}

#[tokio::test]
async fn extreme_options_are_errors_not_panics() {
    let rt = runtime(RuntimeOptions {
        op_timeout: Some(Duration::MAX),
        ..RuntimeOptions::default()
    });
    let d = Driver::with_runtime(&rt, params("extreme")).await.unwrap();
    d.put_content("/x", b"1").await.unwrap();

    let rt = runtime(RuntimeOptions {
        memory_limit: Some(0),
        op_timeout: Some(Duration::ZERO),
        ..RuntimeOptions::default()
    });
    let e = Driver::with_runtime(&rt, params("extreme"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Sandbox(_)), "{e:?}");

    assert!(matches!(
        Driver::with_egress_override(&rt, params("extreme"), "not a url").await,
        Err(Error::Sandbox(_))
    ));
}

/// A cache directory that group members may write (so could plant native code): the host
/// does not load from it nor write to it, compiles in memory, and the operations work.
#[cfg(unix)]
#[tokio::test]
async fn group_writable_cache_dir_is_not_used_and_operations_still_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o775)).unwrap();
    let rt = runtime(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ignore_embedded_artifact: true,
        ..RuntimeOptions::default()
    });
    assert_eq!(rt.load_info().cache, "untrusted");
    assert!(rt.load_info().path.is_none());
    let d = Driver::with_runtime(&rt, params("untrusted-cache"))
        .await
        .unwrap();
    d.put_content("/u", b"compiled in memory").await.unwrap();
    assert_eq!(d.get_content("/u").await.unwrap(), b"compiled in memory");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing written to the untrusted cache"
    );
}
