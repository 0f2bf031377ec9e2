//! Tier 1: distribution's shared storage-driver suite (`suite/conformance.rs`), run through
//! the host and the KS3 component against the local KS3 server. `conformance_fs.rs` runs
//! the same suite through the same host on the filesystem component.
use ks3_driver_host::Driver;

macro_rules! suite_test {
    ($name:ident, |$d:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let $d = crate::fresh_driver(stringify!($name)).await;
            $body
            assert_clean(&$d).await;
        }
    };
}

/// A test of the KS3 driver's own behaviour (the reason says which): run here.
macro_rules! ks3_only {
    ($reason:literal; $($test:tt)*) => {
        $($test)*
    };
}

/// What every rendered error of this driver starts with.
pub(crate) const ERROR_NAME: Option<&str> = Some("ks3");

/// A driver with its own empty root directory on the local KS3 server.
pub(crate) async fn fresh_driver(test: &str) -> Driver {
    ks3_tests::fresh_driver(test).await
}

#[path = "suite/conformance.rs"]
mod suite;
