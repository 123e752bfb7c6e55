//! Adaptive concurrency: the limit found from measured latency, throttles and timeouts.
//!
//! A fixed concurrency limit is right for one capacity. When the dependency slows down
//! (a smaller fleet after a deploy, a noisy neighbour, longer prompts), a limit set for
//! yesterday keeps sending yesterday's concurrency: requests queue on the server, latency
//! climbs past the callers' timeouts, and the work done for callers who already gave up is
//! wasted. An adaptive limit watches what the dependency does with the concurrency it gets,
//! and moves:
//!
//! | algorithm | grows when | shrinks when | from |
//! |---|---|---|---|
//! | [`Gradient`] | latency stays near its baseline | the latency of the last window over the baseline (the gradient) says a queue is forming: the limit is scaled by it at once | Netflix's Gradient2, Envoy's adaptive concurrency |
//! | [`Vegas`] | the estimated queue (the concurrency beyond what the baseline latency explains) is below `alpha` | it is above `beta`: the excess is removed at once | TCP Vegas, Netflix's Vegas |
//! | [`Aimd`] | a window of calls passes with no drop (+`increase`) | a throttle, a timeout or a call slower than `slow` (×`backoff`) | TCP Reno, Netflix's AIMD |
//!
//! All three treat a **throttle** ([`Class::Throttled`](crate::classify::Class::Throttled), a
//! 429) and a **timeout** ([`Class::TimedOut`](crate::classify::Class::TimedOut)) as a drop:
//! the limit is multiplied by `backoff` (0.9 by default), once per congestion event. Calls
//! that were already in flight when the limit was cut do not cut it again, so a burst of
//! 429s from one overload costs one cut, not one per call. Gradient and Vegas read more
//! into a timeout: its latency is a lower bound on the call's, so they cut by what that
//! latency implies (down to half) when it is deeper than `backoff`. When a capacity drop
//! pushes every call past the caller's timeout, no call succeeds to report the latency, and
//! the timeouts are what says how far it rose.
//!
//! **Which to choose.** [`Gradient`] is the default choice: it reacts to a capacity drop in
//! one window (the gradient scales the limit directly), keeps a queue of about √limit at the
//! server, and needs no tuning beyond its bounds. [`Vegas`] holds a queue of between `alpha`
//! and `beta` calls whatever the limit, which suits small limits (an LLM API that serves a
//! handful of concurrent completions), where √limit would be most of the limit. [`Aimd`]
//! measures no latency at all: it suits a dependency whose latency says nothing about its
//! load (answers of very different sizes) but which throttles or times out when overloaded;
//! give it a `slow` threshold to treat a very slow call as a drop too.
//!
//! **Windows.** Gradient and Vegas judge latency over a window: at least `min_samples`
//! calls admitted since the limit last moved, so each decision sees the effect of the last
//! one (at least one round trip apart). The baseline is the lowest window average seen over
//! the last one to two `baseline_window`s, so it follows a dependency whose unloaded latency
//! changes for good. A window in which the calls in flight stayed below half the limit does
//! not raise it: the caller, not the dependency, set the pace.
//!
//! Implement [`LimitAlgorithm`] for anything else.

mod aimd;
mod gradient;
mod vegas;

use std::time::Duration;

use tokio::time::Instant;

#[cfg(feature = "serde")]
pub use aimd::AimdSpec;
pub use aimd::{Aimd, AimdBuilder};
#[cfg(feature = "serde")]
pub use gradient::GradientSpec;
pub use gradient::{Gradient, GradientBuilder};
#[cfg(feature = "serde")]
pub use vegas::VegasSpec;
pub use vegas::{Vegas, VegasBuilder};

use crate::ConfigError;

/// One call's measurement, as a [`LimitAlgorithm`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// When the call got its permit.
    pub started: Instant,
    /// How long it held the permit.
    pub latency: Duration,
    /// Permits in flight when it finished, itself included.
    pub in_flight: u32,
    /// The limit when it finished.
    pub limit: u32,
    /// Whether it was throttled or timed out.
    pub dropped: bool,
    /// Whether it timed out: its latency is then a lower bound of what the call would have
    /// taken.
    pub timed_out: bool,
}

impl Sample {
    /// A sample, for testing an algorithm of your own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::bulkhead::{Aimd, LimitAlgorithm, Sample};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), riprap::ConfigError> {
    /// let mut aimd = Aimd::builder().initial(10).build()?;
    /// let now = tokio::time::Instant::now();
    /// let throttled = Sample::new(now, Duration::from_millis(5), 10, 10, true);
    /// assert_eq!(aimd.update(&throttled), 9);
    /// # Ok(()) }
    /// ```
    pub fn new(
        started: Instant,
        latency: Duration,
        in_flight: u32,
        limit: u32,
        dropped: bool,
    ) -> Self {
        Sample {
            started,
            latency,
            in_flight,
            limit,
            dropped,
            timed_out: false,
        }
    }

    /// The same sample, marked as timed out (a drop whose latency is a lower bound).
    pub fn timed_out(mut self) -> Self {
        self.dropped = true;
        self.timed_out = true;
        self
    }

    /// When the call finished.
    pub fn finished(&self) -> Instant {
        self.started
            .checked_add(self.latency)
            .unwrap_or(self.started)
    }
}

/// How a bulkhead's limit moves with what its calls measure.
///
/// Called once per finished call, under a lock held only for the call (a latency sample
/// that finds the lock taken is skipped; a drop always waits for it). Keep it cheap and
/// allocation-free.
pub trait LimitAlgorithm: Send + 'static {
    /// The limit to start at.
    fn initial_limit(&self) -> u32;

    /// One call finished: the new limit (the bulkhead keeps it between 1 and
    /// [`MAX_PERMITS`](super::MAX_PERMITS)).
    fn update(&mut self, sample: &Sample) -> u32;

    /// A fresh instance with the same settings, in its initial state: each key of a keyed
    /// bulkhead gets one.
    fn fresh(&self) -> Box<dyn LimitAlgorithm>;

    /// A short name for logs: `"gradient"`, `"vegas"`, `"aimd"`.
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// The names of the shared knobs of one algorithm, for its config errors.
pub(crate) struct KnobNames {
    pub(crate) initial: &'static str,
    pub(crate) min: &'static str,
    pub(crate) max: &'static str,
    pub(crate) backoff: &'static str,
}

/// The bounds every built-in shares, checked in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    pub(crate) initial: u32,
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) backoff: f64,
}

impl Bounds {
    /// The bounds, checked: each error names the algorithm's own knob.
    pub(crate) fn new(
        initial: u32,
        min: u32,
        max: u32,
        backoff: f64,
        knob: &KnobNames,
    ) -> Result<Bounds, ConfigError> {
        let bounds = Bounds {
            initial,
            min,
            max,
            backoff,
        };
        bounds.check(knob)?;
        Ok(bounds)
    }

    fn check(&self, knob: &KnobNames) -> Result<(), ConfigError> {
        let max = super::MAX_PERMITS;
        if self.min == 0 || self.min > max {
            return Err(ConfigError::new(
                knob.min,
                format!("must be from 1 to {max} (got {})", self.min),
            ));
        }
        if self.max < self.min || self.max > max {
            return Err(ConfigError::new(
                knob.max,
                format!(
                    "must be from the minimum {} to {max} (got {})",
                    self.min, self.max
                ),
            ));
        }
        if self.initial < self.min || self.initial > self.max {
            return Err(ConfigError::new(
                knob.initial,
                format!(
                    "must be within [{}, {}] (got {})",
                    self.min, self.max, self.initial
                ),
            ));
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return Err(ConfigError::new(
                knob.backoff,
                format!("must be in (0, 1) (got {})", self.backoff),
            ));
        }
        Ok(())
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(f64::from(self.min), f64::from(self.max))
    }
}

pub(crate) fn check_min_samples(knob: &'static str, n: u32) -> Result<(), ConfigError> {
    if n == 0 || n > 100_000 {
        return Err(ConfigError::new(
            knob,
            format!("must be from 1 to 100000 (got {n})"),
        ));
    }
    Ok(())
}

pub(crate) fn check_span(knob: &'static str, d: Duration) -> Result<(), ConfigError> {
    crate::error::check_duration(knob, d)?;
    if d.is_zero() {
        return Err(ConfigError::new(knob, "must be greater than zero"));
    }
    Ok(())
}

/// The limit as a float, so small steps add up; cut multiplicatively once per congestion
/// event.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    pub(crate) value: f64,
    pub(crate) bounds: Bounds,
    /// When the limit last moved: samples of calls admitted before it describe the old limit.
    pub(crate) changed: Option<Instant>,
    /// When the limit was last cut for a drop.
    cut: Option<Instant>,
}

impl Limit {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Limit {
            value: f64::from(bounds.initial),
            bounds,
            changed: None,
            cut: None,
        }
    }

    pub(crate) fn get(&self) -> u32 {
        // Floored: a limit of 9.9 lets 9 calls through.
        self.value as u32
    }

    /// A call admitted before the limit last moved measured the old limit.
    pub(crate) fn is_stale(&self, sample: &Sample) -> bool {
        self.changed.is_some_and(|at| sample.started < at)
    }

    /// A throttle or a timeout: cut by `factor`, once per congestion event.
    pub(crate) fn drop_seen(&mut self, sample: &Sample, factor: f64) {
        if self.cut.is_some_and(|at| sample.started < at) {
            return;
        }
        let now = sample.finished();
        self.cut = Some(now);
        self.set(self.value * factor, now);
    }

    pub(crate) fn set(&mut self, value: f64, now: Instant) {
        let value = self.bounds.clamp(value);
        if value.floor() != self.value.floor() {
            self.changed = Some(now);
        }
        self.value = value;
    }
}

/// Latencies of the calls admitted since the limit last moved.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    count: u32,
    total: Duration,
    max_in_flight: u32,
}

impl Window {
    pub(crate) fn add(&mut self, sample: &Sample) {
        self.count += 1;
        self.total = self.total.saturating_add(sample.latency);
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
    }

    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    pub(crate) fn average(&self) -> Duration {
        self.total / self.count.max(1)
    }

    /// Whether the calls in flight stayed below half the limit: the caller set the pace.
    pub(crate) fn app_limited(&self, limit: u32) -> bool {
        u64::from(self.max_in_flight) * 2 < u64::from(limit)
    }

    pub(crate) fn clear(&mut self) {
        *self = Window::default();
    }
}

/// The lowest window average seen over the last one to two spans: a two-bucket minimum
/// filter, so a baseline measured long ago expires.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    span: Duration,
    epoch: Option<Instant>,
    current: Option<Duration>,
    previous: Option<Duration>,
}

impl Baseline {
    pub(crate) fn new(span: Duration) -> Self {
        Baseline {
            span,
            epoch: None,
            current: None,
            previous: None,
        }
    }

    pub(crate) fn observe(&mut self, now: Instant, latency: Duration) -> Duration {
        let epoch = *self.epoch.get_or_insert(now);
        if now.saturating_duration_since(epoch) >= self.span {
            self.previous = self.current.take();
            self.epoch = Some(now);
        }
        self.current = Some(self.current.map_or(latency, |c| c.min(latency)));
        self.get().unwrap_or(latency)
    }

    pub(crate) fn get(&self) -> Option<Duration> {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the latency-based algorithms (Gradient, Vegas) share: the limit, the window of the
/// calls admitted since it last moved, and the baseline. Each algorithm supplies only its
/// cut on a drop and its decision on a full window.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    pub(crate) limit: Limit,
    window: Window,
    baseline: Baseline,
    min_samples: u32,
}

/// A full window, as [`Latencies::update`] hands it to the algorithm's decision.
pub(crate) struct Measured {
    /// The limit now, unrounded.
    pub(crate) limit: f64,
    /// The window's average latency.
    pub(crate) rtt: Duration,
    /// The baseline, this window included.
    pub(crate) base: Duration,
    /// Whether the caller, not the dependency, set the pace: then the limit must not grow.
    pub(crate) app_limited: bool,
}

impl Latencies {
    pub(crate) fn new(bounds: Bounds, min_samples: u32, baseline_window: Duration) -> Self {
        Latencies {
            limit: Limit::new(bounds),
            window: Window::default(),
            baseline: Baseline::new(baseline_window),
            min_samples,
        }
    }

    /// The same settings, in the initial state.
    pub(crate) fn fresh(&self) -> Self {
        Latencies::new(self.limit.bounds, self.min_samples, self.baseline.span)
    }

    /// One finished call. A drop cuts the limit by `drop_factor(baseline)` (once per
    /// congestion event); a sample of a call admitted before the limit last moved is skipped;
    /// any other joins the window, and a full one goes to `decide`, whose answer (if any) is
    /// the new limit. Returns the limit.
    pub(crate) fn update(
        &mut self,
        sample: &Sample,
        drop_factor: impl FnOnce(Option<Duration>) -> f64,
        decide: impl FnOnce(&Measured) -> Option<f64>,
    ) -> u32 {
        if sample.dropped {
            let before = self.limit.get();
            self.limit
                .drop_seen(sample, drop_factor(self.baseline.get()));
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
        let measured = Measured {
            limit: self.limit.value,
            rtt,
            base: self.baseline.observe(now, rtt),
            app_limited: self.window.app_limited(self.limit.get()),
        };
        if let Some(next) = decide(&measured) {
            self.limit.set(next, now);
        }
        self.window.clear();
        self.limit.get()
    }
}
