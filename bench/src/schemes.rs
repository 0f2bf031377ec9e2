//! The signature schemes side by side: the component's stream and small-object figures
//! under `signatureversion` = `v2`, `v4` (KSS4-HMAC-SHA256) and `aws4`
//! (AWS4-HMAC-SHA256), same server, same run. V4 hashes every part and small body with
//! SHA-256 for its payload hash, where V2 signs headers only: this table shows what
//! that costs.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ks3_driver_host::{Driver, Params, Runtime};

use super::sides::Component;
use super::{err, lat_stats, mibps, size_name, MIB, SMALL};

/// `signatureversion` value, and the name in the table's header.
const SCHEMES: [(&str, &str); 3] = [("v2", "V2"), ("v4", "KSS4"), ("aws4", "AWS4")];

/// One scheme's figures.
struct Figures {
    write_mibps: f64,
    read_mibps: f64,
    /// put, get, stat: (ops/s, p50 µs).
    small: [(f64, f64); 3],
}

/// Runs every scheme against `params`' server under `root` and returns the Markdown table.
pub async fn compare(
    runtime: &Runtime,
    params: &Params,
    root: &str,
    stream_mib: usize,
    small_ops: usize,
    data: &[u8],
) -> Result<String, String> {
    let mut all = Vec::new();
    for (scheme, _) in SCHEMES {
        let mut p = params.clone();
        p.insert("signatureversion".into(), scheme.into());
        let driver = Driver::with_runtime(runtime, p).await.map_err(err)?;
        let dir = format!("{root}/schemes/{scheme}");
        let figures = measure(&driver, &dir, stream_mib, small_ops, data).await?;
        let _ = driver.delete(&dir).await;
        all.push(figures);
    }
    Ok(table(&all, stream_mib))
}

async fn measure(
    driver: &Driver,
    dir: &str,
    stream_mib: usize,
    small_ops: usize,
    data: &[u8],
) -> Result<Figures, String> {
    let big = stream_mib * MIB;
    let path = format!("{dir}/stream");
    let t = Instant::now();
    Component::upload(driver, &path, data, stream_mib).await?;
    let write_mibps = mibps(big, t.elapsed());

    let t = Instant::now();
    let got = Component::read_to_end(driver, &path).await?;
    let read_mibps = mibps(big, t.elapsed());
    if got != big {
        return Err(format!("read {got} of {big} bytes"));
    }

    let body = vec![7u8; SMALL];
    let mut lat: [Vec<Duration>; 3] = Default::default();
    for i in 0..small_ops {
        let p = format!("{dir}/small/{i:06}");
        let t = Instant::now();
        driver.put_content(&p, &body).await.map_err(err)?;
        lat[0].push(t.elapsed());
        let t = Instant::now();
        let got = driver.get_content(&p).await.map_err(err)?;
        lat[1].push(t.elapsed());
        if got != body {
            return Err(format!("get-content {p}: wrong bytes"));
        }
        let t = Instant::now();
        driver.stat(&p).await.map_err(err)?;
        lat[2].push(t.elapsed());
    }
    let small = lat.map(|v| {
        let (ops, p50, _) = lat_stats(v);
        (ops, p50)
    });
    Ok(Figures {
        write_mibps,
        read_mibps,
        small,
    })
}

fn table(all: &[Figures], stream_mib: usize) -> String {
    let mut out =
        String::from("\nSignature schemes (component, same server):\n\n| scheme comparison |");
    for (_, name) in SCHEMES {
        let _ = write!(out, " {name} |");
    }
    for (_, name) in &SCHEMES[1..] {
        let _ = write!(out, " {name} / V2 |");
    }
    out.push_str("\n|---|");
    for _ in 0..SCHEMES.len() * 2 - 1 {
        out.push_str("---:|");
    }
    out.push('\n');
    let size = size_name(stream_mib);
    let mut row = |name: String, value: &dyn Fn(&Figures) -> f64| {
        let _ = write!(out, "| {name} |");
        for f in all {
            let _ = write!(out, " {:.1} |", value(f));
        }
        let base = all.first().map(value).unwrap_or(0.0);
        for f in &all[1..] {
            if base > 0.0 {
                let _ = write!(out, " {:.2}× |", value(f) / base);
            } else {
                out.push_str(" – |");
            }
        }
        out.push('\n');
    };
    row(format!("stream write {size} (MiB/s)"), &|f| f.write_mibps);
    row(format!("stream read {size} (MiB/s)"), &|f| f.read_mibps);
    for (i, op) in ["put-content", "get-content", "stat"].iter().enumerate() {
        row(format!("{op} 4 KiB (ops/s)"), &|f| f.small[i].0);
        row(format!("{op} 4 KiB p50 (µs)"), &|f| f.small[i].1);
    }
    out
}
