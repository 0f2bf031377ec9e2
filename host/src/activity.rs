//! When a guest call last made progress with KS3, so the wall-clock limit follows the
//! work: a call is stopped only after its traffic has stood still for longer than the
//! driver's own retries could take (the [`RetryPolicy`]'s budget, the same value the
//! driver's client retries by), never while a 1 GiB part, a long multipart copy or a delete of many keys is still moving.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks3_proto::RetryPolicy;

/// Slack on top of the retry budget: guest CPU between requests (hashing a part, parsing
/// a listing) is not traffic.
const IDLE_SLACK: Duration = Duration::from_secs(30);

/// How long a call may go without any traffic before it is stopped.
pub(crate) fn idle_limit(request_timeout_secs: u64, max_retries: u32) -> Duration {
    RetryPolicy::new(max_retries, request_timeout_secs)
        .budget()
        .saturating_add(IDLE_SLACK)
}

/// A cheap, cloneable record of the last moment traffic moved.
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    base: Instant,
    /// Milliseconds after `base`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Traffic moved now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn last(&self) -> Instant {
        self.base
            .checked_add(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
            .unwrap_or(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_limit_covers_every_retry() {
        assert_eq!(idle_limit(60, 5), Duration::from_secs(6 * 62 + 30));
        assert_eq!(idle_limit(1, 0), Duration::from_secs(3 + 30));
        // Extreme values saturate instead of overflowing.
        assert!(idle_limit(u64::MAX, u32::MAX) >= Duration::from_secs(u64::MAX / 2));
    }

    #[test]
    fn touch_moves_forward_only() {
        let a = Activity::new();
        let first = a.last();
        std::thread::sleep(Duration::from_millis(5));
        a.clone().touch();
        assert!(a.last() > first);
    }
}
