//! One verdict on every outcome, shared by every layer.
//!
//! Every riprap layer asks a [`Classify`] policy what an outcome was. The answer is a [`Class`]:
//!
//! | class | retry | breaker | rate limiter |
//! |---|---|---|---|
//! | [`Class::Success`] | done | success | — |
//! | [`Class::Transient`] | retry with backoff | failure | — |
//! | [`Class::Throttled`] | retry after the server's delay | not the dependency's fault | pause every caller |
//! | [`Class::Permanent`] | never retry | not counted by default | — |
//!
//! Classifiers see **both** arms of the outcome, because an HTTP 503 arrives as `Ok(response)`
//! and a dropped connection as `Err(error)`.
//!
//! Built-ins:
//! - any closure `Fn(Result<&Res, &Err>) -> Class` (see [`classify_fn`] to help inference);
//! - [`ByError`]: errors that implement [`Classified`] classify themselves; riprap implements it
//!   for [`std::io::Error`] (by kind), tower's and tokio's timeout errors, and boxed errors (by
//!   walking the source chain);
//! - with the `http` feature, [`HttpStatus`] for `http::Response`s,
//!   reading `Retry-After` and rate-limit headers;
//! - [`database::sqlstate`] for SQLSTATE codes, and with the `rusqlite` feature
//!   `rusqlite::Error`.
//!
//! Combine them with [`ClassifierExt`]: [`or`](ClassifierExt::or),
//! [`map_class`](ClassifierExt::map_class) and [`when`](ClassifierExt::when).
//!
//! ```
//! use riprap::classify::{classify_fn, ByError, Class, Classify, ClassifierExt};
//! use std::io;
//!
//! // Transport errors classify themselves; an empty body is worth another try.
//! let classifier = classify_fn(|out: Result<&String, &io::Error>| match out {
//!     Ok(body) if body.is_empty() => Class::Transient,
//!     _ => Class::Success,
//! })
//! .or(ByError);
//!
//! let reset = io::Error::from(io::ErrorKind::ConnectionReset);
//! let denied = io::Error::from(io::ErrorKind::PermissionDenied);
//! assert_eq!(classifier.classify(Err(&reset)), Class::Transient);
//! assert_eq!(classifier.classify(Err(&denied)), Class::Permanent);
//! assert_eq!(classifier.classify(Ok(&String::new())), Class::Transient);
//! assert_eq!(classifier.classify(Ok(&"ok".to_string())), Class::Success);
//! ```
//!
// Without the feature, the link goes to the table of Cargo features.
#![cfg_attr(not(feature = "http"), doc = "[`HttpStatus`]: crate#cargo-features")]

use std::time::Duration;

mod chain;
mod combinators;
pub mod database;
mod errors;
pub mod headers;
#[cfg(feature = "http")]
mod http;
#[cfg(any(feature = "sqlx", feature = "tokio-postgres"))]
mod postgres;
#[cfg(feature = "reqwest")]
mod reqwest;
mod through;

pub(crate) use chain::marker;
pub use chain::recognize;
pub use combinators::{ClassifierExt, MapClass, Or, When};
pub use errors::{ByError, Classified};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::HttpStatus;
pub use through::{LayerError, Through};

/// What an outcome was, as every layer sees it.
///
/// | class | retry | breaker | budget | rate limiter |
/// |---|---|---|---|---|
/// | `Success` | done | success | success | recover |
/// | `Transient` | with backoff | failure | pays a retry | — |
/// | `TimedOut` | with backoff | failure | pays a timeout's price | — |
/// | `Throttled` | not before `retry_after` | not counted | pays a throttle's price | pauses every caller |
/// | `Refused` | not before `retry_after` | not counted | pays a retry: no waiver | — |
/// | `Permanent` | never | not counted | — | — |
///
/// `Throttled` is the **server's** signal (a 429, a 503 with `Retry-After`); `Refused` is the
/// caller's **own** layer declining to send (an open breaker, an empty local quota, a full
/// bulkhead). Budgets, trip policies and listeners tell the two apart, so a budget that is
/// lenient with retries after a server throttle is not lenient with retries against the
/// caller's own open breaker.
///
/// ```
/// use riprap::classify::Class;
/// use std::time::Duration;
///
/// let slow_down = Class::Throttled { retry_after: Some(Duration::from_secs(20)) };
/// assert!(slow_down.is_retryable());
/// assert_eq!(slow_down.retry_after(), Some(Duration::from_secs(20)));
/// assert!(!Class::Permanent.is_retryable());
/// assert!(Class::TimedOut.is_failure());
/// assert!(!Class::Refused { retry_after: None }.is_failure()); // not the dependency's fault
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// The call did what was asked.
    Success,
    /// A failure worth retrying (a dropped connection, a 503); counts against the dependency.
    Transient,
    /// The attempt ran out of time (an attempt timeout, a client's own timeout): worth
    /// retrying, counts against the dependency, and costs more in budgets that price timeouts.
    TimedOut,
    /// The server asked us to slow down (a 429), optionally saying for how long. Retried no
    /// earlier than that delay; not the dependency's fault, so it does not trip a breaker.
    Throttled {
        /// How long the server asked us to wait (see
        /// [`MAX_SERVER_DELAY`](headers::MAX_SERVER_DELAY) for the one bound on it).
        retry_after: Option<Duration>,
    },
    /// One of the caller's own layers declined to send the call: an open breaker, an empty
    /// local quota, a full bulkhead. The server never saw it. Retried no earlier than
    /// `retry_after` when the layer knows when it will admit calls again.
    Refused {
        /// When the refusing layer expects to admit calls again, if it knows.
        retry_after: Option<Duration>,
    },
    /// A failure another try cannot fix (validation, auth, not found): never retried.
    Permanent,
}

impl Class {
    /// `true` for [`Class::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Class::Success)
    }

    /// `true` for the classes another attempt may fix: [`Class::Transient`],
    /// [`Class::TimedOut`], [`Class::Throttled`] and [`Class::Refused`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Class::Transient | Class::TimedOut | Class::Throttled { .. } | Class::Refused { .. }
        )
    }

    /// `true` for the failures that count against the dependency: [`Class::Transient`] and
    /// [`Class::TimedOut`].
    pub fn is_failure(&self) -> bool {
        matches!(self, Class::Transient | Class::TimedOut)
    }

    /// `true` for [`Class::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Class::TimedOut)
    }

    /// `true` for [`Class::Throttled`]: the server's own signal.
    pub fn is_throttled(&self) -> bool {
        matches!(self, Class::Throttled { .. })
    }

    /// `true` for [`Class::Refused`]: a local refusal, never seen by the server.
    pub fn is_refused(&self) -> bool {
        matches!(self, Class::Refused { .. })
    }

    /// The earliest another attempt may go out, if the server (or the refusing layer) said:
    /// the `retry_after` of [`Class::Throttled`] and [`Class::Refused`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Class::Throttled { retry_after } | Class::Refused { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Where this class sits among the classes, for tables indexed by class: from 0 to
    /// [`CLASSES`](Self::CLASSES) - 1.
    pub(crate) const fn ordinal(&self) -> usize {
        match self {
            Class::Success => 0,
            Class::Transient => 1,
            Class::TimedOut => 2,
            Class::Throttled { .. } => 3,
            Class::Refused { .. } => 4,
            Class::Permanent => 5,
        }
    }

    /// How many classes there are.
    pub(crate) const CLASSES: usize = 6;

    /// A short lowercase name for logs and metrics labels: `success`, `transient`,
    /// `timed_out`, `throttled`, `refused` or `permanent`.
    ///
    /// ```
    /// assert_eq!(riprap::classify::Class::TimedOut.as_str(), "timed_out");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Transient => "transient",
            Class::TimedOut => "timed_out",
            Class::Throttled { .. } => "throttled",
            Class::Refused { .. } => "refused",
            Class::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.retry_after() {
            Some(d) => write!(f, "{} (retry after {d:?})", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// A policy that says what an outcome was.
///
/// Implemented for every `Fn(Result<&Res, &Err>) -> Class`, for [`ByError`] and for the
/// combinators in [`ClassifierExt`]. Implement it for your own type to teach riprap about your
/// client.
///
/// ```
/// use riprap::classify::{Class, Classify};
///
/// struct ApiClassifier;
///
/// struct Reply { code: u16 }
///
/// impl Classify<Reply, std::io::Error> for ApiClassifier {
///     fn classify(&self, outcome: Result<&Reply, &std::io::Error>) -> Class {
///         match outcome {
///             Ok(r) if r.code == 429 => Class::Throttled { retry_after: None },
///             Ok(r) if r.code >= 500 => Class::Transient,
///             Ok(r) if r.code >= 400 => Class::Permanent,
///             Ok(_) => Class::Success,
///             Err(_) => Class::Transient,
///         }
///     }
/// }
///
/// assert_eq!(ApiClassifier.classify(Ok(&Reply { code: 503 })), Class::Transient);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify outcomes of `Result<{Res}, {Err}>`",
    label = "not a classifier for this client's responses and errors",
    note = "`ByError` needs `{Err}: Classified`; `HttpStatus` classifies `http::Response` and `reqwest::Response`; or write one with `classify_fn(|out: Result<&{Res}, &{Err}>| ...)`"
)]
pub trait Classify<Res, Err> {
    /// The verdict on one outcome.
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class;
}

impl<F, Res, Err> Classify<Res, Err> for F
where
    F: Fn(Result<&Res, &Err>) -> Class,
{
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        self(outcome)
    }
}

/// A closure as a classifier.
///
/// Any `Fn(Result<&Res, &Err>) -> Class` already is one; this wrapper pins down the closure's
/// signature so the compiler infers it, and gives it the [`ClassifierExt`] combinators.
///
/// ```
/// use riprap::classify::{classify_fn, Class, Classify};
///
/// let by_code = classify_fn(|out: Result<&u16, &()>| match out {
///     Ok(200) => Class::Success,
///     Ok(_) | Err(_) => Class::Transient,
/// });
/// assert_eq!(by_code.classify(Ok(&503)), Class::Transient);
/// ```
pub fn classify_fn<F, Res, Err>(f: F) -> ClassifyFn<F>
where
    F: Fn(Result<&Res, &Err>) -> Class,
{
    ClassifyFn(f)
}

/// A closure classifier; see [`classify_fn`].
#[derive(Clone, Copy, Debug)]
pub struct ClassifyFn<F>(F);

impl<F, Res, Err> Classify<Res, Err> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &Err>) -> Class,
{
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        (self.0)(outcome)
    }
}

impl<F> ClassifierExt for ClassifyFn<F> {}
