//! Gradient: scale the limit by how far latency has drifted from its baseline.

use std::time::Duration;

use super::{
    Baseline, Bounds, Knobs, Limit, LimitAlgorithm, Sample, Window, check_min_samples, check_span,
};
use crate::ConfigError;

const KNOBS: Knobs = Knobs {
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
    limit: Limit,
    tolerance: f64,
    smoothing: f64,
    min_samples: u32,
    window: Window,
    baseline: Baseline,
    baseline_window: Duration,
}

impl Gradient {
    /// A builder: start at 20, between 1 and 1,000, tolerance 1.0, growth smoothed by 0.5,
    /// windows of 10 calls, ×0.9 on a drop, a baseline over the last 30 to 60 s.
    pub fn builder() -> GradientBuilder {
        GradientBuilder {
            bounds: Bounds::DEFAULT,
            tolerance: 1.0,
            smoothing: 0.5,
            min_samples: 10,
            baseline_window: Duration::from_secs(30),
        }
    }
}

/// Builder for [`Gradient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GradientBuilder {
    bounds: Bounds,
    tolerance: f64,
    smoothing: f64,
    min_samples: u32,
    baseline_window: Duration,
}

impl GradientBuilder {
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

    /// How much latency above the baseline is tolerated before the limit shrinks, as a
    /// factor of at least 1 (default 1.0: any rise counts).
    pub fn tolerance(mut self, factor: f64) -> Self {
        self.tolerance = factor;
        self
    }

    /// The share of the gap to the target the limit grows by each window, in (0, 1]
    /// (default 0.5). Cuts are never smoothed.
    pub fn smoothing(mut self, share: f64) -> Self {
        self.smoothing = share;
        self
    }

    /// Calls per window (default 10).
    pub fn min_samples(mut self, n: u32) -> Self {
        self.min_samples = n;
        self
    }

    /// The baseline latency is the lowest window average over the last one to two of these
    /// (default 30 s).
    pub fn baseline_window(mut self, span: Duration) -> Self {
        self.baseline_window = span;
        self
    }

    /// Check every knob.
    ///
    /// ```
    /// let err = riprap::bulkhead::Gradient::builder().tolerance(0.5).build().unwrap_err();
    /// assert_eq!(err.knob(), "bulkhead.gradient.tolerance");
    /// ```
    pub fn build(self) -> Result<Gradient, ConfigError> {
        self.bounds.check(&KNOBS)?;
        if !(self.tolerance >= 1.0 && self.tolerance <= 100.0) {
            return Err(ConfigError::new(
                "bulkhead.gradient.tolerance",
                format!("must be from 1 to 100 (got {})", self.tolerance),
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(ConfigError::new(
                "bulkhead.gradient.smoothing",
                format!("must be in (0, 1] (got {})", self.smoothing),
            ));
        }
        check_min_samples("bulkhead.gradient.min_samples", self.min_samples)?;
        check_span("bulkhead.gradient.baseline_window", self.baseline_window)?;
        Ok(Gradient {
            limit: Limit::new(self.bounds),
            tolerance: self.tolerance,
            smoothing: self.smoothing,
            min_samples: self.min_samples,
            window: Window::default(),
            baseline: Baseline::new(self.baseline_window),
            baseline_window: self.baseline_window,
        })
    }
}

impl Gradient {
    /// A timeout's latency is a lower bound on the call's: the gradient it implies, if that
    /// cuts deeper than `backoff`. A throttle (a fast refusal) says nothing about latency.
    fn drop_factor(&self, sample: &Sample) -> f64 {
        let backoff = self.limit.bounds.backoff;
        match self.baseline.get() {
            Some(base) if sample.timed_out && !sample.latency.is_zero() => {
                let g = self.tolerance * base.as_secs_f64() / sample.latency.as_secs_f64();
                g.clamp(0.5, 1.0).min(backoff)
            }
            _ => backoff,
        }
    }
}

impl LimitAlgorithm for Gradient {
    fn initial_limit(&self) -> u32 {
        self.limit.bounds.initial
    }

    fn update(&mut self, sample: &Sample) -> u32 {
        if sample.dropped {
            let factor = self.drop_factor(sample);
            let before = self.limit.get();
            self.limit.drop_seen(sample, factor);
            if self.limit.get() != before {
                self.window.clear();
            }
            return self.limit.get();
        }
        if self.limit.is_stale(sample) {
            return self.limit.get();
        }
        self.window.add(sample);
        if self.window.count() < self.min_samples {
            return self.limit.get();
        }
        let now = sample.finished();
        let rtt = self.window.average();
        let base = self.baseline.observe(now, rtt);
        let limit = self.limit.value;
        let gradient = if rtt.is_zero() {
            1.0
        } else {
            (self.tolerance * base.as_secs_f64() / rtt.as_secs_f64()).clamp(0.5, 1.0)
        };
        let target = limit * gradient + limit.sqrt();
        if target < limit {
            self.limit.set(target, now);
        } else if !self.window.app_limited(self.limit.get()) {
            self.limit
                .set(limit + self.smoothing * (target - limit), now);
        }
        self.window.clear();
        self.limit.get()
    }

    fn fresh(&self) -> Box<dyn LimitAlgorithm> {
        let mut fresh = self.clone();
        fresh.limit = Limit::new(self.limit.bounds);
        fresh.window.clear();
        fresh.baseline = Baseline::new(self.baseline_window);
        Box::new(fresh)
    }

    fn name(&self) -> &'static str {
        "gradient"
    }
}
