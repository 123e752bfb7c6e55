//! How long to wait before the next attempt.
//!
//! A [`Backoff`] is one request's schedule of delays: ask it for the next delay until it says
//! stop. A [`MakeBackoff`] is the policy that makes a fresh schedule for every request; layers
//! hold the policy and draw a schedule per logical request.
//!
//! [`BackoffPolicy`] is riprap's built-in policy: exponential, constant or linear growth, capped,
//! with no / full / equal / decorrelated [`Jitter`], bounded by a number of retries and by the
//! total delay handed out, and reproducible from a seed. Drawing a delay allocates nothing and
//! saturates instead of overflowing: attempt 10,000 simply sits at the cap.
//!
//! ```
//! use std::time::Duration;
//! use riprap::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};
//!
//! let policy = BackoffPolicy::exponential(Duration::from_millis(100))
//!     .factor(2.0)
//!     .max_delay(Duration::from_secs(5))
//!     .jitter(Jitter::Full)
//!     .max_retries(4)
//!     .seed(7)
//!     .build()?;
//!
//! let mut schedule = policy.make_backoff();
//! let mut delays = Vec::new();
//! while let Some(delay) = schedule.next_delay() {
//!     delays.push(delay);
//! }
//! assert_eq!(delays.len(), 4);
//! // Full jitter: each delay lies in [0, min(cap, base * factor^n)].
//! for (n, d) in delays.iter().enumerate() {
//!     assert!(*d <= Duration::from_millis(100 * 2u64.pow(n as u32)));
//! }
//! # Ok::<(), riprap::ConfigError>(())
//! ```
//!
//! ## Choosing a jitter
//!
//! Without jitter, every client that failed at the same moment retries at the same moment, and
//! the retries arrive as synchronized waves. [`Jitter::Full`] spreads them the most and is the
//! default (AWS's analysis found it does the least total work); [`Jitter::Equal`] keeps at
//! least half the delay, for callers that must not retry too early; [`Jitter::Decorrelated`]
//! grows from the previous delay rather than the attempt number.
//!
//! ## From a config file
//!
//! With the `serde` feature, `BackoffSpec` holds every knob as plain data, read from TOML,
//! YAML or JSON with human durations (`base = "100ms"`, `max_delay = "5s"`); its `build()`
//! goes through [`BackoffPolicy`]'s builder, so a bad value is refused with the knob named:
//!
//! ```toml
//! base = "100ms"      # required
//! growth = "exponential"  # or "linear" (with `step`) or "constant"
//! factor = 2.0
//! max_delay = "5s"
//! jitter = "full"     # "none", "full", "equal" or "decorrelated"
//! max_retries = 4
//! max_elapsed = "30s"
//! seed = 7
//! ```
//!
//! ## Migrating from the `backoff` crate
//!
//! The `backoff` crate is unmaintained (RUSTSEC-2025-0012), so riprap does not depend on it.
//! With the off-by-default `backoff-compat` feature, `BackoffCrate` adapts a
//! `backoff::backoff::Backoff` to riprap's traits so existing policies keep working while you
//! move to [`BackoffPolicy`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{ConfigError, check_duration};

#[cfg(feature = "backoff-compat")]
mod compat;
mod rng;
#[cfg(feature = "serde")]
mod spec;

#[cfg(feature = "backoff-compat")]
pub use compat::BackoffCrate;
pub(crate) use rng::SplitMix64;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::GrowthKind;

/// One request's schedule of delays.
///
/// ```
/// use std::time::Duration;
/// use riprap::backoff::Backoff;
///
/// /// Wait 1 s, then give up.
/// struct OnceASecond { used: bool }
///
/// impl Backoff for OnceASecond {
///     fn next_delay(&mut self) -> Option<Duration> {
///         (!std::mem::replace(&mut self.used, true)).then(|| Duration::from_secs(1))
///     }
///     fn reset(&mut self) { self.used = false; }
/// }
///
/// let mut b = OnceASecond { used: false };
/// assert_eq!(b.next_delay(), Some(Duration::from_secs(1)));
/// assert_eq!(b.next_delay(), None);
/// ```
pub trait Backoff {
    /// The delay before the next attempt, or `None` to stop retrying.
    fn next_delay(&mut self) -> Option<Duration>;

    /// Start the schedule over, as after a success.
    fn reset(&mut self);
}

/// A policy that makes a fresh [`Backoff`] schedule for each logical request.
///
/// ```
/// use std::time::Duration;
/// use riprap::backoff::{Backoff, BackoffPolicy, MakeBackoff};
///
/// let policy = BackoffPolicy::constant(Duration::from_millis(50)).max_retries(2).build()?;
/// let mut a = policy.make_backoff();
/// let mut b = policy.make_backoff(); // independent of `a`
/// assert_eq!(a.next_delay(), Some(Duration::from_millis(50)));
/// assert_eq!(b.next_delay(), Some(Duration::from_millis(50)));
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a backoff policy",
    note = "use `BackoffPolicy::exponential(..).build()?` (or `linear`, `constant`), or implement `riprap::backoff::MakeBackoff`"
)]
pub trait MakeBackoff {
    /// The schedule this policy makes.
    type Backoff: Backoff;

    /// A fresh schedule, starting at the first retry.
    fn make_backoff(&self) -> Self::Backoff;

    /// Draw every schedule from `seed` from now on, so runs are reproducible. Policies
    /// without randomness ignore it (the default).
    fn reseed(&mut self, seed: u64) {
        let _ = seed;
    }

    /// The most the first `retries` delays of a schedule can add up to, if the policy can
    /// say; a stack checks it against its total deadline. The default cannot say.
    fn max_total_delay(&self, retries: u32) -> Option<Duration> {
        let _ = retries;
        None
    }
}

/// How a delay is randomised within its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Jitter {
    /// Exactly the envelope `min(cap, base * factor^n)`.
    None,
    /// Uniform in `[0, envelope]`.
    #[default]
    Full,
    /// Uniform in `[envelope / 2, envelope]`.
    Equal,
    /// Uniform in `[base, 3 * previous delay]`, capped: grows from the last delay drawn, not
    /// from the attempt number (AWS's "decorrelated jitter"). Ignores `factor`.
    Decorrelated,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    Exponential { factor: f64 },
    Linear { step_nanos: u64 },
    Constant,
}

/// riprap's built-in backoff policy; build one with [`BackoffPolicy::exponential`],
/// [`BackoffPolicy::linear`] or [`BackoffPolicy::constant`].
///
/// Cloning is cheap and clones share the seed sequence, so a seeded policy hands out the same
/// series of schedules however it is shared.
#[derive(Debug, Clone)]
pub struct BackoffPolicy {
    growth: Growth,
    jitter: Jitter,
    base_nanos: u64,
    cap_nanos: u64,
    max_retries: Option<u32>,
    max_elapsed_nanos: Option<u64>,
    seed: u64,
    schedules_made: Arc<AtomicU64>,
}

/// Builder for [`BackoffPolicy`]; every knob is checked in [`build`](BackoffBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct BackoffBuilder {
    growth: GrowthSpec,
    base: Duration,
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The knobs every growth shares. [`BackoffSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl BackoffBuilder;

    /// A [`BackoffPolicy`] as plain data: every knob of its builder, readable from TOML, YAML
    /// or JSON (feature `serde`).
    ///
    /// Only `base` is required. A knob left out keeps the builder's default: exponential growth
    /// by a factor of 2, a 30 s cap, full jitter for exponential growth and none otherwise, no
    /// bound on retries or total delay, a random seed. [`build`](BackoffSpec::build) goes
    /// through [`BackoffBuilder`], so a bad value is refused exactly as in code, with the knob
    /// named, and a knob that does not apply to the chosen growth (`factor` on linear growth,
    /// `step` on exponential) is refused rather than ignored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::backoff::{BackoffPolicy, BackoffSpec, Jitter};
    ///
    /// let spec: BackoffSpec = toml::from_str(r#"
    ///     base = "100ms"
    ///     factor = 3.0
    ///     max_delay = "5s"
    ///     jitter = "equal"
    ///     max_retries = 4
    ///     seed = 7
    /// "#)?;
    /// let policy = spec.build()?;
    /// let same = BackoffPolicy::exponential(Duration::from_millis(100))
    ///     .factor(3.0)
    ///     .max_delay(Duration::from_secs(5))
    ///     .jitter(Jitter::Equal)
    ///     .max_retries(4)
    ///     .seed(7)
    ///     .build()?;
    /// assert!(policy.schedule_with_seed(1).eq(same.schedule_with_seed(1)));
    ///
    /// let spec: BackoffSpec = toml::from_str("base = \"100ms\"\nfactor = 0.5")?;
    /// let err = spec.build().unwrap_err();
    /// assert_eq!(err.knob(), "backoff.factor");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq)]
    pub struct BackoffSpec;

    /// How delays grow (default exponential).
    #[serde(default)]
    pub growth: GrowthKind,

    /// The first delay's envelope (required).
    #[serde(with = "crate::config::duration")]
    pub base: Duration,

    /// Growth factor, exponential growth only (default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,

    /// What each retry adds, linear growth only (required there).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<Duration>,

    /// Cap on any single delay (default [`DEFAULT_MAX_DELAY`], or the base if larger).
    max_delay: Option<Duration> = None,

    /// How delays are randomised: `none`, `full`, `equal` or `decorrelated` (default `full`
    /// for exponential growth, `none` otherwise).
    jitter: Jitter = Jitter::Full,

    /// Stop after handing out this many delays (retries). Unbounded unless set; retry layers
    /// bound attempts on their own too.
    max_retries: Option<u32> = None,

    /// Stop rather than hand out a delay that would bring the schedule's total past `max`.
    /// Unbounded unless set.
    max_elapsed: Option<Duration> = None,

    /// Seed the jitter so runs are reproducible. Unseeded policies draw a random seed.
    seed: Option<u64> = None,
}

#[derive(Debug, Clone, Copy)]
enum GrowthSpec {
    Exponential { factor: f64 },
    Linear { step: Duration },
    Constant,
}

/// The cap used when none is set: 30 s, long enough for any sane retry and short enough that a
/// forgotten cap never parks a request for minutes.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

impl BackoffPolicy {
    /// Delays `base · factor^n` (factor 2 unless set), capped at [`DEFAULT_MAX_DELAY`] unless
    /// set, with full jitter unless set.
    pub fn exponential(base: Duration) -> BackoffBuilder {
        BackoffBuilder::new(GrowthSpec::Exponential { factor: 2.0 }, base)
    }

    /// Delays `base + step · n`, capped, with no jitter unless set.
    pub fn linear(base: Duration, step: Duration) -> BackoffBuilder {
        let mut b = BackoffBuilder::new(GrowthSpec::Linear { step }, base);
        b.knobs.jitter = Jitter::None;
        b
    }

    /// The same delay every time, with no jitter unless set.
    pub fn constant(delay: Duration) -> BackoffBuilder {
        let mut b = BackoffBuilder::new(GrowthSpec::Constant, delay);
        b.knobs.jitter = Jitter::None;
        b
    }

    /// A schedule drawn from an explicit seed, independent of the policy's own seed sequence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::backoff::{Backoff, BackoffPolicy};
    ///
    /// let policy = BackoffPolicy::exponential(Duration::from_millis(10)).build()?;
    /// let a: Vec<_> = policy.schedule_with_seed(3).take(5).collect();
    /// let b: Vec<_> = policy.schedule_with_seed(3).take(5).collect();
    /// assert_eq!(a, b);
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn schedule_with_seed(&self, seed: u64) -> Schedule {
        Schedule {
            policy: PolicyCore::from(self),
            rng: SplitMix64::new(seed),
            retries: 0,
            elapsed_nanos: 0,
            prev_nanos: self.base_nanos,
            envelope_nanos: self.base_nanos as f64,
        }
    }

    /// The cap on any single delay.
    pub fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.cap_nanos)
    }

    /// The first delay's envelope.
    pub fn base(&self) -> Duration {
        Duration::from_nanos(self.base_nanos)
    }

    /// How many delays a schedule hands out before stopping, if bounded.
    pub fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The most a schedule's delays may add up to, if bounded.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed_nanos.map(Duration::from_nanos)
    }

    /// The jitter kind.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The worst case: the sum of the largest delays a schedule can hand out over `retries`
    /// retries, respecting `max_retries` and `max_elapsed`. Stacks use it to check that the
    /// retries fit inside a total deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::backoff::BackoffPolicy;
    ///
    /// let p = BackoffPolicy::exponential(Duration::from_millis(100))
    ///     .max_delay(Duration::from_millis(250))
    ///     .build()?;
    /// // 100 + 200 + 250
    /// assert_eq!(p.worst_case_total(3), Duration::from_millis(550));
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn worst_case_total(&self, retries: u32) -> Duration {
        let n = self.max_retries.map_or(retries, |m| m.min(retries));
        // Walk the schedule's own envelope, so this bound and real schedules cannot disagree
        // by a rounding.
        let mut envelope = self.schedule_with_seed(0);
        // u128: thousands of delays at a cap of centuries must not saturate below the truth.
        let mut total: u128 = 0;
        let mut prev = self.base_nanos;
        for i in 0..n {
            let d = match self.jitter {
                Jitter::Decorrelated => prev
                    .saturating_mul(3)
                    .clamp(self.base_nanos, self.cap_nanos),
                _ => {
                    envelope.retries = i;
                    envelope.take_envelope()
                }
            };
            total += u128::from(d);
            // Once the delay sits at the cap (or cannot grow at all) every later one equals
            // it: finish arithmetically. Past 10,000 steps, bound the rest by the cap.
            let saturated = d == self.cap_nanos || (i > 0 && d == prev && !self.grows());
            if saturated || i >= 10_000 {
                let per = if saturated { d } else { self.cap_nanos };
                total += u128::from(per) * u128::from(n - i - 1);
                break;
            }
            prev = d;
        }
        if let Some(max) = self.max_elapsed_nanos {
            total = total.min(u128::from(max));
        }
        let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (total % 1_000_000_000) as u32)
    }
}

impl BackoffPolicy {
    /// Whether the envelope can still grow from one delay to the next.
    fn grows(&self) -> bool {
        match self.growth {
            Growth::Exponential { factor } => factor > 1.0,
            Growth::Linear { step_nanos } => step_nanos > 0,
            Growth::Constant => false,
        }
    }
}

impl MakeBackoff for BackoffPolicy {
    type Backoff = Schedule;

    fn make_backoff(&self) -> Schedule {
        let n = self.schedules_made.fetch_add(1, Ordering::Relaxed);
        self.schedule_with_seed(SplitMix64::mix(self.seed, n))
    }

    fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.schedules_made = Arc::new(AtomicU64::new(0));
    }

    fn max_total_delay(&self, retries: u32) -> Option<Duration> {
        Some(self.worst_case_total(retries))
    }
}

impl BackoffBuilder {
    fn new(growth: GrowthSpec, base: Duration) -> Self {
        BackoffBuilder {
            growth,
            base,
            knobs: Knobs::default(),
        }
    }

    /// Growth factor for exponential backoff (default 2.0); must be finite and at least 1.
    pub fn factor(mut self, factor: f64) -> Self {
        if let GrowthSpec::Exponential { .. } = self.growth {
            self.growth = GrowthSpec::Exponential { factor };
        }
        self
    }

    /// Check every knob and build the policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::backoff::BackoffPolicy;
    ///
    /// let err = BackoffPolicy::exponential(Duration::from_secs(2))
    ///     .max_delay(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.knob(), "backoff.max_delay");
    /// ```
    pub fn build(self) -> Result<BackoffPolicy, ConfigError> {
        let base_nanos = check_duration("backoff.base", self.base)?;
        if base_nanos == 0 {
            return Err(ConfigError::new(
                "backoff.base",
                "must be greater than zero: zero-delay retries are the retry storm riprap exists to prevent",
            ));
        }
        let cap_nanos = match self.knobs.max_delay {
            Some(max) => {
                let cap = check_duration("backoff.max_delay", max)?;
                if cap < base_nanos {
                    return Err(ConfigError::new(
                        "backoff.max_delay",
                        format!(
                            "must be at least the base delay {:?} (got {max:?})",
                            self.base
                        ),
                    ));
                }
                cap
            }
            None => check_duration("backoff.max_delay", DEFAULT_MAX_DELAY)?.max(base_nanos),
        };
        let growth = match self.growth {
            GrowthSpec::Exponential { factor } => {
                if !factor.is_finite() || factor < 1.0 {
                    return Err(ConfigError::new(
                        "backoff.factor",
                        format!("must be finite and at least 1.0 (got {factor})"),
                    ));
                }
                Growth::Exponential { factor }
            }
            GrowthSpec::Linear { step } => Growth::Linear {
                step_nanos: check_duration("backoff.step", step)?,
            },
            GrowthSpec::Constant => Growth::Constant,
        };
        if self.knobs.max_retries == Some(0) {
            return Err(ConfigError::new(
                "backoff.max_retries",
                "must be at least 1; to disable retries, set the retry layer's max_attempts to 1",
            ));
        }
        let max_elapsed_nanos = match self.knobs.max_elapsed {
            Some(d) => {
                let n = check_duration("backoff.max_elapsed", d)?;
                if n == 0 {
                    return Err(ConfigError::new(
                        "backoff.max_elapsed",
                        "must be greater than zero",
                    ));
                }
                Some(n)
            }
            None => None,
        };
        let seed = match self.knobs.seed {
            Some(s) => s,
            None => SplitMix64::random_seed(base_nanos ^ cap_nanos),
        };
        Ok(BackoffPolicy {
            growth,
            jitter: self.knobs.jitter,
            base_nanos,
            cap_nanos,
            max_retries: self.knobs.max_retries,
            max_elapsed_nanos,
            seed,
            schedules_made: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// The knobs a schedule needs, copied out of the policy so a schedule owns no `Arc`.
#[derive(Debug, Clone, Copy)]
struct PolicyCore {
    growth: Growth,
    jitter: Jitter,
    base_nanos: u64,
    cap_nanos: u64,
    max_retries: Option<u32>,
    max_elapsed_nanos: Option<u64>,
}

impl From<&BackoffPolicy> for PolicyCore {
    fn from(p: &BackoffPolicy) -> Self {
        PolicyCore {
            growth: p.growth,
            jitter: p.jitter,
            base_nanos: p.base_nanos,
            cap_nanos: p.cap_nanos,
            max_retries: p.max_retries,
            max_elapsed_nanos: p.max_elapsed_nanos,
        }
    }
}

impl PolicyCore {
    /// `min(cap, growth(n))` in nanoseconds, saturating.
    fn envelope(&self, n: u32) -> u64 {
        let raw = match self.growth {
            Growth::Constant => self.base_nanos,
            Growth::Linear { step_nanos } => self
                .base_nanos
                .saturating_add(step_nanos.saturating_mul(u64::from(n))),
            Growth::Exponential { factor } => {
                let exp = i32::try_from(n).unwrap_or(i32::MAX);
                let v = self.base_nanos as f64 * factor.powi(exp);
                // NaN cannot arise (base > 0, factor >= 1); infinity and huge values saturate.
                if v.is_finite() && v < self.cap_nanos as f64 {
                    v as u64
                } else {
                    self.cap_nanos
                }
            }
        };
        raw.min(self.cap_nanos)
    }
}

/// A [`BackoffPolicy`]'s schedule for one request. Also an `Iterator` over its delays.
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: PolicyCore,
    rng: SplitMix64,
    retries: u32,
    elapsed_nanos: u64,
    prev_nanos: u64,
    /// The exponential envelope for the next draw, grown by one multiplication per draw and
    /// frozen once it reaches the cap: `powi` on a growing exponent costs ten times more.
    envelope_nanos: f64,
}

impl Schedule {
    /// `min(cap, growth(retries))`, advancing the incremental exponential envelope.
    fn take_envelope(&mut self) -> u64 {
        let p = &self.policy;
        match p.growth {
            Growth::Exponential { factor } => {
                let cap = p.cap_nanos as f64;
                if self.envelope_nanos >= cap {
                    return p.cap_nanos;
                }
                let env = self.envelope_nanos as u64;
                self.envelope_nanos *= factor;
                env.min(p.cap_nanos)
            }
            _ => p.envelope(self.retries),
        }
    }

    /// How many delays this schedule has handed out since it was made or reset.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The sum of the delays handed out so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_nanos)
    }
}

impl Backoff for Schedule {
    fn next_delay(&mut self) -> Option<Duration> {
        let p = self.policy;
        if p.max_retries.is_some_and(|max| self.retries >= max) {
            return None;
        }
        let nanos = match p.jitter {
            Jitter::None => self.take_envelope(),
            Jitter::Full => {
                let env = self.take_envelope();
                self.rng.between(0, env)
            }
            Jitter::Equal => {
                let env = self.take_envelope();
                self.rng.between(env - env / 2, env)
            }
            Jitter::Decorrelated => {
                let (base, cap) = (p.base_nanos, p.cap_nanos);
                let d = self
                    .rng
                    .between(base, self.prev_nanos.saturating_mul(3))
                    .min(cap);
                self.prev_nanos = d;
                d
            }
        };
        let elapsed = match (self.elapsed_nanos.checked_add(nanos), p.max_elapsed_nanos) {
            (Some(e), Some(max)) if e <= max => e,
            (_, Some(_)) => return None,
            (e, None) => e.unwrap_or(u64::MAX),
        };
        self.elapsed_nanos = elapsed;
        self.retries = self.retries.saturating_add(1);
        Some(Duration::from_nanos(nanos))
    }

    fn reset(&mut self) {
        self.retries = 0;
        self.elapsed_nanos = 0;
        self.prev_nanos = self.policy.base_nanos;
        self.envelope_nanos = self.policy.base_nanos as f64;
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next_delay()
    }
}

impl<B: Backoff + ?Sized> Backoff for Box<B> {
    fn next_delay(&mut self) -> Option<Duration> {
        (**self).next_delay()
    }

    fn reset(&mut self) {
        (**self).reset()
    }
}
