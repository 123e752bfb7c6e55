//! AWS-style retry quota: a bucket that retries drain and successes refill.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Attempt, Budget, Withdrawal};
use crate::classify::Class;
use crate::error::ConfigError;

/// The retry quota of the AWS SDKs' standard retry mode: a bucket of `capacity` units (default
/// 500). A retry costs `retry_cost` (5); after a timeout it costs `timeout_cost` (10), because
/// a timed-out call may still be running and the retry doubles its load; after a throttle it
/// costs `throttle_cost` (1), because the retry already waits for the server's `Retry-After`.
/// A request that succeeds gives back what its last retry cost (its earlier retries failed, so
/// their cost stays spent), or adds `success_increment` (1) if it made none; a withdrawal
/// handed back unused with [`Budget::refund`] returns in full. When the bucket cannot cover a
/// retry, the retry is not made.
///
/// With the defaults a healthy client holds 500 units: 100 ordinary retries (50 after
/// timeouts) before an outage drains it.
///
/// ```
/// use riprap::budget::{Budget, Attempt, RetryQuota};
/// use riprap::classify::Class;
///
/// let quota = RetryQuota::builder().capacity(12).build()?;
/// let w = quota.try_withdraw(Class::TimedOut).unwrap(); // 10
/// assert_eq!(quota.available(), 2);
/// assert!(quota.try_withdraw(Class::Transient).is_none()); // 5 > 2
/// quota.record(Attempt::Succeeded { spent: w }); // the retry worked: its cost comes back
/// assert_eq!(quota.available(), 12);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryQuota {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: u64,
    retry_cost: u64,
    timeout_cost: u64,
    throttle_cost: u64,
    success_increment: u64,
    available: AtomicU64,
}

/// Builder for [`RetryQuota`]; see [`RetryQuota::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct RetryQuotaBuilder {
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The builder's knobs. [`RetryQuotaSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl RetryQuotaBuilder;

    /// A [`RetryQuota`] as plain data (feature `serde`); a knob left out keeps the builder's
    /// default (capacity 500; retries cost 5, 10 after a timeout, 1 after a throttle; successes
    /// add 1).
    ///
    /// ```
    /// use riprap::budget::RetryQuotaSpec;
    ///
    /// let spec: RetryQuotaSpec = toml::from_str("capacity = 100\ntimeout_cost = 20")?;
    /// assert_eq!(spec.build()?.available(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RetryQuotaSpec;

    /// The bucket's size and starting level, from 1 to 10^9 (default 500).
    capacity: u64 = 500,

    /// What a retry after an ordinary failure costs, from 1 to `capacity` (default 5).
    retry_cost: u64 = 5,

    /// What a retry after a timeout costs, from 1 to `capacity` (default 10).
    timeout_cost: u64 = 10,

    /// What a retry after a throttle costs, from 0 to `capacity` (default 1).
    throttle_cost: u64 = 1,

    /// What a request that succeeds without retrying adds, up to `capacity` (default 1).
    success_increment: u64 = 1,
}

impl RetryQuotaBuilder {
    /// Check every knob and build the quota.
    ///
    /// ```
    /// use riprap::budget::RetryQuota;
    /// let err = RetryQuota::builder().capacity(4).build().unwrap_err(); // a retry costs 5
    /// assert_eq!(err.knob(), "retry_quota.retry_cost");
    /// ```
    pub fn build(self) -> Result<RetryQuota, ConfigError> {
        let k = &self.knobs;
        let cap = k.capacity;
        if !(1..=1_000_000_000).contains(&cap) {
            return Err(ConfigError::new(
                "retry_quota.capacity",
                format!("must be from 1 to 1000000000 (got {cap})"),
            ));
        }
        let within = |knob: &'static str, v: u64, min: u64| {
            if (min..=cap).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::new(
                    knob,
                    format!("must be from {min} to the capacity {cap} (got {v})"),
                ))
            }
        };
        within("retry_quota.retry_cost", k.retry_cost, 1)?;
        within("retry_quota.timeout_cost", k.timeout_cost, 1)?;
        within("retry_quota.throttle_cost", k.throttle_cost, 0)?;
        within("retry_quota.success_increment", k.success_increment, 0)?;
        Ok(RetryQuota::from_builder(&self))
    }
}

impl Default for RetryQuota {
    /// Capacity 500; retries cost 5, 10 after a timeout, 1 after a throttle; successes add 1.
    fn default() -> Self {
        RetryQuota::from_builder(&RetryQuota::builder())
    }
}

impl RetryQuota {
    /// A builder starting from the defaults.
    pub fn builder() -> RetryQuotaBuilder {
        RetryQuotaBuilder {
            knobs: Knobs::default(),
        }
    }

    fn from_builder(b: &RetryQuotaBuilder) -> Self {
        RetryQuota {
            inner: Arc::new(Inner {
                capacity: b.knobs.capacity,
                retry_cost: b.knobs.retry_cost,
                timeout_cost: b.knobs.timeout_cost,
                throttle_cost: b.knobs.throttle_cost,
                success_increment: b.knobs.success_increment,
                available: AtomicU64::new(b.knobs.capacity),
            }),
        }
    }

    /// Units in the bucket now.
    pub fn available(&self) -> u64 {
        self.inner.available.load(Ordering::Acquire)
    }

    /// What a retry after `failure` costs.
    pub fn cost(&self, failure: Class) -> u64 {
        if failure.is_timeout() {
            self.inner.timeout_cost
        } else if failure.is_throttled() {
            self.inner.throttle_cost
        } else {
            self.inner.retry_cost
        }
    }

    fn put_back(&self, units: u64) {
        let cap = self.inner.capacity;
        // The closure always returns `Some`, so this cannot fail.
        let _ = self
            .inner
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                Some(a.saturating_add(units).min(cap))
            });
    }
}

impl Budget for RetryQuota {
    fn deposit(&self) {}

    fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
        let cost = self.cost(after);
        self.inner
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(cost))
            .ok()
            .map(|_| Withdrawal::new(cost))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        self.put_back(withdrawal.units());
    }

    fn record(&self, attempt: Attempt) {
        if let Attempt::Succeeded { spent } = attempt {
            // Only the last retry's cost comes back: every earlier retry of the request failed,
            // and its cost stays spent, as in the AWS SDKs' standard retry mode.
            let units = if spent.units() > 0 {
                spent.last_units()
            } else {
                self.inner.success_increment
            };
            if units > 0 {
                self.put_back(units);
            }
        }
    }

    fn can_withdraw(&self, after: Class) -> bool {
        self.available() >= self.cost(after)
    }
}
