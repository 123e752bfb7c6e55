//! Batch refresh: keys that come due are loaded together, one query per batch.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

use super::handle::Inner;
use super::{BatchConfig, Cache, CacheEvent};
use crate::ConfigError;
use crate::classify::{ByError, Class, Classified, Classify};

/// Keeps a cache's hot keys warm through a batch loader, and stops when dropped.
///
/// The batch loader is any `Service<Vec<K>>` whose response iterates `(K, V)` pairs: a
/// `HashMap<K, V>`, a `BTreeMap`, a `Vec<(K, V)>`. While a refresher is attached, a read
/// that finds an entry past `refresh_after` queues the key instead of loading it alone; a
/// background task collects the queue for [`interval`](super::BatchConfigBuilder::interval),
/// then loads it in batches of at most [`max_batch`](super::BatchConfigBuilder::max_batch)
/// keys, one batch after another. Misses and expired entries are still loaded per key by the
/// [`CacheService`](super::CacheService), so a read never waits for a batch.
///
/// A key missing from a batch response is left as it was: it keeps being served until
/// `expire_after`, is queued again by a read once its pushed refresh point passes, and is
/// loaded on its own by the next read after it expires. A failed batch leaves all its keys
/// the same way, so stale-if-error covers batch refresh too.
///
/// Dropping the refresher aborts its task (a batch in flight is abandoned, its keys stay as
/// they were) and returns the cache to per-key background refresh.
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use riprap::cache::{BatchConfig, Cache, CacheConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache: Cache<u32, String, std::io::Error> = Cache::new(
///     CacheConfig::builder()
///         .refresh_after(Duration::from_secs(30))
///         .expire_after(Duration::from_secs(300))
///         .build()?,
/// );
/// // One query for many keys, e.g. `SELECT k, v FROM config WHERE k IN (...)`.
/// let batch_loader = tower::service_fn(|keys: Vec<u32>| async move {
///     Ok::<_, std::io::Error>(keys.into_iter().map(|k| (k, format!("value {k}"))).collect::<HashMap<_, _>>())
/// });
/// let refresher = cache.batch_refresher(batch_loader, BatchConfig::builder().max_batch(500).build()?)?;
/// assert_eq!(refresher.warm(0..1_000).await?, 1_000); // two queries
/// assert_eq!(cache.get(&7).as_deref(), Some("value 7"));
/// # Ok(()) }
/// ```
pub struct BatchRefresher<K, V, E, B, C = ByError>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    inner: Arc<Inner<K, V, E>>,
    loader: B,
    classifier: Arc<C>,
    config: BatchConfig,
    task: JoinHandle<()>,
}

impl<K, V, E, B, C> fmt::Debug for BatchRefresher<K, V, E, B, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRefresher")
            .field("config", &self.config)
            .field("pending", &self.inner.due.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Attach a [`BatchRefresher`] loading through `loader`; see there. Batch failures are
    /// classified by their own verdict ([`ByError`]); use
    /// [`batch_refresher_classified`](Cache::batch_refresher_classified) to choose.
    ///
    /// Fails if the cache already has a refresher, or when called outside a tokio runtime.
    pub fn batch_refresher<B, R>(
        &self,
        loader: B,
        config: BatchConfig,
    ) -> Result<BatchRefresher<K, V, E, B>, ConfigError>
    where
        B: Service<Vec<K>, Response = R> + Clone + Send + 'static,
        B::Future: Send + 'static,
        B::Error: Classified + Send + 'static,
        R: IntoIterator<Item = (K, V)> + Send + 'static,
    {
        self.batch_refresher_classified(loader, config, ByError)
    }

    /// [`batch_refresher`](Cache::batch_refresher) with a classifier for the batch outcomes:
    /// a response it does not call a success is not stored, and failures are reported with
    /// its verdict in [`CacheEvent::BatchFailed`].
    pub fn batch_refresher_classified<B, R, C>(
        &self,
        loader: B,
        config: BatchConfig,
        classifier: C,
    ) -> Result<BatchRefresher<K, V, E, B, C>, ConfigError>
    where
        B: Service<Vec<K>, Response = R> + Clone + Send + 'static,
        B::Future: Send + 'static,
        B::Error: Send + 'static,
        R: IntoIterator<Item = (K, V)> + Send + 'static,
        C: Classify<R, B::Error> + Send + Sync + 'static,
    {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "cache.batch_refresher",
                "must be created inside a tokio runtime",
            )
        })?;
        if !self.inner.due.attach(config.max_pending) {
            return Err(ConfigError::new(
                "cache.batch_refresher",
                "this cache already has a batch refresher",
            ));
        }
        let classifier = Arc::new(classifier);
        let task = rt.spawn(run(
            Arc::clone(&self.inner),
            loader.clone(),
            Arc::clone(&classifier),
            config.clone(),
        ));
        Ok(BatchRefresher {
            inner: Arc::clone(&self.inner),
            loader,
            classifier,
            config,
            task,
        })
    }
}

impl<K, V, E, B, R, C> BatchRefresher<K, V, E, B, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    B: Service<Vec<K>, Response = R> + Clone + Send + 'static,
    B::Future: Send + 'static,
    B::Error: Send + 'static,
    R: IntoIterator<Item = (K, V)> + Send + 'static,
    C: Classify<R, B::Error> + Send + Sync + 'static,
{
    /// Load `keys` now, in batches of at most `max_batch`, one after another, and store them
    /// fresh. Returns how many were stored (a key the loader did not return is not), or the
    /// first batch error, after which the remaining keys are not loaded.
    pub async fn warm(&self, keys: impl IntoIterator<Item = K>) -> Result<usize, B::Error> {
        let keys: Vec<K> = keys.into_iter().collect();
        let mut stored = 0;
        for chunk in keys.chunks(self.config.max_batch) {
            let out = load_batch(
                &self.inner,
                self.loader.clone(),
                chunk,
                &*self.classifier,
                true,
            )
            .await;
            stored += out?;
        }
        Ok(stored)
    }

    /// Keys queued for the next round.
    pub fn pending(&self) -> usize {
        self.inner.due.len()
    }
}

impl<K, V, E, B, C> Drop for BatchRefresher<K, V, E, B, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.task.abort();
        self.inner.due.detach();
    }
}

/// The refresher's loop: wait for a first due key, collect for `interval`, load everything
/// queued in batches.
async fn run<K, V, E, B, R, C>(
    inner: Arc<Inner<K, V, E>>,
    loader: B,
    classifier: Arc<C>,
    config: BatchConfig,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    B: Service<Vec<K>, Response = R> + Clone + Send + 'static,
    B::Future: Send + 'static,
    B::Error: Send + 'static,
    R: IntoIterator<Item = (K, V)> + Send + 'static,
    C: Classify<R, B::Error> + Send + Sync + 'static,
{
    loop {
        inner.due.wake.notified().await;
        tokio::time::sleep(config.interval).await;
        let keys = inner.due.take();
        for chunk in keys.chunks(config.max_batch) {
            // A failed batch is reported by `load_batch`; its keys stay as they were.
            let _ = load_batch(&inner, loader.clone(), chunk, &*classifier, false).await;
        }
    }
}

/// Registers a batch's keys as in flight and unregisters whatever did not land, even if the
/// batch is dropped half-way.
struct BatchGuard<'a, K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    inner: &'a Inner<K, V, E>,
    id: u64,
    keys: Vec<K>,
}

impl<K, V, E> Drop for BatchGuard<'_, K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn drop(&mut self) {
        for key in &self.keys {
            let mut shard = self.inner.flights.lock(key);
            if shard.get(key).is_some_and(|f| f.id == self.id) {
                shard.remove(key);
            }
        }
        self.inner.flights.release(self.keys.len());
    }
}

/// Load one batch (at most `max_batch` keys) and store what comes back. Keys already loading
/// are skipped, and so are keys no longer cached unless `warm`: refreshing a key that was
/// invalidated or evicted meanwhile would only bring it back.
async fn load_batch<K, V, E, B, R, C>(
    inner: &Arc<Inner<K, V, E>>,
    loader: B,
    keys: &[K],
    classifier: &C,
    warm: bool,
) -> Result<usize, B::Error>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    B: Service<Vec<K>, Response = R>,
    R: IntoIterator<Item = (K, V)>,
    C: Classify<R, B::Error>,
{
    let mut guard = BatchGuard {
        inner,
        id: inner.flights.next_id(),
        keys: Vec::with_capacity(keys.len()),
    };
    for key in keys {
        let mut shard = inner.flights.lock(key);
        if shard.contains_key(key) || (!warm && !inner.store.contains_key(key)) {
            continue;
        }
        if !inner.flights.try_acquire(1) {
            break;
        }
        shard.insert(
            key.clone(),
            super::flight::Flight {
                id: guard.id,
                rx: None,
            },
        );
        guard.keys.push(key.clone());
    }
    if guard.keys.is_empty() {
        return Ok(0);
    }
    let asked = guard.keys.len();
    let started = inner.clock.now();
    let t0 = Instant::now();
    let out = loader.oneshot(guard.keys.clone()).await;
    let took = t0.elapsed();
    match classifier.classify(out.as_ref()) {
        Class::Success => {
            let mut stored = 0;
            if let Ok(response) = out {
                for (key, value) in response {
                    if inner.land_batch(key, value, guard.id, started, took) {
                        stored += 1;
                    }
                }
            }
            inner.observer.emit(CacheEvent::BatchLoaded {
                keys: asked,
                stored,
                took,
            });
            Ok(stored)
        }
        class => {
            inner
                .observer
                .emit(CacheEvent::BatchFailed { keys: asked, class });
            out.map(|_| 0)
        }
    }
}
