//! `CacheLayer`: put a cache in front of any loader service.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{Cache, CacheService};
use crate::classify::ByError;

/// Wraps a loader `Service<K, Response = V>` in a [`CacheService`] reading through a shared
/// [`Cache`].
///
/// Load outcomes are classified (by default every error is transient: it may be answered
/// with a stale entry within `stale_if_error`, and is never remembered). Give the layer your
/// stack's classifier with [`classifier`](CacheLayer::classifier) so a permanent "not found"
/// can be negatively cached and is not papered over with a stale value.
///
/// ```
/// use std::time::Duration;
/// use riprap::cache::{Cache, CacheConfig, CacheLayer};
/// use riprap::classify::ByError;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache: Cache<u64, String, std::io::Error> =
///     Cache::new(CacheConfig::builder().expire_after(Duration::from_secs(60)).build()?);
/// let users = ServiceBuilder::new()
///     .layer(CacheLayer::new(cache.clone()))
///     .service_fn(|id: u64| async move { Ok::<_, std::io::Error>(format!("user {id}")) });
/// assert_eq!(users.oneshot(7).await?, "user 7");
/// assert_eq!(cache.get(&7).as_deref(), Some("user 7"));
/// # Ok(()) }
/// ```
pub struct CacheLayer<K, V, E, C = ByError> {
    cache: Cache<K, V, E>,
    classifier: Arc<C>,
}

impl<K, V, E> CacheLayer<K, V, E> {
    /// A layer reading through `cache`, classifying load errors by their own verdict
    /// ([`ByError`]), as every layer does by default.
    pub fn new(cache: Cache<K, V, E>) -> Self {
        CacheLayer {
            cache,
            classifier: Arc::new(ByError),
        }
    }
}

impl<K, V, E, C> CacheLayer<K, V, E, C> {
    /// Classify load outcomes with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> CacheLayer<K, V, E, C2> {
        CacheLayer {
            cache: self.cache,
            classifier: Arc::new(classifier),
        }
    }
}

impl<K, V, E, C> Clone for CacheLayer<K, V, E, C> {
    fn clone(&self) -> Self {
        CacheLayer {
            cache: self.cache.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<K, V, E, C> fmt::Debug for CacheLayer<K, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S, K, V, E, C> Layer<S> for CacheLayer<K, V, E, C> {
    type Service = CacheService<S, K, V, E, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::new(inner, self.cache.clone(), Arc::clone(&self.classifier))
    }
}
