//! `reqwest` errors and responses in riprap's vocabulary (feature `reqwest`).
//!
//! - [`reqwest::Error`] implements [`Classified`]: timeouts, refused or reset connections and
//!   bodies cut short are transient; a request that could not be built, a redirect loop or an
//!   undecodable body are permanent; an error for a status is classified by the status.
//! - [`HttpStatus`] classifies `reqwest::Response`s as it does `http::Response`s (status plus
//!   `Retry-After` and rate-limit headers), and
//!   [`HeaderSignal`](crate::ratelimit::HeaderSignal) reads their rate-limit headers.
//!
//! A `reqwest::Client` is already a tower service (`Service<reqwest::Request>`, `Clone`), so
//! it sits under riprap's layers as it is; to keep your own request type, wrap
//! `client.execute` (or a request builder) in `tower::service_fn`:
//!
//! ```no_run
//! use std::time::Duration;
//! use riprap::classify::HttpStatus;
//! use riprap::ratelimit::{HeaderSignal, RateLimitConfig, RateLimitLayer, RateLimiter};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let limiter = RateLimiter::new(RateLimitConfig::builder().requests(60, Duration::from_secs(60)).build()?);
//! let client = reqwest::Client::new();
//! let github = ServiceBuilder::new()
//!     .layer(
//!         RateLimitLayer::new(limiter)
//!             .classifier(HttpStatus::new())
//!             .read_signal(HeaderSignal::new()),
//!     )
//!     .service(client.clone()); // or: service_fn(move |req| client.execute(req))
//!
//! let request = client.get("https://api.github.com/rate_limit").build()?;
//! let response = github.oneshot(request).await?;
//! # let _ = response; Ok(()) }
//! ```

use http::HeaderMap;

use super::{Class, Classified, Classify, HttpStatus};

/// Responses by status and headers, as for `http::Response`; errors by their own
/// [`Classified`] impl.
impl<E: Classified> Classify<reqwest::Response, E> for HttpStatus {
    fn classify(&self, outcome: Result<&reqwest::Response, &E>) -> Class {
        match outcome {
            Ok(res) => self.classify_parts(res.status(), res.headers()),
            Err(e) => e.class(),
        }
    }
}

/// Timeouts and failed connections are worth another try; a request that could not be built
/// or a redirect loop is not; an error for a status is classified by the status.
impl Classified for reqwest::Error {
    fn class(&self) -> Class {
        if let Some(status) = self.status() {
            // The same table as for responses; an error carries no headers to read.
            return HttpStatus::new().classify_parts(status, &HeaderMap::new());
        }
        if self.is_builder() || self.is_redirect() || self.is_decode() {
            Class::Permanent
        } else {
            // Timeouts, refused or reset connections, bodies cut short: the network's fault.
            Class::Transient
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    fn response(status: u16, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut res = http::Response::builder().status(status);
        for (k, v) in headers {
            res = res.header(*k, *v);
        }
        reqwest::Response::from(res.body("").unwrap())
    }

    #[test]
    fn responses_and_status_errors() {
        let c = HttpStatus::new();
        let throttled = response(429, &[("retry-after", "7")]);
        assert_eq!(
            Classify::<_, reqwest::Error>::classify(&c, Ok(&throttled)),
            Class::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let ok = response(200, &[]);
        assert_eq!(
            Classify::<_, reqwest::Error>::classify(&c, Ok(&ok)),
            Class::Success
        );
        let unavailable = response(503, &[]).error_for_status().unwrap_err();
        assert_eq!(unavailable.class(), Class::Transient);
        let missing = response(404, &[]).error_for_status().unwrap_err();
        assert_eq!(missing.class(), Class::Permanent);
        assert_eq!(
            response(429, &[]).error_for_status().unwrap_err().class(),
            Class::Throttled { retry_after: None }
        );
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
