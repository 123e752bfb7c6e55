use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::config::{ChaosBuilder, Latency};
use super::fault::{ChaosError, Fault};
use super::future::ResponseFuture;
use crate::backoff::SplitMix64;
use crate::time::nanos;

/// Turns a [`Fault`] into a service's outcome.
///
/// Implemented for [`DefaultInjector`] (an `Err` built `From<ChaosError>`) and for every
/// `Fn(Fault) -> Result<Res, Err>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot inject faults into outcomes of `Result<{Res}, {Err}>`",
    note = "the chaos layer's default injector needs `{Err}: From<riprap::chaos::ChaosError>`; implement that, or `Inject` for your own injector"
)]
pub trait Inject<Res, Err> {
    /// The outcome the caller sees for `fault`.
    fn inject(&self, fault: Fault) -> Result<Res, Err>;
}

/// Injects `Err(ChaosError::from(fault).into())`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultInjector;

impl<Res, Err: From<ChaosError>> Inject<Res, Err> for DefaultInjector {
    fn inject(&self, fault: Fault) -> Result<Res, Err> {
        Err(ChaosError::from(fault).into())
    }
}

impl<F, Res, Err> Inject<Res, Err> for F
where
    F: Fn(Fault) -> Result<Res, Err>,
{
    fn inject(&self, fault: Fault) -> Result<Res, Err> {
        self(fault)
    }
}

/// What the chaos layer decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decision {
    pub(super) fault: Option<Fault>,
    pub(super) delay: Option<Duration>,
}

#[derive(Debug)]
pub(super) struct Shared {
    seed: u64,
    error_rate: f64,
    throttle: Option<(f64, Duration)>,
    latency: Option<(f64, Latency)>,
    outages: Vec<(Duration, Duration)>,
    calls: AtomicU64,
    start: OnceLock<Instant>,
}

impl Shared {
    pub(super) fn new(
        seed: u64,
        error_rate: f64,
        throttle: Option<(f64, Duration)>,
        latency: Option<(f64, Latency)>,
        outages: Vec<(Duration, Duration)>,
    ) -> Self {
        Shared {
            seed,
            error_rate,
            throttle,
            latency,
            outages,
            calls: AtomicU64::new(0),
            start: OnceLock::new(),
        }
    }

    /// Decide the fate of the next call. Each call draws from its own stream, derived from the
    /// seed and the call's number, so decisions never depend on how clones interleave their
    /// draws — only on the order of calls.
    pub(super) fn decide(&self) -> Decision {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64::new(SplitMix64::mix(self.seed, n));
        let roll = unit(&mut rng);
        let latency_roll = unit(&mut rng);
        let latency_draw = rng.next_u64();

        let fault = if !self.outages.is_empty() && self.in_outage() {
            Some(Fault::Outage)
        } else if roll < self.error_rate {
            Some(Fault::Error)
        } else {
            match self.throttle {
                Some((rate, retry_after)) if roll < self.error_rate + rate => {
                    Some(Fault::Throttle { retry_after })
                }
                _ => None,
            }
        };
        let delay = match self.latency {
            Some((rate, latency)) if latency_roll < rate => Some(match latency {
                Latency::Fixed(d) => d,
                Latency::Uniform(lo, hi) => {
                    let (lo, hi) = (nanos(lo), nanos(hi));
                    let span = hi - lo;
                    let offset = if span == 0 {
                        0
                    } else {
                        latency_draw % (span + 1)
                    };
                    Duration::from_nanos(lo + offset)
                }
            }),
            _ => None,
        };
        Decision { fault, delay }
    }

    fn in_outage(&self) -> bool {
        let now = Instant::now();
        let since = now.saturating_duration_since(*self.start.get_or_init(|| now));
        self.outages
            .iter()
            .any(|&(from, until)| since >= from && since < until)
    }

    /// How many calls the layer has seen, across every clone.
    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn unit(rng: &mut SplitMix64) -> f64 {
    // 53 random bits: uniform in [0, 1).
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Injects seeded faults in front of a service; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct ChaosLayer<I = DefaultInjector> {
    shared: Arc<Shared>,
    injector: I,
}

impl ChaosLayer<DefaultInjector> {
    /// Start configuring a chaos layer.
    pub fn builder() -> ChaosBuilder<DefaultInjector> {
        ChaosBuilder::new()
    }
}

impl<I> ChaosLayer<I> {
    pub(super) fn from_parts(shared: Arc<Shared>, injector: I) -> Self {
        ChaosLayer { shared, injector }
    }

    /// Calls seen so far by every service this layer made.
    pub fn calls(&self) -> u64 {
        self.shared.calls()
    }
}

impl<S, I: Clone> Layer<S> for ChaosLayer<I> {
    type Service = Chaos<S, I>;

    fn layer(&self, inner: S) -> Chaos<S, I> {
        Chaos {
            inner,
            shared: Arc::clone(&self.shared),
            injector: self.injector.clone(),
        }
    }
}

/// The service [`ChaosLayer`] makes. Clones share one seed sequence and one outage clock.
#[derive(Debug, Clone)]
pub struct Chaos<S, I = DefaultInjector> {
    inner: S,
    shared: Arc<Shared>,
    injector: I,
}

impl<S, I> Chaos<S, I> {
    /// Calls seen so far by this service and its clones.
    pub fn calls(&self) -> u64 {
        self.shared.calls()
    }
}

impl<S, I, Req> Service<Req> for Chaos<S, I>
where
    S: Service<Req>,
    I: Inject<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let decision = self.shared.decide();
        match decision.fault {
            Some(fault) => ResponseFuture::injected(self.injector.inject(fault), decision.delay),
            None => ResponseFuture::inner(self.inner.call(req), decision.delay),
        }
    }
}
