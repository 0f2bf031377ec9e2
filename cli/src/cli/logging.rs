//! The command line's one tracing subscriber. The host library and the registry never write
//! to stderr themselves; they emit events, and this decides what the user sees:
//! - always: warnings of the host library (`ks3_driver_host::*`, e.g. a compiled-component cache
//!   that is not safe to load) and of the registry (`ks3_registry::*`, e.g. the detail of a
//!   request that failed in storage, which its client only sees as "unknown error"), and
//!   the registry's upload purger's reports (`ks3_registry::purge`);
//! - with `-v`: one line per KS3 request (`ks3_driver::egress`: method, path without the
//!   query, status, time, request id), the guest's stderr (`ks3_driver::guest`, secrets
//!   masked), and one line per registry request (`ks3_registry::request`, no query).
//!
//! No event carries a query string or a credential: the host logs paths only.
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What is shown, by target.
pub fn filter(verbose: bool) -> Targets {
    let base = Targets::new()
        .with_target("ks3_driver", Level::WARN)
        .with_target("ks3_registry", Level::WARN)
        // The upload purger's reports (first run, what each run did), shown as they were.
        .with_target("ks3_registry::purge", Level::INFO);
    if verbose {
        base.with_target("ks3_driver::egress", Level::INFO)
            .with_target("ks3_driver::guest", Level::INFO)
            .with_target("ks3_registry::request", Level::INFO)
    } else {
        base
    }
}

/// Lines on stderr, filtered by [`filter`]: to stack with another layer (the demo's trace).
pub fn stderr_layer<S>(verbose: bool) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter(verbose))
}

/// Installs the subscriber for this process.
pub fn install(verbose: bool) {
    let subscriber = tracing_subscriber::registry().with(stderr_layer(verbose));
    // Only fails when a subscriber is already installed: then that one logs.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The registry's subscriber, as its `log` section asks: `level` (what is shown beyond
/// the warnings; `info` shows one line per request, as distribution's default),
/// `formatter: json` (one JSON object per line, with every field of the event and of its
/// spans, and `fields`), `accesslog.disabled` (no per-request line).
pub fn install_for_registry(verbose: bool, log: &ks3_registry::LogConfig) {
    let filter = registry_filter(verbose, log);
    let layer: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = if log.json {
        Box::new(
            super::json_log::JsonLines::new(log.fields.clone(), Box::new(std::io::stderr))
                .with_filter(filter),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter),
        )
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

/// [`filter`], raised to `log.level`.
pub fn registry_filter(verbose: bool, log: &ks3_registry::LogConfig) -> Targets {
    let level = match log.level.as_deref() {
        Some("error") => Some(Level::ERROR),
        Some("warn") => Some(Level::WARN),
        Some("info") => Some(Level::INFO),
        Some("debug") => Some(Level::DEBUG),
        _ => None,
    };
    let mut t = filter(verbose || level >= Some(Level::DEBUG));
    if let Some(level) = level {
        t = t.with_target("ks3_registry", level);
        if level < Level::WARN {
            // `error`: warnings of the host and the purger's reports go too.
            t = t
                .with_target("ks3_driver", level)
                .with_target("ks3_registry::purge", level);
        }
    }
    if log.access_log_disabled {
        // The per-request line only; a failed request's error event stays.
        t = t.with_target("ks3_registry::request", Level::WARN);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registrys_log_level_and_access_log() {
        let log = |level: Option<&str>, off: bool| ks3_registry::LogConfig {
            level: level.map(str::to_string),
            access_log_disabled: off,
            ..Default::default()
        };
        let info = registry_filter(false, &log(Some("info"), false));
        assert!(info.would_enable("ks3_registry::request", &Level::INFO));
        assert!(!info.would_enable("ks3_driver::egress", &Level::INFO));
        let debug = registry_filter(false, &log(Some("debug"), false));
        assert!(debug.would_enable("ks3_driver::egress", &Level::INFO));
        let error = registry_filter(false, &log(Some("error"), false));
        assert!(!error.would_enable("ks3_registry::config", &Level::WARN));
        assert!(error.would_enable("ks3_registry::request", &Level::ERROR));
        let quiet = registry_filter(false, &log(Some("info"), true));
        assert!(!quiet.would_enable("ks3_registry::request", &Level::INFO));
        assert!(quiet.would_enable("ks3_registry::request", &Level::ERROR));
        let default = registry_filter(false, &log(None, false));
        assert!(!default.would_enable("ks3_registry::request", &Level::INFO));
    }

    #[test]
    fn warnings_always_requests_only_when_verbose() {
        let quiet = filter(false);
        assert!(quiet.would_enable("ks3_driver::cache", &Level::WARN));
        assert!(!quiet.would_enable("ks3_driver::egress", &Level::INFO));
        assert!(!quiet.would_enable("ks3_registry::request", &Level::INFO));
        assert!(quiet.would_enable("ks3_registry::request", &Level::ERROR));
        let verbose = filter(true);
        assert!(verbose.would_enable("ks3_driver::egress", &Level::INFO));
        assert!(verbose.would_enable("ks3_driver::guest", &Level::INFO));
        assert!(verbose.would_enable("ks3_registry::request", &Level::INFO));
        // The per-call events stay out of the way (the demo's trace reads them).
        assert!(!verbose.would_enable("ks3_driver::call", &Level::DEBUG));
        assert!(!verbose.would_enable("hyper", &Level::INFO));
    }
}
