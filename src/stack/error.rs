use std::fmt;
use std::time::Duration;

use crate::breaker::{BreakerError, Rejected};
use crate::bulkhead::{self, BulkheadError};
use crate::classify::{Class, Classified};
use crate::ratelimit::{RateLimitError, RateLimitedError};
use crate::retry::GiveUp;
use crate::timeout::TimeoutError;

/// What finally went wrong with a request that went through a [stack](super).
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The client's own error, from the last attempt.
    Inner(E),
    /// The last attempt ran past the attempt timeout.
    AttemptTimeout(Duration),
    /// The whole request ran past the total deadline.
    Deadline(Duration),
    /// The circuit breaker refused the call without calling the client.
    Rejected(Rejected),
    /// The rate limiter held the call back past its maximum wait.
    Limited(RateLimitError),
    /// The bulkhead turned the call away (full, queue timeout, shed or displaced).
    Bulkhead(bulkhead::Rejected),
}

/// A stack's error: the final [`Failure`], and what the retry layer made of it.
///
/// ```
/// use riprap::stack::{Failure, StackError};
/// # fn handle(err: StackError<std::io::Error>) {
/// match err.failure() {
///     Failure::Inner(io) => eprintln!("client error after {:?} attempts: {io}", err.attempts()),
///     Failure::Rejected(r) => eprintln!("dependency is down: {r}"),
///     Failure::Limited(l) => eprintln!("over quota: {l}"),
///     Failure::AttemptTimeout(d) | Failure::Deadline(d) => eprintln!("too slow: {d:?}"),
///     _ => eprintln!("{err}"),
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct StackError<E> {
    failure: Failure<E>,
    attempts: Option<u32>,
    gave_up: Option<GiveUp>,
}

impl<E> StackError<E> {
    /// What finally went wrong.
    pub fn failure(&self) -> &Failure<E> {
        &self.failure
    }

    /// What finally went wrong, by value.
    pub fn into_failure(self) -> Failure<E> {
        self.failure
    }

    /// The client's error, if the failure was the client's.
    pub fn into_inner(self) -> Option<E> {
        match self.failure {
            Failure::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// Attempts made, when the retry layer finished (`None` when the total deadline cut the
    /// request off).
    pub fn attempts(&self) -> Option<u32> {
        self.attempts
    }

    /// Why the retry layer stopped retrying, when it did.
    pub fn gave_up(&self) -> Option<GiveUp> {
        self.gave_up
    }

    pub(super) fn flatten(err: super::service::Nested<E>) -> Self {
        let retry = match err {
            TimeoutError::Elapsed(d) => {
                return StackError {
                    failure: Failure::Deadline(d),
                    attempts: None,
                    gave_up: None,
                };
            }
            TimeoutError::Inner(retry) => retry,
        };
        let (gave_up, attempts) = (retry.reason(), retry.attempts());
        let failure = match retry.into_inner() {
            BreakerError::Rejected(r) => Failure::Rejected(r),
            BreakerError::Inner(RateLimitedError::Limited(l)) => Failure::Limited(l),
            BreakerError::Inner(RateLimitedError::Inner(BulkheadError::Rejected(r))) => {
                Failure::Bulkhead(r)
            }
            BreakerError::Inner(RateLimitedError::Inner(BulkheadError::Inner(t))) => match t {
                TimeoutError::Elapsed(d) => Failure::AttemptTimeout(d),
                TimeoutError::Inner(e) => Failure::Inner(e),
            },
        };
        StackError {
            failure,
            attempts: Some(attempts),
            gave_up: Some(gave_up),
        }
    }
}

impl<E: fmt::Display> fmt::Display for StackError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Inner(e) => e.fmt(f)?,
            Failure::AttemptTimeout(d) => write!(f, "attempt timed out after {d:?}")?,
            Failure::Deadline(d) => write!(f, "request ran past its {d:?} deadline")?,
            Failure::Rejected(r) => r.fmt(f)?,
            Failure::Limited(l) => l.fmt(f)?,
            Failure::Bulkhead(r) => r.fmt(f)?,
        }
        if let (Some(n), Some(why)) = (self.attempts, self.gave_up) {
            write!(
                f,
                " (gave up after {n} attempt{}: {why:?})",
                if n == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StackError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Inner(e) => Some(e),
            Failure::Rejected(r) => Some(r),
            Failure::Limited(l) => Some(l),
            Failure::Bulkhead(r) => Some(r),
            Failure::AttemptTimeout(_) | Failure::Deadline(_) => None,
        }
    }
}

/// A stack has already retried what was worth retrying: its errors are final to anything
/// above it.
impl<E> Classified for StackError<E> {
    fn class(&self) -> Class {
        Class::Permanent
    }
}
