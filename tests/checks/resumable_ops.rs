//! `Resumable` against a reference model, over a source scripted from the input: connections
//! that are refused, that replay from before the resume point, skip ahead, repeat an offset,
//! jump within the stream, then close or fail (transient, throttled with a delay, permanent).
//!
//! Whatever the script, the stream must produce exactly the model's outputs: each item once,
//! after the last delivered offset; a gap error or event exactly where dense offsets jump; a
//! reconnect after the last delivered offset, waiting the backoff or the server's longer delay;
//! and an end for the script's reason (finish, a permanent error, a gap, out of reconnects,
//! the budget refusing). Its counters, and what its retry budget heard, must match the model's.
//!
//! Shared by the cargo-fuzz target `resumable_ops` and the corpus replay in `tests/stream.rs`.
//! Public riprap API only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use riprap::backoff::BackoffPolicy;
use riprap::budget::{Attempt, Budget, Withdrawal};
use riprap::classify::Class;
use riprap::stream::{GiveUp, OnEnd, OnGap, Resumable, ResumeConfig, ResumeError};

/// The constant reconnect delay.
const BACKOFF: Duration = Duration::from_millis(10);

/// How a connection (or a connect call) fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    Transient,
    /// Throttled, with the server's delay in milliseconds.
    Throttled(u64),
    Permanent,
}

impl Fail {
    fn class(self) -> Class {
        match self {
            Fail::Transient => Class::Transient,
            Fail::Throttled(ms) => Class::Throttled {
                retry_after: Some(Duration::from_millis(ms)),
            },
            Fail::Permanent => Class::Permanent,
        }
    }
}

/// The source's error: which failure the script asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceError(pub Fail);

/// One connect call of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// The connect call itself fails.
    Refuse(Fail),
    /// Serve `deltas.len()` items starting `rewind` before the resume point plus `skip`,
    /// each next offset `delta` after the one before (0 repeats it, more than 1 jumps),
    /// then close the stream (`None`) or fail.
    Serve {
        rewind: u64,
        skip: u64,
        deltas: Vec<u64>,
        end: Option<Fail>,
    },
}

/// What the consumer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Item(u64),
    Permanent(Fail),
    Gap { expected: u64, found: u64 },
    GaveUp { attempts: u32, last: Option<Fail> },
    Refused { attempts: u32, last: Option<Fail> },
    Other(String),
}

/// A scenario decoded from fuzz input.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub max_reconnects: u32,
    pub on_end: OnEnd,
    pub on_gap: OnGap,
    pub start_after: Option<u64>,
    /// Reconnects the budget pays for, or `None` for no budget.
    pub budget: Option<u64>,
    pub script: Vec<Conn>,
}

/// A budget that pays for a fixed number of one-unit reconnects and keeps a ledger.
#[derive(Debug, Default)]
pub struct Allowance {
    left: AtomicU64,
    deposits: AtomicU64,
    withdrawals: AtomicU64,
    refunds: AtomicU64,
    failures: AtomicU64,
    successes: Mutex<Vec<u64>>,
}

impl Allowance {
    /// A budget paying for `reconnects` reconnects.
    pub fn new(reconnects: u64) -> Arc<Allowance> {
        let allowance = Allowance::default();
        allowance.left.store(reconnects, Ordering::Relaxed);
        Arc::new(allowance)
    }

    /// Reconnects it would still pay for (the tests read it; the fuzz target does not).
    #[allow(dead_code)]
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    /// What it heard so far.
    pub fn ledger(&self) -> Ledger {
        Ledger {
            deposits: self.deposits.load(Ordering::Relaxed),
            withdrawals: self.withdrawals.load(Ordering::Relaxed),
            refunds: self.refunds.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            successes: self.successes.lock().expect("not poisoned").clone(),
        }
    }
}

impl Budget for Allowance {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
    }

    fn try_withdraw(&self, _after: Class) -> Option<Withdrawal> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok()?;
        self.withdrawals.fetch_add(1, Ordering::Relaxed);
        Some(Withdrawal::new(1))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        self.left.fetch_add(withdrawal.units(), Ordering::Relaxed);
        self.refunds
            .fetch_add(withdrawal.units(), Ordering::Relaxed);
    }

    fn record(&self, attempt: Attempt) {
        match attempt {
            Attempt::Succeeded { spent } => self
                .successes
                .lock()
                .expect("not poisoned")
                .push(spent.units()),
            Attempt::Failed(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the budget heard.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub deposits: u64,
    pub withdrawals: u64,
    pub refunds: u64,
    pub failures: u64,
    pub successes: Vec<u64>,
}

fn fail(byte: u8) -> Fail {
    match byte % 8 {
        0 => Fail::Permanent,
        1..=3 => Fail::Throttled(u64::from(byte >> 3) * 7),
        _ => Fail::Transient,
    }
}

impl Scenario {
    pub fn decode(data: &[u8]) -> Option<Scenario> {
        let (&head, rest) = data.split_first()?;
        let mut bytes = rest.iter().copied();
        let mut script = Vec::new();
        while let Some(kind) = bytes.next() {
            if kind % 8 == 0 {
                script.push(Conn::Refuse(fail(kind >> 3)));
                continue;
            }
            let shape = bytes.next().unwrap_or(0);
            let rewind = u64::from(shape % 4);
            let skip = if (shape >> 2) % 8 == 0 {
                1 + u64::from(shape >> 5)
            } else {
                0
            };
            let len = usize::from(bytes.next().unwrap_or(0) % 16);
            let deltas = (0..len)
                .map(|_| match bytes.next().unwrap_or(2) % 8 {
                    0 => 0,
                    1 => 2 + u64::from(kind >> 6),
                    _ => 1,
                })
                .collect();
            let end = match bytes.next().unwrap_or(1) % 3 {
                0 => None,
                _ => Some(fail(kind >> 3)),
            };
            script.push(Conn::Serve {
                rewind,
                skip,
                deltas,
                end,
            });
        }
        Some(Scenario {
            max_reconnects: 1 + u32::from(head % 4),
            on_end: if head & 0x10 != 0 {
                OnEnd::Finish
            } else {
                OnEnd::Reconnect
            },
            on_gap: if head & 0x20 != 0 {
                OnGap::Report
            } else {
                OnGap::Fail
            },
            start_after: (head & 0x40 != 0).then_some(100),
            budget: (head & 0x80 != 0).then_some(u64::from((head >> 2) % 4) * 2),
            script,
        })
    }
}

/// The offsets a connection serves when asked to resume after `after`.
fn offsets(after: Option<u64>, rewind: u64, skip: u64, deltas: &[u64]) -> Vec<u64> {
    let resume = after.map_or(0, |a| a + 1);
    let mut next = resume.saturating_sub(rewind) + skip;
    deltas
        .iter()
        .map(|delta| {
            let offset = next;
            next += delta;
            offset
        })
        .collect()
}

/// What the model expects.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub outputs: Vec<Out>,
    /// The `after` of each connect call.
    pub afters: Vec<Option<u64>>,
    /// Time spent in backoff waits, one per reconnect.
    pub waited: Duration,
    pub delivered: u64,
    pub reconnects: u64,
    pub replays_dropped: u64,
    pub gaps: u64,
    pub ledger: Option<Ledger>,
}

/// The reference model: the script, followed by a permanent refusal so every run ends.
pub fn model(scenario: &Scenario) -> Expected {
    let mut x = Expected::default();
    let mut last = scenario.start_after;
    let mut attempts = 0u32;
    let mut budget = scenario.budget;
    let mut spent = 0u64;
    x.ledger = scenario.budget.map(|_| Ledger::default());
    let ending = Conn::Refuse(Fail::Permanent);
    for conn in scenario.script.iter().chain(std::iter::once(&ending)) {
        x.afters.push(last);
        let failure = match conn {
            Conn::Refuse(f) => Some(*f),
            Conn::Serve {
                rewind,
                skip,
                deltas,
                end,
            } => {
                for offset in offsets(last, *rewind, *skip, deltas) {
                    if let Some(l) = last {
                        if offset <= l {
                            x.replays_dropped += 1;
                            continue;
                        }
                        if offset != l + 1 {
                            x.gaps += 1;
                            if scenario.on_gap == OnGap::Fail {
                                x.outputs.push(Out::Gap {
                                    expected: l + 1,
                                    found: offset,
                                });
                                return x;
                            }
                        }
                    }
                    if attempts != 0 {
                        if let Some(ledger) = x.ledger.as_mut() {
                            ledger.successes.push(std::mem::take(&mut spent));
                        }
                    }
                    attempts = 0;
                    last = Some(offset);
                    x.delivered += 1;
                    x.outputs.push(Out::Item(offset));
                }
                if end.is_none() && scenario.on_end == OnEnd::Finish {
                    return x;
                }
                *end
            }
        };
        // `None`: the stream closed and closing means reconnect.
        let class = failure.map_or(Class::Transient, Fail::class);
        if let Some(ledger) = x.ledger.as_mut() {
            if attempts == 0 {
                ledger.deposits += 1;
            }
            ledger.failures += 1;
        }
        if let Some(Fail::Permanent) = failure {
            x.outputs.push(Out::Permanent(Fail::Permanent));
            return x;
        }
        if attempts >= scenario.max_reconnects {
            x.outputs.push(Out::GaveUp {
                attempts,
                last: failure,
            });
            return x;
        }
        if let (Some(left), Some(ledger)) = (budget.as_mut(), x.ledger.as_mut()) {
            if *left == 0 {
                x.outputs.push(Out::Refused {
                    attempts,
                    last: failure,
                });
                return x;
            }
            *left -= 1;
            ledger.withdrawals += 1;
            spent += 1;
        }
        let delay = class.retry_after().map_or(BACKOFF, |ra| ra.max(BACKOFF));
        x.waited += delay;
        attempts += 1;
        x.reconnects += 1;
    }
    unreachable!("the final refusal is permanent")
}

/// Run the scenario through `Resumable` and return what it did, in the model's terms.
pub async fn observe(scenario: &Scenario) -> Expected {
    let script = Arc::new(Mutex::new(VecDeque::from(scenario.script.clone())));
    let afters = Arc::new(Mutex::new(Vec::new()));
    let source = {
        let afters = Arc::clone(&afters);
        tower::service_fn(move |after: Option<u64>| {
            afters.lock().expect("not poisoned").push(after);
            let conn = script
                .lock()
                .expect("not poisoned")
                .pop_front()
                .unwrap_or(Conn::Refuse(Fail::Permanent));
            async move {
                match conn {
                    Conn::Refuse(f) => Err(SourceError(f)),
                    Conn::Serve {
                        rewind,
                        skip,
                        deltas,
                        end,
                    } => {
                        let items: Vec<Result<(u64, u64), SourceError>> =
                            offsets(after, rewind, skip, &deltas)
                                .into_iter()
                                .map(|o| Ok((o, o * 7)))
                                .chain(end.map(|f| Err(SourceError(f))))
                                .collect();
                        Ok(futures_util::stream::iter(items))
                    }
                }
            }
        })
    };
    let classify = |outcome: Result<&u64, &SourceError>| match outcome {
        Ok(_) => Class::Success,
        Err(SourceError(f)) => f.class(),
    };
    let config = ResumeConfig::builder()
        .max_reconnects(scenario.max_reconnects)
        .on_end(scenario.on_end)
        .on_gap(scenario.on_gap)
        .build()
        .expect("a valid config");
    let backoff = BackoffPolicy::constant(BACKOFF)
        .build()
        .expect("a valid policy");
    let allowance = Allowance::new(scenario.budget.unwrap_or(0));
    let mut stream = Resumable::new(source, backoff)
        .classifier(classify)
        .config(config)
        .start_after(scenario.start_after);
    if scenario.budget.is_some() {
        stream = stream.budget(Arc::clone(&allowance));
    }
    let stats = stream.stats();

    let started = tokio::time::Instant::now();
    let mut outputs = Vec::new();
    while let Some(next) = stream.next().await {
        outputs.push(match next {
            Ok((offset, item)) => {
                assert_eq!(item, offset * 7, "item and offset parted");
                Out::Item(offset)
            }
            Err(ResumeError::Permanent(SourceError(f))) => Out::Permanent(f),
            Err(ResumeError::Gap { expected, found }) => Out::Gap { expected, found },
            Err(ResumeError::GaveUp {
                reason: GiveUp::BudgetRefused,
                attempts,
                last,
                ..
            }) => Out::Refused {
                attempts,
                last: last.map(|SourceError(f)| f),
            },
            Err(ResumeError::GaveUp { attempts, last, .. }) => Out::GaveUp {
                attempts,
                last: last.map(|SourceError(f)| f),
            },
            Err(other) => Out::Other(format!("{other:?}")),
        });
    }
    assert!(
        stream.next().await.is_none(),
        "a finished stream stays finished"
    );
    let waited = started.elapsed();
    let snapshot = stats.snapshot();
    let afters = afters.lock().expect("not poisoned").clone();
    // Dropped before reading the ledger, so a withdrawal it still held would show as a refund.
    drop(stream);
    let ledger = scenario.budget.map(|_| allowance.ledger());
    Expected {
        outputs,
        afters,
        waited,
        delivered: snapshot.delivered,
        reconnects: snapshot.reconnects,
        replays_dropped: snapshot.replays_dropped,
        gaps: snapshot.gaps,
        ledger,
    }
}

pub fn run(data: &[u8]) {
    let Some(scenario) = Scenario::decode(data) else {
        return;
    };
    let expected = model(&scenario);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let mut seen = rt.block_on(observe(&scenario));

    // The paused clock advances to each timer's deadline, which the timer wheel rounds up to
    // its next millisecond: allow that much per wait (one per reconnect).
    let slack = Duration::from_millis(expected.reconnects);
    assert!(
        seen.waited >= expected.waited && seen.waited <= expected.waited + slack,
        "waited {:?}, the model {:?} over {} reconnects",
        seen.waited,
        expected.waited,
        expected.reconnects
    );
    seen.waited = expected.waited;
    assert_eq!(seen, expected, "{scenario:?}");
}
