//! [`TokioTimer`]: Tokio's clock and timers for the tower layer.

use std::time::Instant;

use connect_tower::rt::{Sleep, Timer};

/// The [`Timer`] backed by Tokio's time driver.
///
/// The clock is [`tokio::time::Instant::now`], so a paused Tokio clock (in tests) pauses
/// deadlines too. Sleeps need a Tokio runtime with the time driver enabled.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer {
    _private: (),
}

impl TokioTimer {
    /// A timer handle.
    pub fn new() -> Self {
        TokioTimer { _private: () }
    }
}

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sleeps_until_the_deadline() {
        let timer = TokioTimer::new();
        let start = timer.now();
        timer.sleep_until(start + Duration::from_millis(20)).await;
        assert!(timer.now() >= start + Duration::from_millis(20));
        // A deadline in the past completes at once.
        timer.sleep_until(start).await;
    }
}
