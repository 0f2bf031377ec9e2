//! `ks3-driver bench --quick` runs end to end and prints every row of its table. No
//! timing is asserted: CI machines are too noisy for that.
use std::process::Command;

#[test]
fn bench_quick_prints_the_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ks3-driver"))
        .args(["bench", "--quick"])
        .env_remove("KS3_DRIVER_LOG")
        .output()
        .expect("run ks3-driver bench --quick");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for row in [
        "| measurement | component | native | component/native | ks3sdk | component/ks3sdk | plain HTTP | component/plain | target |",
        "| stream write 64 MiB (MiB/s) |",
        "| stream read 64 MiB (MiB/s) |",
        "| put-content 4 KiB (ops/s) |",
        "| put-content 4 KiB p50 (µs) |",
        "| put-content 4 KiB p99 (µs) |",
        "| get-content 4 KiB (ops/s) |",
        "| get-content 4 KiB p50 (µs) |",
        "| stat 4 KiB (ops/s) |",
        "| stat 4 KiB p99 (µs) |",
        "| list of a 1000-key directory (ms) |",
        "| walk of 1000 keys (ms) |",
        "| walk of 1000 keys: list requests |",
        "| delete of 1000 keys (ms) |",
        "| 4 concurrent writers × 8 MiB (MiB/s) |",
        "| `ks3-driver put` 16 MiB, whole process (ms) |",
        "| `ks3-driver get` 16 MiB, whole process (ms) |",
        "| cold start to first op, no cache (ms) |",
        "| cold start to first op, cached (ms) |",
        "| peak RSS growth, 64 MiB upload (MiB) |",
    ] {
        assert!(stdout.contains(row), "missing `{row}` in:\n{stdout}");
    }
    // The registries side by side: always on CI (which installs distribution's registry);
    // elsewhere, without `docker-registry`, a line that says why not.
    let installed = Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed || std::env::var_os("CI").is_some() {
        for row in [
            "| image | ks3-driver registry | distribution 2.8.2 (s3) | ks3-driver / distribution | target |",
            "| push 1 layer of 64 MiB (MiB/s) |",
            "| pull redirected 1 layer of 64 MiB (MiB/s) |",
            "| pull streamed 1 layer of 64 MiB (MiB/s) |",
            "| push 20 layers of 64 KiB (MiB/s) |",
            "| pull redirected 20 layers of 64 KiB (MiB/s) |",
            "| pull streamed 20 layers of 64 KiB (MiB/s) |",
        ] {
            assert!(stdout.contains(row), "missing `{row}` in:\n{stdout}");
        }
        // At 20 ms (issue 29): every row, each with figures on both sides and a ratio.
        let (at20, mirror) = stdout
            .split_once("\nAt 20 ms (")
            .unwrap_or_else(|| panic!("no At 20 ms table in:\n{stdout}"))
            .1
            .split_once("\nMirror (")
            .unwrap_or_else(|| panic!("no Mirror table in:\n{stdout}"));
        let rows: Vec<&str> = at20
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| at 20 ms"))
            .collect();
        for row in [
            "| push 3 layers (1 MiB + 512 KiB + 16 KiB), concurrent as skopeo (s) |",
            "| pull 3 layers (1 MiB + 512 KiB + 16 KiB): KS3 requests |",
            "| push 1 × 2 layers of 16 KiB, sequential monolithic (s) |",
            "| push 1 × 2 layers of 16 KiB: KS3 requests per blob (manifests included) |",
            "| pull 1 × 2 layers of 16 KiB, sequential (s) |",
            "| one blob upload, POST + PUT with body (64 KiB): critical path |",
            "| one blob upload as skopeo, HEAD + POST + PATCH + PUT (64 KiB): critical path |",
            "| one manifest PUT: KS3 requests |",
            "| GC mark, 4 images, half their manifests deleted, dry run -m (s) |",
        ] {
            assert!(
                rows.iter().any(|l| l.starts_with(row)),
                "missing `{row}` in:\n{at20}"
            );
        }
        assert_eq!(rows.len(), 18, "At 20 ms rows in:\n{at20}");
        for line in &rows {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if line.starts_with("| GC: blobs marked") {
                // Both collectors mark the same blobs and find the same garbage.
                assert_eq!(cells[4], "the same", "{line}");
                continue;
            }
            for cell in &cells[2..4] {
                let v: f64 = cell
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number in `{line}`"));
                assert!(v > 0.0, "no figure in `{line}`");
            }
            assert!(cells[4].ends_with('×'), "no ratio in `{line}`");
        }
        assert!(at20.contains("\nCritical path by client request"), "{at20}");
        // The mirror (issue 30): for the upstream on loopback and over the slow link, the
        // direct pull, the first and second through the mirror, each a time; the two
        // through the mirror with a ratio and a judged target.
        assert!(
            mirror.contains(
                "| mirror, pull of 3 layers (1 MiB + 512 KiB + 16 KiB) | time (s) | ratio | target |"
            ),
            "{mirror}"
        );
        let rows: Vec<&str> = mirror
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| mirror"))
            .collect();
        assert_eq!(rows.len(), 6, "Mirror rows in:\n{mirror}");
        for (i, upstream) in ["upstream on loopback", "upstream over 50 MiB/s"]
            .iter()
            .enumerate()
        {
            for (line, pull, target) in [
                (rows[3 * i], "direct from the upstream", ""),
                (
                    rows[3 * i + 1],
                    "first through the mirror (cache miss, streamed while stored)",
                    "≤ 1.2×: ",
                ),
                (
                    rows[3 * i + 2],
                    "second through the mirror (from the cache)",
                    "≥ 2×: ",
                ),
            ] {
                let start = format!("| {upstream}: {pull} |");
                assert!(line.starts_with(&start), "`{line}` is not `{start}`");
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let v: f64 = cells[2]
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number in `{line}`"));
                assert!(v > 0.0, "no figure in `{line}`");
                assert!(cells[3].contains('×'), "no ratio in `{line}`");
                assert!(cells[4].starts_with(target), "no target in `{line}`");
            }
        }
    } else {
        assert!(
            stdout.contains("Registries: skipped: `docker-registry`"),
            "{stdout}"
        );
        assert!(
            stdout.contains("\nMirror: skipped: `docker-registry`"),
            "{stdout}"
        );
    }
    let stdout = stdout.split("\nRegistries").next().unwrap_or_default();
    let (main, schemes) = stdout
        .split_once("Signature schemes")
        .unwrap_or_else(|| panic!("no signature scheme table in:\n{stdout}"));
    // Every scheme's figures, each a number, with the ratio to V2.
    assert!(
        schemes.contains("| scheme comparison | V2 | KSS4 | AWS4 | KSS4 / V2 | AWS4 / V2 |"),
        "scheme table header missing in:\n{schemes}"
    );
    let mut scheme_rows = 0;
    for line in schemes
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| scheme"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for cell in &cells[2..5] {
            let v: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("not a number in `{line}`"));
            assert!(v > 0.0, "no figure in `{line}`");
        }
        assert!(
            cells[5].ends_with('×') && cells[6].ends_with('×'),
            "no ratio in `{line}`"
        );
        scheme_rows += 1;
    }
    assert_eq!(scheme_rows, 8, "scheme rows in:\n{schemes}");
    // Every measured row has a component/native ratio.
    let rows = main
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| measurement"));
    let number = |cell: &str| cell.parse::<f64>().is_ok();
    for line in rows {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // Whole processes have no native side: ours, curl's (the plain-HTTP column, which
        // CI installs) and the ratio, judged.
        if line.contains("whole process") {
            assert!(
                number(cells[2]) && number(cells[7]) && number(cells[8]),
                "no figures in `{line}`"
            );
            assert!(
                cells[9].starts_with("≤ 1.3× curl ("),
                "no target in `{line}`"
            );
            continue;
        }
        assert!(
            number(cells[4]),
            "no ratio in `{line}` (the local server counts list requests)"
        );
        // The stream rows also have the plain-HTTP limit and the ratio to it.
        if line.starts_with("| stream ") {
            assert!(
                number(cells[7]) && number(cells[8]),
                "no plain-HTTP figure in `{line}`"
            );
        }
        // Rates the SDK measured too have the ratio to it, and the target.
        if line.contains("(ops/s)") || line.starts_with("| stream write") {
            assert!(
                number(cells[5]) && number(cells[6]),
                "no SDK ratio in `{line}`"
            );
            assert!(cells[9].contains("× ks3sdk: "), "no SDK target in `{line}`");
        }
    }
}

/// `bench --stat-loop N` stats through both sides (or the one `--side` names), a line per
/// side and round and one for all; a side it does not know is refused by name.
#[test]
fn stat_loop_stats_through_the_sides_it_is_given() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ks3-driver"))
            .args(["bench", "--stat-loop"])
            .args(args)
            .env_remove("KS3_DRIVER_LOG")
            .output()
            .expect("run ks3-driver bench --stat-loop")
    };
    let out = run(&["25"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for side in ["component", "native"] {
        let rounds = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("stat {side} round ")))
            .count();
        assert_eq!(rounds, 9, "25 stats in rounds of 3: {stdout}");
        assert!(
            stdout.contains(&format!("stat {side} all: 25 stats, p50 ")),
            "{stdout}"
        );
    }

    let out = run(&["4", "--side", "native"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("stat native all: 4 stats"), "{stdout}");
    assert!(!stdout.contains("component"), "{stdout}");

    let out = run(&["4", "--side", "wasm"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--side wasm: expected `component` or `native`"),
        "{stderr}"
    );
}
