//! The public handle on a breaker's state machine: [`CircuitBreaker`] and its [`Permit`].

use std::sync::Arc;

use super::config::Settings;
use super::error::Rejected;
use super::events::{BreakerMetrics, BreakerState};
use super::policy::TripPolicy;
use super::state::{Holder, Mode, Shared, Ticket};
use crate::classify::Class;

/// A circuit breaker: cheap to clone, and clones share one state.
///
/// Wrap a service with [`CircuitBreakerLayer`](super::CircuitBreakerLayer), or drive it by
/// hand with [`try_acquire`](CircuitBreaker::try_acquire). Build one with
/// [`CircuitBreaker::builder`].
///
/// ```
/// use riprap::breaker::{BreakerState, CircuitBreaker, ConsecutiveFailures};
/// use riprap::classify::Class;
///
/// let breaker = CircuitBreaker::builder().policy(ConsecutiveFailures::new(2)?).build()?;
/// for _ in 0..2 {
///     let permit = breaker.try_acquire().expect("closed");
///     permit.record(Class::Transient);
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.try_acquire().is_err());
///
/// breaker.reset();
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub struct CircuitBreaker<P = super::ConsecutiveFailures> {
    pub(crate) shared: Arc<Shared<P>>,
}

impl<P> Clone for CircuitBreaker<P> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P> std::fmt::Debug for CircuitBreaker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.settings.name)
            .field("state", &self.shared.peek())
            .finish_non_exhaustive()
    }
}

impl<P: TripPolicy> CircuitBreaker<P> {
    pub(crate) fn from_parts(policy: P, settings: Settings) -> Self {
        super::error::register();
        CircuitBreaker {
            shared: Arc::new(Shared::new(policy, settings)),
        }
    }

    /// A breaker with the same settings, a fresh policy and its own open-duration schedule
    /// (so its jitter differs), under another name.
    pub(crate) fn fresh(&self, name: Option<Arc<str>>) -> Self {
        let mut settings = self.shared.settings.clone();
        settings.name = name;
        CircuitBreaker::from_parts(self.shared.policy.fresh(), settings)
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.shared.state()
    }

    /// A snapshot: state, window rates, rejections, probes.
    ///
    /// ```
    /// use riprap::breaker::{BreakerState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let m = breaker.metrics();
    /// assert_eq!(m.state, BreakerState::Closed);
    /// assert_eq!(m.rejected, 0);
    /// assert_eq!(m.consecutive_failures, Some(0));
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn metrics(&self) -> BreakerMetrics {
        self.shared.metrics()
    }

    /// The name given at build time (keyed breakers are named after their key).
    pub fn name(&self) -> Option<&str> {
        self.shared.settings.name.as_deref()
    }

    /// The trip policy.
    pub fn policy(&self) -> &P {
        &self.shared.policy
    }

    /// Ask to make a call. The permit reports the outcome with [`Permit::record`]; dropping it
    /// unreported gives a half-open probe slot back without counting anything.
    pub fn try_acquire(&self) -> Result<Permit<P>, Rejected> {
        let adm = self.shared.admit()?;
        Ok(Permit {
            ticket: Ticket::new(self.clone(), adm),
        })
    }

    /// Isolate the dependency: every call fails fast with [`Rejected::Isolated`] and no probe
    /// is sent until [`reset`](Self::reset) or [`force_closed`](Self::force_closed).
    pub fn force_open(&self) {
        self.shared.command(Mode::Isolated);
    }

    /// Let every call through and count nothing, until [`reset`](Self::reset). For an
    /// operator who knows better than the breaker.
    pub fn force_closed(&self) {
        self.shared.command(Mode::ForcedClosed);
    }

    /// Metrics only ("shadow mode"): every call passes and is counted, and when the policy
    /// would trip the breaker emits [`BreakerEvent::WouldTrip`] instead. Use it to tune
    /// thresholds on live traffic before enforcing them.
    ///
    /// [`BreakerEvent::WouldTrip`]: super::BreakerEvent::WouldTrip
    pub fn disable(&self) {
        self.shared.command(Mode::Disabled);
    }

    /// Back to closed with an empty window and the open duration starting over.
    pub fn reset(&self) {
        self.shared.command(Mode::Closed);
    }
}

impl<P: TripPolicy> Holder for CircuitBreaker<P> {
    type Policy = P;
    fn shared(&self) -> &Shared<P> {
        &self.shared
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the outcome with [`record`](Permit::record). Dropping a permit without recording is
/// always safe: a half-open probe's slot goes back, and nothing is counted, so a cancelled
/// call can never leave the breaker stuck half-open.
pub struct Permit<P: TripPolicy = super::ConsecutiveFailures> {
    ticket: Ticket<CircuitBreaker<P>>,
}

impl<P: TripPolicy> Permit<P> {
    /// Report how the call went, as classified.
    pub fn record(self, class: Class) {
        self.ticket.finish(&class);
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.adm.is_probe()
    }
}

impl<P: TripPolicy> std::fmt::Debug for Permit<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.is_probe())
            .finish_non_exhaustive()
    }
}
