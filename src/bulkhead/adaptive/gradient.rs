//! Gradient: scale the limit by how far latency has drifted from its baseline.

use std::time::Duration;

use super::{
    Bounds, KnobNames, Latencies, LimitAlgorithm, Measured, Sample, check_min_samples, check_span,
};
use crate::ConfigError;

const NAMES: KnobNames = KnobNames {
    initial: "bulkhead.gradient.initial",
    min: "bulkhead.gradient.min",
    max: "bulkhead.gradient.max",
    backoff: "bulkhead.gradient.backoff",
};

/// Gradient: each window, scale the limit by how far latency has risen over its baseline,
/// and leave room for a queue of about √limit.
///
/// With a baseline `base` (the lowest window average lately) and a window average `rtt`:
///
/// ```text
/// gradient  = clamp(tolerance × base / rtt, 0.5, 1.0)
/// target    = limit × gradient + √limit
/// new limit = target                                    when target < limit (at once)
///           = limit + smoothing × (target − limit)      otherwise (growth is smoothed)
/// ```
///
/// A dependency that loses half its capacity doubles its latency, and the next window
/// halves the limit; recovery is gradual. At rest the dependency holds about √limit calls in
/// its queue, so latency settles at `tolerance / (1 − 1/√limit)` times the baseline (1.19×
/// at a limit of 40). A drop (throttle, timeout) multiplies the limit by `backoff`.
///
/// Netflix's Gradient2 compares a short-term with a long-term average and smooths both
/// ways; Envoy measures the baseline by periodically pinning concurrency low. This one keeps
/// a minimum filter of window averages as the baseline (no pinning, no drift of a long
/// average under sustained load) and cuts without smoothing, so one window of overload is
/// all a capacity drop costs.
///
/// ```
/// use riprap::bulkhead::{Bulkhead, Gradient};
///
/// let bulkhead = Bulkhead::builder()
///     .adaptive(Gradient::builder().initial(20).max(500).build()?)
///     .build()?;
/// assert_eq!(bulkhead.limit(), 20);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gradient {
    latencies: Latencies,
    tolerance: f64,
    smoothing: f64,
}

impl Gradient {
    /// A builder: start at 20, between 1 and 1,000, tolerance 1.0, growth smoothed by 0.5,
    /// windows of 10 calls, ×0.9 on a drop, a baseline over the last 30 to 60 s.
    pub fn builder() -> GradientBuilder {
        GradientBuilder {
            knobs: GradientKnobs::default(),
        }
    }
}

/// Builder for [`Gradient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GradientBuilder {
    knobs: GradientKnobs,
}

crate::knobs::knobs! {
    /// The builder's knobs; [`GradientSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct GradientKnobs;

    impl GradientBuilder;

    /// [`Gradient`]'s knobs as data (feature `serde`); a knob left out keeps its default.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct GradientSpec;

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
    /// How much latency above the baseline is tolerated before the limit shrinks, as a
    /// factor of at least 1 (default 1.0: any rise counts).
    tolerance: f64 = 1.0,
    /// The share of the gap to the target the limit grows by each window, in (0, 1]
    /// (default 0.5). Cuts are never smoothed.
    smoothing: f64 = 0.5,
    /// The baseline latency is the lowest window average over the last one to two of these
    /// (default 30 s).
    baseline_window: Duration = Duration::from_secs(30),
}

impl GradientBuilder {
    /// Check every knob.
    ///
    /// ```
    /// let err = riprap::bulkhead::Gradient::builder().tolerance(0.5).build().unwrap_err();
    /// assert_eq!(err.knob(), "bulkhead.gradient.tolerance");
    /// ```
    pub fn build(self) -> Result<Gradient, ConfigError> {
        let k = self.knobs;
        let bounds = Bounds::new(k.initial, k.min, k.max, k.backoff, &NAMES)?;
        if !(k.tolerance >= 1.0 && k.tolerance <= 100.0) {
            return Err(ConfigError::new(
                "bulkhead.gradient.tolerance",
                format!("must be from 1 to 100 (got {})", k.tolerance),
            ));
        }
        if !(k.smoothing > 0.0 && k.smoothing <= 1.0) {
            return Err(ConfigError::new(
                "bulkhead.gradient.smoothing",
                format!("must be in (0, 1] (got {})", k.smoothing),
            ));
        }
        check_min_samples("bulkhead.gradient.min_samples", k.min_samples)?;
        check_span("bulkhead.gradient.baseline_window", k.baseline_window)?;
        Ok(Gradient {
            latencies: Latencies::new(bounds, k.min_samples, k.baseline_window),
            tolerance: k.tolerance,
            smoothing: k.smoothing,
        })
    }
}

impl Gradient {
    /// A timeout's latency is a lower bound on the call's: the gradient it implies, if that
    /// cuts deeper than `backoff`. A throttle (a fast refusal) says nothing about latency.
    fn drop_factor(tolerance: f64, backoff: f64, sample: &Sample, base: Option<Duration>) -> f64 {
        match base {
            Some(base) if sample.timed_out && !sample.latency.is_zero() => {
                let g = tolerance * base.as_secs_f64() / sample.latency.as_secs_f64();
                g.clamp(0.5, 1.0).min(backoff)
            }
            _ => backoff,
        }
    }

    /// A full window: scale by the gradient and leave room for √limit; cut at once, grow
    /// smoothed (and not when the caller set the pace).
    fn decide(tolerance: f64, smoothing: f64, m: &Measured) -> Option<f64> {
        let gradient = if m.rtt.is_zero() {
            1.0
        } else {
            (tolerance * m.base.as_secs_f64() / m.rtt.as_secs_f64()).clamp(0.5, 1.0)
        };
        let target = m.limit * gradient + m.limit.sqrt();
        if target < m.limit {
            Some(target)
        } else if !m.app_limited {
            Some(m.limit + smoothing * (target - m.limit))
        } else {
            None
        }
    }
}

impl LimitAlgorithm for Gradient {
    fn initial_limit(&self) -> u32 {
        self.latencies.limit.bounds.initial
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        let (tolerance, smoothing) = (self.tolerance, self.smoothing);
        let backoff = self.latencies.limit.bounds.backoff;
        self.latencies.update(
            sample,
            |base| Gradient::drop_factor(tolerance, backoff, sample, base),
            |m| Gradient::decide(tolerance, smoothing, m),
        )
    }

    fn fresh(&self) -> Box<dyn LimitAlgorithm> {
        Box::new(Gradient {
            latencies: self.latencies.fresh(),
            ..self.clone()
        })
    }

    fn name(&self) -> &'static str {
        "gradient"
    }
}
