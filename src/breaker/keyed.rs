//! One breaker per key (host, endpoint, model, tenant), with bounded key state.

use std::fmt::{self, Debug, Write as _};
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::error::BreakerError;
use super::events::BreakerState;
use super::future::ResponseFuture;
use super::handle::CircuitBreaker;
use super::policy::{ConsecutiveFailures, TripPolicy};
use super::service::Handle;
use super::state::Ticket;
use crate::classify::ByError;
use crate::classify::Classify;
use crate::error::ConfigError;
use crate::keyed::{KeyLimits, KeyMap, KeyState, Knobs};

const KNOBS: Knobs = Knobs {
    max_keys: "breaker.max_keys",
    idle_timeout: "breaker.idle_timeout",
    max_key_bytes: "breaker.max_key_bytes",
};

/// A breaker's name in events is its key's `Debug` form cut to this many bytes, so a long
/// key does not cost its size again in every breaker.
const NAME_BYTES: usize = 64;

impl<P: TripPolicy, C> KeyState for Arc<Handle<P, C>> {
    /// An operator's command outlives eviction and idle expiry: forgetting it would silently
    /// undo an isolation.
    fn pinned(&self) -> bool {
        matches!(
            self.breaker.state(),
            BreakerState::Isolated | BreakerState::ForcedClosed | BreakerState::Disabled
        )
    }
}

/// The breakers of a [`KeyedCircuitBreakerLayer`], one per key, within [`KeyLimits`].
///
/// # Every key its own breaker
///
/// A key's calls are judged by its own breaker only, whatever the number of keys: there is
/// no breaker shared by keys that did not fit. The cap is kept by *forgetting* a key (its
/// breaker is evicted; the next call starts a fresh, closed one), never by pooling keys, so
/// one key's failures can never reject another key's calls. Eviction picks the victim by
/// use, not by state (see [`KeyLimits`]): an open breaker, whose open time has passed or
/// not, can be evicted like any other. That is the price of the bound: a key forgotten
/// while its dependency is down gets through up to its trip threshold of calls again before
/// its new breaker opens. Keys in steady use (and a key whose callers keep being rejected
/// is in use) stay; a flood of new keys recycles only the probation area.
///
/// This is how the registries of resilience4j, Envoy's outlier detection, Finagle's
/// failure accrual and governor's keyed limiter behave too: state is per key and never
/// pooled. They bound it differently (resilience4j and governor not at all, Envoy and
/// Finagle by the set of hosts service discovery returns); riprap's keys come from
/// requests, so it bounds them with a cap, idle expiry and an optional byte charge.
///
/// A breaker under an operator's command ([`force_open`](CircuitBreaker::force_open),
/// [`force_closed`](CircuitBreaker::force_closed), [`disable`](CircuitBreaker::disable)) is
/// never evicted or expired; [`reset`](CircuitBreaker::reset) or [`remove`](Self::remove)
/// releases it. Such breakers count against the cap, and a shard they fill entirely grows
/// past its share.
///
/// # Cancellation
///
/// A call's future holds its breaker, so a key evicted, expired or removed while a call is
/// in flight loses nothing: the call reports to the breaker it was admitted by, and a
/// dropped probe hands its permit back to it.
///
/// # Cost
///
/// A call on a known key is a lookup in quick_cache (a hash, a shard read lock, a probe)
/// and a reference-count increment, then the breaker's lock-free admission; with an idle
/// timeout, one clock reading more. A new key allocates its breaker and takes its shard's
/// write lock briefly; finding room is amortised O(1) at any cap (about 3,500 instructions
/// per new key at caps of 1 k, 100 k and 1 M; `benches/keyed.rs`).
///
/// Memory is about `max_keys × 1.25 KB` with the default policy and `u64` keys (the breaker
/// with its policy and open schedule, a name of at most 64 bytes, the map's entry), plus the
/// keys' own heap bytes, which [`KeyLimits::max_key_bytes`] can bound too.
pub struct KeyedBreakers<K, P = ConsecutiveFailures, C = ByError> {
    map: KeyMap<K, Arc<Handle<P, C>>>,
    limits: KeyLimits<K>,
    template: CircuitBreaker<P>,
    classifier: C,
}

impl<K: Hash + Eq + Clone, P: TripPolicy, C> Debug for KeyedBreakers<K, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("len", &self.map.len())
            .field("max_keys", &self.map.max_keys())
            .finish_non_exhaustive()
    }
}

/// Writes at most [`NAME_BYTES`] bytes, then refuses (which stops the `Debug` impl early).
struct Bounded {
    buf: [u8; NAME_BYTES],
    len: usize,
    cut: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = NAME_BYTES - self.len;
        let take = if s.len() <= room {
            s.len()
        } else {
            (0..=room)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0)
        };
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        if take < s.len() {
            self.cut = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// The key's `Debug` form, cut to [`NAME_BYTES`] bytes (marked with `…`): one allocation.
fn name_of<K: Debug>(key: &K) -> Arc<str> {
    let mut w = Bounded {
        buf: [0; NAME_BYTES],
        len: 0,
        cut: false,
    };
    let _ = write!(w, "{key:?}");
    // Only whole characters were copied, so this is valid UTF-8.
    let text = w
        .buf
        .get(..w.len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    if w.cut {
        format!("{text}…").into()
    } else {
        text.into()
    }
}

impl<K, P, C> KeyedBreakers<K, P, C>
where
    K: Hash + Eq + Clone + Debug,
    P: TripPolicy,
    C: Clone,
{
    fn new(
        template: CircuitBreaker<P>,
        limits: KeyLimits<K>,
        classifier: C,
    ) -> Result<Self, ConfigError> {
        Ok(KeyedBreakers {
            map: KeyMap::new(&limits, &KNOBS)?,
            limits,
            template,
            classifier,
        })
    }

    fn fresh(&self, key: &K) -> Arc<Handle<P, C>> {
        Arc::new(Handle {
            breaker: self.template.fresh(Some(name_of(key))),
            classifier: self.classifier.clone(),
        })
    }

    fn handle(&self, key: &K) -> Arc<Handle<P, C>> {
        // A key too heavy to keep still gets a breaker of its own, for this call only.
        self.map
            .get_or_insert(key, || self.fresh(key))
            .unwrap_or_else(|| self.fresh(key))
    }

    /// The breaker for `key`, if it has one (looking does not count as a use).
    pub fn get(&self, key: &K) -> Option<CircuitBreaker<P>> {
        self.map.peek(key).map(|h| h.breaker.clone())
    }

    /// Forget `key`: its next call starts a fresh, closed breaker. Returns the breaker it
    /// had. Calls in flight finish on the old one.
    ///
    /// ```
    /// use riprap::breaker::{CircuitBreaker, KeyedCircuitBreakerLayer};
    /// use tower::{Service, ServiceExt, Layer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let layer = KeyedCircuitBreakerLayer::new(CircuitBreaker::builder().build()?, 100, |k: &u32| *k)?;
    /// let breakers = layer.breakers().clone();
    /// let mut svc = layer.layer(tower::service_fn(|_: u32| async { Ok::<_, std::io::Error>(()) }));
    /// svc.ready().await?.call(7).await?;
    /// assert!(breakers.remove(&7).is_some());
    /// assert!(breakers.get(&7).is_none());
    /// # Ok(()) }
    /// ```
    pub fn remove(&self, key: &K) -> Option<CircuitBreaker<P>> {
        self.map.remove(key).map(|h| h.breaker.clone())
    }

    /// Keep only the keys for which `keep(key, breaker)` is true (idle keys go too).
    ///
    /// Takes each shard's write lock in turn, so `keep` must not call back into these
    /// breakers. Visits every key: for maintenance, not for every request.
    ///
    /// ```
    /// use riprap::breaker::{BreakerState, CircuitBreaker, KeyedCircuitBreakerLayer};
    /// use tower::{Service, ServiceExt, Layer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let layer = KeyedCircuitBreakerLayer::new(CircuitBreaker::builder().build()?, 100, |k: &u32| *k)?;
    /// let breakers = layer.breakers().clone();
    /// let mut svc = layer.layer(tower::service_fn(|_: u32| async { Ok::<_, std::io::Error>(()) }));
    /// for k in 0..10 {
    ///     svc.ready().await?.call(k).await?;
    /// }
    /// // Forget every key but the open ones, say after a deploy of the dependency.
    /// breakers.retain(|_, breaker| breaker.state() == BreakerState::Open);
    /// assert!(breakers.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn retain(&self, keep: impl FnMut(&K, &CircuitBreaker<P>) -> bool) {
        let mut keep = keep;
        self.map.retain(|k, h| keep(k, &h.breaker));
    }

    /// Drop every key idle for longer than the [idle timeout](KeyLimits::idle_timeout) now,
    /// rather than at the next sweep. Visits every key.
    pub fn evict_idle(&self) {
        self.map.evict_idle();
    }

    /// How many keys have a breaker (idle keys not yet swept included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has a breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on keys.
    pub fn max_keys(&self) -> usize {
        self.map.max_keys()
    }

    /// The limits these breakers keep to.
    pub fn limits(&self) -> &KeyLimits<K> {
        &self.limits
    }

    /// Every key with its breaker (a snapshot; takes each shard's read lock once per key).
    pub fn snapshot(&self) -> Vec<(K, CircuitBreaker<P>)> {
        self.map
            .snapshot()
            .into_iter()
            .map(|(k, h)| (k, h.breaker.clone()))
            .collect()
    }
}

/// Wraps services so each request goes through the breaker of its key.
///
/// `template` gives every key's breaker its settings (each gets a fresh policy and its own
/// jittered open schedule, and is named after its key in events: the key's `Debug` form, cut
/// to 64 bytes). Every key gets a breaker of its own, kept within [`KeyLimits`]; see
/// [`KeyedBreakers`] for what happens at the cap.
///
/// ```
/// use riprap::breaker::{CircuitBreaker, KeyedCircuitBreakerLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // One breaker per host, at most 1,000 hosts.
/// let layer = KeyedCircuitBreakerLayer::new(
///     CircuitBreaker::builder().build()?,
///     1_000,
///     |url: &String| url.split('/').nth(2).unwrap_or("").to_owned(),
/// )?;
/// let breakers = layer.breakers().clone();
/// let mut svc = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|url: String| async move { Ok::<_, std::io::Error>(url.len()) });
/// svc.ready().await?.call("https://a.example/x".to_owned()).await?;
/// assert_eq!(breakers.len(), 1);
/// assert!(breakers.get(&"a.example".to_owned()).is_some());
/// # Ok(()) }
/// ```
pub struct KeyedCircuitBreakerLayer<F, K, P = ConsecutiveFailures, C = ByError> {
    breakers: Arc<KeyedBreakers<K, P, C>>,
    key_fn: F,
}

impl<F: Clone, K, P, C> Clone for KeyedCircuitBreakerLayer<F, K, P, C> {
    fn clone(&self) -> Self {
        KeyedCircuitBreakerLayer {
            breakers: Arc::clone(&self.breakers),
            key_fn: self.key_fn.clone(),
        }
    }
}

impl<F, K: Hash + Eq + Clone, P: TripPolicy, C> Debug for KeyedCircuitBreakerLayer<F, K, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

impl<F, K, P> KeyedCircuitBreakerLayer<F, K, P, ByError>
where
    K: Hash + Eq + Clone + Debug,
    P: TripPolicy,
{
    /// One breaker per `key_fn(&request)`, modelled on `template`, at most `max_keys`.
    pub fn new(
        template: CircuitBreaker<P>,
        max_keys: usize,
        key_fn: F,
    ) -> Result<Self, ConfigError> {
        Self::with_limits(template, KeyLimits::new(max_keys), key_fn)
    }

    /// One breaker per `key_fn(&request)`, modelled on `template`, kept within `limits`
    /// (a cap on keys, and optionally idle expiry and a byte budget for keys).
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::{CircuitBreaker, KeyLimits, KeyedCircuitBreakerLayer};
    ///
    /// let layer = KeyedCircuitBreakerLayer::with_limits(
    ///     CircuitBreaker::builder().build()?,
    ///     KeyLimits::new(10_000)
    ///         .idle_timeout(Duration::from_secs(15 * 60))
    ///         .max_key_bytes(4 << 20, |host: &String| host.len()),
    ///     |url: &String| url.split('/').nth(2).unwrap_or("").to_owned(),
    /// )?;
    /// assert_eq!(layer.breakers().max_keys(), 10_000);
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn with_limits(
        template: CircuitBreaker<P>,
        limits: KeyLimits<K>,
        key_fn: F,
    ) -> Result<Self, ConfigError> {
        Ok(KeyedCircuitBreakerLayer {
            breakers: Arc::new(KeyedBreakers::new(template, limits, ByError)?),
            key_fn,
        })
    }
}

impl<F, K, P, C> KeyedCircuitBreakerLayer<F, K, P, C>
where
    K: Hash + Eq + Clone + Debug,
    P: TripPolicy,
    C: Clone,
{
    /// Classify outcomes with `classifier`. Starts a new, empty set of breakers.
    pub fn classifier<C2: Clone>(self, classifier: C2) -> KeyedCircuitBreakerLayer<F, K, P, C2> {
        let b = &self.breakers;
        KeyedCircuitBreakerLayer {
            breakers: Arc::new(KeyedBreakers {
                map: b.map.empty_like(),
                limits: b.limits.clone(),
                template: b.template.clone(),
                classifier,
            }),
            key_fn: self.key_fn,
        }
    }

    /// The breakers, for metrics and manual control per key.
    pub fn breakers(&self) -> &Arc<KeyedBreakers<K, P, C>> {
        &self.breakers
    }
}

impl<S, F: Clone, K, P, C> Layer<S> for KeyedCircuitBreakerLayer<F, K, P, C> {
    type Service = KeyedCircuitBreakerService<S, F, K, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreakerService {
            inner,
            breakers: Arc::clone(&self.breakers),
            key_fn: self.key_fn.clone(),
        }
    }
}

/// A service whose requests each go through their key's breaker.
///
/// The key is only known in `call`, so `poll_ready` always polls the inner service, and a
/// request whose breaker is open fails fast in `call` (leaving the inner service's readiness
/// for the next request).
pub struct KeyedCircuitBreakerService<S, F, K, P = ConsecutiveFailures, C = ByError> {
    inner: S,
    breakers: Arc<KeyedBreakers<K, P, C>>,
    key_fn: F,
}

impl<S: Clone, F: Clone, K, P, C> Clone for KeyedCircuitBreakerService<S, F, K, P, C> {
    fn clone(&self) -> Self {
        KeyedCircuitBreakerService {
            inner: self.inner.clone(),
            breakers: Arc::clone(&self.breakers),
            key_fn: self.key_fn.clone(),
        }
    }
}

impl<S: Debug, F, K: Hash + Eq + Clone, P: TripPolicy, C> Debug
    for KeyedCircuitBreakerService<S, F, K, P, C>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCircuitBreakerService")
            .field("inner", &self.inner)
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, P, C> KeyedCircuitBreakerService<S, F, K, P, C> {
    /// The breakers, for metrics and manual control per key.
    pub fn breakers(&self) -> &Arc<KeyedBreakers<K, P, C>> {
        &self.breakers
    }
}

impl<S, F, K, P, C, Req> Service<Req> for KeyedCircuitBreakerService<S, F, K, P, C>
where
    S: Service<Req>,
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone + Debug,
    P: TripPolicy,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = ResponseFuture<S::Future, P, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let handle = self.breakers.handle(&(self.key_fn)(&req));
        match handle.breaker.shared.admit() {
            Ok(adm) => ResponseFuture::called(self.inner.call(req), Ticket::new(handle, adm)),
            Err(why) => ResponseFuture::rejected(why),
        }
    }
}
