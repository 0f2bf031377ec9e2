//! How long a KS3 request may take, retries included: one value that the driver's client
//! retries by and the host's wall clock waits for, so the two cannot drift apart.
use std::time::Duration;

/// The first backoff's cap; each retry doubles it up to [`RetryPolicy::MAX_BACKOFF`].
const BASE_BACKOFF_MS: u64 = 50;
/// Doublings past this change nothing (50 ms × 2¹⁰ is far over the cap) and would
/// overflow the shift.
const MAX_DOUBLINGS: u32 = 10;

/// A request is tried at most `max_retries + 1` times, each attempt given
/// `request_timeout`, with a capped exponential backoff with full jitter between
/// attempts (50 ms, 100 ms, … up to [`RetryPolicy::MAX_BACKOFF`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub request_timeout: Duration,
}

impl RetryPolicy {
    /// The longest backoff between two attempts of one request.
    pub const MAX_BACKOFF: Duration = Duration::from_millis(2_000);

    pub fn new(max_retries: u32, request_timeout_secs: u64) -> Self {
        RetryPolicy {
            max_retries,
            request_timeout: Duration::from_secs(request_timeout_secs),
        }
    }

    /// Whether a request whose attempt number `attempt` (0 for the first) failed in a way
    /// worth retrying may be tried again.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_retries
    }

    /// The pause before retry number `attempt` (1, 2, …): between half the cap and the
    /// cap, `random` picking where (full jitter keeps clients that failed together from
    /// retrying together).
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let max_ms = u64::try_from(Self::MAX_BACKOFF.as_millis()).unwrap_or(u64::MAX);
        let cap_ms = (BASE_BACKOFF_MS << attempt.min(MAX_DOUBLINGS)).min(max_ms);
        Duration::from_millis(cap_ms / 2 + random % (cap_ms / 2 + 1))
    }

    /// The longest one request can take, every retry and backoff included:
    /// `(max_retries + 1) × (request_timeout + MAX_BACKOFF)` (saturating).
    pub fn budget(&self) -> Duration {
        self.request_timeout
            .saturating_add(Self::MAX_BACKOFF)
            .saturating_mul(self.max_retries.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::new(5, 60);
        // random = 0: half the cap; random = u64::MAX: within the cap.
        assert_eq!(p.backoff(1, 0), Duration::from_millis(50));
        assert_eq!(p.backoff(2, 0), Duration::from_millis(100));
        assert_eq!(p.backoff(6, 0), Duration::from_millis(1_000));
        assert_eq!(p.backoff(u32::MAX, 0), Duration::from_millis(1_000));
        for attempt in [1, 3, 10, 40, u32::MAX] {
            for r in [0, 1, 999, u64::MAX] {
                assert!(p.backoff(attempt, r) <= RetryPolicy::MAX_BACKOFF);
            }
        }
    }

    #[test]
    fn budget_covers_every_attempt() {
        assert_eq!(
            RetryPolicy::new(5, 60).budget(),
            Duration::from_secs(6 * 62)
        );
        assert_eq!(RetryPolicy::new(0, 1).budget(), Duration::from_secs(3));
        assert!(RetryPolicy::new(u32::MAX, u64::MAX).budget() >= Duration::from_secs(u64::MAX / 2));
        assert!(RetryPolicy::new(2, 1).may_retry(1));
        assert!(!RetryPolicy::new(2, 1).may_retry(2));
    }
}
