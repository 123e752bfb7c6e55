//! The retry engine: the one set of rules every place that retries follows.
//!
//! The retry layer, the resumable stream's reconnects and anything else that tries again
//! drive the same [`Rules`]: an attempt cap, a backoff schedule, a shared budget (withdrawn
//! when a retry is scheduled, held while it waits, handed back if it is never sent), the
//! server's requested delay as a floor, a deadline, and one [`GiveUp`] reason when they stop.
//!
//! Two rules hold for every caller:
//!
//! - **Never earlier than the server asked.** A [`Class::Throttled`] or [`Class::Refused`]
//!   delay is a floor under the backoff. When honouring it would exceed what the caller allows
//!   (its `max_retry_after`, or what is left of its deadline), the engine gives up at once with
//!   [`GiveUp::WaitTooLong`] and the instant the server will take calls again, instead of
//!   sending early and buying another refusal.
//! - **A withdrawal is never lost.** The budget pays when a retry is scheduled; the
//!   [`Retries`] state holds the withdrawal until the retry goes out, and hands it back when it
//!   is dropped first (the caller was cancelled mid-backoff) or replaced (the retry was never
//!   sent).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::{Backoff, MakeBackoff};
use crate::budget::{Attempt, Budget, Withdrawal};
use crate::classify::Class;

/// The longest server-requested wait sat out unless configured otherwise: 60 s, enough for
/// the per-minute windows most APIs meter by. A server asking for longer gets no early
/// attempt: the caller gives up at once with [`GiveUp::WaitTooLong`] and the instant the
/// server named.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why retrying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The classifier said no retry can help (or called the error a success).
    Permanent,
    /// Every attempt allowed was made.
    AttemptsExhausted,
    /// The backoff schedule ran out (its own `max_retries` or `max_elapsed`).
    BackoffExhausted,
    /// The shared retry budget refused to pay for another attempt.
    BudgetRefused,
    /// The next attempt could not start before the deadline.
    Deadline,
    /// The server (or an open breaker) will not take the call before a time later than the
    /// caller allows: its `max_retry_after`, or what is left of its deadline. Sending earlier
    /// would only buy another refusal, so the caller is told at once, with the instant.
    WaitTooLong,
    /// The request cannot be sent twice: the copy policy declined to copy it (a streaming
    /// body, or a non-idempotent method without an `Idempotency-Key`).
    NotRetryable,
    /// The inner service failed while getting ready for an attempt.
    NotReady,
}

impl GiveUp {
    /// How many reasons there are, for tables indexed by [`ordinal`](Self::ordinal).
    pub(crate) const REASONS: usize = 8;

    /// Where this reason sits among the reasons, from 0.
    pub(crate) const fn ordinal(&self) -> usize {
        match self {
            GiveUp::Permanent => 0,
            GiveUp::AttemptsExhausted => 1,
            GiveUp::BackoffExhausted => 2,
            GiveUp::BudgetRefused => 3,
            GiveUp::Deadline => 4,
            GiveUp::WaitTooLong => 5,
            GiveUp::NotRetryable => 6,
            GiveUp::NotReady => 7,
        }
    }

    /// A short snake_case name for logs and metrics labels.
    ///
    /// ```
    /// assert_eq!(riprap::retry::GiveUp::BudgetRefused.as_str(), "budget_refused");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            GiveUp::Permanent => "permanent",
            GiveUp::AttemptsExhausted => "attempts_exhausted",
            GiveUp::BackoffExhausted => "backoff_exhausted",
            GiveUp::BudgetRefused => "budget_refused",
            GiveUp::Deadline => "deadline",
            GiveUp::WaitTooLong => "wait_too_long",
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::NotReady => "not_ready",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::Permanent => "the error is permanent",
            GiveUp::AttemptsExhausted => "attempts exhausted",
            GiveUp::BackoffExhausted => "backoff schedule exhausted",
            GiveUp::BudgetRefused => "retry budget refused another attempt",
            GiveUp::Deadline => "the next attempt would start past the deadline",
            GiveUp::WaitTooLong => "the server will not take the call within the wait allowed",
            GiveUp::NotRetryable => "the request cannot be replayed",
            GiveUp::NotReady => "the inner service failed to get ready",
        })
    }
}

/// Why the engine stopped, and when the server said it will take calls again, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub(crate) reason: GiveUp,
    pub(crate) retry_at: Option<Instant>,
}

impl Stop {
    pub(crate) fn permanent() -> Stop {
        Stop::because(GiveUp::Permanent)
    }

    pub(crate) fn because(reason: GiveUp) -> Stop {
        Stop {
            reason,
            retry_at: None,
        }
    }
}

/// The rules a retrying caller follows, shared by all of its logical requests.
#[derive(Debug, Clone)]
pub(crate) struct Rules<P, B> {
    pub(crate) backoff: P,
    pub(crate) budget: B,
    /// Attempts in all, the first included.
    pub(crate) max_attempts: u32,
    /// How long a logical request may take, from its first attempt.
    pub(crate) deadline: Option<Duration>,
    /// The longest server-requested wait a caller sits out before giving up instead.
    pub(crate) max_retry_after: Duration,
}

/// What one logical request has been through, made at its first failure so that a request
/// that succeeds at once carries none of it.
pub(crate) struct Retries<K, B: Budget> {
    backoff: K,
    // A clone of the budget handle, so a withdrawal held when this is dropped goes back.
    budget: B,
    spent: Withdrawal,
    held: Withdrawal,
}

impl<K, B: Budget> Retries<K, B> {
    fn hand_back(&mut self) {
        let held = std::mem::take(&mut self.held);
        if held != Withdrawal::NONE {
            self.budget.refund(held);
        }
    }
}

impl<K, B: Budget> Drop for Retries<K, B> {
    fn drop(&mut self) {
        // Dropped with a retry scheduled and not sent: the request was abandoned while it
        // waited, and spent nothing.
        self.hand_back();
    }
}

impl<P, B> Rules<P, B>
where
    P: MakeBackoff,
    B: Budget + Clone,
{
    /// A logical request makes its first attempt: it pays its deposit, and its deadline starts.
    #[inline(always)]
    pub(crate) fn begin(&self) -> Option<Instant> {
        self.budget.deposit();
        self.deadline.map(|_| Instant::now())
    }

    /// Attempt `attempt` (from 1) of a request started at `started` failed as `class`: the
    /// wait before the next attempt, with the budget's withdrawal for it held in `retries`, or
    /// why there is none. `replayable` says whether the request can be sent again.
    pub(crate) fn after_failure(
        &self,
        retries: &mut Option<Retries<P::Backoff, B>>,
        attempt: u32,
        started: Option<Instant>,
        class: Class,
        replayable: bool,
    ) -> Result<Duration, Stop> {
        if let Some(r) = retries.as_mut() {
            // A retry scheduled earlier that never went out (the service was not ready).
            r.hand_back();
        }
        let failure = class;
        self.budget.record(Attempt::Failed(failure));
        if !class.is_retryable() {
            return Err(Stop::because(GiveUp::Permanent));
        }
        if attempt >= self.max_attempts {
            return Err(Stop::because(GiveUp::AttemptsExhausted));
        }
        if !replayable {
            return Err(Stop::because(GiveUp::NotRetryable));
        }
        let r = retries.get_or_insert_with(|| Retries {
            backoff: self.backoff.make_backoff(),
            budget: self.budget.clone(),
            spent: Withdrawal::NONE,
            held: Withdrawal::NONE,
        });
        let drawn = r
            .backoff
            .next_delay()
            .ok_or(Stop::because(GiveUp::BackoffExhausted))?;
        let now = Instant::now();
        // The server knows when it will have capacity; the backoff is only a guess. Its delay
        // is a floor, never shortened.
        let floor = class.retry_after();
        let retry_at = floor.and_then(|f| now.checked_add(f));
        let stop = |reason| Stop { reason, retry_at };
        let delay = floor.map_or(drawn, |f| f.max(drawn));
        if floor.is_some_and(|f| f > self.max_retry_after) {
            return Err(stop(GiveUp::WaitTooLong));
        }
        if let (Some(deadline), Some(started)) = (self.deadline, started) {
            let end = started.checked_add(deadline);
            let past = |d: Duration| match (now.checked_add(d), end) {
                (Some(at), Some(end)) => at >= end,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if past(delay) {
                let server = floor.is_some_and(past);
                return Err(stop(if server {
                    GiveUp::WaitTooLong
                } else {
                    GiveUp::Deadline
                }));
            }
        }
        match self.budget.try_withdraw(failure) {
            Some(withdrawal) => {
                r.held = withdrawal;
                Ok(delay)
            }
            None => Err(stop(GiveUp::BudgetRefused)),
        }
    }

    /// The retry scheduled by [`after_failure`](Self::after_failure) is being sent now: what
    /// it withdrew is spent.
    #[inline]
    pub(crate) fn sending(&self, retries: &mut Retries<P::Backoff, B>) {
        let held = std::mem::take(&mut retries.held);
        retries.spent += held;
    }

    /// An attempt succeeded: the budget learns what the request's retries cost.
    #[inline(always)]
    pub(crate) fn succeeded(&self, retries: Option<&mut Retries<P::Backoff, B>>) {
        let spent = retries.map_or(Withdrawal::NONE, |r| {
            r.hand_back();
            std::mem::take(&mut r.spent)
        });
        self.budget.record(Attempt::Succeeded { spent });
    }
}

/// What a retrying future can tell about the request it ran, once it is done: how many
/// attempts it made, and why it stopped if it gave up. A stack reads it to describe a failing
/// response it hands back as an error.
pub(crate) trait Progress {
    /// Attempts made so far, the first included.
    fn attempts(&self) -> u32;
    /// Why retrying stopped, if it gave up.
    fn gave_up(&self) -> Option<GiveUp>;
}
