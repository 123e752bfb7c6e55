//! [`HedgeLayer`] and its builder, validated when built.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::events::{HedgeEvent, trace};
use super::service::Hedge;
use super::tracker::{Tracker, WINDOW};
use crate::ConfigError;
use crate::budget::{Budget, RatioBudget};
use crate::classify::ByError;
use crate::error::check_duration;
use crate::events::{Listener, SharedListener};
use crate::request::ByClone;

/// The most hedges one request may send, as in Polly.
pub const MAX_HEDGED_ATTEMPTS: u32 = 10;

/// Answers the percentile delay waits for before it trusts itself.
pub const PERCENTILE_MIN_SAMPLES: u32 = 64;

/// When the next hedge goes out.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// After this long without an answer (zero sends every hedge at once, Polly's parallel
    /// mode).
    Fixed(Duration),
    /// After the `quantile` of recent latencies (the exact order statistic of the last 256
    /// answers), or `until_known` until 64 answers were seen.
    Percentile {
        /// Between 0 and 1, such as 0.95.
        quantile: f64,
        /// The delay used before the percentile is known.
        until_known: Duration,
    },
    /// Only after a failure (Polly's fallback mode): never two attempts in flight at once.
    OnFailure,
}

pub(crate) enum Delay {
    Fixed(Duration),
    Percentile(Tracker, Duration),
    OnFailure,
}

impl Delay {
    /// The wait before the next hedge, `None` if only a failure sends one.
    #[inline]
    pub(crate) fn next(&self) -> Option<Duration> {
        match self {
            Delay::Fixed(d) => Some(*d),
            Delay::Percentile(t, until) => Some(t.get().unwrap_or(*until)),
            Delay::OnFailure => None,
        }
    }

    #[inline]
    pub(crate) fn tracks(&self) -> bool {
        matches!(self, Delay::Percentile(..))
    }

    pub(crate) fn record(&self, latency: Duration) {
        if let Delay::Percentile(t, _) = self {
            t.record(latency);
        }
    }
}

/// Everything a request's future needs, shared by every clone of one layer.
pub(crate) struct Shared<C, R, B> {
    pub(crate) classifier: C,
    pub(crate) copy: R,
    pub(crate) budget: B,
    pub(crate) deposits: bool,
    pub(crate) delay: Delay,
    pub(crate) max_hedged: u32,
    pub(crate) listener: Option<SharedListener>,
}

impl<C, R, B> Shared<C, R, B> {
    pub(crate) fn emit(&self, event: HedgeEvent) {
        trace(&event);
        if let Some(l) = &self.listener {
            l.on_event(&crate::events::Event::new(&event));
        }
    }
}

/// The knobs that are plain data, moved as one when a setter changes a type parameter.
#[derive(Clone)]
struct Knobs {
    delay: HedgeDelay,
    max_hedged: u32,
    deposits: bool,
    listener: Option<SharedListener>,
}

/// Builder for a [`HedgeLayer`].
///
/// | knob | default | Polly's |
/// |---|---|---|
/// | [`delay`](Self::delay) | 2 s | `Delay`, 2 s |
/// | [`max_hedged_attempts`](Self::max_hedged_attempts) | 1 | `MaxHedgedAttempts`, 1 |
/// | [`classifier`](Self::classifier) | [`ByError`] | `ShouldHandle`: any exception |
/// | [`clone_requests`](Self::clone_requests) | [`ByClone`] | `ActionGenerator`: the same callback |
/// | [`budget`](Self::budget) | a fresh [`RatioBudget`] | none |
#[must_use = "a builder does nothing until `build()` is called"]
pub struct HedgeBuilder<C = ByError, R = ByClone, B = RatioBudget> {
    classifier: C,
    copy: R,
    budget: B,
    knobs: Knobs,
}

impl Default for HedgeBuilder {
    fn default() -> Self {
        HedgeBuilder {
            classifier: ByError,
            copy: ByClone,
            budget: RatioBudget::default(),
            knobs: Knobs {
                delay: HedgeDelay::Fixed(Duration::from_secs(2)),
                max_hedged: 1,
                deposits: true,
                listener: None,
            },
        }
    }
}

impl<C, R, B> HedgeBuilder<C, R, B> {
    /// Send a hedge after `delay` without an answer, and another `delay` after that (up to
    /// [`max_hedged_attempts`](Self::max_hedged_attempts)). Zero sends them all at once.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.knobs.delay = HedgeDelay::Fixed(delay);
        self
    }

    /// Send a hedge once an attempt has taken longer than the `quantile` (such as 0.95) of
    /// recent answers; `until_known` until enough answers were seen.
    pub fn delay_percentile(mut self, quantile: f64, until_known: Duration) -> Self {
        self.knobs.delay = HedgeDelay::Percentile {
            quantile,
            until_known,
        };
        self
    }

    /// Send a hedge only when an attempt fails: never two in flight at once.
    pub fn on_failure_only(mut self) -> Self {
        self.knobs.delay = HedgeDelay::OnFailure;
        self
    }

    /// Hedges per request, beyond the original, from 1 to 10 (default 1).
    pub fn max_hedged_attempts(mut self, n: u32) -> Self {
        self.knobs.max_hedged = n;
        self
    }

    /// Whether each request deposits into the budget (default `true`). Turn it off when a
    /// retry layer above shares the budget: it already deposits once per logical request,
    /// and a hedge layer below it would deposit again for every attempt, doubling what the
    /// budget lets hedges and retries spend.
    pub fn deposits(mut self, deposits: bool) -> Self {
        self.knobs.deposits = deposits;
        self
    }

    /// Report hedges sent, budget refusals and hedges that won to `listener`.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = Some(Arc::new(listener));
        self
    }

    /// The classifier that judges each attempt: a success or a permanent error is the
    /// answer; a transient failure or a timeout sends the next hedge at once; a throttle or
    /// a local refusal stops hedging (never send earlier than the server asked).
    pub fn classifier<C2>(self, classifier: C2) -> HedgeBuilder<C2, R, B> {
        HedgeBuilder {
            classifier,
            copy: self.copy,
            budget: self.budget,
            knobs: self.knobs,
        }
    }

    /// How a request is copied for a hedge; a request the policy declines to copy is sent
    /// once, unhedged. Hedge only idempotent requests: with the `http` feature,
    /// `retry::IdempotentOnly` copies only those.
    pub fn clone_requests<R2>(self, copy: R2) -> HedgeBuilder<C, R2, B> {
        HedgeBuilder {
            classifier: self.classifier,
            copy,
            budget: self.budget,
            knobs: self.knobs,
        }
    }

    /// The budget that pays for hedges: each request deposits, each hedge withdraws, a hedge
    /// never sent is refunded. Share the retry layer's budget, so hedges and retries to one
    /// dependency draw on one account.
    pub fn budget<B2: Budget>(self, budget: B2) -> HedgeBuilder<C, R, B2> {
        HedgeBuilder {
            classifier: self.classifier,
            copy: self.copy,
            budget,
            knobs: self.knobs,
        }
    }

    /// Check every knob and build the layer.
    ///
    /// ```
    /// let err = riprap::hedge::HedgeLayer::builder().max_hedged_attempts(11).build().unwrap_err();
    /// assert_eq!(err.knob(), "hedge.max_hedged_attempts");
    /// ```
    pub fn build(self) -> Result<HedgeLayer<C, R, B>, ConfigError> {
        let k = self.knobs;
        if k.max_hedged == 0 || k.max_hedged > MAX_HEDGED_ATTEMPTS {
            return Err(ConfigError::new(
                "hedge.max_hedged_attempts",
                format!(
                    "must be from 1 to {MAX_HEDGED_ATTEMPTS} (got {})",
                    k.max_hedged
                ),
            ));
        }
        let delay = match k.delay {
            HedgeDelay::Fixed(d) => {
                check_duration("hedge.delay", d)?;
                Delay::Fixed(d)
            }
            HedgeDelay::Percentile {
                quantile,
                until_known,
            } => {
                if !(quantile > 0.0 && quantile < 1.0) {
                    return Err(ConfigError::new(
                        "hedge.percentile",
                        format!("must be in (0, 1) (got {quantile})"),
                    ));
                }
                check_duration("hedge.delay", until_known)?;
                debug_assert!(PERCENTILE_MIN_SAMPLES as usize <= WINDOW);
                Delay::Percentile(Tracker::new(quantile, PERCENTILE_MIN_SAMPLES), until_known)
            }
            HedgeDelay::OnFailure => Delay::OnFailure,
        };
        Ok(HedgeLayer {
            shared: Arc::new(Shared {
                classifier: self.classifier,
                copy: self.copy,
                budget: self.budget,
                deposits: k.deposits,
                delay,
                max_hedged: k.max_hedged,
                listener: k.listener,
            }),
        })
    }
}

/// Sends another attempt when the first is slow or fails; the first answer wins. See the
/// [module guide](super).
///
/// Cloning shares the budget, the latency tracker and the listener.
pub struct HedgeLayer<C = ByError, R = ByClone, B = RatioBudget> {
    shared: Arc<Shared<C, R, B>>,
}

impl HedgeLayer {
    /// A builder: one hedge after 2 s, requests copied with `Clone`, outcomes classified with
    /// [`ByError`], hedges paid for by a fresh [`RatioBudget`].
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::default()
    }
}

impl<C, R, B> Clone for HedgeLayer<C, R, B> {
    fn clone(&self) -> Self {
        HedgeLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C, R, B> std::fmt::Debug for HedgeLayer<C, R, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("max_hedged_attempts", &self.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

impl<S, C, R, B> Layer<S> for HedgeLayer<C, R, B> {
    type Service = Hedge<S, C, R, B>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, Arc::clone(&self.shared))
    }
}
