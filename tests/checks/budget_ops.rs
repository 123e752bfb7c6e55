//! Op sequences (deposit, withdraw, refund, record an outcome, advance time, observe) on every
//! built-in budget, each checked against a small reference model after every op.
//!
//! The ratio budget is checked twice: exactly against a model of its own algorithm (slotted
//! deposits and withdrawals, deposits batched while traffic is heavy), and against an exact
//! sliding window in nanoseconds, which it must never out-give. Idle gaps reach years, with
//! the boundary values of the budget's rings and tags.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use riprap::budget::{Attempt, Budget, RatioBudget, RetryQuota, TokenThrottle, Withdrawal};
use riprap::classify::Class;

/// Units per retry in the ratio model, as in the budget.
pub const RETRY_COST: i64 = 1000;
const SLOTS: u64 = 10;
const BATCH: u64 = 32;
const DEPOSIT_MAX: i64 = (1 << 30) - 1;
const WITHDRAW_MAX: i64 = (1 << 29) - 1;
const WITHDRAW_MIN: i64 = -(1 << 29);

/// Reference model of `RatioBudget`, single-threaded: either its algorithm written out
/// longhand (`exact == false`), or an exact sliding window over the last `ttl` nanoseconds
/// (`exact == true`).
#[derive(Debug, Clone)]
pub struct RatioModel {
    pub slot_nanos: u64,
    pub ttl_nanos: u64,
    pub deposit_units: i64,
    pub reserve: i64,
    pub now_nanos: u64,
    withdraw_span: u64,
    /// Thin traffic: every deposit is credited to its own tick.
    low: bool,
    /// Deposits counted since the tick of the latest clock reading.
    pending: u64,
    last_tick: u64,
    deposits: BTreeMap<u64, i64>,
    withdrawals: BTreeMap<u64, i64>,
    /// Withdrawals not refunded, most recent last: their tick (or, exact, their time).
    outstanding: Vec<u64>,
    /// Exact model: every deposit's and withdrawal's time.
    exact_deposits: Vec<u64>,
    exact_withdrawals: Vec<u64>,
    exact: bool,
}

impl RatioModel {
    pub fn new(ratio: f64, min_retries_per_sec: u32, ttl: Duration, exact: bool) -> Self {
        let ttl_nanos = ttl.as_nanos() as u64;
        RatioModel {
            slot_nanos: ttl_nanos / SLOTS,
            ttl_nanos,
            deposit_units: (ratio * RETRY_COST as f64).round() as i64,
            reserve: (u128::from(min_retries_per_sec) * u128::from(ttl_nanos) * RETRY_COST as u128
                / 1_000_000_000) as i64,
            now_nanos: 0,
            withdraw_span: if ttl_nanos % SLOTS == 0 {
                SLOTS
            } else {
                SLOTS + 1
            },
            low: true,
            pending: 0,
            last_tick: 0,
            deposits: BTreeMap::new(),
            withdrawals: BTreeMap::new(),
            outstanding: Vec::new(),
            exact_deposits: Vec::new(),
            exact_withdrawals: Vec::new(),
            exact,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now_nanos += d.as_nanos() as u64;
    }

    fn tick(&self) -> u64 {
        self.now_nanos / self.slot_nanos
    }

    fn credit(&mut self, tick: u64, units: i64) -> i64 {
        let v = self.deposits.entry(tick).or_default();
        *v = v.saturating_add(units).min(DEPOSIT_MAX);
        *v
    }

    fn roll(&mut self) {
        let now = self.tick();
        if self.pending == 0 && self.last_tick >= now {
            return;
        }
        let (tick, counted) = (self.last_tick, std::mem::take(&mut self.pending));
        if counted > 0 && now >= tick + 2 {
            self.low = true;
        }
        self.last_tick = tick.max(now);
        let at = tick.min(now);
        if counted > 0 && now - at < SLOTS {
            self.credit(at, counted as i64 * self.deposit_units);
        }
    }

    fn live(&self) -> i64 {
        if self.exact {
            let from = self.now_nanos.saturating_sub(self.ttl_nanos);
            let live = |times: &[u64]| {
                times
                    .iter()
                    .filter(|t| **t > from || self.now_nanos < self.ttl_nanos)
                    .count() as i64
            };
            return self.reserve + live(&self.exact_deposits) * self.deposit_units
                - live(&self.exact_withdrawals) * RETRY_COST;
        }
        let now = self.tick();
        let deposits: i64 = self
            .deposits
            .range(now.saturating_sub(SLOTS - 1)..=now)
            .map(|(_, v)| *v)
            .sum();
        let withdrawals: i64 = self
            .withdrawals
            .range(now.saturating_sub(self.withdraw_span)..=now)
            .map(|(_, v)| *v)
            .sum();
        self.reserve + deposits - withdrawals
    }

    pub fn deposit(&mut self) {
        if self.exact {
            self.exact_deposits.push(self.now_nanos);
            return;
        }
        if self.low {
            self.roll();
            let now = self.tick();
            if self.credit(now, self.deposit_units) >= self.deposit_units * BATCH as i64 {
                self.low = false;
            }
            return;
        }
        self.pending += 1;
        if self.pending >= BATCH {
            self.roll();
        }
    }

    /// Whether a withdrawal would succeed now (rolling, as the budget does).
    pub fn can_withdraw(&mut self) -> bool {
        if !self.exact {
            self.roll();
        }
        self.live() >= RETRY_COST
    }

    pub fn try_withdraw(&mut self) -> bool {
        if !self.can_withdraw() {
            return false;
        }
        self.withdraw_unchecked();
        true
    }

    /// Record a withdrawal the real budget made; returns its stamp (the tick, or the exact
    /// model's time), for [`RatioModel::refund_at`].
    pub fn withdraw_unchecked(&mut self) -> u64 {
        let stamp = if self.exact {
            self.exact_withdrawals.push(self.now_nanos);
            self.now_nanos
        } else {
            let now = self.tick();
            let v = self.withdrawals.entry(now).or_default();
            assert!(*v + RETRY_COST <= WITHDRAW_MAX, "model slot overflow");
            *v += RETRY_COST;
            now
        };
        self.outstanding.push(stamp);
        stamp
    }

    /// Hand back the most recent withdrawal not yet refunded.
    pub fn refund(&mut self, units: u64) {
        if let Some(stamp) = self.outstanding.pop() {
            self.outstanding.push(stamp);
            self.refund_at(stamp, units);
        }
    }

    /// Hand back `units` withdrawn at `stamp`, as the budget does: into the withdrawal's own
    /// tick (exact: the withdrawals at that time are cancelled), nothing once it has expired.
    pub fn refund_at(&mut self, stamp: u64, units: u64) {
        if let Some(i) = self.outstanding.iter().rposition(|s| *s == stamp) {
            self.outstanding.remove(i);
        }
        if self.exact {
            let mut n = units as i64 / RETRY_COST;
            self.exact_withdrawals.retain(|t| {
                if n > 0 && *t == stamp {
                    n -= 1;
                    false
                } else {
                    true
                }
            });
            return;
        }
        self.roll();
        let now = self.tick();
        if stamp + self.withdraw_span < now {
            return;
        }
        let v = self.withdrawals.entry(stamp).or_default();
        *v = (*v - units as i64).max(WITHDRAW_MIN);
    }

    /// Balance in retries, as `RatioBudget::balance` reports it.
    pub fn balance(&mut self) -> f64 {
        if !self.exact {
            self.roll();
        }
        self.live().max(0) as f64 / RETRY_COST as f64
    }

    /// Forget what can no longer count, so years of ops stay cheap.
    fn prune(&mut self) {
        let now = self.now_nanos;
        let ttl = self.ttl_nanos;
        self.exact_deposits.retain(|t| t + ttl > now);
        self.exact_withdrawals.retain(|t| t + ttl > now);
        let tick = self.tick();
        self.deposits = self.deposits.split_off(&tick.saturating_sub(SLOTS + 1));
        self.withdrawals = self
            .withdrawals
            .split_off(&tick.saturating_sub(self.withdraw_span + 1));
    }
}

/// Reference model of gRPC's throttle, in thousandths of a token.
#[derive(Debug, Clone)]
pub struct ThrottleModel {
    pub max: u64,
    pub ratio: u64,
    pub tokens: u64,
}

impl ThrottleModel {
    pub fn new(max_tokens: u32, token_ratio: f64) -> Self {
        // gRFC A6: decimals past the third are ignored (the epsilon absorbs binary error,
        // 0.3 * 1000 = 299.99999999999994).
        let ratio = (token_ratio * 1000.0 + 1e-6).floor() as u64;
        ThrottleModel {
            max: u64::from(max_tokens) * 1000,
            ratio,
            tokens: u64::from(max_tokens) * 1000,
        }
    }
    pub fn allows(&self) -> bool {
        self.tokens * 2 > self.max
    }
    pub fn success(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(self.max);
    }
    pub fn failure(&mut self, class: Class) {
        if class.is_retryable() {
            self.tokens = self.tokens.saturating_sub(1000);
        }
    }
}

/// Reference model of the AWS retry quota.
#[derive(Debug, Clone)]
pub struct QuotaModel {
    pub capacity: u64,
    pub available: u64,
}

impl QuotaModel {
    pub fn cost(f: Class) -> u64 {
        if f.is_timeout() {
            10
        } else if f.is_throttled() {
            1
        } else {
            5
        }
    }
    pub fn try_withdraw(&mut self, f: Class) -> Option<u64> {
        let c = Self::cost(f);
        (self.available >= c).then(|| {
            self.available -= c;
            c
        })
    }
    pub fn put_back(&mut self, units: u64) {
        self.available = (self.available + units).min(self.capacity);
    }
    /// A request succeeded; `last` is what its last retry cost (0 if it made none): only
    /// that comes back, as in the AWS SDKs.
    pub fn success(&mut self, last: u64) {
        self.put_back(if last > 0 { last } else { 1 });
    }
}

/// A decoded op.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Deposit(u32),
    Withdraw(Class),
    /// Hand back a withdrawal: 0 the latest, 1 the oldest, 2 all of them as one sum.
    Refund(u8),
    Success,
    Fail(Class),
    Advance(Duration),
    Observe,
}

/// Long idle gaps, in slots of the ratio budget (`ttl / 10`): the rings' boundaries (a
/// deposit counts 10 slots, a withdrawal 11, the rings hold 16), the 32-bit tag boundary of
/// the old design, and the batch tick field's; then plain durations up to ten years.
pub const LONG_GAPS_IN_SLOTS: [u64; 12] = [
    9,
    10,
    11,
    15,
    16,
    17,
    32,
    (1 << 16) + 10,
    (1 << 32) - 1,
    1 << 32,
    (1 << 32) + 1,
    (1 << 32) + 16,
];

/// Plain long gaps: a minute, an hour, a day, a year, ten years.
pub const LONG_GAPS: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(3600),
    Duration::from_secs(86_400),
    Duration::from_secs(365 * 86_400),
    Duration::from_secs(3650 * 86_400),
];

/// What the whole run may idle at most, so the paused clock never overflows.
const MAX_IDLE: Duration = Duration::from_secs(200 * 365 * 86_400);

pub fn decode(data: &[u8], slot: Duration) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut it = data.iter().copied();
    while let Some(b) = it.next() {
        ops.push(match b % 9 {
            0 => Op::Deposit(1),
            // Bursts, so deposits pile up between clock readings.
            1 => Op::Deposit(it.next().map_or(1, |n| u32::from(n % 80))),
            2 => Op::Withdraw(Class::Transient),
            3 => Op::Withdraw(Class::Throttled { retry_after: None }),
            4 => Op::Withdraw(Class::TimedOut),
            5 => Op::Refund(b / 9 % 3),
            6 => Op::Success,
            7 => match it.next() {
                Some(n) if n >= 236 => {
                    let i = usize::from(n - 236);
                    match LONG_GAPS_IN_SLOTS.get(i) {
                        Some(slots) => Op::Advance(slot.saturating_mul(*slots as u32)),
                        None => Op::Advance(LONG_GAPS[(i - LONG_GAPS_IN_SLOTS.len()) % 5]),
                    }
                }
                Some(n) => Op::Advance(Duration::from_millis(u64::from(n) * 40)),
                None => Op::Fail(Class::Permanent),
            },
            _ => match b / 9 % 3 {
                0 => Op::Observe,
                1 => Op::Fail(Class::Transient),
                _ => Op::Fail(Class::Permanent),
            },
        });
    }
    ops
}

pub fn run(data: &[u8]) {
    if data.len() < 2 || data.len() > 4096 {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(check(data));
}

async fn check(data: &[u8]) {
    let ratio = f64::from(data[0] % 11) / 10.0;
    let min_retries_per_sec = u32::from(data[1] % 8);
    let ttl = Duration::from_secs(1 + u64::from(data[0] / 32));
    let ops = decode(&data[2..], ttl / SLOTS as u32);

    let built = RatioBudget::builder()
        .ratio(ratio)
        .min_retries_per_sec(min_retries_per_sec)
        .ttl(ttl)
        .build();
    let ratio_budget = match built {
        Ok(b) => Some(b),
        Err(e) => {
            assert!(
                ratio == 0.0 && min_retries_per_sec == 0,
                "unexpected rejection: {e}"
            );
            assert_eq!(e.knob(), "ratio_budget.ratio");
            None
        }
    };
    let mut model = RatioModel::new(ratio, min_retries_per_sec, ttl, false);
    let mut exact = RatioModel::new(ratio, min_retries_per_sec, ttl, true);

    let max_tokens = 1 + u32::from(data[1] % 16);
    // Tenths, and sometimes a fourth decimal that gRFC A6 says to ignore.
    let token_ratio =
        (0.1 + f64::from(data[0] % 10) / 10.0 - f64::from(data[1] % 7) * 0.00013).max(0.001);
    let throttle = TokenThrottle::builder()
        .max_tokens(max_tokens)
        .token_ratio(token_ratio)
        .build()
        .expect("valid throttle");
    let mut tmodel = ThrottleModel::new(max_tokens, token_ratio);

    let capacity = 10 + u64::from(data[1]);
    let quota = RetryQuota::builder()
        .capacity(capacity)
        .build()
        .expect("valid quota");
    let mut qmodel = QuotaModel {
        capacity,
        available: capacity,
    };
    let mut spent = Withdrawal::NONE;
    let mut spent_last = 0;
    let mut last_quota: Option<Withdrawal> = None;
    // Ratio withdrawals not yet refunded: the real one, the model's tick, the exact stamp.
    let mut held: Vec<(Withdrawal, u64, u64)> = Vec::new();
    let mut idle = Duration::ZERO;

    for op in ops {
        match op {
            Op::Deposit(n) => {
                for _ in 0..n {
                    if let Some(b) = &ratio_budget {
                        b.deposit();
                        model.deposit();
                        exact.deposit();
                    }
                    throttle.deposit();
                    quota.deposit();
                }
            }
            Op::Withdraw(f) => {
                if let Some(b) = &ratio_budget {
                    let expect = model.can_withdraw();
                    assert_eq!(b.can_withdraw(f), expect, "ratio can_withdraw");
                    let got = b.try_withdraw(f);
                    assert_eq!(got.is_some(), model.can_withdraw(), "ratio withdraw");
                    if let Some(w) = got {
                        assert_eq!(w.units(), RETRY_COST as u64);
                        let tick = model.withdraw_unchecked();
                        assert!(
                            exact.can_withdraw(),
                            "ratio budget out-gave the exact window"
                        );
                        let stamp = exact.withdraw_unchecked();
                        held.push((w, tick, stamp));
                    }
                }
                assert_eq!(throttle.can_withdraw(f), tmodel.allows());
                assert_eq!(
                    throttle.try_withdraw(f).is_some(),
                    tmodel.allows(),
                    "throttle"
                );
                let got = quota.try_withdraw(f);
                assert_eq!(
                    got.map(|w| w.units()),
                    qmodel.try_withdraw(f),
                    "quota withdraw"
                );
                if let Some(w) = got {
                    spent += w;
                    spent_last = w.units();
                    last_quota = Some(w);
                }
            }
            Op::Refund(which) => {
                if let Some(b) = &ratio_budget {
                    match which {
                        0 | 1 if !held.is_empty() => {
                            let i = if which == 0 { held.len() - 1 } else { 0 };
                            let (w, tick, stamp) = held.remove(i);
                            b.refund(w);
                            model.refund_at(tick, w.units());
                            exact.refund_at(stamp, w.units());
                        }
                        2 if !held.is_empty() => {
                            // One sum: the budget books it to the earliest withdrawal's slot.
                            let all = std::mem::take(&mut held);
                            let sum = all.iter().fold(Withdrawal::NONE, |s, h| s + h.0);
                            b.refund(sum);
                            let earliest = all.iter().map(|h| h.1).min().unwrap_or(0);
                            for h in &all {
                                model.outstanding.retain(|t| *t != h.1);
                                exact.refund_at(h.2, h.0.units());
                            }
                            model.refund_at(earliest, sum.units());
                        }
                        _ => {}
                    }
                }
                if let Some(w) = last_quota.take() {
                    quota.refund(w);
                    qmodel.put_back(w.units());
                }
                throttle.refund(Withdrawal::new(1000));
            }
            Op::Success => {
                let outcome = Attempt::Succeeded { spent };
                if let Some(b) = &ratio_budget {
                    b.record(outcome);
                }
                throttle.record(outcome);
                tmodel.success();
                quota.record(outcome);
                qmodel.success(spent_last);
                spent = Withdrawal::NONE;
                spent_last = 0;
                last_quota = None;
            }
            Op::Fail(class) => {
                let outcome = Attempt::Failed(class);
                if let Some(b) = &ratio_budget {
                    b.record(outcome);
                }
                throttle.record(outcome);
                tmodel.failure(class);
                quota.record(outcome);
            }
            Op::Advance(d) => {
                if idle + d > MAX_IDLE {
                    continue;
                }
                idle += d;
                tokio::time::advance(d).await;
                model.advance(d);
                exact.advance(d);
                model.prune();
                exact.prune();
            }
            Op::Observe => {
                if let Some(b) = &ratio_budget {
                    let (real, want) = (b.balance(), model.balance());
                    assert_eq!(real, want, "ratio balance");
                    assert!(
                        real <= exact.balance(),
                        "ratio budget out-gave the exact window"
                    );
                }
            }
        }
        assert_eq!(
            throttle.tokens(),
            tmodel.tokens as f64 / 1000.0,
            "throttle tokens"
        );
        assert_eq!(quota.available(), qmodel.available, "quota available");
    }
    if let Some(b) = &ratio_budget {
        assert_eq!(b.balance(), model.balance(), "final ratio balance");
    }
}
