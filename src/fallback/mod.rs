//! Fallback: when the primary fails with a chosen class of failure, call another service.
//!
//! An LLM provider has an outage, or rate-limits this caller, or its breaker is open: the
//! request can still be answered by another provider, another model, another region. A
//! [`FallbackLayer`] wraps the primary service; a request whose outcome the classifier puts
//! in one of the chosen classes ([`FallbackOn`], by default every failure another try may
//! fix) is sent to the fallback, and the fallback's answer is the request's.
//!
//! ```
//! use std::time::Duration;
//! use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures};
//! use riprap::classify::{ByError, Through};
//! use riprap::fallback::FallbackLayer;
//! use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One breaker per provider: while the primary's is open, requests go straight to the
//! // fallback without waiting on the dead provider.
//! let primary_breaker = CircuitBreaker::builder()
//!     .policy(ConsecutiveFailures::new(3)?)
//!     .open_for(Duration::from_secs(30))
//!     .build()?;
//! let primary = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(primary_breaker.clone()))
//!     .service_fn(|_: String| async {
//!         Err::<String, _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
//!     });
//! let secondary = service_fn(|p: String| async move { Ok::<_, std::io::Error>(format!("b: {p}")) });
//!
//! let svc = FallbackLayer::new(secondary)
//!     .classifier(Through(ByError)) // the primary's errors come wrapped by its breaker
//!     .name("provider-b")
//!     .layer(primary);
//! for _ in 0..5 {
//!     assert_eq!(svc.clone().oneshot("hi".to_string()).await?, "b: hi");
//! }
//! assert!(primary_breaker.metrics().rejected >= 2); // the last calls never reached it
//! # Ok(()) }
//! ```
//!
//! ## What falls back
//!
//! - **On which failures**: [`FallbackOn::failures`] (the default) falls back on a transient
//!   failure, a timeout, a throttle (this provider asked this caller to slow down; another
//!   provider did not) and a local refusal (the primary's own open breaker, empty quota or
//!   full bulkhead). A permanent error (a bad request) would fail at the fallback too, so it
//!   is returned, unless you add it ([`FallbackOn::permanent`]: a content policy one model
//!   enforces and another does not). Any `Fn(&Class) -> bool` works too.
//! - **Which requests**: the request is copied before the primary is called (the primary
//!   consumes it), with a [`CloneRequest`](crate::retry::CloneRequest) policy as for
//!   retries; a request it declines to copy is not sent to the fallback
//!   ([`FallbackEvent::NotReplayable`]), and the primary's error is returned.
//! - **What is returned**: the fallback's outcome, whatever it is, or the primary's when it
//!   did not fall back; [`FallbackError`] says which failed.
//!
//! ## A breaker per provider, and more than two
//!
//! Put each provider behind its own [`CircuitBreakerLayer`](crate::breaker::CircuitBreakerLayer)
//! (and, if you like, its own rate limiter and bulkhead): an open breaker refuses at once,
//! the refusal is a [`Class::Refused`](crate::classify::Class::Refused), and the request
//! goes to the fallback without waiting on the dead provider. Chain providers by nesting:
//! `FallbackLayer::new(c).layer(FallbackLayer::new(b).layer(a))` tries a, then b, then c.
//! `examples/llm_failover.rs` runs two providers through an outage.
//!
//! ## In a tower stack
//!
//! Put the fallback **below the retry layer** (a retry retries the pair, once both failed)
//! and **above each provider's own stack** (breaker, rate limiter, bulkhead, attempt
//! timeout), so each provider's protections see only its own traffic.
//!
//! ## Observing
//!
//! What it does goes to `tracing` (target `riprap::fallback`; levels and fields in
//! [`FallbackEvent`]'s table) and, as [`FallbackEvent`]s, to a [`Listener`](crate::events::Listener) set
//! with [`FallbackLayer::listener`]. With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_fallback_fell_back_total` | counter | `class` (the primary's failure) | requests sent to the fallback |
//! | `riprap_fallback_not_replayable_total` | counter | `class` | requests the copy policy kept from the fallback |
//! | `riprap_fallback_failed_total` | counter | | requests the fallback failed too |

mod error;
mod events;
mod future;
mod layer;
mod service;
#[cfg(feature = "serde")]
mod spec;
mod when;

pub use error::FallbackError;
pub use events::FallbackEvent;
pub use future::ResponseFuture;
pub use layer::FallbackLayer;
pub use service::Fallback;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::FallbackSpec;
pub use when::{FallbackOn, FallbackWhen};
