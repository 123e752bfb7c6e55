//! What a stack hands back when it gives up: one error, whatever layer it came from.

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::service::Nested;
use crate::breaker::{BreakerError, Rejected};
use crate::bulkhead::{self, BulkheadError};
use crate::classify::{Class, Classified, LayerError};
use crate::ratelimit::{RateLimitError, RateLimitedError};
use crate::retry::GiveUp;
use crate::timeout::TimeoutError;

/// What finally went wrong with a request that went through a [stack](super). `Res` is the
/// client's response type when failing responses come back as errors
/// ([`responses_as_errors`](super::StackBuilder::responses_as_errors)), and
/// [`Infallible`] (so [`Failure::Response`] cannot happen) when they do not.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<E, Res = Infallible> {
    /// The client's own error, from the last attempt.
    Inner(E),
    /// The last response, which the classifier called a failure and the stack gave up on: a
    /// 400 at once, a 503 after the last attempt. Its body is still unread.
    Response(Res),
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

/// A stack's error: the final [`Failure`], the classifier's verdict on it, and what the
/// retry layer made of it.
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
///
/// It classifies itself by that verdict (see [`class`](Self::class)), so a layer or a stream
/// above tells a transient give-up from a permanent one. A stack has already retried what was
/// worth retrying: put no retry layer above it. A
/// [`Resumable`](crate::stream::Resumable) may sit above it, and reconnects after a transient
/// give-up, paid for by the budget it shares with the stack.
#[derive(Debug)]
pub struct StackError<E, Res = Infallible> {
    failure: Failure<E, Res>,
    class: Class,
    attempts: Option<u32>,
    gave_up: Option<GiveUp>,
    retry_at: Option<Instant>,
}

impl<E, Res> StackError<E, Res> {
    /// What finally went wrong.
    pub fn failure(&self) -> &Failure<E, Res> {
        &self.failure
    }

    /// What finally went wrong, by value.
    pub fn into_failure(self) -> Failure<E, Res> {
        self.failure
    }

    /// The client's error, if the failure was the client's.
    pub fn into_inner(self) -> Option<E> {
        match self.failure {
            Failure::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// The client's last response, if the stack gave up on one.
    pub fn into_response(self) -> Option<Res> {
        match self.failure {
            Failure::Response(r) => Some(r),
            _ => None,
        }
    }

    /// The stack classifier's verdict on the final failure (for a refusal, a timeout or the
    /// deadline, the layer's own: [`Class::Refused`], [`Class::TimedOut`]).
    pub fn class(&self) -> Class {
        self.class
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

    /// When the server (or the breaker) said it will take calls again, if it said.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub(super) fn response(
        response: Res,
        class: Class,
        attempts: u32,
        gave_up: Option<GiveUp>,
    ) -> Self {
        StackError {
            failure: Failure::Response(response),
            class,
            attempts: Some(attempts),
            gave_up,
            retry_at: None,
        }
    }
}

impl<E> StackError<E> {
    pub(super) fn flatten(err: Nested<E>) -> Self {
        let retry = match err {
            TimeoutError::Elapsed(d) => {
                return StackError {
                    failure: Failure::Deadline(d),
                    class: Class::TimedOut,
                    attempts: None,
                    gave_up: None,
                    retry_at: None,
                };
            }
            TimeoutError::Inner(retry) => retry,
        };
        let (gave_up, attempts) = (retry.reason(), retry.attempts());
        let (class, retry_at) = (retry.last_class(), retry.retry_at());
        let failure = match retry.into_inner() {
            BreakerError::Rejected(r) => Failure::Rejected(r),
            BreakerError::Inner(RateLimitedError::Limited(l)) => Failure::Limited(l),
            BreakerError::Inner(RateLimitedError::Inner(BulkheadError::Rejected(r))) => {
                Failure::Bulkhead(r)
            }
            BreakerError::Inner(RateLimitedError::Inner(BulkheadError::Inner(attempt))) => {
                match attempt {
                    TimeoutError::Elapsed(d) => Failure::AttemptTimeout(d),
                    TimeoutError::Inner(e) => Failure::Inner(e),
                }
            }
        };
        StackError {
            failure,
            class,
            attempts: Some(attempts),
            gave_up: Some(gave_up),
            retry_at,
        }
    }

    /// The same error, in the type a stack returning failing responses as errors uses.
    pub(super) fn with_response_type<Res>(self) -> StackError<E, Res> {
        let failure = match self.failure {
            Failure::Inner(e) => Failure::Inner(e),
            Failure::AttemptTimeout(d) => Failure::AttemptTimeout(d),
            Failure::Deadline(d) => Failure::Deadline(d),
            Failure::Rejected(r) => Failure::Rejected(r),
            Failure::Limited(l) => Failure::Limited(l),
            Failure::Bulkhead(r) => Failure::Bulkhead(r),
            Failure::Response(never) => match never {},
        };
        StackError {
            failure,
            class: self.class,
            attempts: self.attempts,
            gave_up: self.gave_up,
            retry_at: self.retry_at,
        }
    }
}

/// The client's own error, as a stack would report it had it failed at once: what lets a
/// stream's item errors and a stacked source's errors share one type.
///
/// ```
/// use riprap::classify::Class;
/// use riprap::stack::StackError;
///
/// let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// let err: StackError<std::io::Error> = reset.into();
/// assert_eq!(err.class(), Class::Transient);
/// ```
impl<E: Classified> From<E> for StackError<E> {
    fn from(e: E) -> Self {
        StackError {
            class: e.class(),
            failure: Failure::Inner(e),
            attempts: None,
            gave_up: None,
            retry_at: None,
        }
    }
}

impl<E: fmt::Display, Res: fmt::Debug> fmt::Display for StackError<E, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Inner(e) => e.fmt(f)?,
            // The response itself may be large (a body, headers): its class says enough.
            Failure::Response(_) => write!(f, "the stack gave up on a {} response", self.class)?,
            Failure::AttemptTimeout(d) => write!(f, "attempt timed out after {d:?}")?,
            Failure::Deadline(d) => write!(f, "request ran past its {d:?} deadline")?,
            Failure::Rejected(r) => r.fmt(f)?,
            Failure::Limited(l) => l.fmt(f)?,
            Failure::Bulkhead(r) => r.fmt(f)?,
        }
        if let (Some(n), Some(why)) = (self.attempts, self.gave_up) {
            write!(
                f,
                " (gave up after {n} attempt{}: {why})",
                if n == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

impl<E, Res> std::error::Error for StackError<E, Res>
where
    E: std::error::Error + 'static,
    Res: fmt::Debug,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Inner(e) => Some(e),
            Failure::Rejected(r) => Some(r),
            Failure::Limited(l) => Some(l),
            Failure::Bulkhead(r) => Some(r),
            _ => None,
        }
    }
}

/// By the stack classifier's verdict on the final failure ([`StackError::class`]): a stream
/// above reconnects after a transient give-up and ends on a permanent one.
impl<E, Res> Classified for StackError<E, Res> {
    fn class(&self) -> Class {
        self.class
    }
}

/// The client's error is the inner one; every other failure is the stack's own, with its
/// verdict.
impl<E, Res> LayerError for StackError<E, Res> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        match &self.failure {
            Failure::Inner(e) => Ok(e),
            _ => Err(self.class),
        }
    }
}
