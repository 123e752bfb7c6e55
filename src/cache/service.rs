//! `CacheService`: read through the cache, load what is missing.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::entry::{Freshness, Slot};
use super::flight::spawn_load;
use super::handle::Join;
use super::{Cache, CacheError, CacheEvent, ResponseFuture};
use crate::classify::Classify;

/// A loader service behind a [`Cache`]; made by [`CacheLayer`](super::CacheLayer).
///
/// A call with a key answers from the cache when it can and otherwise joins or starts the
/// key's single load:
///
/// | entry | answer | loads |
/// |---|---|---|
/// | fresh | the value, at once | none |
/// | past `refresh_after` | the value, at once | one background refresh (per key, or queued for the batch refresher) |
/// | remembered failure | the error, at once | none |
/// | absent or past `expire_after` | waits for the load | one per key however many callers wait |
/// | load failed retryably, entry within `stale_if_error` | the expired value | — |
///
/// Always ready: the loader's readiness is awaited inside the load, on a clone of it
/// (`ServiceExt::oneshot`), so a hit never reserves capacity it does not use. Loaders that
/// are not `Clone` can be wrapped in `tower::buffer::Buffer`.
pub struct CacheService<S, K, V, E, C> {
    inner: S,
    cache: Cache<K, V, E>,
    classifier: Arc<C>,
}

impl<S, K, V, E, C> CacheService<S, K, V, E, C> {
    pub(crate) fn new(inner: S, cache: Cache<K, V, E>, classifier: Arc<C>) -> Self {
        CacheService {
            inner,
            cache,
            classifier,
        }
    }

    /// The cache this service reads through.
    pub fn cache(&self) -> &Cache<K, V, E> {
        &self.cache
    }

    /// The wrapped loader.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, K, V, E, C> Clone for CacheService<S, K, V, E, C> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<S: fmt::Debug, K, V, E, C> fmt::Debug for CacheService<S, K, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S, K, V, E, C> Service<K> for CacheService<S, K, V, E, C>
where
    S: Service<K, Response = V, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    C: Classify<V, E> + Send + Sync + 'static,
{
    type Response = V;
    type Error = CacheError<E>;
    type Future = ResponseFuture<V, E>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, key: K) -> Self::Future {
        let inner = &self.cache.inner;
        let mut stale = None;
        if let Some(entry) = inner.store.get(&key) {
            let now = inner.clock.now();
            match (entry.freshness(now), entry.slot) {
                (Freshness::Fresh, Slot::Value(v)) => {
                    inner.observer.hit();
                    return ResponseFuture::ready(Ok(v));
                }
                (Freshness::Fresh | Freshness::Stale, Slot::Missing(e)) => {
                    inner.observer.emit(CacheEvent::NegativeHit);
                    return ResponseFuture::ready(Err(CacheError::Load(e)));
                }
                (Freshness::Stale, Slot::Value(v)) => {
                    inner.observer.emit(CacheEvent::StaleHit);
                    if now >= entry.retry_at {
                        let seen = (entry.stamp, entry.retry_at);
                        if let Some(guard) = inner.refresh_due(&key, seen, now, true) {
                            spawn_load(guard, self.inner.clone(), Arc::clone(&self.classifier));
                        }
                    }
                    return ResponseFuture::ready(Ok(v));
                }
                (Freshness::Expired, Slot::Value(v)) => {
                    let until = entry.expire_at.saturating_add(inner.config.stale_nanos);
                    if now < until {
                        stale = Some((v, inner.clock.instant(until)));
                    }
                }
                (Freshness::Expired, Slot::Missing(_)) => {}
            }
        }
        inner.observer.emit(CacheEvent::Miss);
        let observer = Arc::clone(&inner.observer);
        match inner.join_or_lead(&key) {
            Join::Ready(entry) => match entry.slot {
                Slot::Value(v) => ResponseFuture::ready(Ok(v)),
                Slot::Missing(e) => ResponseFuture::ready(Err(CacheError::Load(e))),
            },
            Join::Wait(rx) => ResponseFuture::waiting(rx, stale, observer),
            Join::Lead(guard, rx) => {
                spawn_load(guard, self.inner.clone(), Arc::clone(&self.classifier));
                ResponseFuture::waiting(rx, stale, observer)
            }
            Join::Overloaded => {
                inner.observer.emit(CacheEvent::Overloaded);
                match stale {
                    Some((v, _)) => {
                        inner.observer.emit(CacheEvent::StaleIfError);
                        ResponseFuture::ready(Ok(v))
                    }
                    None => ResponseFuture::ready(Err(CacheError::Overloaded)),
                }
            }
        }
    }
}
