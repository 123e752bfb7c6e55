use std::sync::Arc;
use std::time::Duration;

use super::layer::{ChaosLayer, DefaultInjector, Shared};
#[cfg(feature = "serde")]
use super::spec::{LatencySpec, OutageSpec};
use crate::error::{ConfigError, check_duration};

/// Extra latency the chaos layer adds to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always this much.
    Fixed(Duration),
    /// Uniform between the two bounds (inclusive).
    Uniform(Duration, Duration),
}

/// Builder for [`ChaosLayer`]; rates are probabilities per call in `[0, 1]`.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ChaosBuilder<I = DefaultInjector> {
    knobs: Knobs,
    injector: I,
}

impl ChaosBuilder<DefaultInjector> {
    pub(super) fn new() -> Self {
        ChaosBuilder {
            knobs: Knobs::default(),
            injector: DefaultInjector,
        }
    }
}

crate::knobs::knobs! {
    /// Everything but the injector, so that [`inject_with`](ChaosBuilder::inject_with) moves
    /// them in one piece. [`ChaosSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl<I> ChaosBuilder<I>;

    /// A [`ChaosLayer`] as plain data, readable from TOML, YAML or JSON (feature `serde`), so a
    /// test or a staging environment can switch faults on from a file.
    ///
    /// Every knob is optional: a spec with none injects nothing. `throttle_rate` needs
    /// `throttle_retry_after` and `latency_rate` needs `latency`; field names are the knob names
    /// a [`ConfigError`] reports (`chaos.throttle_rate`). The injector is code, not data: set it
    /// with [`ChaosBuilder::inject_with`] on [`builder`](ChaosSpec::builder)'s result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::chaos::{ChaosSpec, OutageSpec};
    ///
    /// let spec: ChaosSpec = toml::from_str(r#"
    ///     seed = 7
    ///     error_rate = 0.2
    ///     throttle_rate = 0.1
    ///     throttle_retry_after = "20s"
    ///     latency_rate = 0.5
    ///     latency = { min = "50ms", max = "200ms" }
    ///     outages = [{ from = "1m", until = "2m" }]
    /// "#)?;
    /// assert_eq!(spec.outages, [OutageSpec { from: Duration::from_secs(60), until: Duration::from_secs(120) }]);
    /// let layer = spec.build()?;
    /// # let _ = layer;
    ///
    /// let spec: ChaosSpec = toml::from_str("error_rate = 0.8\nthrottle_rate = 0.5\nthrottle_retry_after = \"1s\"")?;
    /// assert_eq!(spec.build().unwrap_err().knob(), "chaos.throttle_rate"); // 0.8 + 0.5 > 1
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct ChaosSpec;

    /// The seed every injection decision is drawn from (default 0).
    seed: u64 = 0,

    /// Fail this share of calls with [`Fault::Error`](super::Fault::Error), in `[0, 1]`
    /// (default 0).
    error_rate: f64 = 0.0,

    /// Share of calls throttled, in `[0, 1]`; set with `throttle_retry_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,

    /// The `Retry-After` an injected throttle carries; set with `throttle_rate`.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttle_retry_after: Option<Duration>,

    manual throttle: Option<(f64, Duration)> = None,

    /// Share of calls delayed, in `[0, 1]`; set with `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_rate: Option<f64>,

    /// How long a delayed call waits; set with `latency_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,

    manual latency: Option<(f64, Latency)> = None,

    /// Windows of time, from the layer's first call, when every call fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<OutageSpec>,

    manual outages: Vec<(Duration, Duration)> = Vec::new(),
}

impl<I> ChaosBuilder<I> {
    /// Throttle this share of calls with [`Fault::Throttle`](super::Fault::Throttle) carrying
    /// `retry_after`.
    pub fn throttle_rate(mut self, rate: f64, retry_after: Duration) -> Self {
        self.knobs.throttle = Some((rate, retry_after));
        self
    }

    /// Delay this share of calls (faults included) by `latency`.
    pub fn latency(mut self, rate: f64, latency: Latency) -> Self {
        self.knobs.latency = Some((rate, latency));
        self
    }

    /// The dependency is down from `from` to `until`, measured from the layer's first call.
    /// May be given several times.
    pub fn outage(mut self, from: Duration, until: Duration) -> Self {
        self.knobs.outages.push((from, until));
        self
    }

    /// Turn faults into your service's outcomes with `f`, e.g. a real `429` response.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::chaos::{ChaosLayer, Fault};
    ///
    /// let layer = ChaosLayer::builder()
    ///     .throttle_rate(0.5, Duration::from_secs(1))
    ///     .inject_with(|fault: Fault| -> Result<u16, std::io::Error> {
    ///         match fault {
    ///             Fault::Throttle { .. } => Ok(429),
    ///             _ => Ok(503),
    ///         }
    ///     })
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn inject_with<J>(self, injector: J) -> ChaosBuilder<J> {
        ChaosBuilder {
            knobs: self.knobs,
            injector,
        }
    }

    /// Check every knob and build the layer.
    pub fn build(self) -> Result<ChaosLayer<I>, ConfigError> {
        let (_, shared, injector) = self.into_parts()?;
        Ok(ChaosLayer::from_parts(shared, injector))
    }

    /// Check every knob; the seed, the faults to inject and the injector.
    pub(super) fn into_parts(self) -> Result<(u64, Arc<Shared>, I), ConfigError> {
        let k = self.knobs;
        check_rate("chaos.error_rate", k.error_rate)?;
        let throttle_rate = match k.throttle {
            Some((rate, retry_after)) => {
                check_rate("chaos.throttle_rate", rate)?;
                check_duration("chaos.throttle_retry_after", retry_after)?;
                rate
            }
            None => 0.0,
        };
        if k.error_rate + throttle_rate > 1.0 {
            return Err(ConfigError::new(
                "chaos.throttle_rate",
                format!(
                    "error_rate + throttle_rate must be at most 1 (got {})",
                    k.error_rate + throttle_rate
                ),
            ));
        }
        if let Some((rate, latency)) = k.latency {
            check_rate("chaos.latency_rate", rate)?;
            match latency {
                Latency::Fixed(d) => {
                    check_duration("chaos.latency", d)?;
                }
                Latency::Uniform(lo, hi) => {
                    check_duration("chaos.latency", hi)?;
                    if lo > hi {
                        return Err(ConfigError::new(
                            "chaos.latency",
                            format!("uniform latency needs low <= high (got {lo:?} > {hi:?})"),
                        ));
                    }
                }
            }
        }
        for &(from, until) in &k.outages {
            check_duration("chaos.outage", until)?;
            if from >= until {
                return Err(ConfigError::new(
                    "chaos.outage",
                    format!("an outage must end after it starts (got {from:?}..{until:?})"),
                ));
            }
        }
        let shared = Shared::new(k.seed, k.error_rate, k.throttle, k.latency, k.outages);
        Ok((k.seed, Arc::new(shared), self.injector))
    }
}

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
