//! Retries: when a client sends a failed call again ([`RetryPolicy`]), and the budget that
//! keeps retries from multiplying the load on a failing server ([`RetryBudget`]).

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connect_proto_core::{Code, Idempotency, MethodKind, MethodSpec, Status};

use crate::rt::SharedTimer;

/// When a client sends a failed call again. Off unless set with
/// [`Client::retry_policy`](crate::client::Client::retry_policy).
///
/// A call is retried when it failed before the application saw any of its response, and
/// either
/// - the server never processed it — no connection could be made, the stream was refused
///   (`REFUSED_STREAM`), or it was above a GOAWAY's last stream id (as the transport reports
///   with [`TransportError::unprocessed`](crate::TransportError::unprocessed)) — whatever the
///   method, or
/// - it failed `unavailable` or `resource_exhausted` and the method is declared
///   `NO_SIDE_EFFECTS` or `IDEMPOTENT` (its `idempotency_level`), so sending it twice is safe.
///
/// Only unary and server-streaming calls are retried (their whole request is known when they
/// start); a server-streaming call only until its first response message — under a policy,
/// [`Client::server_streaming`](crate::client::Client::server_streaming) returns at that
/// message (or the call's end) rather than at the response head. Attempts wait an
/// exponentially growing backoff with full jitter, never past the call's deadline (when the
/// next attempt could not start before it, the last failure is returned), and each retry
/// takes a token from the client's [`RetryBudget`]. Every attempt passes the interceptors
/// and the observer as a call of its own.
///
/// ```
/// use std::time::Duration;
/// use connect_tower::client::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(4)
///     .initial_backoff(Duration::from_millis(50))
///     .only_methods(["/acme.v1.Catalog/GetItem"]);
/// # drop(policy);
/// ```
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    retry_idempotent: bool,
    methods: Option<Arc<HashSet<String>>>,
    budget: RetryBudget,
}

impl Default for RetryPolicy {
    /// Up to 3 attempts, backoff from 100 ms growing ×2 up to 2 s, idempotent methods
    /// retried, every method covered, the default [`RetryBudget`].
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            retry_idempotent: true,
            methods: None,
            budget: RetryBudget::default(),
        }
    }
}

impl RetryPolicy {
    /// The most attempts per call, the first included (at least 1; default 3).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry (default 100 ms); the wait is a random duration up
    /// to it (full jitter).
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest backoff (default 2 s).
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// How much the backoff grows per retry (at least 1; default 2).
    #[must_use]
    pub fn backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Whether `NO_SIDE_EFFECTS` / `IDEMPOTENT` calls are retried on `unavailable` and
    /// `resource_exhausted` (default `true`); with `false` only unprocessed calls are.
    #[must_use]
    pub fn retry_idempotent(mut self, retry: bool) -> Self {
        self.retry_idempotent = retry;
        self
    }

    /// Covers only the methods at these paths (`/package.Service/Method`); every method by
    /// default.
    #[must_use]
    pub fn only_methods<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.methods = Some(Arc::new(paths.into_iter().map(Into::into).collect()));
        self
    }

    /// The budget retries draw from (shared by every clone of the policy and of the client).
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Whether calls of `method` are ever retried.
    pub(crate) fn covers(&self, method: &MethodSpec) -> bool {
        matches!(method.kind, MethodKind::Unary | MethodKind::ServerStreaming)
            && self
                .methods
                .as_ref()
                .is_none_or(|paths| paths.contains(method.path.as_ref()))
    }

    /// Whether a failure is of the kind this policy retries.
    fn retryable(&self, method: &MethodSpec, status: &Status, unprocessed: bool) -> bool {
        if unprocessed {
            return true;
        }
        self.retry_idempotent
            && matches!(
                method.idempotency,
                Idempotency::NoSideEffects | Idempotency::Idempotent
            )
            && matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
    }

    /// The backoff ceiling before retry number `retry` (1 for the first).
    fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = grown.min(self.max_backoff.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_backoff)
    }
}

/// What one attempt of a call came to.
pub(crate) enum Attempt<R> {
    /// The call's result for the application: success, or a failure after the application
    /// saw part of the response (not retried).
    Done(Result<R, Status>),
    /// The call failed before the application saw any of its response.
    Failed {
        /// The failure.
        status: Status,
        /// Whether the server never processed the request.
        unprocessed: bool,
    },
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails in a way this policy does not retry, runs out
    /// of attempts or budget, or the next attempt could not start before `deadline`.
    pub(crate) async fn run<R, F, Fut>(
        &self,
        method: &MethodSpec,
        timer: &SharedTimer,
        deadline: Option<Instant>,
        mut attempt: F,
    ) -> Result<R, Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<R>>,
    {
        let mut retries = 0;
        loop {
            let (status, unprocessed) = match attempt().await {
                Attempt::Done(result) => {
                    match &result {
                        Ok(_) => self.budget.on_success(),
                        Err(status) if self.retryable(method, status, false) => {
                            self.budget.on_failure();
                        }
                        Err(_) => {}
                    }
                    return result;
                }
                Attempt::Failed {
                    status,
                    unprocessed,
                } => (status, unprocessed),
            };
            if !self.retryable(method, &status, unprocessed) {
                return Err(status);
            }
            // A failure that would be retried counts against the budget, whether or not it
            // still allows a retry.
            let allowed = self.budget.on_failure();
            retries += 1;
            if retries >= self.max_attempts || !allowed {
                return Err(status);
            }
            let wait = jitter(self.backoff_ceiling(retries));
            let resume = timer.now() + wait;
            if deadline.is_some_and(|deadline| resume >= deadline) {
                return Err(status);
            }
            timer.sleep_until(resume).await;
        }
    }
}

/// A token bucket shared by a client's calls (gRPC's retry throttling): it holds
/// `max_tokens`, each failure that could be retried takes one, each success puts back
/// `token_ratio`, and retries are allowed only while more than half the tokens are left. A
/// server that keeps failing thus sees at most about twice the calls it would see without
/// retries, then no retries at all until calls succeed again.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    inner: Arc<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens, in thousandths.
    tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl Default for RetryBudget {
    /// 10 tokens, 0.1 back per success.
    fn default() -> Self {
        RetryBudget::new(10, 0.1)
    }
}

impl RetryBudget {
    /// A full bucket of `max_tokens` (at least 1), refilled by `token_ratio` per success
    /// (clamped to 0..=`max_tokens`).
    pub fn new(max_tokens: u32, token_ratio: f64) -> Self {
        let max = u64::from(max_tokens.max(1)) * 1000;
        let ratio = if token_ratio.is_finite() {
            (token_ratio.max(0.0) * 1000.0).round().min(max as f64) as u64
        } else {
            0
        };
        RetryBudget {
            inner: Arc::new(Bucket {
                tokens: AtomicU64::new(max),
                max,
                ratio,
            }),
        }
    }

    /// The tokens left.
    pub fn tokens(&self) -> f64 {
        self.inner.tokens.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Takes a token for a retryable failure; whether a retry is still allowed.
    fn on_failure(&self) -> bool {
        let bucket = &self.inner;
        let taken = bucket
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
        let left = taken.unwrap_or(0).saturating_sub(1000);
        left > bucket.max / 2
    }

    /// Puts back `token_ratio` for a success.
    fn on_success(&self) {
        let bucket = &self.inner;
        let _ = bucket
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + bucket.ratio).min(bucket.max))
            });
    }
}

/// A random duration in `[0, ceiling]` (full jitter), from a per-thread xorshift seeded by
/// the standard library's random hasher keys.
fn jitter(ceiling: Duration) -> Duration {
    thread_local! {
        static STATE: std::cell::Cell<u64> =
            std::cell::Cell::new(RandomState::new().hash_one(0x5eed_u64) | 1);
    }
    let random = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_stops_retries_below_half() {
        let budget = RetryBudget::new(10, 0.5);
        // 10 → 9,8,7,6 allowed (> 5); 5 is not.
        let allowed: Vec<bool> = (0..6).map(|_| budget.on_failure()).collect();
        assert_eq!(allowed, [true, true, true, true, false, false]);
        assert_eq!(budget.tokens(), 4.0);
        // Successes refill it.
        for _ in 0..4 {
            budget.on_success();
        }
        assert_eq!(budget.tokens(), 6.0);
        assert!(!budget.on_failure());
        budget.on_success();
        budget.on_success();
        budget.on_success();
        assert_eq!(budget.tokens(), 6.5);
        assert!(budget.on_failure());
        assert_eq!(budget.tokens(), 5.5);
    }

    #[test]
    fn budget_never_exceeds_max() {
        let budget = RetryBudget::new(2, 5.0);
        budget.on_success();
        assert_eq!(budget.tokens(), 2.0);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(10))
            .backoff_multiplier(3.0)
            .max_backoff(Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(10));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(30));
        assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(90));
        assert_eq!(policy.backoff_ceiling(4), Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(1000), Duration::from_millis(200));
    }

    #[test]
    fn jitter_stays_under_ceiling_and_varies() {
        let ceiling = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..64).map(|_| jitter(ceiling)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn what_is_retried() {
        let policy = RetryPolicy::default();
        let unary = |idempotency| MethodSpec::new("/a.B/C", MethodKind::Unary, idempotency);
        let unavailable = Status::new(Code::Unavailable, "down");
        let internal = Status::new(Code::Internal, "bug");
        // Unprocessed: any method, any code.
        assert!(policy.retryable(&unary(Idempotency::Unknown), &internal, true));
        // Idempotent methods on unavailable / resource_exhausted only.
        assert!(policy.retryable(&unary(Idempotency::Idempotent), &unavailable, false));
        assert!(policy.retryable(
            &unary(Idempotency::NoSideEffects),
            &Status::new(Code::ResourceExhausted, "busy"),
            false
        ));
        assert!(!policy.retryable(&unary(Idempotency::Idempotent), &internal, false));
        assert!(!policy.retryable(&unary(Idempotency::Unknown), &unavailable, false));
        let off = policy.clone().retry_idempotent(false);
        assert!(!off.retryable(&unary(Idempotency::Idempotent), &unavailable, false));
        // Coverage: unary and server streaming, optionally by path.
        assert!(policy.covers(&unary(Idempotency::Unknown)));
        let bidi = MethodSpec::new("/a.B/D", MethodKind::BidiStreaming, Idempotency::Unknown);
        assert!(!policy.covers(&bidi));
        let only = policy.only_methods(["/a.B/X"]);
        assert!(!only.covers(&unary(Idempotency::Unknown)));
    }
}
