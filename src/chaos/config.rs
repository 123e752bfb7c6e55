use std::sync::Arc;
use std::time::Duration;

use super::layer::{ChaosLayer, DefaultInjector, Shared};
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
    pub(super) seed: u64,
    pub(super) error_rate: f64,
    pub(super) throttle: Option<(f64, Duration)>,
    pub(super) latency: Option<(f64, Latency)>,
    pub(super) outages: Vec<(Duration, Duration)>,
    pub(super) injector: I,
}

impl ChaosBuilder<DefaultInjector> {
    pub(super) fn new() -> Self {
        ChaosBuilder {
            seed: 0,
            error_rate: 0.0,
            throttle: None,
            latency: None,
            outages: Vec::new(),
            injector: DefaultInjector,
        }
    }
}

impl<I> ChaosBuilder<I> {
    /// The seed every injection decision is drawn from (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fail this share of calls with [`Fault::Error`](super::Fault::Error).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// Throttle this share of calls with [`Fault::Throttle`](super::Fault::Throttle) carrying
    /// `retry_after`.
    pub fn throttle_rate(mut self, rate: f64, retry_after: Duration) -> Self {
        self.throttle = Some((rate, retry_after));
        self
    }

    /// Delay this share of calls (faults included) by `latency`.
    pub fn latency(mut self, rate: f64, latency: Latency) -> Self {
        self.latency = Some((rate, latency));
        self
    }

    /// The dependency is down from `from` to `until`, measured from the layer's first call.
    /// May be given several times.
    pub fn outage(mut self, from: Duration, until: Duration) -> Self {
        self.outages.push((from, until));
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
            seed: self.seed,
            error_rate: self.error_rate,
            throttle: self.throttle,
            latency: self.latency,
            outages: self.outages,
            injector,
        }
    }

    /// Check every knob and build the layer.
    pub fn build(self) -> Result<ChaosLayer<I>, ConfigError> {
        check_rate("chaos.error_rate", self.error_rate)?;
        let throttle_rate = match self.throttle {
            Some((rate, retry_after)) => {
                check_rate("chaos.throttle_rate", rate)?;
                check_duration("chaos.throttle_retry_after", retry_after)?;
                rate
            }
            None => 0.0,
        };
        if self.error_rate + throttle_rate > 1.0 {
            return Err(ConfigError::new(
                "chaos.throttle_rate",
                format!(
                    "error_rate + throttle_rate must be at most 1 (got {})",
                    self.error_rate + throttle_rate
                ),
            ));
        }
        if let Some((rate, latency)) = self.latency {
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
        for &(from, until) in &self.outages {
            check_duration("chaos.outage", until)?;
            if from >= until {
                return Err(ConfigError::new(
                    "chaos.outage",
                    format!("an outage must end after it starts (got {from:?}..{until:?})"),
                ));
            }
        }
        Ok(ChaosLayer::from_parts(
            Arc::new(Shared::new(
                self.seed,
                self.error_rate,
                self.throttle,
                self.latency,
                self.outages,
            )),
            self.injector,
        ))
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
