//! Op sequences (deposit, withdraw, refund, record an outcome, advance time, observe) on every
//! built-in budget, each checked against a small reference model after every op.
//!
//! The ratio budget is checked twice: exactly against a model of its own algorithm (deposits
//! counted, then credited at the previous clock reading), and against an exact slotted budget
//! that credits every deposit at the moment it was made, which it must never out-give.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use riprap::budget::{
    Budget, Failure, Outcome, RatioBudget, RetryQuota, TokenThrottle, Withdrawal,
};
use riprap::classify::Class;

/// Units per retry in the ratio model, as in the budget.
pub const RETRY_COST: i64 = 1000;
const SLOTS: u64 = 10;
const ROLL_EVERY: u64 = 32;

/// Reference model of `RatioBudget`'s algorithm, single-threaded.
#[derive(Debug, Clone)]
pub struct RatioModel {
    pub slot_nanos: u64,
    pub deposit_units: i64,
    pub reserve: i64,
    pub now_nanos: u64,
    pending: u64,
    last_tick: u64,
    slots: BTreeMap<u64, i64>,
    /// Credit every deposit at its own tick at once (the exact budget) instead of counting it
    /// and crediting it at the previous clock reading.
    exact: bool,
}

impl RatioModel {
    pub fn new(ratio: f64, min_retries_per_sec: u32, ttl: Duration, exact: bool) -> Self {
        let ttl_nanos = ttl.as_nanos() as u64;
        RatioModel {
            slot_nanos: ttl_nanos / SLOTS,
            deposit_units: (ratio * RETRY_COST as f64).round() as i64,
            reserve: (u128::from(min_retries_per_sec) * u128::from(ttl_nanos) * RETRY_COST as u128
                / 1_000_000_000) as i64,
            now_nanos: 0,
            pending: 0,
            last_tick: 0,
            slots: BTreeMap::new(),
            exact,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now_nanos += d.as_nanos() as u64;
    }

    fn tick(&self) -> u64 {
        self.now_nanos / self.slot_nanos
    }

    fn roll(&mut self) {
        let now = self.tick();
        let prev = self.last_tick;
        self.last_tick = self.last_tick.max(now);
        let counted = std::mem::take(&mut self.pending);
        let at = prev.min(now);
        if counted > 0 && self.deposit_units > 0 && now - at < SLOTS {
            *self.slots.entry(at).or_default() += counted as i64 * self.deposit_units;
        }
    }

    fn live(&self) -> i64 {
        let now = self.tick();
        self.reserve
            + self
                .slots
                .iter()
                .filter(|(t, _)| now - **t < SLOTS)
                .map(|(_, v)| *v)
                .sum::<i64>()
    }

    pub fn deposit(&mut self) {
        if self.exact {
            let now = self.tick();
            *self.slots.entry(now).or_default() += self.deposit_units;
            return;
        }
        self.pending += 1;
        if self.pending % ROLL_EVERY == 0 {
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

    /// Record a withdrawal the real budget made.
    pub fn withdraw_unchecked(&mut self) {
        let now = self.tick();
        *self.slots.entry(now).or_default() -= RETRY_COST;
    }

    pub fn refund(&mut self, units: u64) {
        if !self.exact {
            self.roll();
        }
        let now = self.tick();
        *self.slots.entry(now).or_default() += units as i64;
    }

    /// Balance in retries, as `RatioBudget::balance` reports it.
    pub fn balance(&mut self) -> f64 {
        if !self.exact {
            self.roll();
        }
        self.live().max(0) as f64 / RETRY_COST as f64
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
        ThrottleModel {
            max: u64::from(max_tokens) * 1000,
            ratio: (token_ratio * 1000.0).round() as u64,
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
    pub fn cost(f: Failure) -> u64 {
        if f.timed_out() {
            10
        } else if f.class().is_throttled() {
            1
        } else {
            5
        }
    }
    pub fn try_withdraw(&mut self, f: Failure) -> Option<u64> {
        let c = Self::cost(f);
        (self.available >= c).then(|| {
            self.available -= c;
            c
        })
    }
    pub fn put_back(&mut self, units: u64) {
        self.available = (self.available + units).min(self.capacity);
    }
    pub fn success(&mut self, spent: u64) {
        self.put_back(if spent > 0 { spent } else { 1 });
    }
}

/// A decoded op.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Deposit(u32),
    Withdraw(Failure),
    Refund,
    Success,
    Fail(Class),
    Advance(Duration),
    Observe,
}

pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut it = data.iter().copied();
    while let Some(b) = it.next() {
        ops.push(match b % 9 {
            0 => Op::Deposit(1),
            // Bursts, so deposits pile up between clock readings.
            1 => Op::Deposit(it.next().map_or(1, |n| u32::from(n % 80))),
            2 => Op::Withdraw(Failure::new(Class::Transient)),
            3 => Op::Withdraw(Failure::new(Class::Throttled { retry_after: None })),
            4 => Op::Withdraw(Failure::timeout()),
            5 => Op::Refund,
            6 => Op::Success,
            7 => match it.next() {
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
    let ops = decode(&data[2..]);

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
    let token_ratio = 0.1 + f64::from(data[0] % 10) / 10.0;
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
    let mut last_quota: Option<Withdrawal> = None;
    let mut last_ratio: Option<Withdrawal> = None;

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
                    assert_eq!(got.is_some(), model.try_withdraw(), "ratio withdraw");
                    if let Some(w) = got {
                        assert_eq!(w.units(), RETRY_COST as u64);
                        assert!(
                            exact.can_withdraw(),
                            "ratio budget out-gave the exact budget"
                        );
                        exact.withdraw_unchecked();
                        last_ratio = Some(w);
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
                    last_quota = Some(w);
                }
            }
            Op::Refund => {
                if let (Some(b), Some(w)) = (&ratio_budget, last_ratio.take()) {
                    b.refund(w);
                    model.refund(w.units());
                    exact.refund(w.units());
                }
                if let Some(w) = last_quota.take() {
                    quota.refund(w);
                    qmodel.put_back(w.units());
                }
                throttle.refund(Withdrawal::new(1000));
            }
            Op::Success => {
                let outcome = Outcome::Success { spent };
                if let Some(b) = &ratio_budget {
                    b.record(outcome);
                }
                throttle.record(outcome);
                tmodel.success();
                quota.record(outcome);
                qmodel.success(spent.units());
                spent = Withdrawal::NONE;
                last_quota = None;
            }
            Op::Fail(class) => {
                let outcome = Outcome::Failure(Failure::new(class));
                if let Some(b) = &ratio_budget {
                    b.record(outcome);
                }
                throttle.record(outcome);
                tmodel.failure(class);
                quota.record(outcome);
            }
            Op::Advance(d) => {
                tokio::time::advance(d).await;
                model.advance(d);
                exact.advance(d);
            }
            Op::Observe => {
                if let Some(b) = &ratio_budget {
                    let (real, want) = (b.balance(), model.balance());
                    assert_eq!(real, want, "ratio balance");
                    assert!(
                        real <= exact.balance(),
                        "ratio budget out-gave the exact budget"
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
