//! Finagle-style ratio budget: deposits per request, expiring after a TTL, plus a reserve.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Budget, Withdrawal};
use crate::classify::Class;
use crate::error::{ConfigError, check_duration};

/// The window is cut into this many slots of `ttl / SLOTS`.
const SLOTS: u64 = 10;
/// Units a retry costs. A deposit is worth `ratio × RETRY_COST` units, so ratios resolve to
/// a tenth of a percent.
const RETRY_COST: i64 = 1000;
/// Slots in each ring: enough for the 11 or 12 ticks a withdrawal is counted in plus 4 ticks
/// that a caller with a later clock reading may already have written, all on distinct slots.
const RING: u64 = 16;
/// Ticks ahead of a caller's own reading whose withdrawals it still counts.
const AHEAD: u64 = 4;
/// A slot word: the tick's lap (`tick / RING`, 34 bits) above a 30-bit value. Ticks are
/// nanoseconds over a slot of at least 100 ms, so below 2^38 for the whole range of the clock
/// (584 years) and a lap never wraps: a slot can never be mistaken for a later lap's.
const VALUE_BITS: u32 = 30;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// Deposits per slot saturate here (in units); a saturated slot only under-counts.
const DEPOSIT_MAX: i64 = (1 << VALUE_BITS) - 1;
/// Net withdrawals per slot, signed: a withdrawal that would pass the top is refused, a refund
/// that would pass the bottom gives back less.
const WITHDRAW_MAX: i64 = (1 << (VALUE_BITS - 1)) - 1;
const WITHDRAW_MIN: i64 = -(1 << (VALUE_BITS - 1));
/// The highest tick: the clock's 2^64 ns over the shortest slot (100 ms).
const MAX_TICK: u64 = u64::MAX / 100_000_000;
/// Deposits counted between clock readings while traffic is heavy.
const BATCH: u64 = 32;
/// The pending word: the tick of the latest clock reading (above bit 24), a flag for thin
/// traffic (bit 23) and the deposits counted since that reading (23 bits).
const LOW: u64 = 1 << 23;
const COUNT: u64 = LOW - 1;
const TICK_SHIFT: u32 = 24;

/// A Finagle-style retry budget: retries may be at most `ratio` of recent first attempts,
/// plus a reserve of `min_retries_per_sec × ttl`.
///
/// Each first attempt deposits `ratio` of a retry; each retry withdraws one. Deposits and
/// withdrawals expire after `ttl`, so the budget tracks the recent past, and the reserve
/// lets a client with little traffic still retry. Defaults: 20 %, 10 retries/s, 10 s.
///
/// **Never more generous than an exact window.** Time is cut into slots of `ttl / 10`. A
/// deposit counts for the 10 slots up to and including its own, so it leaves up to one slot
/// *early*; a withdrawal counts for 11, so it leaves up to one slot *late*. At every retry it
/// allows, the retries of the last `ttl` (this one included) are therefore at most `ratio ×`
/// the first attempts of the last `ttl`, plus the reserve: the test an exact sliding window
/// would make. A refund cancels its withdrawal in the withdrawal's own slot.
///
/// **What that bounds, and what it does not.** In any span of `ttl`, retries are at most
/// `ratio ×` the first attempts of that span and the `ttl` before it, plus the reserve. Over a
/// storm whose retries run from time *a* to *b*, retries are at most `ratio × requests +
/// min_retries_per_sec × (b − a + ttl)`: the reserve renews every `ttl`, for as long as
/// requests keep retrying. A large attempt cap with long backoffs keeps requests retrying
/// long after they arrived, and each of those `ttl` windows may spend the reserve again; if
/// that matters, bound it with `min_retries_per_sec` (0 makes the budget a pure ratio) or
/// with the retry layer's deadline.
///
/// Clones share one account. Lock-free and allocation-free: while traffic is heavy (32 or more
/// first attempts in a slot) a deposit is one atomic add and every 32nd reads the clock,
/// crediting the batch to the slot of the reading before it (early, never late); while it is
/// thin, every deposit reads the clock and is credited to its own slot, so a quiet client
/// loses none.
///
/// ```
/// use std::time::Duration;
/// use riprap::budget::{Budget, RatioBudget};
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
/// assert!(budget.try_withdraw(Class::Transient).is_none());
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
    /// Ticks before the current one in which a withdrawal still counts: `SLOTS`, or one more
    /// when `ttl` is not a whole number of slots, so a withdrawal never leaves before `ttl`.
    withdraw_span: u64,
    deposit_units: i64,
    reserve: i64,
    /// See [`LOW`]: the latest clock reading, the thin-traffic flag and the uncredited count.
    pending: AtomicU64,
    /// Deposit units per tick, a slot per `tick % RING`.
    deposits: [AtomicU64; RING as usize],
    /// Net withdrawal units (withdrawals less refunds) per tick.
    withdrawals: [AtomicU64; RING as usize],
}

/// Builder for [`RatioBudget`]; see [`RatioBudget::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct RatioBudgetBuilder {
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The builder's knobs. [`RatioBudgetSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl RatioBudgetBuilder;

    /// A [`RatioBudget`] as plain data (feature `serde`); a knob left out keeps the builder's
    /// default (20 %, 10 retries/s, 10 s).
    ///
    /// ```
    /// use riprap::budget::RatioBudgetSpec;
    ///
    /// let spec: RatioBudgetSpec = serde_json::from_str(r#"{ "ratio": 0.1, "ttl": "30s" }"#)?;
    /// let budget = spec.build()?;
    /// assert_eq!(budget.reserve(), 300.0); // 10 retries/s over 30 s
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct RatioBudgetSpec;

    /// Retries allowed per first attempt, in `[0, 10]` (default 0.2: 20 %).
    ratio: f64 = 0.2,

    /// Retries per second allowed whatever the traffic, at most 1,000,000 (default 10).
    min_retries_per_sec: u32 = 10,

    /// How long a deposit counts, from 1 s to 1 h (default 10 s).
    ttl: Duration = Duration::from_secs(10),
}

impl RatioBudgetBuilder {
    /// The ratio, the reserve in retries per second and the ttl, as set (for a budget
    /// shared by a fleet, which keeps the same knobs).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn knobs(&self) -> (f64, u32, Duration) {
        let k = &self.knobs;
        (k.ratio, k.min_retries_per_sec, k.ttl)
    }

    /// Check every knob and build the budget.
    ///
    /// ```
    /// use riprap::budget::RatioBudget;
    /// let err = RatioBudget::builder().ratio(f64::NAN).build().unwrap_err();
    /// assert_eq!(err.knob(), "ratio_budget.ratio");
    /// ```
    pub fn build(self) -> Result<RatioBudget, ConfigError> {
        let k = self.knobs;
        if !(k.ratio.is_finite() && (0.0..=10.0).contains(&k.ratio)) {
            return Err(ConfigError::new(
                "ratio_budget.ratio",
                format!("must be a number from 0 to 10 (got {})", k.ratio),
            ));
        }
        if k.min_retries_per_sec > 1_000_000 {
            return Err(ConfigError::new(
                "ratio_budget.min_retries_per_sec",
                format!("must be at most 1000000 (got {})", k.min_retries_per_sec),
            ));
        }
        let ttl_nanos = check_duration("ratio_budget.ttl", k.ttl)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&k.ttl) {
            return Err(ConfigError::new(
                "ratio_budget.ttl",
                format!("must be from 1 s to 1 h (got {:?})", k.ttl),
            ));
        }
        let deposit_units = (k.ratio * RETRY_COST as f64).round() as i64;
        if deposit_units == 0 && k.min_retries_per_sec == 0 {
            return Err(ConfigError::new(
                "ratio_budget.ratio",
                "with min_retries_per_sec also 0 this budget refuses every retry; \
                 set the retry layer's max_attempts to 1 instead",
            ));
        }
        Ok(RatioBudget::from_parts(
            deposit_units,
            k.min_retries_per_sec,
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
                withdraw_span: if ttl_nanos % SLOTS == 0 {
                    SLOTS
                } else {
                    SLOTS + 1
                },
                deposit_units,
                reserve: i64::try_from(reserve).unwrap_or(i64::MAX),
                // A new budget has seen no traffic: credit each deposit at once.
                pending: AtomicU64::new(LOW),
                deposits: std::array::from_fn(|_| AtomicU64::new(0)),
                withdrawals: std::array::from_fn(|_| AtomicU64::new(0)),
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
        let inner = &*self.inner;
        // One atomic add either way: while traffic is thin the count is not used (the deposit
        // credits itself), so the add only tells which mode the budget is in.
        let before = inner.pending.fetch_add(1, Ordering::Relaxed);
        if before & LOW != 0 {
            return inner.deposit_now();
        }
        if (before & COUNT) + 1 >= BATCH {
            inner.roll(inner.now_tick());
        }
    }

    fn try_withdraw(&self, _after: Class) -> Option<Withdrawal> {
        let inner = &*self.inner;
        let now = inner.now_tick();
        inner.roll(now);
        if inner.balance_at(now) < RETRY_COST || !inner.withdraw(now, RETRY_COST) {
            return None;
        }
        // Two withdrawals may both have seen enough credit: whoever finds the account
        // overdrawn after its own withdrawal puts it back, so the budget never goes negative.
        if inner.balance_at(now) < 0 {
            inner.withdraw(now, -RETRY_COST);
            return None;
        }
        Some(Withdrawal::stamped(RETRY_COST as u64, now))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        let inner = &*self.inner;
        let now = inner.now_tick();
        inner.roll(now);
        // The withdrawal's own tick, so the refund expires with it. One this budget did not
        // stamp is booked to the oldest tick still counted, the soonest to expire.
        let oldest = now.saturating_sub(inner.withdraw_span);
        let tick = match withdrawal.stamp() {
            t if t <= now.saturating_add(AHEAD) => t,
            _ => oldest,
        };
        if tick < oldest {
            return; // the withdrawal has expired already: nothing left to cancel
        }
        let units = i64::try_from(withdrawal.units()).unwrap_or(i64::MAX);
        inner.withdraw(tick, -units);
    }

    fn can_withdraw(&self, _after: Class) -> bool {
        let now = self.inner.now_tick();
        self.inner.roll(now);
        self.inner.balance_at(now) >= RETRY_COST
    }
}

fn pack(tick: u64, value: i64) -> u64 {
    ((tick / RING) << VALUE_BITS) | (value as u64 & VALUE_MASK)
}

/// The value `word` holds for `tick`, if it holds that tick.
fn value_for(word: u64, tick: u64, signed: bool) -> Option<i64> {
    if word >> VALUE_BITS != tick / RING {
        return None;
    }
    let raw = (word & VALUE_MASK) as i64;
    Some(if signed && raw > WITHDRAW_MAX {
        raw - (1 << VALUE_BITS)
    } else {
        raw
    })
}

fn slot(ring: &[AtomicU64; RING as usize], tick: u64) -> &AtomicU64 {
    &ring[(tick % RING) as usize]
}

impl Inner {
    fn now_tick(&self) -> u64 {
        let nanos = crate::time::nanos(Instant::now().saturating_duration_since(self.origin));
        // u64 nanoseconds last 584 years; past that the clock simply stops advancing.
        (nanos / self.slot_nanos).min(MAX_TICK)
    }

    /// A deposit while traffic is thin: credited to its own tick at once. Once a tick holds a
    /// batch's worth, traffic is heavy enough to count deposits between clock readings.
    #[cold]
    fn deposit_now(&self) {
        let now = self.now_tick();
        self.roll(now);
        if let Some(total) = self.credit(now, self.deposit_units) {
            if total >= self.deposit_units.saturating_mul(BATCH as i64) {
                self.start_batching();
            }
        }
    }

    /// Leave thin-traffic mode. The count is zeroed in the same step: deposits added before it
    /// saw the flag and credited themselves, deposits added after it are counted.
    fn start_batching(&self) {
        let mut cur = self.pending.load(Ordering::Acquire);
        while cur & LOW != 0 {
            let next = cur & !(LOW | COUNT);
            match self
                .pending
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Credit the deposits counted since the previous clock reading to that reading's tick:
    /// they were counted after it, so they expire no later than they should. A batch that took
    /// more than a whole slot to fill means traffic is thin: from then on each deposit reads
    /// the clock itself.
    fn roll(&self, now: u64) {
        let mut cur = self.pending.load(Ordering::Acquire);
        loop {
            let mut low = cur & LOW;
            // While traffic is thin deposits credit themselves; their adds only need clearing.
            let (tick, counted) = (cur >> TICK_SHIFT, if low != 0 { 0 } else { cur & COUNT });
            if cur & COUNT == 0 && tick >= now {
                return;
            }
            if counted > 0 && now >= tick.saturating_add(2) {
                low = LOW;
            }
            let next = (now.max(tick) << TICK_SHIFT) | low;
            match self
                .pending
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let at = tick.min(now);
                    if counted > 0 && now - at < SLOTS {
                        let units = i64::try_from(counted)
                            .unwrap_or(i64::MAX)
                            .saturating_mul(self.deposit_units);
                        self.credit(at, units);
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reserve, plus deposits of the last `SLOTS` ticks, less withdrawals of the last
    /// `withdraw_span + 1` ticks and of any tick a concurrent caller with a later reading wrote.
    fn balance_at(&self, now: u64) -> i64 {
        let mut sum = self.reserve;
        for tick in now.saturating_sub(SLOTS - 1)..=now {
            let word = slot(&self.deposits, tick).load(Ordering::Acquire);
            sum = sum.saturating_add(value_for(word, tick, false).unwrap_or(0));
        }
        for tick in now.saturating_sub(self.withdraw_span)..=now.saturating_add(AHEAD) {
            let word = slot(&self.withdrawals, tick).load(Ordering::Acquire);
            sum = sum.saturating_sub(value_for(word, tick, true).unwrap_or(0));
        }
        sum
    }

    /// Add `units` of deposits to `tick`, saturating; the tick's new total, or `None` if its
    /// slot already serves a later tick (so `tick` has expired).
    fn credit(&self, tick: u64, units: i64) -> Option<i64> {
        let slot = slot(&self.deposits, tick);
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let base = match value_for(cur, tick, false) {
                Some(v) => v,
                None if cur >> VALUE_BITS < tick / RING => 0,
                None => return None,
            };
            let total = base.saturating_add(units).min(DEPOSIT_MAX);
            match slot.compare_exchange_weak(
                cur,
                pack(tick, total),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(total),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Add `delta` units of withdrawal to `tick` (negative: a refund). A withdrawal that would
    /// overflow the slot, or whose tick has expired, is not made and `false` returned; a
    /// refund gives back at most what fits. Nothing is ever lost in the caller's favour.
    fn withdraw(&self, tick: u64, delta: i64) -> bool {
        let slot = slot(&self.withdrawals, tick);
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let base = match value_for(cur, tick, true) {
                Some(v) => v,
                None if cur >> VALUE_BITS < tick / RING => 0,
                None => return false,
            };
            let sum = base.saturating_add(delta);
            let next = if delta > 0 {
                if sum > WITHDRAW_MAX {
                    return false;
                }
                sum
            } else {
                sum.max(WITHDRAW_MIN)
            };
            match slot.compare_exchange_weak(
                cur,
                pack(tick, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}
