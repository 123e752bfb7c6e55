//! Finagle-style ratio budget: deposits per request, expiring after a TTL, plus a reserve.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Budget, Failure, Withdrawal};
use crate::error::{ConfigError, check_duration};

/// The window is cut into this many slots; a deposit expires a slot at a time.
const SLOTS: u64 = 10;
/// Units a retry costs. A deposit is worth `ratio × RETRY_COST` units, so ratios resolve to
/// a tenth of a percent.
const RETRY_COST: i64 = 1000;
/// Deposits between clock reads. Reading the clock is what makes a budget slow, so a deposit
/// only counts itself; every `ROLL_EVERY`-th one (and every withdrawal) reads the clock and
/// moves the pending count into a time slot.
const ROLL_EVERY: u64 = 32;

/// A Finagle-style retry budget: retries may be at most `ratio` of recent first attempts,
/// plus a reserve of `min_retries_per_sec × ttl`.
///
/// Each first attempt deposits `ratio` of a retry; each retry withdraws one. Deposits (and
/// withdrawals) expire after `ttl`, so the budget tracks the recent past, and the reserve
/// lets a client with little traffic still retry. Defaults: 20 %, 10 retries/s, 10 s.
///
/// Clones share one account. Lock-free: a deposit is one atomic add on a counter, without
/// reading the clock; every 32nd deposit and every withdrawal reads `tokio::time` once and
/// credits the counted deposits to the time slot of the previous reading. Deposits therefore
/// expire up to one such interval *early*, never late: the budget is never more generous than
/// an exact one. At 50 requests/s or more that interval is under a slot (a tenth of `ttl`); below
/// that the reserve dominates anyway.
///
/// ```
/// use std::time::Duration;
/// use riprap::budget::{Budget, Failure, RatioBudget};
/// use riprap::classify::Class;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), riprap::ConfigError> {
/// let budget = RatioBudget::builder()
///     .ratio(0.5)
///     .min_retries_per_sec(0)
///     .ttl(Duration::from_secs(10))
///     .build()?;
/// budget.deposit();
/// budget.deposit();
/// assert_eq!(budget.balance(), 1.0);
/// tokio::time::advance(Duration::from_secs(11)).await;
/// assert_eq!(budget.balance(), 0.0); // the deposits expired
/// assert!(budget.try_withdraw(Failure::new(Class::Transient)).is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RatioBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    slot_nanos: u64,
    deposit_units: i64,
    reserve: i64,
    /// Deposits counted but not yet credited to a slot.
    pending: AtomicU64,
    /// The tick (slot-sized interval since `origin`) of the latest clock reading.
    last_tick: AtomicU64,
    /// Per slot, `tick` (low 32 bits) in the high word and the signed net amount in the low
    /// word, so a slot is reclaimed for a new tick and updated by one compare-and-swap.
    slots: [AtomicU64; SLOTS as usize],
}

/// Builder for [`RatioBudget`]; see [`RatioBudget::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct RatioBudgetBuilder {
    ratio: f64,
    min_retries_per_sec: u32,
    ttl: Duration,
}

impl Default for RatioBudgetBuilder {
    fn default() -> Self {
        RatioBudgetBuilder {
            ratio: 0.2,
            min_retries_per_sec: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RatioBudgetBuilder {
    /// Retries allowed per first attempt, in `[0, 10]` (default 0.2: 20 %).
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries per second allowed whatever the traffic, at most 1,000,000 (default 10).
    pub fn min_retries_per_sec(mut self, n: u32) -> Self {
        self.min_retries_per_sec = n;
        self
    }

    /// How long a deposit counts, from 1 s to 1 h (default 10 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The ratio, the reserve in retries per second and the ttl, as set (for a budget
    /// shared by a fleet, which keeps the same knobs).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn knobs(&self) -> (f64, u32, Duration) {
        (self.ratio, self.min_retries_per_sec, self.ttl)
    }

    /// Check every knob and build the budget.
    ///
    /// ```
    /// use riprap::budget::RatioBudget;
    /// let err = RatioBudget::builder().ratio(f64::NAN).build().unwrap_err();
    /// assert_eq!(err.knob(), "ratio_budget.ratio");
    /// ```
    pub fn build(self) -> Result<RatioBudget, ConfigError> {
        if !(self.ratio.is_finite() && (0.0..=10.0).contains(&self.ratio)) {
            return Err(ConfigError::new(
                "ratio_budget.ratio",
                format!("must be a number from 0 to 10 (got {})", self.ratio),
            ));
        }
        if self.min_retries_per_sec > 1_000_000 {
            return Err(ConfigError::new(
                "ratio_budget.min_retries_per_sec",
                format!("must be at most 1000000 (got {})", self.min_retries_per_sec),
            ));
        }
        let ttl_nanos = check_duration("ratio_budget.ttl", self.ttl)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.ttl) {
            return Err(ConfigError::new(
                "ratio_budget.ttl",
                format!("must be from 1 s to 1 h (got {:?})", self.ttl),
            ));
        }
        let deposit_units = (self.ratio * RETRY_COST as f64).round() as i64;
        if deposit_units == 0 && self.min_retries_per_sec == 0 {
            return Err(ConfigError::new(
                "ratio_budget.ratio",
                "with min_retries_per_sec also 0 this budget refuses every retry; \
                 set the retry layer's max_attempts to 1 instead",
            ));
        }
        Ok(RatioBudget::from_parts(
            deposit_units,
            self.min_retries_per_sec,
            ttl_nanos,
        ))
    }
}

impl Default for RatioBudget {
    /// 20 % of requests, a reserve of 10 retries/s, deposits counting for 10 s.
    fn default() -> Self {
        RatioBudget::from_parts(200, 10, 10_000_000_000)
    }
}

impl RatioBudget {
    /// A builder starting from the defaults (20 %, 10 retries/s, 10 s).
    pub fn builder() -> RatioBudgetBuilder {
        RatioBudgetBuilder::default()
    }

    fn from_parts(deposit_units: i64, min_retries_per_sec: u32, ttl_nanos: u64) -> Self {
        // Reserve in units: retries/s × ttl × cost, exact in u128 and far inside i64 given
        // the validated ranges (at most 10^6 × 3600 × 1000).
        let reserve = u128::from(min_retries_per_sec) * u128::from(ttl_nanos) * RETRY_COST as u128
            / 1_000_000_000;
        RatioBudget {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                slot_nanos: (ttl_nanos / SLOTS).max(1),
                deposit_units,
                reserve: i64::try_from(reserve).unwrap_or(i64::MAX),
                pending: AtomicU64::new(0),
                last_tick: AtomicU64::new(0),
                slots: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }

    /// Retries' worth of credit available now, reserve included (may be fractional).
    pub fn balance(&self) -> f64 {
        let now = self.inner.now_tick();
        self.inner.roll(now);
        self.inner.balance_at(now).max(0) as f64 / RETRY_COST as f64
    }

    /// The reserve, in retries: `min_retries_per_sec × ttl`.
    pub fn reserve(&self) -> f64 {
        self.inner.reserve as f64 / RETRY_COST as f64
    }
}

impl Budget for RatioBudget {
    #[inline]
    fn deposit(&self) {
        let counted = self.inner.pending.fetch_add(1, Ordering::Relaxed) + 1;
        if counted % ROLL_EVERY == 0 {
            self.inner.roll(self.inner.now_tick());
        }
    }

    fn try_withdraw(&self, _after: Failure) -> Option<Withdrawal> {
        let inner = &*self.inner;
        let now = inner.now_tick();
        inner.roll(now);
        if inner.balance_at(now) < RETRY_COST || !inner.add(now, -RETRY_COST) {
            return None;
        }
        // Two withdrawals may both have seen enough credit: whoever finds the account
        // overdrawn after its own withdrawal puts it back, so the budget never goes negative.
        if inner.balance_at(now) < 0 {
            inner.add(now, RETRY_COST);
            return None;
        }
        Some(Withdrawal::new(RETRY_COST as u64))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        let inner = &*self.inner;
        let now = inner.now_tick();
        inner.roll(now);
        let units = i64::try_from(withdrawal.units()).unwrap_or(i64::MAX);
        inner.add(now, units);
    }

    fn can_withdraw(&self, _after: Failure) -> bool {
        let now = self.inner.now_tick();
        self.inner.roll(now);
        self.inner.balance_at(now) >= RETRY_COST
    }
}

fn pack(tick: u32, value: i32) -> u64 {
    (u64::from(tick) << 32) | u64::from(value as u32)
}

fn unpack(word: u64) -> (u32, i32) {
    ((word >> 32) as u32, word as u32 as i32)
}

impl Inner {
    fn now_tick(&self) -> u64 {
        let nanos = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos();
        // u64 nanoseconds last 584 years; past that the clock simply stops advancing.
        u64::try_from(nanos).unwrap_or(u64::MAX) / self.slot_nanos
    }

    /// Credit the counted deposits to the tick of the previous clock reading: they happened
    /// after it, so they expire no later than they should.
    fn roll(&self, now: u64) {
        // Plain loads first: under a retry storm every withdrawal rolls, and read-modify-writes
        // of lines nobody changed would only bounce them between cores.
        let mut prev = self.last_tick.load(Ordering::Acquire);
        if prev < now {
            prev = self.last_tick.fetch_max(now, Ordering::AcqRel);
        }
        if self.pending.load(Ordering::Acquire) == 0 {
            return;
        }
        let counted = self.pending.swap(0, Ordering::AcqRel);
        if counted == 0 || self.deposit_units == 0 {
            return;
        }
        let at = prev.min(now);
        if now - at < SLOTS {
            let units = i64::try_from(counted)
                .unwrap_or(i64::MAX)
                .saturating_mul(self.deposit_units);
            self.add(at, units);
        }
    }

    /// Reserve plus every live slot: ticks within the last `SLOTS` ticks of `now`, or a little
    /// ahead of it (a concurrent caller read the clock later).
    fn balance_at(&self, now: u64) -> i64 {
        let now32 = now as u32;
        self.slots.iter().fold(self.reserve, |sum, slot| {
            let (tick, value) = unpack(slot.load(Ordering::Acquire));
            let age = now32.wrapping_sub(tick) as i32;
            if age.unsigned_abs() < SLOTS as u32 {
                sum.saturating_add(i64::from(value))
            } else {
                sum
            }
        })
    }

    /// Add `delta` units to `tick`'s slot, reclaiming the slot if it holds an expired tick.
    /// Credits saturate; a debit that would overflow, or that targets a tick already expired,
    /// is not made and `false` returned, so nothing is ever lost in the caller's favour.
    fn add(&self, tick: u64, delta: i64) -> bool {
        let slot = &self.slots[(tick % SLOTS) as usize];
        let tick32 = tick as u32;
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let (held, value) = unpack(cur);
            let age = tick32.wrapping_sub(held) as i32;
            let base = match age {
                0 => i64::from(value),
                a if a > 0 => 0,
                // The slot already serves a later tick, so `tick` has expired.
                _ => return false,
            };
            let sum = base.saturating_add(delta);
            let next = if delta >= 0 {
                sum.min(i64::from(i32::MAX))
            } else if sum < i64::from(i32::MIN) {
                return false;
            } else {
                sum
            };
            match slot.compare_exchange_weak(
                cur,
                pack(tick32, next as i32),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}
