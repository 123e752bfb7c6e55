//! When to trip: the [`TripPolicy`] trait, consecutive failures, and the any-of combinator.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::Counted;
use crate::classify::Class;
use crate::error::ConfigError;

/// One finished call, as a [`TripPolicy`] sees it: the classifier's verdict, how the breaker
/// counts it, and when.
///
/// Every call admitted while closed reaches the policy, including those the breaker does not
/// count (by default throttles, permanent errors and local refusals, [`Counted::Ignored`]), so
/// a policy can be written on the class itself: "trip after ten unauthenticated calls", or
/// "ignore throttles". The built-in policies skip what is not counted.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{Call, Counted};
/// use riprap::classify::Class;
///
/// let call = Call::new(Class::Permanent, Duration::ZERO, Duration::ZERO);
/// assert_eq!(call.counted(), Counted::Ignored); // as a breaker counts it by default
/// assert!(!call.failed());
/// assert!(Call::new(Class::TimedOut, Duration::ZERO, Duration::ZERO).failed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    class: Class,
    counted: Counted,
    elapsed: Duration,
    at: Duration,
}

impl Call {
    /// A call classified `class`, counted as a breaker counts it by default (transient
    /// failures and timeouts against the dependency, successes for it, the rest not at all),
    /// that completed at `at` after `elapsed`.
    pub fn new(class: Class, elapsed: Duration, at: Duration) -> Self {
        let counted = match class {
            Class::Success => Counted::Success,
            c if c.is_failure() => Counted::Failure,
            _ => Counted::Ignored,
        };
        Call {
            class,
            counted,
            elapsed,
            at,
        }
    }

    /// The same call, counted as `counted`.
    pub fn counted_as(mut self, counted: Counted) -> Self {
        self.counted = counted;
        self
    }

    /// The classifier's verdict.
    pub fn class(&self) -> Class {
        self.class
    }

    /// How the breaker counts it, by its `count_*_as` settings.
    pub fn counted(&self) -> Counted {
        self.counted
    }

    /// Whether it counts as a failure of the dependency.
    pub fn failed(&self) -> bool {
        self.counted == Counted::Failure
    }

    /// Whether it is not counted at all.
    pub fn ignored(&self) -> bool {
        self.counted == Counted::Ignored
    }

    /// How long the call took, from admission to its response. Zero unless the policy asked
    /// for the clock with [`TripPolicy::needs_clock`].
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// When the call completed, measured from the breaker's creation on `tokio`'s clock. Zero
    /// unless the policy asked for the clock.
    pub fn at(&self) -> Duration {
        self.at
    }
}

/// What a policy knows about its window, for [`BreakerMetrics`](super::BreakerMetrics).
///
/// Every field is optional because not every policy has a window: a consecutive-failure count
/// has no rate. Combined policies report each field from the first policy that has it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct PolicyStats {
    /// Counted calls in the window.
    pub calls: Option<u64>,
    /// Failures over counted calls in the window, in `[0, 1]`.
    pub failure_rate: Option<f64>,
    /// Slow calls over counted calls in the window, in `[0, 1]`.
    pub slow_rate: Option<f64>,
    /// The current run of failures with no success between them.
    pub consecutive_failures: Option<u32>,
}

impl PolicyStats {
    fn or(self, other: PolicyStats) -> PolicyStats {
        PolicyStats {
            calls: self.calls.or(other.calls),
            failure_rate: self.failure_rate.or(other.failure_rate),
            slow_rate: self.slow_rate.or(other.slow_rate),
            consecutive_failures: self.consecutive_failures.or(other.consecutive_failures),
        }
    }
}

/// Decides, from the outcomes seen while closed, when the breaker opens.
///
/// A policy is shared by every clone of its breaker and called concurrently from the request
/// path, so it takes `&self` and keeps its counts in atomics: no lock, no allocation. The
/// breaker resets it whenever it opens, and ignores outcomes of calls admitted before a
/// transition, so a policy only ever sees one closed period at a time.
///
/// Built-ins: [`ConsecutiveFailures`], [`CountWindow`](super::CountWindow) (failure and
/// slow-call rates over the last N calls) and [`TimeWindow`](super::TimeWindow) (the same over
/// rolling time buckets). Combine them with [`TripPolicyExt::or`].
///
/// A policy sees every call's [`Class`], so it can be written on the verdict itself:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use riprap::breaker::{Call, TripPolicy};
/// use riprap::classify::Class;
///
/// /// Trips after `n` permanent errors in a row (a revoked API key answering 401 to every
/// /// call), which the breaker does not count against the dependency by default.
/// struct Unauthenticated { n: u32, run: AtomicU32 }
///
/// impl TripPolicy for Unauthenticated {
///     fn record(&self, call: Call) -> bool {
///         if call.class() == Class::Permanent {
///             self.run.fetch_add(1, Ordering::Relaxed) + 1 >= self.n
///         } else {
///             self.run.store(0, Ordering::Relaxed);
///             false
///         }
///     }
///     fn reset(&self) {
///         self.run.store(0, Ordering::Relaxed);
///     }
///     fn fresh(&self) -> Self {
///         Unauthenticated { n: self.n, run: AtomicU32::new(0) }
///     }
/// }
///
/// let policy = Unauthenticated { n: 2, run: AtomicU32::new(0) };
/// let denied = Call::new(Class::Permanent, Duration::ZERO, Duration::ZERO);
/// assert!(!policy.record(denied));
/// assert!(policy.record(denied));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a trip policy",
    note = "use `ConsecutiveFailures`, `CountWindow` or `TimeWindow` (combined with `.or(..)`), or implement `riprap::breaker::TripPolicy`"
)]
pub trait TripPolicy: Send + Sync + 'static {
    /// Record one finished call (counted or not: see [`Call::counted`]); `true` opens the
    /// breaker.
    fn record(&self, call: Call) -> bool;

    /// Forget every outcome: the breaker opened, or an operator reset it.
    fn reset(&self);

    /// A policy with the same settings and no history. Keyed breakers call it to give every
    /// key its own window.
    fn fresh(&self) -> Self
    where
        Self: Sized;

    /// Whether [`Call::elapsed`] and [`Call::at`] are needed. Without it the breaker
    /// reads no clock on the closed path.
    fn needs_clock(&self) -> bool {
        false
    }

    /// Figures for the metrics snapshot; `now` is measured like [`Call::at`].
    fn stats(&self, now: Duration) -> PolicyStats {
        let _ = now;
        PolicyStats::default()
    }

    /// Whether a call that took `elapsed` is slow by this policy's measure. A half-open probe
    /// that succeeds but is slow counts as a failed probe and reopens the breaker, so slowness
    /// that tripped it cannot close it again. Defaults to `false` (no slow-call threshold).
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::{CountWindow, TripPolicy};
    ///
    /// let w = CountWindow::last(10).slow_calls(Duration::from_secs(1), 0.5).build()?;
    /// assert!(w.is_slow(Duration::from_secs(2)));
    /// assert!(!w.is_slow(Duration::from_millis(900)));
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    fn is_slow(&self, elapsed: Duration) -> bool {
        let _ = elapsed;
        false
    }
}

/// Combinators for every [`TripPolicy`].
pub trait TripPolicyExt: TripPolicy + Sized {
    /// Trip when either policy says so. Both see every outcome.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::{ConsecutiveFailures, CountWindow, TripPolicyExt};
    ///
    /// let policy = ConsecutiveFailures::new(5)?
    ///     .or(CountWindow::last(100).failure_rate(0.5).min_calls(20).build()?);
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    fn or<B: TripPolicy>(self, other: B) -> AnyOf<Self, B> {
        AnyOf { a: self, b: other }
    }
}

impl<P: TripPolicy> TripPolicyExt for P {}

/// Trips when either of two policies trips; see [`TripPolicyExt::or`].
#[derive(Debug)]
pub struct AnyOf<A, B> {
    a: A,
    b: B,
}

impl<A, B> AnyOf<A, B> {
    /// The left-hand policy.
    pub fn first(&self) -> &A {
        &self.a
    }

    /// The right-hand policy.
    pub fn second(&self) -> &B {
        &self.b
    }
}

impl<A: TripPolicy, B: TripPolicy> TripPolicy for AnyOf<A, B> {
    fn record(&self, call: Call) -> bool {
        // Both must see the outcome, so no short-circuit.
        let a = self.a.record(call);
        let b = self.b.record(call);
        a | b
    }

    fn reset(&self) {
        self.a.reset();
        self.b.reset();
    }

    fn fresh(&self) -> Self {
        AnyOf {
            a: self.a.fresh(),
            b: self.b.fresh(),
        }
    }

    fn needs_clock(&self) -> bool {
        self.a.needs_clock() || self.b.needs_clock()
    }

    fn stats(&self, now: Duration) -> PolicyStats {
        self.a.stats(now).or(self.b.stats(now))
    }

    fn is_slow(&self, elapsed: Duration) -> bool {
        self.a.is_slow(elapsed) || self.b.is_slow(elapsed)
    }
}

/// Trips after `n` failures in a row; any success starts the count over.
///
/// The cheapest policy and riprap's default: a success while the count is zero writes
/// nothing, so the healthy path is read-only. It trips at any traffic level (a window's
/// minimum calls never gets in the way at one call a minute), and a healthy dependency with a
/// 1 % error rate produces five failures in a row about once in ten billion calls. It does
/// not notice a dependency that fails every other call; add a
/// [`CountWindow`](super::CountWindow) for that.
///
/// ```
/// use riprap::breaker::{ConsecutiveFailures, Call, TripPolicy};
/// use riprap::classify::Class;
/// use std::time::Duration;
///
/// let policy = ConsecutiveFailures::new(2)?;
/// let fail = Call::new(Class::Transient, Duration::ZERO, Duration::ZERO);
/// assert!(!policy.record(fail));
/// assert!(policy.record(fail));
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct ConsecutiveFailures {
    threshold: u32,
    run: super::Padded<AtomicU32>,
}

impl ConsecutiveFailures {
    /// Trip on the `n`th failure in a row; `n` must be at least 1.
    pub fn new(n: u32) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new(
                "breaker.consecutive_failures",
                "must be at least 1",
            ));
        }
        Ok(ConsecutiveFailures {
            threshold: n,
            run: super::Padded(AtomicU32::new(0)),
        })
    }

    /// For presets: `n` is a known-good constant.
    pub(crate) fn with(n: u32) -> Self {
        ConsecutiveFailures {
            threshold: n.max(1),
            run: super::Padded(AtomicU32::new(0)),
        }
    }

    /// The failure count that trips.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

impl TripPolicy for ConsecutiveFailures {
    fn record(&self, call: Call) -> bool {
        let run = &self.run.0;
        if call.ignored() {
            return false;
        }
        if call.failed() {
            run.fetch_add(1, Ordering::Relaxed).saturating_add(1) >= self.threshold
        } else {
            // Read first: on a healthy dependency the count is already zero and the cache
            // line stays shared between cores instead of bouncing on every success.
            if run.load(Ordering::Relaxed) != 0 {
                run.store(0, Ordering::Relaxed);
            }
            false
        }
    }

    fn reset(&self) {
        self.run.0.store(0, Ordering::Relaxed);
    }

    fn fresh(&self) -> Self {
        ConsecutiveFailures {
            threshold: self.threshold,
            run: super::Padded(AtomicU32::new(0)),
        }
    }

    fn stats(&self, _now: Duration) -> PolicyStats {
        PolicyStats {
            consecutive_failures: Some(self.run.0.load(Ordering::Relaxed)),
            ..PolicyStats::default()
        }
    }
}
