//! A bulkhead's knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Aimd, AimdSpec, Bulkhead, BulkheadBuilder, Gradient, GradientSpec, Vegas, VegasSpec};
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

impl GradientSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Gradient, ConfigError> {
        self.set_knobs(Gradient::builder()).build()
    }
}

impl VegasSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Vegas, ConfigError> {
        self.set_knobs(Vegas::builder()).build()
    }
}

impl AimdSpec {
    /// Check every knob and build the algorithm.
    pub fn build(&self) -> Result<Aimd, ConfigError> {
        self.set_knobs(Aimd::builder()).build()
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
