//! Building a [`CacheSpec`] and a [`BatchSpec`] (defined with the knobs they list, in
//! `config.rs`).

use super::{
    BatchConfig, BatchConfigBuilder, BatchSpec, CacheConfig, CacheConfigBuilder, CacheSpec,
};
use crate::error::ConfigError;

impl CacheSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> CacheConfigBuilder {
        self.set_knobs(CacheConfig::builder())
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<CacheConfig, ConfigError> {
        self.builder().build()
    }
}

impl BatchSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> BatchConfigBuilder {
        self.set_knobs(BatchConfig::builder())
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<BatchConfig, ConfigError> {
        self.builder().build()
    }
}
