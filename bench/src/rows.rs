//! The report: the main table's rows from both sides' figures, and the three tables.
use std::collections::BTreeMap;

use super::*;

/// The three tables, each followed by a newline: the sides' (with the plain-HTTP and SDK columns), the
/// signature schemes' and the registries' (or why there is none).
pub(crate) fn report(
    run: &Run,
    rows: &[Row],
    config: &ks3_driver_host::Config,
    sdk: bool,
    schemes: &str,
    registries: Result<String, String>,
) -> String {
    let local = run.server.is_some();
    let registries = match registries {
        Ok(table) => table,
        Err(why) => format!("\nRegistries: skipped: {why}"),
    };
    format!(
        "{}\n{schemes}\n{registries}\n",
        report::table(rows, config.chunk_size, local, sdk)
    )
}

/// The main table's rows from both sides' figures, the plain-HTTP limit and the SDK's.
pub(crate) fn rows(
    sizes: Sizes,
    table: &Table<'_>,
    config: &ks3_driver_host::Config,
    limit: Option<(f64, f64)>,
    sdk: Option<&BTreeMap<String, f64>>,
    processes: Option<&processes::ProcessFigures>,
) -> Vec<Row> {
    let [(_, c), (_, n)] = table;
    let sdkv = |k: &str| sdk.and_then(|m| m.get(k).copied());
    // The writer holds its parts in flight, the part being filled and the tail's copy.
    let chunks_held = config.parts_in_flight() as f64 + 2.0;
    let mem_limit = chunks_held * config.chunk_size as f64 / MIB as f64 + 64.0;
    let mut rows = vec![
        Row::rate(
            &format!("stream write {} (MiB/s)", size_name(sizes.stream_mib)),
            c.write_mibps,
            n.write_mibps,
            sdkv("upload_mibps"),
            Target::RatioAtLeast(0.9),
        )
        .with_limit(limit.map(|l| l.0))
        .and(Target::LimitRatioAtLeast(0.9))
        .and(Target::SdkRatioAtLeast(2.0)),
        Row::rate(
            &format!("stream read {} (MiB/s)", size_name(sizes.stream_mib)),
            c.read_mibps,
            n.read_mibps,
            sdkv("download_mibps"),
            Target::RatioAtLeast(0.95),
        )
        .with_limit(limit.map(|l| l.1))
        .and(Target::LimitRatioAtLeast(0.9)),
    ];
    for op in ["put", "get", "stat"] {
        let name = match op {
            "put" => "put-content",
            "get" => "get-content",
            _ => "stat",
        };
        let (co, cp50, cp99) = c.small[op];
        let (no, np50, np99) = n.small[op];
        rows.push(Row::rate(
            &format!("{name} 4 KiB (ops/s)"),
            co,
            no,
            sdkv(&format!("small_{op}_ops")),
            Target::SdkRatioAtLeast(4.0),
        ));
        rows.push(Row::latency(
            &format!("{name} 4 KiB p50 (µs)"),
            cp50,
            np50,
            sdkv(&format!("small_{op}_p50_us")),
            Target::AtMostTimes(1.5, np50, "native"),
        ));
        rows.push(Row::latency(
            &format!("{name} 4 KiB p99 (µs)"),
            cp99,
            np99,
            sdkv(&format!("small_{op}_p99_us")),
            Target::None,
        ));
    }
    let k = keys_name(sizes.keys);
    rows.push(Row::latency(
        &format!("list of a {k}-key directory (ms)"),
        c.list_ms,
        n.list_ms,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        &format!("walk of {k} keys (ms)"),
        c.walk_ms,
        n.walk_ms,
        None,
        Target::None,
    ));
    let max_lists = (sizes.keys as f64 / 1000.0).ceil() + 1.0;
    rows.push(Row::count(
        &format!("walk of {k} keys: list requests"),
        c.walk_lists.map(|v| v as f64),
        n.walk_lists.map(|v| v as f64),
        Target::AtMost(max_lists),
    ));
    rows.push(Row::latency(
        &format!("delete of {k} keys (ms)"),
        c.delete_ms,
        n.delete_ms,
        None,
        Target::None,
    ));
    rows.push(Row::rate(
        &format!(
            "{} concurrent writers × {} MiB (MiB/s)",
            sizes.writers, sizes.writer_mib
        ),
        c.concurrent_mibps,
        n.concurrent_mibps,
        None,
        Target::RatioAtLeast(0.9),
    ));
    rows.push(Row::latency(
        "cold start to first op, no cache (ms)",
        c.cold.first,
        n.cold.first,
        None,
        Target::AtMostTimes(2.0, c.cold.cached, "cached"),
    ));
    rows.push(Row::latency(
        "cold start to first op, cached (ms)",
        c.cold.cached,
        n.cold.cached,
        None,
        Target::AtMost(10.0),
    ));
    let whole = size_name(sizes.process_mib);
    rows.push(Row::against_curl(
        &format!("`ks3-driver put` {whole}, whole process (ms)"),
        processes.map(|p| (ms(p.ours_put), ms(p.curl_put))),
        1.3,
    ));
    rows.push(Row::against_curl(
        &format!("`ks3-driver get` {whole}, whole process (ms)"),
        processes.map(|p| (ms(p.ours_get), ms(p.curl_get))),
        1.3,
    ));
    rows.push(Row::latency(
        "cold start to first op, artifact off, no cache (ms)",
        c.cold.compile,
        n.cold.compile,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        "cold start to first op, artifact off, cached (ms)",
        c.cold.disk_cached,
        n.cold.disk_cached,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        &format!(
            "peak RSS growth, {} upload (MiB)",
            size_name(sizes.stream_mib)
        ),
        c.peak_mib,
        n.peak_mib,
        None,
        Target::AtMost(mem_limit),
    ));
    rows
}

pub(crate) fn size_name(mib: usize) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

pub(crate) fn keys_name(n: usize) -> String {
    if n >= 10_000 {
        format!("{} {:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}
