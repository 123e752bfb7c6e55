//! Building a [`StackSpec`] (defined with the knobs it lists, in the module's root).

use super::{StackBuilder, StackSpec};
use crate::breaker::TripPolicies;
use crate::budget::AnyBudget;
use crate::error::ConfigError;
use crate::ratelimit::{NoSignal, UnitCost};

impl StackSpec {
    /// A stack builder with these settings and `classifier`; add code-only parts (cost,
    /// signal reader, listeners) on the builder, then [`build`](StackBuilder::build) it, which
    /// checks that the layers agree.
    pub fn builder<C>(
        &self,
        classifier: C,
    ) -> Result<StackBuilder<C, TripPolicies, UnitCost, NoSignal, AnyBudget>, ConfigError> {
        let retry = self.retry.clone().unwrap_or_default().config()?;
        let breaker = self.breaker.clone().unwrap_or_default().builder()?;
        let mut b = self.set_knobs(StackBuilder::new(classifier).retry(retry).breaker(breaker));
        if let Some(rate_limit) = &self.rate_limit {
            b = b.rate_limit(rate_limit.builder());
        }
        if let Some(bulkhead) = &self.bulkhead {
            b = b.bulkhead(bulkhead.builder()?);
        }
        Ok(b)
    }
}
