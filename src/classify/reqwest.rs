//! `reqwest` errors and responses in riprap's vocabulary (feature `reqwest`).
//!
//! A `reqwest::Client` is already a tower service (`Service<reqwest::Request>`, `Clone`), so
//! it sits under riprap's layers as it is:
//!
//! ```no_run
//! use std::time::Duration;
//! use riprap::classify::ByError;
//! use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let limiter = RateLimiter::new(RateLimitConfig::builder().requests(60, Duration::from_secs(60)).build()?);
//! let client = reqwest::Client::new();
//! let api = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(limiter).classify(ByError))
//!     .service(client.clone());
//!
//! let request = client.get("https://api.example.com/v1/status").build()?;
//! let response = api.oneshot(request).await?;
//! # let _ = response; Ok(()) }
//! ```

use http::StatusCode;

use super::{Class, Classified};

/// Timeouts and failed connections are worth another try; a request that could not be built
/// or a redirect loop is not; an error for a status is classified by the status.
impl Classified for reqwest::Error {
    fn class(&self) -> Class {
        if let Some(status) = self.status() {
            return status_class(status);
        }
        if self.is_builder() || self.is_redirect() || self.is_decode() {
            Class::Permanent
        } else {
            // Timeouts, refused or reset connections, bodies cut short: the network's fault.
            Class::Transient
        }
    }
}

/// The class of a bare status (no headers to read a delay from).
pub(crate) fn status_class(status: StatusCode) -> Class {
    match status.as_u16() {
        429 => Class::Throttled { retry_after: None },
        408 | 500 | 502 | 503 | 504 => Class::Transient,
        s if s >= 500 => Class::Transient,
        s if s >= 400 => Class::Permanent,
        _ => Class::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_status() {
        assert_eq!(
            status_class(StatusCode::TOO_MANY_REQUESTS),
            Class::Throttled { retry_after: None }
        );
        assert_eq!(
            status_class(StatusCode::SERVICE_UNAVAILABLE),
            Class::Transient
        );
        assert_eq!(status_class(StatusCode::REQUEST_TIMEOUT), Class::Transient);
        assert_eq!(
            status_class(StatusCode::UNPROCESSABLE_ENTITY),
            Class::Permanent
        );
        assert_eq!(status_class(StatusCode::OK), Class::Success);
    }

    #[tokio::test]
    async fn errors_by_kind() {
        let builder = reqwest::Client::new().get("not a url").build().unwrap_err();
        assert_eq!(builder.class(), Class::Permanent);
        // Nothing listens on port 9 of the loopback: the connection is refused.
        let refused = reqwest::Client::new()
            .get("http://127.0.0.1:9/")
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused.class(), Class::Transient);
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refused);
        assert_eq!(boxed.class(), Class::Transient, "found in a boxed chain");
    }
}
