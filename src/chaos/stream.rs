use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::fault::{ChaosError, Fault};
use crate::backoff::SplitMix64;

/// Wrap a stream of results so that, after any item, it fails with a disconnect
/// ([`Fault::Error`]) and ends, with probability `rate` per item, drawn from `seed`.
///
/// Use it to test a resumable consumer: every disconnect must be followed by a reconnect from
/// the last offset, with no gap.
///
/// ```
/// use futures_util::StreamExt;
/// use riprap::chaos::{disconnects, ChaosError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = futures_util::stream::iter((0..100).map(Ok::<u32, ChaosError>));
/// let items: Vec<_> = disconnects(source, 0.1, 3).collect().await;
/// let delivered = items.iter().take_while(|r| r.is_ok()).count();
/// assert!(delivered < 100);                       // cut off early...
/// assert!(items.last().unwrap().is_err());         // ...by an injected disconnect
/// # }
/// ```
pub fn disconnects<S>(stream: S, rate: f64, seed: u64) -> Disconnects<S> {
    let rate = if rate.is_finite() {
        rate.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut rng = SplitMix64::new(seed);
    let cut = roll(&mut rng) < rate;
    Disconnects {
        inner: stream,
        rate,
        rng,
        cut,
        done: false,
    }
}

fn roll(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

pin_project! {
    /// A stream that disconnects at random; see [`disconnects`].
    pub struct Disconnects<S> {
        #[pin]
        inner: S,
        rate: f64,
        rng: SplitMix64,
        // Decided once per item (not per poll), so the cut points depend only on the seed.
        cut: bool,
        done: bool,
    }
}

impl<S, T, E> Stream for Disconnects<S>
where
    S: Stream<Item = Result<T, E>>,
    E: From<ChaosError>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if *this.cut {
            *this.done = true;
            return Poll::Ready(Some(Err(ChaosError::from(Fault::Error).into())));
        }
        let item = ready!(this.inner.poll_next(cx));
        match item {
            Some(_) => *this.cut = roll(this.rng) < *this.rate,
            None => *this.done = true,
        }
        Poll::Ready(item)
    }
}
