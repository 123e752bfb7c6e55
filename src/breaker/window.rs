//! Rate policies: failure and slow-call rates over the last N calls or the last span of time.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use super::Padded;
use super::policy::{Call, PolicyStats, TripPolicy};
use crate::error::{ConfigError, check_duration};

const PPM: u64 = 1_000_000;

/// The rate thresholds shared by both windows, as parts per million so that the comparison is
/// exact integer arithmetic (the reference model in the tests agrees bit for bit).
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    failure_ppm: Option<u64>,
    slow_ppm: Option<u64>,
    slower_than: Duration,
    min_calls: u64,
}

impl Thresholds {
    /// For presets: known-good constants, so no validation.
    fn preset(failure_rate: f64, min_calls: u32, slow: Option<(Duration, f64)>) -> Self {
        let ppm = |r: f64| (r * PPM as f64) as u64;
        Thresholds {
            failure_ppm: Some(ppm(failure_rate)),
            slow_ppm: slow.map(|(_, r)| ppm(r)),
            slower_than: slow.map_or(Duration::ZERO, |(d, _)| d),
            min_calls: u64::from(min_calls),
        }
    }

    fn trips(&self, calls: u64, failures: u64, slow: u64) -> bool {
        if calls == 0 || calls < self.min_calls {
            return false;
        }
        let over = |bad: u64, ppm: Option<u64>| ppm.is_some_and(|p| bad * PPM >= p * calls);
        over(failures, self.failure_ppm) || over(slow, self.slow_ppm)
    }

    fn is_slow(&self, call: &Call) -> bool {
        self.slow_after(call.elapsed())
    }

    fn slow_after(&self, elapsed: Duration) -> bool {
        self.slow_ppm.is_some() && elapsed > self.slower_than
    }

    fn stats(&self, calls: u64, failures: u64, slow: u64) -> PolicyStats {
        let rate = |bad: u64| {
            if calls == 0 {
                0.0
            } else {
                bad as f64 / calls as f64
            }
        };
        PolicyStats {
            calls: Some(calls),
            failure_rate: self.failure_ppm.map(|_| rate(failures)),
            slow_rate: self.slow_ppm.map(|_| rate(slow)),
            consecutive_failures: None,
        }
    }
}

/// Shared knobs of both window builders.
#[derive(Debug, Clone, Copy)]
struct RateSpec {
    failure_rate: Option<f64>,
    slow: Option<(Duration, f64)>,
    min_calls: Option<u64>,
}

impl RateSpec {
    const DEFAULT: RateSpec = RateSpec {
        failure_rate: Some(0.5),
        slow: None,
        min_calls: None,
    };

    fn build(
        &self,
        prefix: Prefix,
        default_min: u64,
        max_min: u64,
    ) -> Result<Thresholds, ConfigError> {
        let ppm = |knob: &'static str, r: f64| {
            if r.is_finite() && r > 0.0 && r <= 1.0 {
                Ok(((r * PPM as f64).round() as u64).max(1))
            } else {
                Err(ConfigError::new(
                    knob,
                    format!("must be in (0, 1] (got {r})"),
                ))
            }
        };
        let failure_ppm = match self.failure_rate {
            Some(r) => Some(ppm(prefix.failure_rate, r)?),
            None => None,
        };
        let (slower_than, slow_ppm) = match self.slow {
            Some((d, r)) => {
                if check_duration(prefix.slow_threshold, d)? == 0 {
                    return Err(ConfigError::new(
                        prefix.slow_threshold,
                        "must be greater than zero",
                    ));
                }
                (d, Some(ppm(prefix.slow_rate, r)?))
            }
            None => (Duration::ZERO, None),
        };
        if failure_ppm.is_none() && slow_ppm.is_none() {
            return Err(ConfigError::new(
                prefix.failure_rate,
                "a window that counts neither failures nor slow calls never trips; set `slow_calls`",
            ));
        }
        let min_calls = self.min_calls.unwrap_or(default_min);
        if min_calls == 0 || min_calls > max_min {
            return Err(ConfigError::new(
                prefix.min_calls,
                format!("must be in 1..={max_min} (got {min_calls})"),
            ));
        }
        Ok(Thresholds {
            failure_ppm,
            slow_ppm,
            slower_than,
            min_calls,
        })
    }
}

#[derive(Clone, Copy)]
struct Prefix {
    failure_rate: &'static str,
    slow_threshold: &'static str,
    slow_rate: &'static str,
    min_calls: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Count window

/// Failure and slow-call rates over the last `size` counted calls.
///
/// Trips when at least `min_calls` calls are in the window and the failure rate reaches
/// `failure_rate` (or, if set, the slow-call rate reaches its threshold). The right choice when
/// traffic is steady and you want "half of the last 100 calls failed" to mean the same thing
/// at any hour; at low traffic the window reaches back a long way, so pair it with
/// [`ConsecutiveFailures`](super::ConsecutiveFailures).
///
/// Lock-free: recording is three uncontended atomic operations and allocates nothing. Exact
/// when calls complete one at a time; when more calls race than the window has slots, a count
/// can be off by one until the breaker next opens.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{Call, CountWindow, TripPolicy};
/// use riprap::classify::Class;
///
/// let window = CountWindow::last(4).failure_rate(0.5).min_calls(4).build()?;
/// let ok = Call::new(Class::Success, Duration::ZERO, Duration::ZERO);
/// let fail = Call::new(Class::Transient, Duration::ZERO, Duration::ZERO);
/// assert!(!window.record(fail));
/// assert!(!window.record(ok));
/// assert!(!window.record(ok));
/// assert!(window.record(fail)); // 2 of the last 4
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct CountWindow {
    thresholds: Thresholds,
    /// Per slot: bit 0 failed, bit 1 slow, bit 2 present, bits 4..8 the generation it was
    /// written in, so a slot left over from before a reset counts as empty.
    slots: Box<[AtomicU8]>,
    head: Padded<AtomicU64>,
    /// Generation (4 bits) and three 20-bit sums: calls, failures, slow calls. One word, so a
    /// record updates all sums in one compare-and-swap and a reset invalidates racing records.
    sums: Padded<AtomicU64>,
}

/// Builder for [`CountWindow`].
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct CountWindowBuilder {
    size: u64,
    spec: RateSpec,
}

const COUNT_PREFIX: Prefix = Prefix {
    failure_rate: "breaker.count_window.failure_rate",
    slow_threshold: "breaker.count_window.slow_threshold",
    slow_rate: "breaker.count_window.slow_rate",
    min_calls: "breaker.count_window.min_calls",
};

/// The largest count window: sums are packed in 20 bits.
pub const MAX_COUNT_WINDOW: u32 = 1_000_000;

impl CountWindow {
    /// A window over the last `size` counted calls (at most [`MAX_COUNT_WINDOW`]). Defaults:
    /// failure rate 0.5, `min_calls` = `size` (a rate is only judged over a full window), no
    /// slow-call threshold.
    pub fn last(size: u32) -> CountWindowBuilder {
        CountWindowBuilder {
            size: u64::from(size),
            spec: RateSpec::DEFAULT,
        }
    }
}

/// The rate knobs both window builders share, written once over their common [`RateSpec`].
macro_rules! rate_setters {
    ($builder:ty) => {
        impl $builder {
            /// Trip when this share of the window failed, in `(0, 1]` (default 0.5).
            pub fn failure_rate(mut self, rate: f64) -> Self {
                self.spec.failure_rate = Some(rate);
                self
            }

            /// Count calls slower than `threshold` as slow, and trip when `rate` of the window was
            /// slow. Off unless set.
            pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
                self.spec.slow = Some((threshold, rate));
                self
            }

            /// Judge only the slow-call rate: failures are counted as calls but never trip.
            pub fn only_slow_calls(mut self) -> Self {
                self.spec.failure_rate = None;
                self
            }
        }

        #[cfg(feature = "serde")]
        impl crate::breaker::window::RateKnobs for $builder {
            fn failure_rate(self, rate: f64) -> Self {
                <$builder>::failure_rate(self, rate)
            }
            fn slow_calls(self, threshold: Duration, rate: f64) -> Self {
                <$builder>::slow_calls(self, threshold, rate)
            }
            fn only_slow_calls(self) -> Self {
                <$builder>::only_slow_calls(self)
            }
        }
    };
}

/// The shared rate knobs, so a config file's spec can set them on either window builder.
#[cfg(feature = "serde")]
pub(crate) trait RateKnobs: Sized {
    fn failure_rate(self, rate: f64) -> Self;
    fn slow_calls(self, threshold: Duration, rate: f64) -> Self;
    fn only_slow_calls(self) -> Self;
}

rate_setters!(CountWindowBuilder);
rate_setters!(TimeWindowBuilder);

impl CountWindowBuilder {
    /// No verdict until this many calls are in the window, in `1..=size` (default `size`).
    pub fn min_calls(mut self, n: u32) -> Self {
        self.spec.min_calls = Some(u64::from(n));
        self
    }

    /// Check the knobs and build the policy.
    ///
    /// ```
    /// use riprap::breaker::CountWindow;
    ///
    /// let err = CountWindow::last(10).min_calls(11).build().unwrap_err();
    /// assert_eq!(err.knob(), "breaker.count_window.min_calls");
    /// ```
    pub fn build(self) -> Result<CountWindow, ConfigError> {
        if self.size == 0 || self.size > u64::from(MAX_COUNT_WINDOW) {
            return Err(ConfigError::new(
                "breaker.count_window.size",
                format!("must be in 1..={MAX_COUNT_WINDOW} (got {})", self.size),
            ));
        }
        let thresholds = self.spec.build(COUNT_PREFIX, self.size, self.size)?;
        Ok(CountWindow::with(thresholds, self.size))
    }
}

const F20: u64 = (1 << 20) - 1;

fn sums(word: u64) -> (u64, u64, u64) {
    (word & F20, (word >> 20) & F20, (word >> 40) & F20)
}

fn pack_sums(generation: u64, calls: u64, failures: u64, slow: u64) -> u64 {
    (generation << 60) | (slow << 40) | (failures << 20) | calls
}

impl CountWindow {
    fn with(thresholds: Thresholds, size: u64) -> Self {
        CountWindow {
            thresholds,
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            head: Padded(AtomicU64::new(0)),
            sums: Padded(AtomicU64::new(0)),
        }
    }

    /// For presets: known-good constants, so no validation.
    pub(crate) fn preset(
        size: u32,
        failure_rate: f64,
        min_calls: u32,
        slow: Option<(Duration, f64)>,
    ) -> Self {
        let thresholds = Thresholds::preset(failure_rate, min_calls, slow);
        CountWindow::with(thresholds, u64::from(size))
    }

    /// The number of calls the window holds.
    pub fn size(&self) -> usize {
        self.slots.len()
    }
}

impl TripPolicy for CountWindow {
    fn record(&self, call: Call) -> bool {
        if call.ignored() {
            return false;
        }
        let slow = self.thresholds.is_slow(&call);
        let sums_now = self.sums.0.load(Ordering::Acquire);
        let generation = sums_now >> 60;
        let bits = (generation << 4) as u8 | 0b100 | u8::from(slow) << 1 | u8::from(call.failed());
        let len = self.slots.len() as u64;
        let i = (self.head.0.fetch_add(1, Ordering::Relaxed) % len) as usize;
        let old = self.slots[i].swap(bits, Ordering::Relaxed);
        let (old_fail, old_slow, old_call) =
            if old & 0b100 != 0 && u64::from(old >> 4) == generation {
                (u64::from(old & 1), u64::from((old >> 1) & 1), 1)
            } else {
                (0, 0, 0)
            };
        let mut cur = sums_now;
        loop {
            if cur >> 60 != generation {
                // Reset while we were recording: this outcome belongs to the old window.
                return false;
            }
            let (c, f, s) = sums(cur);
            let c = (c + 1).saturating_sub(old_call).min(len);
            let f = (f + u64::from(call.failed()))
                .saturating_sub(old_fail)
                .min(len);
            let s = (s + u64::from(slow)).saturating_sub(old_slow).min(len);
            let next = pack_sums(generation, c, f, s);
            match self
                .sums
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return self.thresholds.trips(c, f, s),
                Err(actual) => cur = actual,
            }
        }
    }

    fn reset(&self) {
        let generation = ((self.sums.0.load(Ordering::Acquire) >> 60) + 1) & 0xF;
        self.sums
            .0
            .store(pack_sums(generation, 0, 0, 0), Ordering::Release);
        self.head.0.store(0, Ordering::Relaxed);
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
    }

    fn fresh(&self) -> Self {
        CountWindow::with(self.thresholds, self.slots.len() as u64)
    }

    fn needs_clock(&self) -> bool {
        self.thresholds.slow_ppm.is_some()
    }

    fn stats(&self, _now: Duration) -> PolicyStats {
        let (c, f, s) = sums(self.sums.0.load(Ordering::Acquire));
        self.thresholds.stats(c, f, s)
    }

    fn is_slow(&self, elapsed: Duration) -> bool {
        self.thresholds.slow_after(elapsed)
    }
}

// ---------------------------------------------------------------------------------------------
// Time window

/// Failure and slow-call rates over the last `span` of time, in rolling buckets.
///
/// Trips when at least `min_throughput` calls completed in the window and the failure rate
/// reaches `failure_rate` (or the slow-call rate its threshold). The right choice when traffic
/// is bursty and "10 % of calls in the last 30 s failed" is the question, as in Polly. A call
/// leaves the window between `span - span / buckets` and `span` after it completed.
///
/// Lock-free within a bucket: a record is one compare-and-swap on its bucket plus a read of
/// every bucket, and one clock read per call; the first call of a new bucket rolls the window
/// under a short lock. Each bucket counts up to 65,535 calls and then samples (keeps the
/// rate of the calls it counted), so rates stay meaningful at any throughput. The window
/// forgets its calls after any idle gap, however long (resilience4j and Polly do too): the
/// roll clears every bucket the window passes over before anyone counts into it.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{Call, TimeWindow, TripPolicy};
/// use riprap::classify::Class;
///
/// let window = TimeWindow::last(Duration::from_secs(10))
///     .buckets(10)
///     .failure_rate(0.5)
///     .min_throughput(2)
///     .build()?;
/// let at = |s| Duration::from_secs(s);
/// assert!(!window.record(Call::new(Class::Transient, Duration::ZERO, at(0))));
/// // Eleven seconds later the first failure has left the window.
/// assert!(!window.record(Call::new(Class::Transient, Duration::ZERO, at(11))));
/// assert!(window.record(Call::new(Class::Transient, Duration::ZERO, at(12))));
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct TimeWindow {
    thresholds: Thresholds,
    bucket_nanos: u64,
    /// Per bucket: the bucket's index modulo 2^16 and three 16-bit counts (calls, failures,
    /// slow), so counting into a bucket is one compare-and-swap.
    buckets: Box<[Padded<AtomicU64>]>,
    /// The latest bucket index whose rotation is complete: every bucket holds an index within
    /// one window of it, or nothing. Calls count only into indices up to it, so a 16-bit tag
    /// is never compared across more than two windows and cannot alias, whatever the gap.
    rotated: Padded<AtomicU64>,
    /// Serialises rotations (once per bucket length), so two of them never interleave.
    rolling: std::sync::Mutex<()>,
}

/// Builder for [`TimeWindow`].
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct TimeWindowBuilder {
    span: Duration,
    buckets: u32,
    spec: RateSpec,
}

const TIME_PREFIX: Prefix = Prefix {
    failure_rate: "breaker.time_window.failure_rate",
    slow_threshold: "breaker.time_window.slow_threshold",
    slow_rate: "breaker.time_window.slow_rate",
    min_calls: "breaker.time_window.min_throughput",
};

/// The most buckets a time window may have.
pub const MAX_BUCKETS: u32 = 1_000;

impl TimeWindow {
    /// A window over the last `span`. Defaults: 10 buckets, failure rate 0.5, minimum
    /// throughput 20 calls, no slow-call threshold.
    pub fn last(span: Duration) -> TimeWindowBuilder {
        TimeWindowBuilder {
            span,
            buckets: 10,
            spec: RateSpec::DEFAULT,
        }
    }

    /// The window's length.
    pub fn span(&self) -> Duration {
        Duration::from_nanos(self.bucket_nanos * self.buckets.len() as u64)
    }
}

impl TimeWindowBuilder {
    /// How many steps the window rolls in (default 10, at most [`MAX_BUCKETS`]); more buckets
    /// forget old calls more smoothly and cost one more load per call each.
    pub fn buckets(mut self, n: u32) -> Self {
        self.buckets = n;
        self
    }

    /// No verdict until this many calls are in the window (default 20).
    pub fn min_throughput(mut self, n: u32) -> Self {
        self.spec.min_calls = Some(u64::from(n));
        self
    }

    /// Check the knobs and build the policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::TimeWindow;
    ///
    /// let err = TimeWindow::last(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err.knob(), "breaker.time_window.span");
    /// ```
    pub fn build(self) -> Result<TimeWindow, ConfigError> {
        if self.buckets == 0 || self.buckets > MAX_BUCKETS {
            return Err(ConfigError::new(
                "breaker.time_window.buckets",
                format!("must be in 1..={MAX_BUCKETS} (got {})", self.buckets),
            ));
        }
        let span = check_duration("breaker.time_window.span", self.span)?;
        let bucket_nanos = span / u64::from(self.buckets);
        if bucket_nanos < 1_000 {
            return Err(ConfigError::new(
                "breaker.time_window.span",
                format!(
                    "must give buckets of at least 1µs (got {:?} in {} buckets)",
                    self.span, self.buckets
                ),
            ));
        }
        let thresholds = self.spec.build(TIME_PREFIX, 20, u64::from(u32::MAX))?;
        Ok(TimeWindow::with(thresholds, bucket_nanos, self.buckets))
    }
}

const F16: u64 = 0xFFFF;

impl TimeWindow {
    fn with(thresholds: Thresholds, bucket_nanos: u64, buckets: u32) -> Self {
        TimeWindow {
            thresholds,
            bucket_nanos,
            buckets: (0..buckets).map(|_| Padded(AtomicU64::new(0))).collect(),
            rotated: Padded(AtomicU64::new(0)),
            rolling: std::sync::Mutex::new(()),
        }
    }

    /// For presets: known-good constants, so no validation.
    pub(crate) fn preset(
        span: Duration,
        buckets: u32,
        failure_rate: f64,
        min_calls: u32,
        slow: Option<(Duration, f64)>,
    ) -> Self {
        let thresholds = Thresholds::preset(failure_rate, min_calls, slow);
        let bucket_nanos = (span.as_nanos() / u128::from(buckets)) as u64;
        TimeWindow::with(thresholds, bucket_nanos, buckets)
    }

    fn sum(&self, index: u64) -> (u64, u64, u64) {
        let n = self.buckets.len() as u64;
        let rotated = self.rotated.0.load(Ordering::Acquire);
        // Buckets past the rotation still hold an older window's calls; buckets a whole window
        // before it have been rolled past.
        let newest = index.min(rotated);
        let oldest = (index + 1)
            .saturating_sub(n)
            .max((rotated + 1).saturating_sub(n));
        let (mut c, mut f, mut s) = (0, 0, 0);
        // Walk the ring from the oldest bucket without a division per bucket.
        let mut slot = (oldest % n) as usize;
        for idx in oldest..newest.saturating_add(1) {
            if let Some(bucket) = self.buckets.get(slot) {
                let word = bucket.0.load(Ordering::Acquire);
                // Within two windows of the rotation a 16-bit tag names one index only.
                if word >> 48 == idx & F16 {
                    c += word & F16;
                    f += (word >> 16) & F16;
                    s += (word >> 32) & F16;
                }
            }
            slot += 1;
            if slot == self.buckets.len() {
                slot = 0;
            }
        }
        (c, f, s)
    }

    /// Roll the window forward to `index` before anyone counts into it: every bucket the
    /// window passes over is emptied and tagged with its new index, then `rotated` is
    /// published. This happens once per bucket length whatever the traffic, under a lock held
    /// for at most one store per bucket; every other call is lock-free. Nobody counts into an
    /// index past `rotated`, so a rotation never erases a call of the window it rolls to.
    #[cold]
    fn rotate(&self, index: u64) {
        let _rolling = self
            .rolling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = self.rotated.0.load(Ordering::Acquire);
        if from >= index {
            return;
        }
        let n = self.buckets.len() as u64;
        for idx in (from + 1).max((index + 1).saturating_sub(n))..=index {
            // A call of an index the window is leaving may still land in the bucket before
            // this store; it would have left the window with this rotation anyway.
            self.buckets[(idx % n) as usize]
                .0
                .store((idx & F16) << 48, Ordering::Release);
        }
        self.rotated.0.store(index, Ordering::Release);
    }

    fn index(&self, at: Duration) -> u64 {
        crate::time::nanos(at) / self.bucket_nanos
    }
}

impl TripPolicy for TimeWindow {
    fn record(&self, call: Call) -> bool {
        if call.ignored() {
            return false;
        }
        let index = self.index(call.at());
        let slow = self.thresholds.is_slow(&call);
        let n = self.buckets.len() as u64;
        let mut rotated = self.rotated.0.load(Ordering::Acquire);
        if rotated < index {
            self.rotate(index);
            rotated = self.rotated.0.load(Ordering::Acquire);
        }
        // A caller preempted for a whole window: its call has already left the window.
        if index + n > rotated {
            let tag = index & F16;
            let bucket = &self.buckets[(index % n) as usize].0;
            let mut cur = bucket.load(Ordering::Acquire);
            // The bucket holds `index` (rotation guarantees it) unless it already rolled past.
            while cur >> 48 == tag && cur & F16 != F16 {
                let next = cur + 1 + (u64::from(call.failed()) << 16) + (u64::from(slow) << 32);
                match bucket.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
        let (c, f, s) = self.sum(index);
        self.thresholds.trips(c, f, s)
    }

    fn reset(&self) {
        // Empty every bucket but keep the tag of the index it holds, so calls of the current
        // bucket still count into it after the reset.
        let _rolling = self
            .rolling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rotated = self.rotated.0.load(Ordering::Acquire);
        let n = self.buckets.len() as u64;
        for idx in (rotated + 1).saturating_sub(n)..=rotated {
            self.buckets[(idx % n) as usize]
                .0
                .store((idx & F16) << 48, Ordering::Release);
        }
    }

    fn fresh(&self) -> Self {
        TimeWindow::with(
            self.thresholds,
            self.bucket_nanos,
            self.buckets.len() as u32,
        )
    }

    fn needs_clock(&self) -> bool {
        true
    }

    fn stats(&self, now: Duration) -> PolicyStats {
        let (c, f, s) = self.sum(self.index(now));
        self.thresholds.stats(c, f, s)
    }

    fn is_slow(&self, elapsed: Duration) -> bool {
        self.thresholds.slow_after(elapsed)
    }
}
