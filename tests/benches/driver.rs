//! distribution's driver benchmarks (testsuites.BenchDriver), through the component
//! against the local KS3 server: PutGet and Stream of empty, 1 KiB, 1 MiB and 1 GiB
//! files, List and Delete of 5 and 50 files.
//!
//!     cargo bench -p ks3-tests --bench driver            # everything
//!     cargo bench -p ks3-tests --bench driver -- quick   # skip the 1 GiB cases
use std::time::{Duration, Instant};

use ks3_driver_host::Driver;
use ks3_tests::*;

struct Row {
    name: String,
    iters: u32,
    per_op: Duration,
    bytes: u64,
}

fn print(rows: &[Row]) {
    println!(
        "{:<22} {:>6} {:>14} {:>12}",
        "benchmark", "iters", "time/op", "MiB/s"
    );
    for r in rows {
        let mbps = if r.bytes > 0 && r.per_op > Duration::ZERO {
            format!(
                "{:.1}",
                r.bytes as f64 / r.per_op.as_secs_f64() / MIB as f64
            )
        } else {
            "-".into()
        };
        println!(
            "{:<22} {:>6} {:>14} {:>12}",
            r.name,
            r.iters,
            format!("{:.3?}", r.per_op),
            mbps
        );
    }
}

/// Content of `size` bytes, fed in 1 MiB pieces so 1 GiB needs no 1 GiB buffer.
fn pieces(size: usize) -> impl Iterator<Item = &'static [u8]> {
    let block = &random_bytes()[..MIB];
    let mut left = size;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(MIB);
        left -= n;
        Some(&block[..n])
    })
}

async fn put_get(d: &Driver, size: usize, iters: u32) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let parent = format!("/pg{}", random_path(8));
        let p = format!("{parent}{}", random_path(32));
        let t = Instant::now();
        if size <= 64 * MIB {
            let data = &random_bytes()[..size];
            d.put_content(&p, data).await.unwrap();
            let got = d.get_content(&p).await.unwrap();
            assert_eq!(got.len(), size);
        } else {
            // A whole-object list<u8> of 1 GiB cannot cross the component boundary in one
            // call; the same bytes go through the chunked writer and reader instead.
            let mut w = d.writer(&p, false).await.unwrap();
            for piece in pieces(size) {
                w.write(piece).await.unwrap();
            }
            w.commit().await.unwrap();
            let mut r = d.reader(&p, 0).await.unwrap();
            let mut n = 0;
            loop {
                let c = r.read(MIB).await.unwrap();
                if c.is_empty() {
                    break;
                }
                n += c.len();
            }
            assert_eq!(n, size);
        }
        total += t.elapsed();
        d.delete(&parent).await.unwrap();
    }
    total / iters
}

async fn stream(d: &Driver, size: usize, iters: u32) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let parent = format!("/st{}", random_path(8));
        let p = format!("{parent}{}", random_path(32));
        let t = Instant::now();
        let mut w = d.writer(&p, false).await.unwrap();
        for piece in pieces(size) {
            w.write(piece).await.unwrap();
        }
        w.commit().await.unwrap();
        w.close().await.unwrap();
        // distribution opens the reader and closes it without reading.
        drop(d.reader(&p, 0).await.unwrap());
        total += t.elapsed();
        d.delete(&parent).await.unwrap();
    }
    total / iters
}

/// distribution puts the files at `parent + randomPath(32)`, whose first components can
/// collide and make the count flaky; single-component names keep the N-entry check exact.
async fn list_n(d: &Driver, n: usize, iters: u32) -> Duration {
    let parent = format!("/ls{}", random_path(8));
    for _ in 0..n {
        d.put_content(&format!("{parent}/{}", random_filename(32)), &[])
            .await
            .unwrap();
    }
    let t = Instant::now();
    for _ in 0..iters {
        assert_eq!(d.list(&parent).await.unwrap().len(), n);
    }
    let per = t.elapsed() / iters;
    d.delete(&parent).await.unwrap();
    per
}

async fn delete_n(d: &Driver, n: usize, iters: u32) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let parent = format!("/dl{}", random_path(8));
        for _ in 0..n {
            d.put_content(&format!("{parent}{}", random_path(32)), &[])
                .await
                .unwrap();
        }
        let t = Instant::now();
        d.delete(&parent).await.unwrap();
        total += t.elapsed();
    }
    total / iters
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let d = fresh_driver("bench").await;
        let mut rows = Vec::new();
        let sizes: &[(&str, usize, u32)] = &[
            ("Empty", 0, 50),
            ("1KB", 1024, 50),
            ("1MB", MIB, 20),
            ("1GB", 1 << 30, 1),
        ];
        for (label, size, iters) in sizes {
            if quick && *size >= 1 << 30 {
                continue;
            }
            let per = put_get(&d, *size, *iters).await;
            rows.push(Row {
                name: format!("PutGet{label}Files"),
                iters: *iters,
                per_op: per,
                bytes: 2 * *size as u64,
            });
        }
        for (label, size, iters) in sizes {
            if quick && *size >= 1 << 30 {
                continue;
            }
            let per = stream(&d, *size, *iters).await;
            rows.push(Row {
                name: format!("Stream{label}Files"),
                iters: *iters,
                per_op: per,
                bytes: *size as u64,
            });
        }
        for n in [5, 50] {
            let per = list_n(&d, n, 20).await;
            rows.push(Row {
                name: format!("List{n}Files"),
                iters: 20,
                per_op: per,
                bytes: 0,
            });
        }
        for n in [5, 50] {
            let per = delete_n(&d, n, 5).await;
            rows.push(Row {
                name: format!("Delete{n}Files"),
                iters: 5,
                per_op: per,
                bytes: 0,
            });
        }
        print(&rows);
        assert_clean(&d).await;
    });
}
