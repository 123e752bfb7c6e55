//! Vegas: hold a small, steady queue at the dependency.

use std::time::Duration;

use super::{
    Bounds, KnobNames, Latencies, LimitAlgorithm, Measured, Sample, check_min_samples, check_span,
};
use crate::ConfigError;

const NAMES: KnobNames = KnobNames {
    initial: "bulkhead.vegas.initial",
    min: "bulkhead.vegas.min",
    max: "bulkhead.vegas.max",
    backoff: "bulkhead.vegas.backoff",
};

/// Vegas: estimate how many calls wait at the dependency and keep that between `alpha` and
/// `beta`.
///
/// With a baseline latency `base` (the lowest window average lately) and a window average
/// `rtt`, the calls beyond what the dependency serves without queueing are
/// `queue = limit × (1 − base / rtt)`. Below `alpha` the limit grows by the shortfall (at
/// least 1); above `beta` the excess over the middle of the band is removed at once (at most
/// half the limit), so a dependency that loses half its capacity is matched in one window
/// rather than one call per window. A drop (throttle, timeout) multiplies it by `backoff`.
///
/// The queue it holds is counted in calls, whatever the limit: suited to small limits,
/// where a queue proportional to the limit would be a queue of one or none.
///
/// ```
/// use riprap::bulkhead::{Bulkhead, Vegas};
///
/// // An LLM API that serves a handful of completions at once.
/// let bulkhead = Bulkhead::builder()
///     .adaptive(Vegas::builder().initial(4).min(1).max(64).alpha(1).beta(3).build()?)
///     .build()?;
/// # let _ = bulkhead;
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Vegas {
    latencies: Latencies,
    alpha: f64,
    beta: f64,
}

impl Vegas {
    /// A builder: start at 20, between 1 and 1,000, a queue of 3 to 6 calls, windows of 10
    /// calls, ×0.9 on a drop, a baseline over the last 30 to 60 s.
    pub fn builder() -> VegasBuilder {
        VegasBuilder {
            knobs: VegasKnobs::default(),
        }
    }
}

/// Builder for [`Vegas`].
#[derive(Debug, Clone)]
#[must_use]
pub struct VegasBuilder {
    knobs: VegasKnobs,
}

crate::knobs::knobs! {
    /// The builder's knobs; [`VegasSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct VegasKnobs;

    impl VegasBuilder;

    /// [`Vegas`]'s knobs as data (feature `serde`); a knob left out keeps its default.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct VegasSpec;

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
    /// Grow while fewer calls than this wait at the dependency (default 3).
    alpha: u32 = 3,
    /// Shrink while more calls than this wait at the dependency (default 6).
    beta: u32 = 6,
    /// The baseline latency is the lowest window average over the last one to two of these
    /// (default 30 s).
    baseline_window: Duration = Duration::from_secs(30),
}

impl VegasBuilder {
    /// Check every knob.
    ///
    /// ```
    /// let err = riprap::bulkhead::Vegas::builder().alpha(6).beta(3).build().unwrap_err();
    /// assert_eq!(err.knob(), "bulkhead.vegas.beta");
    /// ```
    pub fn build(self) -> Result<Vegas, ConfigError> {
        let k = self.knobs;
        let bounds = Bounds::new(k.initial, k.min, k.max, k.backoff, &NAMES)?;
        if k.beta < k.alpha || k.beta > super::super::MAX_PERMITS {
            return Err(ConfigError::new(
                "bulkhead.vegas.beta",
                format!("must be at least alpha ({}) (got {})", k.alpha, k.beta),
            ));
        }
        check_min_samples("bulkhead.vegas.min_samples", k.min_samples)?;
        check_span("bulkhead.vegas.baseline_window", k.baseline_window)?;
        Ok(Vegas {
            latencies: Latencies::new(bounds, k.min_samples, k.baseline_window),
            alpha: f64::from(k.alpha),
            beta: f64::from(k.beta),
        })
    }
}

impl Vegas {
    /// A timeout's latency is a lower bound on the call's: remove the queue it implies, if
    /// that cuts deeper than `backoff`. A throttle (a fast refusal) says nothing about
    /// latency.
    fn drop_factor(
        (alpha, beta): (f64, f64),
        backoff: f64,
        limit: f64,
        sample: &Sample,
        base: Option<Duration>,
    ) -> f64 {
        match base {
            Some(base) if sample.timed_out && !sample.latency.is_zero() => {
                let ratio = base.as_secs_f64() / sample.latency.as_secs_f64();
                let keep = ratio + (alpha + beta) / 2.0 / limit.max(1.0);
                keep.clamp(0.5, 1.0).min(backoff)
            }
            _ => backoff,
        }
    }

    /// A full window: estimate the queue at the dependency; grow while it is under `alpha`
    /// (not when the caller set the pace), remove the excess at once when it is over `beta`.
    fn decide(alpha: f64, beta: f64, m: &Measured) -> Option<f64> {
        let ratio = if m.rtt.is_zero() {
            1.0
        } else {
            m.base.as_secs_f64() / m.rtt.as_secs_f64()
        };
        let queue = m.limit * (1.0 - ratio).max(0.0);
        if queue < alpha {
            (!m.app_limited).then(|| m.limit + (alpha - queue).ceil().max(1.0))
        } else if queue > beta {
            let excess = queue - (alpha + beta) / 2.0;
            Some((m.limit - excess).max(m.limit / 2.0))
        } else {
            None
        }
    }
}

impl LimitAlgorithm for Vegas {
    fn initial_limit(&self) -> u32 {
        self.latencies.limit.bounds.initial
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        let knobs = (self.alpha, self.beta);
        let (backoff, limit) = (
            self.latencies.limit.bounds.backoff,
            self.latencies.limit.value,
        );
        self.latencies.update(
            sample,
            |base| Vegas::drop_factor(knobs, backoff, limit, sample, base),
            |m| Vegas::decide(knobs.0, knobs.1, m),
        )
    }

    fn fresh(&self) -> Box<dyn LimitAlgorithm> {
        Box::new(Vegas {
            latencies: self.latencies.fresh(),
            ..self.clone()
        })
    }

    fn name(&self) -> &'static str {
        "vegas"
    }
}
