//! A bulkhead's knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Aimd, Bulkhead, BulkheadBuilder, Gradient, Vegas};
use crate::error::ConfigError;

/// A [`Bulkhead`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
///
/// A knob left out keeps [`BulkheadBuilder`]'s default. Either `max_concurrent` or an
/// `adaptive` table sets the limit, not both. The name and the listener are code: set them
/// on the builder [`builder`](BulkheadSpec::builder) returns.
///
/// ```
/// use riprap::bulkhead::BulkheadSpec;
///
/// let spec: BulkheadSpec = toml::from_str(r#"
///     max_queue = 200
///     queue_timeout = "2s"
///     priorities = 2
///     shed = { target = "50ms", interval = "500ms" }
///
///     [adaptive.vegas]
///     initial = 8
///     max = 64
///     alpha = 2
///     beta = 4
/// "#)?;
/// let bulkhead = spec.build()?;
/// assert_eq!(bulkhead.limit(), 8);
///
/// let spec: BulkheadSpec = toml::from_str("priorities = 9")?;
/// assert_eq!(spec.build().unwrap_err().knob(), "bulkhead.priorities");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadSpec {
    /// At most this many calls in flight (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// At most this many callers waiting (default 0: fail fast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u32>,
    /// The longest a caller waits (default 30 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_timeout: Option<Duration>,
    /// Priority classes, 1 to 8 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priorities: Option<u8>,
    /// The starvation guard (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bypass: Option<u32>,
    /// Shedding by queue age (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shed: Option<ShedSpec>,
    /// An adaptive limit instead of `max_concurrent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSpec>,
}

/// [`BulkheadBuilder::shed_by_age`] as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShedSpec {
    /// A caller admitted within this long means the queue is not standing.
    #[serde(with = "crate::config::duration")]
    pub target: Duration,
    /// How long every admitted caller must have waited past the target to call the queue
    /// standing; also the age beyond which callers are shed.
    #[serde(with = "crate::config::duration")]
    pub interval: Duration,
}

/// An adaptive algorithm and its knobs: a table with one key, `gradient`, `vegas` or `aimd`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "OneAdaptive", into = "OneAdaptive")]
pub enum AdaptiveSpec {
    /// [`Gradient`].
    Gradient(GradientSpec),
    /// [`Vegas`].
    Vegas(VegasSpec),
    /// [`Aimd`].
    Aimd(AimdSpec),
}

/// [`AdaptiveSpec`] as it is written: a table with one key (YAML libraries would write an
/// externally tagged enum as a `!tag`).
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct OneAdaptive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gradient: Option<GradientSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vegas: Option<VegasSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aimd: Option<AimdSpec>,
}

impl TryFrom<OneAdaptive> for AdaptiveSpec {
    type Error = String;

    fn try_from(one: OneAdaptive) -> Result<Self, String> {
        match (one.gradient, one.vegas, one.aimd) {
            (Some(g), None, None) => Ok(AdaptiveSpec::Gradient(g)),
            (None, Some(v), None) => Ok(AdaptiveSpec::Vegas(v)),
            (None, None, Some(a)) => Ok(AdaptiveSpec::Aimd(a)),
            _ => Err("an adaptive limit needs exactly one of `gradient`, `vegas` or `aimd`".into()),
        }
    }
}

impl From<AdaptiveSpec> for OneAdaptive {
    fn from(spec: AdaptiveSpec) -> Self {
        match spec {
            AdaptiveSpec::Gradient(g) => OneAdaptive {
                gradient: Some(g),
                ..OneAdaptive::default()
            },
            AdaptiveSpec::Vegas(v) => OneAdaptive {
                vegas: Some(v),
                ..OneAdaptive::default()
            },
            AdaptiveSpec::Aimd(a) => OneAdaptive {
                aimd: Some(a),
                ..OneAdaptive::default()
            },
        }
    }
}

/// The knobs every algorithm shares.
macro_rules! bounds {
    ($builder:expr, $spec:expr) => {{
        let mut b = $builder;
        if let Some(v) = $spec.initial {
            b = b.initial(v);
        }
        if let Some(v) = $spec.min {
            b = b.min(v);
        }
        if let Some(v) = $spec.max {
            b = b.max(v);
        }
        if let Some(v) = $spec.backoff {
            b = b.backoff(v);
        }
        if let Some(v) = $spec.min_samples {
            b = b.min_samples(v);
        }
        b
    }};
}

/// [`Gradient`]'s knobs as data; left out, a knob keeps its default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GradientSpec {
    /// The limit to start at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<u32>,
    /// The lowest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// The highest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// The factor a drop multiplies the limit by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Calls per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Latency rise tolerated, as a factor of at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// The share of the gap the limit grows by per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
    /// The span of the baseline's minimum filter.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub baseline_window: Option<Duration>,
}

impl GradientSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Gradient, ConfigError> {
        let mut b = bounds!(Gradient::builder(), self);
        if let Some(v) = self.tolerance {
            b = b.tolerance(v);
        }
        if let Some(v) = self.smoothing {
            b = b.smoothing(v);
        }
        if let Some(v) = self.baseline_window {
            b = b.baseline_window(v);
        }
        b.build()
    }
}

/// [`Vegas`]'s knobs as data; left out, a knob keeps its default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VegasSpec {
    /// The limit to start at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<u32>,
    /// The lowest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// The highest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// The factor a drop multiplies the limit by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Calls per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Grow while fewer calls than this wait at the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<u32>,
    /// Shrink while more calls than this wait at the dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<u32>,
    /// The span of the baseline's minimum filter.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub baseline_window: Option<Duration>,
}

impl VegasSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Vegas, ConfigError> {
        let mut b = bounds!(Vegas::builder(), self);
        if let Some(v) = self.alpha {
            b = b.alpha(v);
        }
        if let Some(v) = self.beta {
            b = b.beta(v);
        }
        if let Some(v) = self.baseline_window {
            b = b.baseline_window(v);
        }
        b.build()
    }
}

/// [`Aimd`]'s knobs as data; left out, a knob keeps its default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AimdSpec {
    /// The limit to start at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<u32>,
    /// The lowest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// The highest limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// The factor a drop multiplies the limit by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Calls per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u32>,
    /// Added to the limit after a window without a drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increase: Option<u32>,
    /// A call slower than this counts as a drop.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow: Option<Duration>,
}

impl AimdSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Aimd, ConfigError> {
        let mut b = bounds!(Aimd::builder(), self);
        if let Some(v) = self.increase {
            b = b.increase(v);
        }
        if let Some(v) = self.slow {
            b = b.slow(v);
        }
        b.build()
    }
}

impl BulkheadSpec {
    /// A [`BulkheadBuilder`] with this spec's knobs (the adaptive algorithm built and
    /// checked here, the rest when the builder is built), ready for the knobs that are code
    /// ([`name`](BulkheadBuilder::name), [`listener`](BulkheadBuilder::listener)).
    pub fn builder(&self) -> Result<BulkheadBuilder, ConfigError> {
        let mut b = Bulkhead::builder();
        if let Some(v) = self.max_concurrent {
            b = b.max_concurrent(v);
        }
        if let Some(v) = self.max_queue {
            b = b.max_queue(v);
        }
        if let Some(v) = self.queue_timeout {
            b = b.queue_timeout(v);
        }
        if let Some(v) = self.priorities {
            b = b.priorities(v);
        }
        if let Some(v) = self.max_bypass {
            b = b.max_bypass(v);
        }
        if let Some(s) = self.shed {
            b = b.shed_by_age(s.target, s.interval);
        }
        match &self.adaptive {
            Some(AdaptiveSpec::Gradient(g)) => b = b.adaptive(g.build()?),
            Some(AdaptiveSpec::Vegas(v)) => b = b.adaptive(v.build()?),
            Some(AdaptiveSpec::Aimd(a)) => b = b.adaptive(a.build()?),
            None => {}
        }
        Ok(b)
    }

    /// Check every knob and build the bulkhead.
    pub fn build(&self) -> Result<Bulkhead, ConfigError> {
        self.builder()?.build()
    }
}
