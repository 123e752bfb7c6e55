//! Additive increase, multiplicative decrease.

use std::time::Duration;

use super::{Bounds, Knobs, Limit, LimitAlgorithm, Sample, Window, check_min_samples, check_span};
use crate::ConfigError;

const KNOBS: Knobs = Knobs {
    initial: "bulkhead.aimd.initial",
    min: "bulkhead.aimd.min",
    max: "bulkhead.aimd.max",
    backoff: "bulkhead.aimd.backoff",
};

/// Additive increase, multiplicative decrease: the limit grows by `increase` after every
/// window of `min_samples` calls with no drop, and is multiplied by `backoff` on a drop (a
/// throttle, a timeout, or a call slower than `slow`), once per congestion event.
///
/// It measures no latency unless given `slow`, so it suits dependencies whose latency says
/// little about their load but which throttle or time out when overloaded.
///
/// ```
/// use std::time::Duration;
/// use riprap::bulkhead::{Aimd, Bulkhead};
///
/// let bulkhead = Bulkhead::builder()
///     .adaptive(
///         Aimd::builder()
///             .initial(10)
///             .max(200)
///             .slow(Duration::from_secs(2)) // a call slower than 2 s counts as a drop
///             .build()?,
///     )
///     .build()?;
/// assert_eq!(bulkhead.limit(), 10);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: Limit,
    increase: f64,
    slow: Option<Duration>,
    min_samples: u32,
    window: Window,
}

impl Aimd {
    /// A builder: start at 20, between 1 and 1,000, +1 per window of 10 calls, ×0.9 on a
    /// drop, no latency threshold.
    pub fn builder() -> AimdBuilder {
        AimdBuilder {
            bounds: Bounds::DEFAULT,
            increase: 1,
            slow: None,
            min_samples: 10,
        }
    }
}

/// Builder for [`Aimd`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AimdBuilder {
    bounds: Bounds,
    increase: u32,
    slow: Option<Duration>,
    min_samples: u32,
}

impl AimdBuilder {
    /// The limit to start at (default 20).
    pub fn initial(mut self, limit: u32) -> Self {
        self.bounds.initial = limit;
        self
    }

    /// The limit is never cut below this (default 1).
    pub fn min(mut self, limit: u32) -> Self {
        self.bounds.min = limit;
        self
    }

    /// The limit never grows above this (default 1,000).
    pub fn max(mut self, limit: u32) -> Self {
        self.bounds.max = limit;
        self
    }

    /// On a drop the limit is multiplied by this, in (0, 1) (default 0.9).
    pub fn backoff(mut self, factor: f64) -> Self {
        self.bounds.backoff = factor;
        self
    }

    /// Added to the limit after each window without a drop (default 1).
    pub fn increase(mut self, step: u32) -> Self {
        self.increase = step;
        self
    }

    /// A call slower than this counts as a drop (default: latency is not judged).
    pub fn slow(mut self, threshold: Duration) -> Self {
        self.slow = Some(threshold);
        self
    }

    /// Calls per window (default 10).
    pub fn min_samples(mut self, n: u32) -> Self {
        self.min_samples = n;
        self
    }

    /// Check every knob.
    ///
    /// ```
    /// let err = riprap::bulkhead::Aimd::builder().backoff(1.5).build().unwrap_err();
    /// assert_eq!(err.knob(), "bulkhead.aimd.backoff");
    /// ```
    pub fn build(self) -> Result<Aimd, ConfigError> {
        self.bounds.check(&KNOBS)?;
        if self.increase == 0 || self.increase > super::super::MAX_PERMITS {
            return Err(ConfigError::new(
                "bulkhead.aimd.increase",
                format!("must be at least 1 (got {})", self.increase),
            ));
        }
        if let Some(slow) = self.slow {
            check_span("bulkhead.aimd.slow", slow)?;
        }
        check_min_samples("bulkhead.aimd.min_samples", self.min_samples)?;
        Ok(Aimd {
            limit: Limit::new(self.bounds),
            increase: f64::from(self.increase),
            slow: self.slow,
            min_samples: self.min_samples,
            window: Window::default(),
        })
    }
}

impl LimitAlgorithm for Aimd {
    fn initial_limit(&self) -> u32 {
        self.limit.bounds.initial
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        let slow = self.slow.is_some_and(|t| sample.latency > t);
        if sample.dropped || slow {
            let before = self.limit.get();
            self.limit.drop_seen(sample, self.limit.bounds.backoff);
            if self.limit.get() != before {
                self.window.clear();
            }
            return self.limit.get();
        }
        if self.limit.is_stale(sample) {
            return self.limit.get();
        }
        self.window.add(sample);
        if self.window.count() >= self.min_samples {
            if !self.window.app_limited(self.limit.get()) {
                let grown = self.limit.value + self.increase;
                self.limit.set(grown, sample.finished());
            }
            self.window.clear();
        }
        self.limit.get()
    }

    fn fresh(&self) -> Box<dyn LimitAlgorithm> {
        let mut fresh = self.clone();
        fresh.limit = Limit::new(self.limit.bounds);
        fresh.window.clear();
        Box::new(fresh)
    }

    fn name(&self) -> &'static str {
        "aimd"
    }
}
