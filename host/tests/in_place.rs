//! The embedded precompiled component runs where it lies in the binary for the process's
//! first runtime (x86-64 Linux), and is copied for every other runtime, alive at the same
//! time or later: wasmtime registers each image's code range once, process-wide.
//!
//! One test in this binary, so that its first runtime is the process's first.
mod common;

use common::*;
use ks3_driver_host::runtime::{Runtime, RuntimeOptions, PRECOMPILED};
use ks3_driver_host::Driver;

async fn round_trip(rt: &Runtime, test: &str) {
    let d = Driver::with_runtime(rt, params(test)).await.unwrap();
    let body = data(300_000, 3);
    d.put_content("/in-place/f", &body).await.unwrap();
    assert_eq!(d.get_content("/in-place/f").await.unwrap(), body);
    let mut w = d.writer("/in-place/w", false).await.unwrap();
    w.write(&body).await.unwrap();
    w.commit().await.unwrap();
    let got = d
        .reader("/in-place/w", 0)
        .await
        .unwrap()
        .read_to_end()
        .await
        .unwrap();
    assert_eq!(got, body);
    // A guest error path too (an invalid path is refused inside the component).
    assert!(d.stat("/in-place//bad").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_runtime_runs_the_artifact_in_place_and_the_others_copy_it() {
    if PRECOMPILED != "yes" {
        // A cross build or KS3_DRIVER_NO_PRECOMPILE: nothing to run in place.
        let rt = Runtime::new(RuntimeOptions::default()).unwrap();
        assert!(
            !rt.load_info().cache.starts_with("embedded"),
            "{PRECOMPILED}"
        );
        round_trip(&rt, "in_place_none").await;
        return;
    }
    let in_place = cfg!(all(target_os = "linux", target_arch = "x86_64"));
    let first = Runtime::new(RuntimeOptions::default()).unwrap();
    assert_eq!(
        first.load_info().cache,
        if in_place {
            "embedded-in-place"
        } else {
            "embedded"
        }
    );
    let second = Runtime::new(RuntimeOptions::default()).unwrap();
    assert_eq!(
        second.load_info().cache,
        "embedded",
        "copied while the first lives"
    );
    round_trip(&first, "in_place_first").await;
    round_trip(&second, "in_place_second").await;
    drop(first);
    let third = Runtime::new(RuntimeOptions::default()).unwrap();
    assert_eq!(
        third.load_info().cache,
        "embedded",
        "the claim is never handed back"
    );
    round_trip(&third, "in_place_third").await;
    round_trip(&second, "in_place_second_again").await;
}
