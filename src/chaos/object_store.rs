//! The chaos layer's faults for any [`ObjectStore`], from inside the store.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::config::ChaosBuilder;
use super::fault::{ChaosError, Fault};
use super::layer::{ChaosLayer, DefaultInjector, Shared};
use crate::backoff::SplitMix64;
use crate::error::ConfigError;

/// An [`ObjectStore`] that injects the chaos layer's faults into another one: a drop-in
/// replacement wherever an `Arc<dyn ObjectStore>` goes, with no trait boilerplate to write.
///
/// Every operation (get, head, put, list, delete, copy...) draws from the
/// [`ChaosLayer`] fault model, seeded: extra **latency**, injected **errors**,
/// **throttles** and scripted **outages**, failing the call before it reaches the inner
/// store. On top of that, reads that reach the store may have their **body cut**:
///
/// - [`truncate_rate`](ChaosStoreBuilder::truncate_rate): the body ends early, cleanly, as a
///   connection closed by a proxy would leave it (a reader that does not count bytes takes a
///   short object for a whole one);
/// - [`disconnect_rate`](ChaosStoreBuilder::disconnect_rate): the body fails part-way, as a
///   reset connection does.
///
/// Faults surface as `object_store::Error::Generic { store: "chaos", .. }` whose source is
/// the [`ChaosError`]; object stores have no throttle error of their own, so a classifier
/// that wants an injected throttle's `retry_after` finds it there.
///
/// Decisions come from the seed and the order of operations, as with [`ChaosLayer`], so on a
/// single-threaded runtime (or the paused test clock) a run is reproducible to the byte.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use object_store::{memory::InMemory, path::Path, ObjectStore, PutPayload};
/// use riprap::chaos::{ChaosLayer, ChaosStore, Latency};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn ObjectStore> = Arc::new(
///     ChaosStore::builder(InMemory::new())
///         .faults(
///             ChaosLayer::builder()
///                 .seed(7)
///                 .error_rate(0.1)
///                 .latency(0.5, Latency::Uniform(Duration::from_millis(5), Duration::from_millis(50))),
///         )
///         .truncate_rate(0.1)
///         .disconnect_rate(0.1)
///         .build()?,
/// );
/// let path = Path::from("day.csv");
/// while store.put(&path, PutPayload::from(vec![1u8; 4096])).await.is_err() {}
/// let mut whole = 0;
/// for _ in 0..100 {
///     let read = async { store.get(&path).await?.bytes().await };
///     if read.await.is_ok_and(|body| body.len() == 4096) {
///         whole += 1;
///     }
/// }
/// assert!((50..90).contains(&whole)); // about 0.9 × 0.8 of the reads come back whole
/// # Ok(())
/// # }
/// ```
pub struct ChaosStore<S> {
    inner: S,
    shared: Arc<Shared>,
    bodies: BodyFaults,
    injected: Arc<Counters>,
}

/// What to cut, and where, from the bodies of reads.
#[derive(Debug)]
struct BodyFaults {
    seed: u64,
    truncate_rate: f64,
    disconnect_rate: f64,
    reads: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    errors: AtomicU64,
    throttles: AtomicU64,
    outages: AtomicU64,
    truncated: AtomicU64,
    disconnects: AtomicU64,
}

/// How many faults a [`ChaosStore`] injected, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InjectedFaults {
    /// Operations failed with [`Fault::Error`].
    pub errors: u64,
    /// Operations failed with [`Fault::Throttle`].
    pub throttles: u64,
    /// Operations failed inside a scripted outage.
    pub outages: u64,
    /// Read bodies that ended early without an error.
    pub truncated: u64,
    /// Read bodies that failed part-way.
    pub disconnects: u64,
}

impl InjectedFaults {
    /// Every fault injected.
    pub fn total(&self) -> u64 {
        self.errors + self.throttles + self.outages + self.truncated + self.disconnects
    }
}

/// Builder for [`ChaosStore`]; see [`ChaosStore::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ChaosStoreBuilder<S> {
    inner: S,
    faults: ChaosBuilder<DefaultInjector>,
    truncate_rate: f64,
    disconnect_rate: f64,
}

impl<S: ObjectStore> ChaosStore<S> {
    /// Start configuring faults in front of `inner`. With nothing configured, no fault is
    /// injected.
    pub fn builder(inner: S) -> ChaosStoreBuilder<S> {
        ChaosStoreBuilder {
            inner,
            faults: ChaosLayer::builder(),
            truncate_rate: 0.0,
            disconnect_rate: 0.0,
        }
    }
}

impl<S> ChaosStore<S> {
    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Operations seen so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> InjectedFaults {
        let c = &self.injected;
        InjectedFaults {
            errors: c.errors.load(Ordering::Relaxed),
            throttles: c.throttles.load(Ordering::Relaxed),
            outages: c.outages.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
        }
    }

    /// Decide this operation's fate: wait out any injected latency, then fail it or let it
    /// through.
    async fn enter(&self) -> object_store::Result<()> {
        let decision = self.shared.decide();
        if let Some(delay) = decision.delay {
            tokio::time::sleep(delay).await;
        }
        match decision.fault {
            Some(fault) => Err(self.fail(fault)),
            None => Ok(()),
        }
    }

    fn fail(&self, fault: Fault) -> object_store::Error {
        let counter = match fault {
            Fault::Error => &self.injected.errors,
            Fault::Throttle { .. } => &self.injected.throttles,
            Fault::Outage => &self.injected.outages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        chaos_error(fault)
    }
}

fn chaos_error(fault: Fault) -> object_store::Error {
    object_store::Error::Generic {
        store: "chaos",
        source: Box::new(ChaosError::from(fault)),
    }
}

impl<S> ChaosStoreBuilder<S> {
    /// The operation-level faults and the seed, as for a [`ChaosLayer`]: errors, throttles,
    /// latency, outages. A [`ChaosSpec`]'s `builder()` (feature `serde`) fits here too.
    ///
    #[cfg_attr(feature = "serde", doc = "[`ChaosSpec`]: super::ChaosSpec")]
    #[cfg_attr(not(feature = "serde"), doc = "[`ChaosSpec`]: crate#cargo-features")]
    pub fn faults(mut self, faults: ChaosBuilder<DefaultInjector>) -> Self {
        self.faults = faults;
        self
    }

    /// End this share of read bodies early, without an error (default 0).
    pub fn truncate_rate(mut self, rate: f64) -> Self {
        self.truncate_rate = rate;
        self
    }

    /// Fail this share of read bodies part-way, as a reset connection (default 0).
    pub fn disconnect_rate(mut self, rate: f64) -> Self {
        self.disconnect_rate = rate;
        self
    }

    /// Check every knob and build the store.
    pub fn build(self) -> Result<ChaosStore<S>, ConfigError> {
        // The layer's own checks, with its knob names; the layer itself is not needed.
        let (seed, shared, _) = self.faults.into_parts()?;
        check_rate("chaos.truncate_rate", self.truncate_rate)?;
        check_rate("chaos.disconnect_rate", self.disconnect_rate)?;
        if self.truncate_rate + self.disconnect_rate > 1.0 {
            return Err(ConfigError::new(
                "chaos.disconnect_rate",
                format!(
                    "truncate_rate + disconnect_rate must be at most 1 (got {})",
                    self.truncate_rate + self.disconnect_rate
                ),
            ));
        }
        Ok(ChaosStore {
            inner: self.inner,
            // Body faults draw from their own stream, so adding them leaves the operation
            // faults of a given seed where they were.
            bodies: BodyFaults {
                seed: SplitMix64::mix(seed, BODY_STREAM),
                truncate_rate: self.truncate_rate,
                disconnect_rate: self.disconnect_rate,
                reads: AtomicU64::new(0),
            },
            shared,
            injected: Arc::default(),
        })
    }
}

/// Tells the body-fault stream apart from the operation-fault stream of the same seed.
const BODY_STREAM: u64 = 0x626f_6479;

fn check_rate(knob: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::new(
            knob,
            format!("must be a probability in [0, 1] (got {rate})"),
        ))
    }
}

/// Where a body is cut, and how it ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// End cleanly after this many bytes.
    Truncate(u64),
    /// Fail after this many bytes.
    Disconnect(u64),
}

impl BodyFaults {
    /// Decide the fate of a body of `len` bytes. Each read draws from its own stream, derived
    /// from the seed and the read's number, as the layer's operations do.
    fn decide(&self, len: u64) -> Option<Cut> {
        if self.truncate_rate == 0.0 && self.disconnect_rate == 0.0 {
            return None;
        }
        let n = self.reads.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64::new(SplitMix64::mix(self.seed, n));
        // 53 random bits: uniform in [0, 1).
        let roll = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        if len == 0 {
            return None;
        }
        // Strictly short: at least the last byte is lost.
        let at = rng.between(0, len - 1);
        if roll < self.truncate_rate {
            Some(Cut::Truncate(at))
        } else if roll < self.truncate_rate + self.disconnect_rate {
            Some(Cut::Disconnect(at))
        } else {
            None
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ChaosStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosStore")
            .field("inner", &self.inner)
            .field("bodies", &self.bodies)
            .field("injected", &self.injected())
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Display> fmt::Display for ChaosStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chaos({})", self.inner)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for ChaosStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.enter().await?;
        self.inner.put_opts(location, payload, opts).await
    }

    /// Faults apply to starting the upload, not to its parts.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.enter().await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.enter().await?;
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let Some(cut) = self.bodies.decide(result.range.end - result.range.start) else {
            return Ok(result);
        };
        let counter = match cut {
            Cut::Truncate(_) => &self.injected.truncated,
            Cut::Disconnect(_) => &self.injected.disconnects,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let GetResult {
            payload,
            meta,
            range,
            attributes,
        } = result;
        // Rebuilt around the same payload so that a file-backed body is read as a stream.
        let body = GetResult {
            payload,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
        }
        .into_stream();
        Ok(GetResult {
            payload: GetResultPayload::Stream(Box::pin(CutBody {
                inner: body,
                cut,
                seen: 0,
                done: false,
            })),
            meta,
            range,
            attributes,
        })
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        self.enter().await?;
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.enter().await?;
        self.inner.delete(location).await
    }

    /// Faults apply to the listing as a whole: it fails (or waits) before its first entry.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let decision = self.shared.decide();
        let listing = match decision.fault {
            Some(fault) => {
                futures_util::stream::once(std::future::ready(Err(self.fail(fault)))).boxed()
            }
            None => self.inner.list(prefix),
        };
        match decision.delay {
            Some(delay) => futures_util::stream::once(async move {
                tokio::time::sleep(delay).await;
                listing
            })
            .flatten()
            .boxed(),
            None => listing,
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.enter().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.enter().await?;
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.enter().await?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A read body passed through up to the cut, then ended or failed there.
struct CutBody {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    cut: Cut,
    seen: u64,
    done: bool,
}

impl CutBody {
    fn at(&self) -> u64 {
        match self.cut {
            Cut::Truncate(at) | Cut::Disconnect(at) => at,
        }
    }

    /// The body ends here: cleanly, or with the disconnect.
    fn end(&mut self) -> Option<object_store::Result<Bytes>> {
        self.done = true;
        match self.cut {
            Cut::Truncate(_) => None,
            Cut::Disconnect(_) => Some(Err(chaos_error(Fault::Error))),
        }
    }
}

impl Stream for CutBody {
    type Item = object_store::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let at = self.at();
        if self.seen >= at {
            return Poll::Ready(self.end());
        }
        let next = ready!(self.inner.as_mut().poll_next(cx));
        let Some(Ok(chunk)) = next else {
            // The store's own end or error comes first.
            self.done = true;
            return Poll::Ready(next);
        };
        let left = at - self.seen;
        let len = chunk.len() as u64;
        if len <= left {
            self.seen += len;
            return Poll::Ready(Some(Ok(chunk)));
        }
        // `left < len`, so it fits in a usize.
        let keep = usize::try_from(left).unwrap_or(chunk.len());
        self.seen = at;
        Poll::Ready(Some(Ok(chunk.slice(..keep))))
    }
}
