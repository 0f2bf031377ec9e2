//! Replays every committed corpus entry (`fuzz/corpus/<target>/*`) through its target, on
//! the pinned toolchain: what the fuzzers found interesting stays tested. A target without
//! a corpus directory, or with an empty one, fails.
use std::path::PathBuf;

use ks3_fuzz_targets::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_has_a_corpus_and_replays_it() {
    for (name, run) in TARGETS {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus of `{name}` ({}): {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "`{name}` panics on {}", path.display());
            n += 1;
        }
        assert!(n > 0, "the corpus of `{name}` ({}) is empty", dir.display());
        eprintln!("{name}: {n} corpus entries replayed");
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_entry() {
    for (name, _) in TARGETS {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("ks3_fuzz_targets::{name}(")),
            "{} does not call ks3_fuzz_targets::{name}",
            file.display()
        );
    }
}
