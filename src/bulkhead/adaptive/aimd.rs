//! Additive increase, multiplicative decrease.

use std::time::Duration;

use super::{
    Bounds, KnobNames, Limit, LimitAlgorithm, Sample, Window, check_min_samples, check_span,
};
use crate::ConfigError;

const NAMES: KnobNames = KnobNames {
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
            knobs: AimdKnobs::default(),
        }
    }
}

/// Builder for [`Aimd`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AimdBuilder {
    knobs: AimdKnobs,
}

crate::knobs::knobs! {
    /// The builder's knobs; [`AimdSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct AimdKnobs;

    impl AimdBuilder;

    /// [`Aimd`]'s knobs as data (feature `serde`); a knob left out keeps its default.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct AimdSpec;

    /// The limit to start at (default 20).
    initial: u32 = 20,
    /// The limit is never cut below this (default 1).
    min: u32 = 1,
    /// The limit never grows above this (default 1,000).
    max: u32 = 1_000,
    /// On a drop the limit is multiplied by this, in (0, 1) (default 0.9).
    backoff: f64 = 0.9,
    /// Calls per window (default 10).
    min_samples: u32 = 10,
    /// Added to the limit after each window without a drop (default 1).
    increase: u32 = 1,
    /// A call slower than this counts as a drop (default: latency is not judged).
    slow: Option<Duration> = None,
}

impl AimdBuilder {
    /// Check every knob.
    ///
    /// ```
    /// let err = riprap::bulkhead::Aimd::builder().backoff(1.5).build().unwrap_err();
    /// assert_eq!(err.knob(), "bulkhead.aimd.backoff");
    /// ```
    pub fn build(self) -> Result<Aimd, ConfigError> {
        let k = self.knobs;
        let bounds = Bounds::new(k.initial, k.min, k.max, k.backoff, &NAMES)?;
        if k.increase == 0 || k.increase > super::super::MAX_PERMITS {
            return Err(ConfigError::new(
                "bulkhead.aimd.increase",
                format!("must be at least 1 (got {})", k.increase),
            ));
        }
        if let Some(slow) = k.slow {
            check_span("bulkhead.aimd.slow", slow)?;
        }
        check_min_samples("bulkhead.aimd.min_samples", k.min_samples)?;
        Ok(Aimd {
            limit: Limit::new(bounds),
            increase: f64::from(k.increase),
            slow: k.slow,
            min_samples: k.min_samples,
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
