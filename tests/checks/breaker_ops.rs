//! Op sequences on a circuit breaker, checked step by step against a small reference model.
//!
//! Shared by the cargo-fuzz target `breaker_ops`, the corpus replay and the property test in
//! `tests/breaker.rs`. Public riprap API only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::backoff::{BackoffPolicy, Jitter};
use riprap::breaker::{
    AnyOf, BreakerEvent, BreakerState, CircuitBreaker, ConsecutiveFailures, CountWindow, Counted,
    Permit, Rejected, TimeWindow, TripPolicy, TripPolicyExt,
};
use riprap::classify::Class;

/// A breaker's knobs, small enough that short op sequences reach every state.
#[derive(Debug, Clone)]
pub struct Config {
    pub consecutive: u32,
    pub window: u32,
    pub min_calls: u32,
    pub failure_ppm: u32,
    pub slow_ms: Option<u64>,
    pub buckets: u32,
    pub bucket_ms: u64,
    pub min_throughput: u32,
    pub open_base_ms: u64,
    pub open_max_ms: u64,
    pub probes: u16,
    pub close_after: u16,
    pub throttled: Counted,
    pub permanent: Counted,
}

/// One step.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Ask for a permit; keep it in flight if granted.
    Start,
    /// Report the outcome of in-flight call `i % len`.
    Finish { call: usize, class: Class },
    /// Drop in-flight call `i % len` without reporting (a cancelled future).
    Drop { call: usize },
    /// Move the paused clock on.
    Advance { ms: u64 },
    /// 0 force_open, 1 force_closed, 2 disable, 3 reset.
    Command(u8),
}

type Policy = AnyOf<ConsecutiveFailures, AnyOf<CountWindow, TimeWindow>>;

fn class_of(b: u8) -> Class {
    match b % 5 {
        0 | 1 => Class::Success,
        2 => Class::Transient,
        3 => Class::Throttled {
            retry_after: Some(Duration::from_millis(u64::from(b))),
        },
        _ => Class::Permanent,
    }
}

fn counted_of(b: u8) -> Counted {
    match b % 3 {
        0 => Counted::Ignored,
        1 => Counted::Failure,
        _ => Counted::Success,
    }
}

/// Decode fuzz input: 14 bytes of config, then 2 bytes per op.
pub fn decode(data: &[u8]) -> Option<(Config, Vec<Op>)> {
    let (c, rest) = (data.get(..14)?, &data[14..]);
    let window = u32::from(c[1] % 8) + 1;
    let open_base_ms = u64::from(c[8] % 50) + 1;
    let cfg = Config {
        consecutive: u32::from(c[0] % 6) + 1,
        window,
        min_calls: u32::from(c[2]) % window + 1,
        failure_ppm: [250_000, 500_000, 750_000, 1_000_000][usize::from(c[3] % 4)],
        slow_ms: (c[4] % 3 != 0).then_some(u64::from(c[4] % 40) + 1),
        buckets: u32::from(c[5] % 5) + 1,
        bucket_ms: u64::from(c[6] % 20) + 1,
        min_throughput: u32::from(c[7] % 6) + 1,
        open_base_ms,
        open_max_ms: open_base_ms * (u64::from(c[9] % 8) + 1),
        probes: u16::from(c[10] % 3) + 1,
        close_after: u16::from(c[11] % 3) + 1,
        throttled: counted_of(c[12]),
        permanent: counted_of(c[13]),
    };
    let ops = rest
        .chunks_exact(2)
        .take(512)
        .map(|op| match op[0] % 16 {
            0..=5 => Op::Start,
            6..=10 => Op::Finish {
                call: usize::from(op[1] >> 3),
                class: class_of(op[1]),
            },
            11 | 12 => Op::Drop {
                call: usize::from(op[1]),
            },
            13 => Op::Advance {
                ms: u64::from(op[1] % 64),
            },
            14 => Op::Advance {
                ms: long_gap(&cfg, op[1]),
            },
            _ => Op::Command(op[1] % 4),
        })
        .collect();
    Some((cfg, ops))
}

/// An idle gap, in ms, from one of the time window's boundaries (its length, the 16-bit bucket
/// tag, lcm(buckets, 65,536) bucket lengths where tags used to alias, with a bucket either
/// side), or a plain long gap up to ten years.
pub fn long_gap(cfg: &Config, b: u8) -> u64 {
    let bucket = cfg.bucket_ms;
    let n = u64::from(cfg.buckets);
    let lcm = |a: u64, b: u64| a / gcd(a, b) * b;
    let boundary = |k: u64| -> u64 {
        match k {
            0 => n,
            1 => 1 << 16,
            2 => lcm(n, 1 << 16),
            3 => 2 * lcm(n, 1 << 16),
            _ => 1 << 32,
        }
    };
    let slack = [0i64, -1, 1][usize::from(b / 5 % 3)];
    match b % 8 {
        k @ 0..=4 => (boundary(u64::from(k)) as i64 + slack).max(1) as u64 * bucket,
        5 => 3_600_000,
        6 => 365 * 86_400_000,
        _ => 3650 * 86_400_000,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    if let Some((cfg, ops)) = decode(data) {
        run_ops(&cfg, &ops);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open,
    HalfOpen,
    Isolated,
    ForcedClosed,
    Disabled,
}

impl Mode {
    fn public(self) -> BreakerState {
        match self {
            Mode::Closed => BreakerState::Closed,
            Mode::Open => BreakerState::Open,
            Mode::HalfOpen => BreakerState::HalfOpen,
            Mode::Isolated => BreakerState::Isolated,
            Mode::ForcedClosed => BreakerState::ForcedClosed,
            Mode::Disabled => BreakerState::Disabled,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Call {
    generation: u32,
    mode: Mode,
    start: u64,
}

/// The reference: plain fields and vectors, no atomics, the rules written out longhand.
struct Model {
    cfg: Config,
    mode: Mode,
    generation: u32,
    now: u64,
    open_until: u64,
    level: u32,
    inflight: u16,
    successes: u16,
    rejected: u64,
    streak: u32,
    ring: VecDeque<(bool, bool)>,
    timed: Vec<(u64, bool, bool)>,
    would_trip: usize,
}

const MS: u64 = 1_000_000;

impl Model {
    fn new(cfg: Config) -> Self {
        Model {
            cfg,
            mode: Mode::Closed,
            generation: 0,
            now: 0,
            open_until: 0,
            level: 0,
            inflight: 0,
            successes: 0,
            rejected: 0,
            streak: 0,
            ring: VecDeque::new(),
            timed: Vec::new(),
            would_trip: 0,
        }
    }

    /// Probes still out keep their slots across transitions.
    fn enter(&mut self, mode: Mode) {
        self.mode = mode;
        self.generation += 1;
        self.successes = 0;
    }

    fn reset_policy(&mut self) {
        self.streak = 0;
        self.ring.clear();
        self.timed.clear();
    }

    fn open(&mut self) {
        let d = (self.cfg.open_base_ms * MS)
            .saturating_mul(1 << self.level.min(40))
            .min(self.cfg.open_max_ms * MS);
        self.level += 1;
        self.open_until = self.now + d;
        self.enter(Mode::Open);
    }

    fn acquire(&mut self) -> Result<Call, Rejected> {
        match self.mode {
            Mode::Closed | Mode::ForcedClosed | Mode::Disabled => Ok(Call {
                generation: self.generation,
                mode: self.mode,
                start: self.now,
            }),
            Mode::Isolated => {
                self.rejected += 1;
                Err(Rejected::Isolated)
            }
            Mode::Open if self.now < self.open_until => {
                self.rejected += 1;
                Err(Rejected::Open {
                    retry_in: Duration::from_nanos(self.open_until - self.now),
                })
            }
            Mode::Open if self.inflight >= self.cfg.probes => {
                self.rejected += 1;
                Err(Rejected::HalfOpen)
            }
            Mode::Open => {
                self.enter(Mode::HalfOpen);
                self.inflight += 1;
                Ok(Call {
                    generation: self.generation,
                    mode: Mode::HalfOpen,
                    start: self.now,
                })
            }
            Mode::HalfOpen if self.inflight >= self.cfg.probes => {
                self.rejected += 1;
                Err(Rejected::HalfOpen)
            }
            Mode::HalfOpen => {
                self.inflight += 1;
                Ok(Call {
                    generation: self.generation,
                    mode: Mode::HalfOpen,
                    start: self.now,
                })
            }
        }
    }

    fn counted(&self, class: Class) -> Counted {
        match class {
            Class::Success => Counted::Success,
            Class::Transient | Class::TimedOut => Counted::Failure,
            Class::Throttled { .. } => self.cfg.throttled,
            Class::Permanent => self.cfg.permanent,
            _ => Counted::Ignored,
        }
    }

    fn current(&self, call: &Call) -> bool {
        self.mode == call.mode && self.generation == call.generation
    }

    fn release(&mut self, call: &Call) {
        if call.mode == Mode::HalfOpen {
            self.inflight -= 1;
        }
    }

    fn finish(&mut self, call: &Call, class: Class) {
        let counted = self.counted(class);
        match call.mode {
            Mode::HalfOpen => match counted {
                Counted::Ignored => self.release(call),
                _ if !self.current(call) => self.release(call),
                // A slow success is a failed probe, as slowness is judged while closed.
                Counted::Success if self.slow(self.now - call.start) => {
                    self.inflight -= 1;
                    self.open();
                }
                Counted::Success => {
                    self.successes += 1;
                    self.inflight -= 1;
                    if self.successes >= self.cfg.close_after {
                        self.enter(Mode::Closed);
                    }
                }
                Counted::Failure => {
                    self.inflight -= 1;
                    self.open();
                }
            },
            Mode::Closed | Mode::Disabled if counted != Counted::Ignored && self.current(call) => {
                let failed = counted == Counted::Failure;
                if self.record(failed, self.now - call.start) {
                    self.reset_policy();
                    if call.mode == Mode::Closed {
                        self.level = 0;
                        self.open();
                    } else {
                        self.would_trip += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn slow(&self, elapsed: u64) -> bool {
        self.cfg.slow_ms.is_some_and(|ms| elapsed > ms * MS)
    }

    fn record(&mut self, failed: bool, elapsed: u64) -> bool {
        let slow = self.slow(elapsed);
        let cfg = &self.cfg;
        // Consecutive failures.
        self.streak = if failed { self.streak + 1 } else { 0 };
        let streak = self.streak >= cfg.consecutive;
        // Count window.
        self.ring.push_back((failed, slow));
        if self.ring.len() > cfg.window as usize {
            self.ring.pop_front();
        }
        let count = rate_trips(
            cfg,
            &self.ring.iter().copied().collect::<Vec<_>>(),
            cfg.min_calls,
        );
        // Time window.
        let width = cfg.bucket_ms * MS;
        let index = self.now / width;
        self.timed.push((index, failed, slow));
        let in_window: Vec<_> = self
            .timed
            .iter()
            .filter(|(i, _, _)| *i + u64::from(cfg.buckets) > index)
            .map(|&(_, f, s)| (f, s))
            .collect();
        let timed = rate_trips(cfg, &in_window, cfg.min_throughput);
        streak || count || timed
    }

    fn window_len(&self) -> u64 {
        self.ring.len() as u64
    }

    fn timed_calls(&self) -> u64 {
        let index = self.now / (self.cfg.bucket_ms * MS);
        self.timed
            .iter()
            .filter(|(i, _, _)| *i + u64::from(self.cfg.buckets) > index)
            .count() as u64
    }

    fn command(&mut self, c: u8) {
        match c {
            0 => self.enter(Mode::Isolated),
            1 => {
                self.reset_policy();
                self.enter(Mode::ForcedClosed);
            }
            2 => {
                self.reset_policy();
                self.enter(Mode::Disabled);
            }
            _ => {
                self.reset_policy();
                self.level = 0;
                self.enter(Mode::Closed);
            }
        }
    }
}

fn rate_trips(cfg: &Config, calls: &[(bool, bool)], min: u32) -> bool {
    let n = calls.len() as u64;
    if n == 0 || n < u64::from(min) {
        return false;
    }
    let failures = calls.iter().filter(|c| c.0).count() as u64;
    let slow = calls.iter().filter(|c| c.1).count() as u64;
    failures * 1_000_000 >= u64::from(cfg.failure_ppm) * n
        || cfg.slow_ms.is_some() && slow * 1_000_000 >= 500_000 * n
}

fn build(cfg: &Config, events: Arc<Mutex<Vec<BreakerEvent>>>) -> CircuitBreaker<Policy> {
    let rate = f64::from(cfg.failure_ppm) / 1e6;
    let mut count = CountWindow::last(cfg.window)
        .failure_rate(rate)
        .min_calls(cfg.min_calls);
    let mut timed = TimeWindow::last(Duration::from_millis(
        cfg.bucket_ms * u64::from(cfg.buckets),
    ))
    .buckets(cfg.buckets)
    .failure_rate(rate)
    .min_throughput(cfg.min_throughput);
    if let Some(ms) = cfg.slow_ms {
        count = count.slow_calls(Duration::from_millis(ms), 0.5);
        timed = timed.slow_calls(Duration::from_millis(ms), 0.5);
    }
    let policy = ConsecutiveFailures::new(cfg.consecutive)
        .unwrap()
        .or(count.build().unwrap().or(timed.build().unwrap()));
    let open = BackoffPolicy::exponential(Duration::from_millis(cfg.open_base_ms))
        .factor(2.0)
        .max_delay(Duration::from_millis(cfg.open_max_ms))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    CircuitBreaker::builder()
        .policy(policy)
        .open_backoff(open)
        .half_open_probes(cfg.probes)
        .close_after(cfg.close_after)
        .count_throttled_as(cfg.throttled)
        .count_permanent_as(cfg.permanent)
        .listener(riprap::events::only(move |e: &BreakerEvent| {
            events.lock().unwrap().push(e.clone())
        }))
        .build()
        .unwrap()
}

/// Drive the breaker and the model through `ops`, asserting agreement after every step.
pub fn run_ops(cfg: &Config, ops: &[Op]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let events = Arc::new(Mutex::new(Vec::new()));
        let breaker = build(cfg, Arc::clone(&events));
        let mut model = Model::new(cfg.clone());
        let mut calls: Vec<(Permit<Policy>, Call)> = Vec::new();
        let mut seen_events = 0;
        let mut last_generation = 0u32;
        let mut last_to = BreakerState::Closed;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Start => {
                    let real = breaker.try_acquire();
                    let expected = model.acquire();
                    match (real, expected) {
                        (Ok(permit), Ok(call)) => {
                            assert_eq!(
                                permit.is_probe(),
                                call.mode == Mode::HalfOpen,
                                "step {step}"
                            );
                            calls.push((permit, call));
                        }
                        (Err(r), Err(m)) => assert_eq!(r, m, "step {step}: rejection"),
                        (r, m) => panic!("step {step}: breaker {r:?}, model {m:?}"),
                    }
                }
                Op::Finish { call, class } if !calls.is_empty() => {
                    let (permit, c) = calls.swap_remove(call % calls.len());
                    permit.record(class);
                    model.finish(&c, class);
                }
                Op::Drop { call } if !calls.is_empty() => {
                    let (permit, c) = calls.swap_remove(call % calls.len());
                    drop(permit);
                    model.release(&c);
                }
                Op::Advance { ms } => {
                    // Keep the paused clock far from overflowing: 200 years of idle at most.
                    if model.now / MS + ms > 200 * 365 * 86_400_000 {
                        continue;
                    }
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    model.now += ms * MS;
                }
                Op::Command(c) => {
                    match c {
                        0 => breaker.force_open(),
                        1 => breaker.force_closed(),
                        2 => breaker.disable(),
                        _ => breaker.reset(),
                    }
                    model.command(c);
                }
                Op::Finish { .. } | Op::Drop { .. } => {}
            }

            // State and counts agree after every step.
            let m = breaker.metrics();
            assert_eq!(
                m.state,
                model.mode.public(),
                "step {step}: state after {op:?}"
            );
            assert_eq!(m.rejected, model.rejected, "step {step}: rejected");
            let half_open = model.mode == Mode::HalfOpen;
            assert_eq!(
                m.probes_in_flight,
                u32::from(model.inflight),
                "step {step}: probes"
            );
            assert_eq!(
                m.probe_successes,
                if half_open {
                    u32::from(model.successes)
                } else {
                    0
                },
                "step {step}: probe successes"
            );
            assert!(
                m.probes_in_flight <= u32::from(cfg.probes),
                "step {step}: over-granted"
            );
            assert_eq!(
                m.consecutive_failures,
                Some(model.streak),
                "step {step}: streak"
            );
            assert_eq!(
                m.calls_in_window,
                Some(model.window_len()),
                "step {step}: count window"
            );
            let now = Duration::from_nanos(model.now);
            let timed = breaker.policy().second().second().stats(now);
            assert_eq!(
                timed.calls,
                Some(model.timed_calls()),
                "step {step}: time window"
            );
            if model.mode == Mode::Open {
                let retry_in = Duration::from_nanos(model.open_until.saturating_sub(model.now));
                assert_eq!(m.retry_in, Some(retry_in), "step {step}: retry_in");
            }

            // Events: one per transition, chained, generations consecutive.
            let events = events.lock().unwrap();
            let mut would_trip = 0;
            for e in events[seen_events..].iter() {
                match e {
                    BreakerEvent::Transition {
                        from,
                        to,
                        generation,
                        ..
                    } => {
                        assert_eq!(*generation, last_generation + 1, "step {step}: generation");
                        assert_eq!(*from, last_to, "step {step}: event chain");
                        last_generation = *generation;
                        last_to = *to;
                    }
                    BreakerEvent::WouldTrip { .. } => would_trip += 1,
                    _ => {}
                }
            }
            seen_events = events.len();
            model.would_trip -= would_trip;
            assert_eq!(model.would_trip, 0, "step {step}: would-trip events");
            assert_eq!(
                last_generation, model.generation,
                "step {step}: transitions"
            );
        }
        // Whatever happened, dropping every call leaves no probe held.
        calls.clear();
        assert_eq!(breaker.metrics().probes_in_flight, 0);
    });
}
