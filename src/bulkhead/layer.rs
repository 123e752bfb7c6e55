//! [`BulkheadLayer`]: put a [`Bulkhead`] in front of a service.

use std::hash::Hash;

use tower_layer::Layer;

use super::config::Priority;
use super::handle::Bulkhead;
use super::keyed::KeyedBulkheads;
use super::service::BulkheadService;
use crate::classify::ByError;

/// How urgent a request is: a constant [`Priority`] (every request alike), or any
/// `Fn(&Req) -> Priority`.
///
/// ```
/// use riprap::bulkhead::{Prioritize, Priority};
///
/// struct Job { interactive: bool }
/// let by_kind = |job: &Job| if job.interactive { Priority::HIGH } else { Priority::LOW };
/// assert_eq!(by_kind.priority(&Job { interactive: true }), Priority::HIGH);
/// assert_eq!(Priority::NORMAL.priority(&Job { interactive: true }), Priority::NORMAL);
/// ```
pub trait Prioritize<Req> {
    /// The priority of `request`.
    fn priority(&self, request: &Req) -> Priority;
}

impl<Req> Prioritize<Req> for Priority {
    #[inline]
    fn priority(&self, _: &Req) -> Priority {
        *self
    }
}

impl<Req, F> Prioritize<Req> for F
where
    F: Fn(&Req) -> Priority,
{
    fn priority(&self, request: &Req) -> Priority {
        self(request)
    }
}

/// Chooses the bulkhead a request goes through: one shared [`Bulkhead`], or one per key
/// with [`ByKey`].
pub trait SelectBulkhead<Req> {
    /// The bulkhead for `request`.
    fn select(&self, request: &Req) -> Bulkhead;

    /// The one bulkhead every request goes through, if that is what this selects: the
    /// service then keeps a private handle on it (see
    /// [`BulkheadService`](super::BulkheadService)'s cost notes).
    fn only(&self) -> Option<&Bulkhead> {
        None
    }
}

impl<Req> SelectBulkhead<Req> for Bulkhead {
    #[inline]
    fn select(&self, _: &Req) -> Bulkhead {
        self.clone()
    }

    #[inline]
    fn only(&self) -> Option<&Bulkhead> {
        Some(self)
    }
}

/// One bulkhead per key of a [`KeyedBulkheads`], the key computed from each request.
#[derive(Debug, Clone)]
pub struct ByKey<K, F> {
    bulkheads: KeyedBulkheads<K>,
    key: F,
}

impl<Req, K, F> SelectBulkhead<Req> for ByKey<K, F>
where
    K: Hash + Eq + Clone + std::fmt::Debug,
    F: Fn(&Req) -> K,
{
    fn select(&self, request: &Req) -> Bulkhead {
        self.bulkheads.get(&(self.key)(request))
    }
}

/// Limits the calls in flight to the inner service; see the [module guide](super).
///
/// ```
/// use std::time::Duration;
/// use riprap::bulkhead::{Bulkhead, BulkheadLayer, Priority};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// struct Review { urgent: bool }
///
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(8)
///     .max_queue(500)
///     .queue_timeout(Duration::from_secs(5))
///     .build()?;
/// let svc = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead).priority(|r: &Review| {
///         if r.urgent { Priority::HIGH } else { Priority::LOW }
///     }))
///     .service_fn(|_: Review| async { Ok::<_, std::io::Error>("reviewed") });
///
/// assert_eq!(svc.oneshot(Review { urgent: true }).await?, "reviewed");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer<L = Bulkhead, P = Priority, C = ByError> {
    select: L,
    priority: P,
    classifier: C,
}

impl BulkheadLayer {
    /// Every request goes through `bulkhead` (shared with its clones) at
    /// [`Priority::NORMAL`], its outcome classified with [`ByError`].
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer {
            select: bulkhead,
            priority: Priority::NORMAL,
            classifier: ByError,
        }
    }
}

impl<K, F> BulkheadLayer<ByKey<K, F>> {
    /// Each request goes through the bulkhead of its key, `key(&request)`.
    pub fn keyed(bulkheads: KeyedBulkheads<K>, key: F) -> Self {
        BulkheadLayer {
            select: ByKey { bulkheads, key },
            priority: Priority::NORMAL,
            classifier: ByError,
        }
    }
}

impl<L, P, C> BulkheadLayer<L, P, C> {
    /// How urgent each request is; see [`Prioritize`].
    pub fn priority<P2>(self, priority: P2) -> BulkheadLayer<L, P2, C> {
        BulkheadLayer {
            select: self.select,
            priority,
            classifier: self.classifier,
        }
    }

    /// The classifier whose verdicts feed an adaptive limit: a throttle or a timeout
    /// shrinks it, a success or a permanent error is a latency sample (default [`ByError`],
    /// riprap's one default).
    pub fn classifier<C2>(self, classifier: C2) -> BulkheadLayer<L, P, C2> {
        BulkheadLayer {
            select: self.select,
            priority: self.priority,
            classifier,
        }
    }
}

impl<S, L: Clone, P: Clone, C: Clone> Layer<S> for BulkheadLayer<L, P, C> {
    type Service = BulkheadService<S, L, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService::new(
            inner,
            self.select.clone(),
            self.priority.clone(),
            self.classifier.clone(),
        )
    }
}
