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

use std::time::Duration;

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

pub use combinators::{ClassifierExt, MapClass, Or, When};
pub use errors::{ByError, Classified};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::HttpStatus;
pub use through::{LayerError, Through};

/// What an outcome was, as every layer sees it.
///
/// ```
/// use riprap::classify::Class;
/// use std::time::Duration;
///
/// let slow_down = Class::Throttled { retry_after: Some(Duration::from_secs(20)) };
/// assert!(slow_down.is_retryable());
/// assert_eq!(slow_down.retry_after(), Some(Duration::from_secs(20)));
/// assert!(!Class::Permanent.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The call did what was asked.
    Success,
    /// A failure worth retrying (a dropped connection, a 503); counts against the dependency.
    Transient,
    /// The server asked us to slow down (a 429), optionally saying for how long. Worth
    /// retrying after that delay; not the dependency's fault, so it does not trip a breaker.
    Throttled {
        /// How long the server asked us to wait, already capped by the parser's ceiling.
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

    /// `true` for [`Class::Transient`] and [`Class::Throttled`]: another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Class::Transient | Class::Throttled { .. })
    }

    /// `true` for [`Class::Throttled`].
    pub fn is_throttled(&self) -> bool {
        matches!(self, Class::Throttled { .. })
    }

    /// The server's requested delay, if this is a throttle that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Class::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A short lowercase name for logs and metrics labels: `success`, `transient`,
    /// `throttled` or `permanent`.
    ///
    /// ```
    /// assert_eq!(riprap::classify::Class::Transient.as_str(), "transient");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Transient => "transient",
            Class::Throttled { .. } => "throttled",
            Class::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.retry_after() {
            Some(d) => write!(f, "throttled (retry after {d:?})"),
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

/// Verdicts for riprap's own typed errors and feature-gated client errors met inside a boxed
/// error's source chain.
pub(crate) fn known_error_class(err: &(dyn std::error::Error + 'static)) -> Option<Class> {
    if let Some(r) = err.downcast_ref::<crate::breaker::Rejected>() {
        return Some(Classified::class(r));
    }
    if let Some(e) = err.downcast_ref::<crate::ratelimit::RateLimitError>() {
        return Some(Classified::class(e));
    }
    #[cfg(feature = "reqwest")]
    if let Some(e) = err.downcast_ref::<::reqwest::Error>() {
        return Some(Classified::class(e));
    }
    #[cfg(feature = "rusqlite")]
    if let Some(e) = err.downcast_ref::<rusqlite::Error>() {
        return Some(Classified::class(e));
    }
    #[cfg(any(feature = "sqlx", feature = "tokio-postgres"))]
    if let Some(c) = postgres::known_class(err) {
        return Some(c);
    }
    crate::retry::known_class(err)
}
