//! What a limiter enforces, validated when built.

use std::time::Duration;

#[cfg(feature = "serde")]
use super::spec::{AdaptiveSpec, QuotaSpec};
use crate::ConfigError;
use crate::classify::headers::MAX_SERVER_DELAY;
use crate::error::check_duration;
use crate::events::{Listener, ListenerSlot};

/// A local quota: `rate` units per `per`, of which up to `burst` may be spent at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Units replenished every `per` (requests, or cost units such as tokens).
    pub rate: u32,
    /// The window `rate` is spread over.
    pub per: Duration,
    /// The most units that may be spent at once; defaults to `rate`.
    pub burst: u32,
}

/// Adaptive rate: AIMD on a pacing interval, between `min_rate` and `max_rate` requests per
/// second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The rate the limiter starts at and recovers towards, in requests per second.
    pub max_rate: f64,
    /// The rate is never cut below this, in requests per second.
    pub min_rate: f64,
    /// On a throttle the rate is multiplied by this factor (in `(0, 1)`).
    pub decrease: f64,
    /// On a success the rate grows by this many requests per second.
    pub increase: f64,
}

/// Everything a [`RateLimiter`](super::RateLimiter) enforces.
///
/// Built with [`RateLimitConfig::builder`]; every knob is checked in
/// [`build`](RateLimitConfigBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use riprap::ratelimit::RateLimitConfig;
///
/// // An LLM tier: 500 requests and 30,000 tokens per minute; wait up to 10 s for capacity.
/// let config = RateLimitConfig::builder()
///     .requests(500, Duration::from_secs(60))
///     .cost(30_000, Duration::from_secs(60))
///     .max_wait(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(config.cost_quota().unwrap().burst, 30_000);
///
/// let err = RateLimitConfig::builder().requests(0, Duration::from_secs(1)).build().unwrap_err();
/// assert_eq!(err.knob(), "ratelimit.requests");
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub(crate) requests: Option<QuotaConfig>,
    pub(crate) cost: Option<QuotaConfig>,
    pub(crate) max_wait: Duration,
    pub(crate) default_pause: Duration,
    pub(crate) reopen_jitter: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) adaptive: Option<AdaptiveConfig>,
    pub(crate) seed: Option<u64>,
    pub(crate) listener: ListenerSlot,
}

impl RateLimitConfig {
    /// A builder with no local quota (server signals only), a maximum wait of 30 s, the
    /// server's delays kept as given, a 1 s pause for throttles that name no delay, up
    /// to 100 ms of jitter on reopening and a 1 s probe timeout.
    pub fn builder() -> RateLimitConfigBuilder {
        RateLimitConfigBuilder {
            knobs: Knobs::default(),
        }
    }

    /// The request-count quota, if any.
    pub fn request_quota(&self) -> Option<QuotaConfig> {
        self.requests
    }

    /// The weighted (cost) quota, if any.
    pub fn cost_quota(&self) -> Option<QuotaConfig> {
        self.cost
    }

    /// The longest a caller waits for capacity before getting
    /// [`RateLimitError::Limited`](super::RateLimitError::Limited); zero rejects at once.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The adaptive-rate settings, if enabled.
    pub fn adaptive(&self) -> Option<AdaptiveConfig> {
        self.adaptive
    }
}

/// Builder for [`RateLimitConfig`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitConfigBuilder {
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The builder's knobs. [`RateLimitSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl RateLimitConfigBuilder;

    /// A [`RateLimitConfig`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
    ///
    /// A knob left out keeps the builder's default: no local quota (server signals only), wait
    /// up to 30 s for capacity, a 1 s pause for a bare 429, up to 100 ms of reopening jitter, a
    /// 1 s probe timeout, no adaptive rate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::ratelimit::{RateLimitConfig, RateLimitSpec};
    ///
    /// // An LLM tier: 500 requests and 30,000 tokens a minute; wait up to 10 s for capacity.
    /// let spec: RateLimitSpec = toml::from_str(r#"
    ///     requests = { rate = 500, per = "1m" }
    ///     cost = { rate = 30000, per = "1m", burst = 10000 }
    ///     max_wait = "10s"
    ///     adaptive = { max_rate = 8.0 }
    /// "#)?;
    /// let config = spec.build()?;
    /// assert_eq!(config.cost_quota().unwrap().burst, 10_000);
    /// assert_eq!(config.max_wait(), Duration::from_secs(10));
    ///
    /// let spec: RateLimitSpec = toml::from_str(r#"requests = { rate = 0, per = "1s" }"#)?;
    /// assert_eq!(spec.build().unwrap_err().knob(), "ratelimit.requests");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct RateLimitSpec;

    /// A local quota on requests (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<QuotaSpec>,

    manual requests: Option<(u32, Duration)> = None,

    /// The most requests that may go at once (default: the whole `rate`).
    code request_burst: Option<u32> = None,

    /// A local quota on cost units such as tokens (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<QuotaSpec>,

    manual cost: Option<(u32, Duration)> = None,

    /// The most cost units that may be spent at once (default: the whole `rate`). A request
    /// costing more can never pass and gets
    /// [`RateLimitError::CostExceedsBurst`](super::RateLimitError::CostExceedsBurst).
    code cost_burst: Option<u32> = None,

    /// The longest a caller waits for capacity before getting
    /// [`RateLimitError::Limited`](super::RateLimitError::Limited) (default 30 s); zero (`"0s"`
    /// in a file) rejects at once.
    max_wait: Duration = Duration::from_secs(30),

    /// How long a throttle that names no delay (a bare 429) pauses every caller (default 1 s).
    default_pause: Duration = Duration::from_secs(1),

    /// Callers waiting on a closed gate resume at its reopening plus a random delay up to
    /// this (default 100 ms), so they do not all fire on the same tick. Zero disables it.
    reopen_jitter: Duration = Duration::from_millis(100),

    /// How long the server's last word governs after a reset while the limiter waits for a
    /// fresh answer (default 1 s): when the gate reopens, one request goes first and the others
    /// wait for its answer at most this long (for a server whose window has not reset yet,
    /// that costs one 429, not one per waiting clone); pacing that reaches the reset keeps its
    /// spacing at most this long. Zero lets everyone go at once.
    probe_timeout: Duration = Duration::from_secs(1),

    /// Pace requests at an adaptive rate (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSpec>,

    /// Pace requests at an adaptive rate starting at `max_rate` per second: halved (see
    /// [`adaptive_decrease`](RateLimitConfigBuilder::adaptive_decrease)) on every throttle,
    /// recovering additively on every success.
    code adaptive: Option<f64> = None,

    /// The adaptive rate's floor in requests per second (default: 1 % of the maximum).
    code adaptive_floor: Option<f64> = None,

    /// The factor applied on a throttle, in `(0, 1)` (default 0.5).
    code adaptive_decrease: f64 = 0.5,

    /// Requests per second regained per success (default: 1 % of the maximum).
    code adaptive_increase: Option<f64> = None,

    /// Seed the reopening jitter, for reproducible runs.
    seed: Option<u64> = None,

    manual listener: ListenerSlot = ListenerSlot::default(),
}

impl RateLimitConfigBuilder {
    /// Allow `rate` requests per `per`, in bursts of up to `rate` (see
    /// [`request_burst`](Self::request_burst)).
    pub fn requests(mut self, rate: u32, per: Duration) -> Self {
        self.knobs.requests = Some((rate, per));
        self
    }

    /// Allow `rate` cost units (tokens, bytes…) per `per`; each request spends what the
    /// layer's [`Cost`](super::Cost) says.
    pub fn cost(mut self, rate: u32, per: Duration) -> Self {
        self.knobs.cost = Some((rate, per));
        self
    }

    /// Reject at once instead of waiting (same as `max_wait(Duration::ZERO)`).
    pub fn reject_when_limited(self) -> Self {
        self.max_wait(Duration::ZERO)
    }

    /// Receive every [`RateLimitEvent`](super::RateLimitEvent) of the limiters built from
    /// this config (every key's, for a keyed limiter).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = ListenerSlot::set(listener);
        self
    }

    /// Check every knob.
    pub fn build(self) -> Result<RateLimitConfig, ConfigError> {
        let k = self.knobs;
        let requests = quota(
            "ratelimit.requests",
            "ratelimit.request_burst",
            k.requests,
            k.request_burst,
        )?;
        let cost = quota(
            "ratelimit.cost",
            "ratelimit.cost_burst",
            k.cost,
            k.cost_burst,
        )?;
        check_duration("ratelimit.max_wait", k.max_wait)?;
        check_duration("ratelimit.default_pause", k.default_pause)?;
        if k.default_pause > MAX_SERVER_DELAY {
            return Err(ConfigError::new(
                "ratelimit.default_pause",
                format!(
                    "must not exceed a day, the longest delay riprap keeps (got {:?})",
                    k.default_pause
                ),
            ));
        }
        check_duration("ratelimit.reopen_jitter", k.reopen_jitter)?;
        check_duration("ratelimit.probe_timeout", k.probe_timeout)?;
        let adaptive = match k.adaptive {
            None => {
                if k.adaptive_floor.is_some() || k.adaptive_increase.is_some() {
                    return Err(ConfigError::new(
                        "ratelimit.adaptive",
                        "floor or increase set without enabling the adaptive rate",
                    ));
                }
                None
            }
            Some(max_rate) => Some(adaptive(
                max_rate,
                k.adaptive_floor,
                k.adaptive_decrease,
                k.adaptive_increase,
            )?),
        };
        Ok(RateLimitConfig {
            requests,
            cost,
            max_wait: k.max_wait,
            default_pause: k.default_pause,
            reopen_jitter: k.reopen_jitter,
            probe_timeout: k.probe_timeout,
            adaptive,
            seed: k.seed,
            listener: k.listener,
        })
    }
}

fn quota(
    knob: &'static str,
    burst_knob: &'static str,
    rate: Option<(u32, Duration)>,
    burst: Option<u32>,
) -> Result<Option<QuotaConfig>, ConfigError> {
    let Some((rate, per)) = rate else {
        return match burst {
            Some(_) => Err(ConfigError::new(
                burst_knob,
                "set without a quota to apply it to",
            )),
            None => Ok(None),
        };
    };
    if rate == 0 {
        return Err(ConfigError::new(knob, "rate must be at least 1"));
    }
    check_duration(knob, per)?;
    if (per / rate).is_zero() {
        return Err(ConfigError::new(
            knob,
            format!("{rate} per {per:?} is faster than one per nanosecond"),
        ));
    }
    let burst = burst.unwrap_or(rate);
    if burst == 0 {
        return Err(ConfigError::new(burst_knob, "must be at least 1"));
    }
    // GCRA keeps `period × burst` in u64 nanoseconds beside the clock; leave it headroom so
    // no sum of the two can overflow (a quarter of u64 nanoseconds is about 146 years).
    let period = crate::time::nanos(per / rate);
    if period
        .checked_mul(u64::from(burst))
        .is_none_or(|span| span > u64::MAX / 4)
    {
        return Err(ConfigError::new(
            burst_knob,
            format!(
                "a burst of {burst} at one per {:?} spans more than a century",
                per / rate
            ),
        ));
    }
    Ok(Some(QuotaConfig { rate, per, burst }))
}

/// Rates are requests per second; anything at or above a billion per second would pace at
/// zero nanoseconds.
const MAX_RATE: f64 = 1e9;

fn adaptive(
    max_rate: f64,
    min: Option<f64>,
    decrease: f64,
    increase: Option<f64>,
) -> Result<AdaptiveConfig, ConfigError> {
    if !(max_rate.is_finite() && max_rate > 0.0 && max_rate < MAX_RATE) {
        return Err(ConfigError::new(
            "ratelimit.adaptive.max_rate",
            format!("must be a positive number of requests per second below 1e9 (got {max_rate})"),
        ));
    }
    let min_rate = min.unwrap_or(max_rate / 100.0);
    // Below one request per 584 years the interval no longer fits in u64 nanoseconds.
    if !(min_rate.is_finite() && min_rate > 1e-9 && min_rate <= max_rate) {
        return Err(ConfigError::new(
            "ratelimit.adaptive.min_rate",
            format!("must be positive and at most the maximum {max_rate} (got {min_rate})"),
        ));
    }
    if !(decrease.is_finite() && decrease > 0.0 && decrease < 1.0) {
        return Err(ConfigError::new(
            "ratelimit.adaptive.decrease",
            format!("must be strictly between 0 and 1 (got {decrease})"),
        ));
    }
    let increase = increase.unwrap_or(max_rate / 100.0);
    if !(increase.is_finite() && increase > 0.0) {
        return Err(ConfigError::new(
            "ratelimit.adaptive.increase",
            format!("must be a positive number of requests per second (got {increase})"),
        ));
    }
    Ok(AdaptiveConfig {
        max_rate,
        min_rate,
        decrease,
        increase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knob(b: RateLimitConfigBuilder) -> &'static str {
        b.build().unwrap_err().knob()
    }

    #[test]
    fn rejects_each_bad_knob() {
        let s = Duration::from_secs(1);
        let b = RateLimitConfig::builder;
        assert_eq!(knob(b().requests(0, s)), "ratelimit.requests");
        assert_eq!(knob(b().requests(5, Duration::ZERO)), "ratelimit.requests");
        assert_eq!(
            knob(b().requests(5, s).request_burst(0)),
            "ratelimit.request_burst"
        );
        assert_eq!(knob(b().request_burst(3)), "ratelimit.request_burst");
        assert_eq!(knob(b().cost(0, s)), "ratelimit.cost");
        assert_eq!(knob(b().cost(5, Duration::MAX)), "ratelimit.cost");
        assert_eq!(knob(b().max_wait(Duration::MAX)), "ratelimit.max_wait");
        assert_eq!(
            knob(b().default_pause(Duration::from_secs(99_999))),
            "ratelimit.default_pause"
        );
        assert_eq!(knob(b().adaptive(f64::NAN)), "ratelimit.adaptive.max_rate");
        assert_eq!(knob(b().adaptive(0.0)), "ratelimit.adaptive.max_rate");
        assert_eq!(
            knob(b().adaptive(10.0).adaptive_floor(20.0)),
            "ratelimit.adaptive.min_rate"
        );
        assert_eq!(
            knob(b().adaptive(10.0).adaptive_decrease(1.0)),
            "ratelimit.adaptive.decrease"
        );
        assert_eq!(
            knob(b().adaptive(10.0).adaptive_increase(-1.0)),
            "ratelimit.adaptive.increase"
        );
        assert_eq!(knob(b().adaptive_floor(1.0)), "ratelimit.adaptive");
    }

    #[test]
    fn defaults() {
        let c = RateLimitConfig::builder()
            .requests(10, Duration::from_secs(1))
            .adaptive(10.0)
            .build()
            .unwrap();
        assert_eq!(c.request_quota().unwrap().burst, 10);
        assert_eq!(c.cost_quota(), None);
        let a = c.adaptive().unwrap();
        assert_eq!((a.min_rate, a.decrease, a.increase), (0.1, 0.5, 0.1));
    }
}
