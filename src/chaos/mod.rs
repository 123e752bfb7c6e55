//! Seeded fault injection, so you can test your own stack against the failures riprap exists for.
//!
//! [`ChaosLayer`] sits where the real client would be (or just above it) and, for a given seed,
//! injects the same faults in the same order on every run:
//!
//! - **errors** at a rate (`Fault::Error`),
//! - **throttles** at a rate, carrying a `Retry-After` (`Fault::Throttle`),
//! - **latency** at a rate, fixed or uniform in a range,
//! - **scripted outages**: windows of time, measured from when the layer was built, during which
//!   every call fails (`Fault::Outage`) without reaching the inner service.
//!
//! Faults become your service's own outcome types through an injector: by default an
//! `Err(ChaosError)` converted with `From`, or any function of the [`Fault`] you give, so an
//! HTTP stack can receive a real `429` response with a `Retry-After` header.
//!
//! **Object stores** (feature `object_store`): `ChaosStore` wraps any
//! `object_store::ObjectStore` and injects the same faults from inside it, plus read bodies
//! that end early or fail part-way, so an `Arc<dyn ObjectStore>` under test needs no wrapper
//! of your own.
//!
//! Randomness is drawn from the seed and a per-layer call counter, so a run on a single-threaded
//! runtime (or the paused test clock) is reproducible to the call.
//!
//! ```
//! use std::time::Duration;
//! use riprap::chaos::{ChaosError, ChaosLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let chaos = ChaosLayer::builder()
//!     .seed(7)
//!     .error_rate(0.2)
//!     .throttle_rate(0.1, Duration::from_secs(20))
//!     .outage(Duration::from_secs(60), Duration::from_secs(120))
//!     .build()?;
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(chaos)
//!     .service_fn(|x: u32| async move { Ok::<_, ChaosError>(x * 2) });
//!
//! let mut ok = 0;
//! for i in 0..100 {
//!     if svc.ready().await?.call(i).await.is_ok() {
//!         ok += 1;
//!     }
//! }
//! assert!(ok > 50 && ok < 90); // about 70 % get through
//! # Ok(()) }
//! ```
//!
//! ## From a config file
//!
//! With the `serde` feature, `ChaosSpec` holds every knob as plain data, so a test run or a
//! staging environment can switch faults on from TOML, YAML or JSON:
//!
//! ```toml
//! seed = 7
//! error_rate = 0.2
//! throttle_rate = 0.1
//! throttle_retry_after = "20s"
//! latency_rate = 0.5
//! latency = { min = "50ms", max = "200ms" }    # or { fixed = "100ms" }
//! outages = [{ from = "1m", until = "2m" }]
//! ```

mod config;
mod fault;
mod future;
mod layer;
#[cfg(feature = "object_store")]
mod object_store;
#[cfg(feature = "serde")]
mod spec;
mod stream;

#[cfg(feature = "object_store")]
#[cfg_attr(docsrs, doc(cfg(feature = "object_store")))]
pub use self::object_store::{ChaosStore, ChaosStoreBuilder, InjectedFaults};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config::ChaosSpec;
pub use config::{ChaosBuilder, Latency};
pub use fault::{ChaosError, Fault};
pub use future::ResponseFuture;
pub use layer::{Chaos, ChaosLayer, DefaultInjector, Inject};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::{LatencySpec, OutageSpec};
pub use stream::{Disconnects, disconnects};
