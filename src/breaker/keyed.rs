//! One breaker per key (host, endpoint, model, tenant), with a cap on keys.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::error::BreakerError;
use super::events::BreakerState;
use super::future::ResponseFuture;
use super::policy::{ConsecutiveFailures, TripPolicy};
use super::service::Handle;
use super::state::{CircuitBreaker, Ticket};
use crate::classify::ByError;
use crate::classify::Classify;
use crate::error::ConfigError;

const SHARDS: usize = 16;
/// While at the cap with nothing evictable, sweep again only after this many new keys, so a
/// flood of fresh keys costs a hash lookup each rather than a scan of the whole map.
const SWEEP_EVERY: u64 = 64;

type Shard<K, P, C> = RwLock<HashMap<K, Arc<Handle<P, C>>>>;

/// The breakers of a [`KeyedCircuitBreakerLayer`], one per key, at most `max_keys` of them.
///
/// Lookups take a read lock on one of 16 shards (a hash, an uncontended read lock and a
/// reference-count increment, tens of nanoseconds); only a key's first call takes a write
/// lock. When the map is full, idle closed breakers (no call in flight) are evicted, those
/// holding no failures first: forgetting them loses nothing. When every breaker is open or
/// busy, new keys share one overflow breaker, so hostile key cardinality cannot grow memory
/// and still cannot bypass the breaker.
pub struct KeyedBreakers<K, P = ConsecutiveFailures, C = ByError> {
    shards: Box<[Shard<K, P, C>]>,
    hasher: RandomState,
    template: CircuitBreaker<P>,
    classifier: C,
    max_keys: usize,
    len: AtomicUsize,
    overflow: Arc<Handle<P, C>>,
    overflowed: AtomicU64,
}

impl<K, P, C> Debug for KeyedBreakers<K, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl<K, P, C> KeyedBreakers<K, P, C>
where
    K: Hash + Eq + Clone + Debug,
    P: TripPolicy,
    C: Clone,
{
    fn new(
        template: CircuitBreaker<P>,
        max_keys: usize,
        classifier: C,
    ) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::new("breaker.max_keys", "must be at least 1"));
        }
        let overflow = Arc::new(Handle {
            breaker: template.fresh(Some("<overflow>".into())),
            classifier: classifier.clone(),
        });
        Ok(KeyedBreakers {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            template,
            classifier,
            max_keys,
            len: AtomicUsize::new(0),
            overflow,
            overflowed: AtomicU64::new(0),
        })
    }

    fn shard(&self, key: &K) -> &Shard<K, P, C> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn handle(&self, key: &K) -> Arc<Handle<P, C>> {
        let shard = self.shard(key);
        if let Some(h) = read(shard).get(key) {
            return Arc::clone(h);
        }
        if self.len.load(Ordering::Relaxed) >= self.max_keys && !self.sweep() {
            return Arc::clone(&self.overflow);
        }
        let mut map = write(shard);
        if let Some(h) = map.get(key) {
            return Arc::clone(h);
        }
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.max_keys {
            self.len.fetch_sub(1, Ordering::Relaxed);
            return Arc::clone(&self.overflow);
        }
        let name: Arc<str> = format!("{key:?}").into();
        let h = Arc::new(Handle {
            breaker: self.template.fresh(Some(name)),
            classifier: self.classifier.clone(),
        });
        map.insert(key.clone(), Arc::clone(&h));
        h
    }

    /// Evict idle closed breakers; `true` if any slot was freed.
    fn sweep(&self) -> bool {
        if self.overflowed.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != 0 {
            return false;
        }
        let idle = |h: &Arc<Handle<P, C>>| {
            Arc::strong_count(h) == 1 && h.breaker.state() == BreakerState::Closed
        };
        let clean = |h: &Arc<Handle<P, C>>| {
            let m = h.breaker.metrics();
            m.consecutive_failures.unwrap_or(0) == 0 && m.failure_rate.unwrap_or(0.0) == 0.0
        };
        let mut freed = 0;
        for pass in 0..2 {
            for shard in self.shards.iter() {
                let mut map = write(shard);
                let before = map.len();
                map.retain(|_, h| !(idle(h) && (pass == 1 || clean(h))));
                freed += before - map.len();
            }
            if freed > 0 {
                break;
            }
        }
        self.len.fetch_sub(freed, Ordering::Relaxed);
        if freed > 0 {
            self.overflowed.store(0, Ordering::Relaxed);
        }
        freed > 0
    }

    /// The breaker for `key`, if it has one.
    pub fn get(&self, key: &K) -> Option<CircuitBreaker<P>> {
        read(self.shard(key)).get(key).map(|h| h.breaker.clone())
    }

    /// How many keys have a breaker.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key has a breaker yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on keys.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The breaker shared by keys that arrive while the map is full of open or busy breakers.
    pub fn overflow(&self) -> &CircuitBreaker<P> {
        &self.overflow.breaker
    }

    /// Every key with its breaker (a snapshot; takes each shard's read lock in turn).
    pub fn snapshot(&self) -> Vec<(K, CircuitBreaker<P>)> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            out.extend(
                read(shard)
                    .iter()
                    .map(|(k, h)| (k.clone(), h.breaker.clone())),
            );
        }
        out
    }
}

/// Wraps services so each request goes through the breaker of its key.
///
/// `template` gives every key's breaker its settings (each gets a fresh policy and its own
/// jittered open schedule, and is named after its key in events).
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

impl<F, K, P, C> Debug for KeyedCircuitBreakerLayer<F, K, P, C> {
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
        Ok(KeyedCircuitBreakerLayer {
            breakers: Arc::new(KeyedBreakers::new(template, max_keys, ByError)?),
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
                shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
                template: b.template.clone(),
                classifier: classifier.clone(),
                max_keys: b.max_keys,
                len: AtomicUsize::new(0),
                overflow: Arc::new(Handle {
                    breaker: b.overflow.breaker.clone(),
                    classifier,
                }),
                overflowed: AtomicU64::new(0),
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

impl<S: Debug, F, K, P, C> Debug for KeyedCircuitBreakerService<S, F, K, P, C> {
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
