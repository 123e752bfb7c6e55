//! Every `tracing` event the layers emit, in one place so the scheme in the module guide holds
//! everywhere: target `riprap::<layer>`, a short lowercase message, an `event` field naming the
//! event as [`Event::kind`](super::Event::kind) does, durations as whole `_ms` fields.
//!
//! Each macro checks its level before evaluating a field, so a disabled event costs a load and
//! a compare, and nothing is formatted.

use std::time::Duration;

use crate::breaker::BreakerEvent;
use crate::cache::CacheEvent;
use crate::classify::Class;
use crate::ratelimit::RateLimitEvent;
use crate::retry::{GiveUp, RetryEvent};
use crate::stream::StreamEvent;

/// Whole milliseconds, saturating: what a trace viewer shows and filters on.
#[inline]
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn retry(event: &RetryEvent) {
    const T: &str = "riprap::retry";
    match *event {
        RetryEvent::Attempt {
            attempt,
            class: Class::Success,
            ..
        } => {
            // A first-try success is the quiet path; a success after retries is a recovery.
            if attempt == 1 {
                tracing::trace!(target: T, event = "attempt", attempt, class = "success", "attempt succeeded");
            } else {
                tracing::debug!(target: T, event = "attempt", attempt, class = "success", "attempt succeeded");
            }
        }
        RetryEvent::Attempt {
            attempt,
            class,
            delay: Some(delay),
        } => {
            tracing::debug!(target: T, event = "attempt", attempt, class = class.as_str(), delay_ms = ms(delay), "attempt failed, retrying");
        }
        RetryEvent::Attempt {
            attempt,
            class,
            delay: None,
        } => {
            tracing::debug!(target: T, event = "attempt", attempt, class = class.as_str(), "attempt failed");
        }
        RetryEvent::GaveUp {
            attempts,
            reason: GiveUp::Permanent,
        } => {
            // Nothing was retried: the caller has the error and reports it.
            tracing::debug!(target: T, event = "gave_up", attempts, reason = "permanent", "gave up");
        }
        RetryEvent::GaveUp { attempts, reason } => {
            tracing::warn!(target: T, event = "gave_up", attempts, reason = reason.as_str(), "gave up");
        }
    }
}

/// `name` is the breaker's own name, passed apart from the event so that a breaker without a
/// listener does not clone it.
pub(crate) fn breaker(name: Option<&str>, event: &BreakerEvent) {
    const T: &str = "riprap::breaker";
    match event {
        BreakerEvent::Transition {
            from,
            to,
            open_for: Some(open_for),
            generation,
            ..
        } => {
            tracing::warn!(target: T, event = "transition", name, state.from = from.as_str(), state.to = to.as_str(), open_ms = ms(*open_for), generation, "circuit opened");
        }
        BreakerEvent::Transition {
            from,
            to,
            generation,
            ..
        } => {
            tracing::info!(target: T, event = "transition", name, state.from = from.as_str(), state.to = to.as_str(), generation, "circuit state changed");
        }
        BreakerEvent::WouldTrip { .. } => {
            tracing::warn!(target: T, event = "would_trip", name, "circuit would have opened (disabled: metrics only)");
        }
        BreakerEvent::Rejected { rejected, .. } => {
            // One per refused call: the transition that caused it was logged at warn.
            tracing::debug!(target: T, event = "rejected", name, reason = rejected.as_str(), "call rejected");
        }
    }
}

pub(crate) fn ratelimit(event: &RateLimitEvent) {
    const T: &str = "riprap::ratelimit";
    match *event {
        RateLimitEvent::GateClosed { reopens_in } => {
            tracing::info!(target: T, event = "gate_closed", reopen_ms = ms(reopens_in), "gate closed by the server");
        }
        RateLimitEvent::GateReopened => {
            tracing::info!(target: T, event = "gate_reopened", "gate reopened");
        }
        RateLimitEvent::Pacing { interval, lasts } => {
            tracing::debug!(target: T, event = "pacing", interval_ms = ms(interval), lasts_ms = ms(lasts), "pacing to the server's remaining quota");
        }
        RateLimitEvent::Waited { waited } => {
            tracing::debug!(target: T, event = "waited", wait_ms = ms(waited), "waited for capacity");
        }
        RateLimitEvent::Rejected { by } => {
            let by = by.map_or("cost", |b| b.as_str());
            tracing::warn!(target: T, event = "rejected", by, "request refused");
        }
        RateLimitEvent::RateDecreased { rate } => {
            tracing::info!(target: T, event = "rate_decreased", rate, "adaptive rate cut");
        }
        RateLimitEvent::RateRecovered { rate } => {
            tracing::info!(target: T, event = "rate_recovered", rate, "adaptive rate recovered");
        }
    }
}

#[inline]
pub(crate) fn cache(event: &CacheEvent) {
    const T: &str = "riprap::cache";
    match *event {
        CacheEvent::Hit => tracing::trace!(target: T, event = "hit", "hit"),
        CacheEvent::StaleHit => {
            tracing::trace!(target: T, event = "stale_hit", "stale hit, refreshing")
        }
        CacheEvent::NegativeHit => {
            tracing::trace!(target: T, event = "negative_hit", "negative hit")
        }
        CacheEvent::Miss => tracing::trace!(target: T, event = "miss", "miss"),
        CacheEvent::Evicted => tracing::trace!(target: T, event = "evicted", "evicted"),
        CacheEvent::Loaded { took } => {
            tracing::debug!(target: T, event = "loaded", took_ms = ms(took), "loaded")
        }
        CacheEvent::LoadFailed { class } => {
            tracing::debug!(target: T, event = "load_failed", class = class.as_str(), "load failed")
        }
        CacheEvent::StaleIfError => {
            tracing::debug!(target: T, event = "stale_if_error", "served stale after a failed load")
        }
        CacheEvent::BatchLoaded { keys, stored, took } => {
            tracing::debug!(target: T, event = "batch_loaded", keys, stored, took_ms = ms(took), "batch loaded")
        }
        CacheEvent::BatchFailed { keys, class } => {
            // A background refresh: nobody else sees this error.
            tracing::warn!(target: T, event = "batch_failed", keys, class = class.as_str(), "batch refresh failed")
        }
        CacheEvent::RefreshDropped => {
            tracing::debug!(target: T, event = "refresh_dropped", "refresh dropped: queue full")
        }
        CacheEvent::Overloaded => {
            tracing::warn!(target: T, event = "overloaded", "miss turned away: too many loads in flight")
        }
        CacheEvent::Inserted => tracing::debug!(target: T, event = "inserted", "inserted"),
        CacheEvent::Invalidated => tracing::debug!(target: T, event = "invalidated", "invalidated"),
        CacheEvent::InvalidatedAll => {
            tracing::debug!(target: T, event = "invalidated_all", "invalidated all")
        }
    }
}

/// Offsets are logged with their `Debug` form: the stream's offset type is the caller's.
pub(crate) fn stream<O: std::fmt::Debug>(event: &StreamEvent<O>) {
    const T: &str = "riprap::stream";
    match event {
        StreamEvent::Loaded { position } => {
            // Once per run: where it resumes is what an operator checks after a restart.
            tracing::info!(target: T, event = "loaded", position = ?position, "loaded the committed position")
        }
        StreamEvent::Reconnecting {
            after,
            attempt,
            delay,
            class,
        } => {
            tracing::debug!(target: T, event = "reconnecting", after = ?after, attempt, delay_ms = ms(*delay), class = class.as_str(), "source failed or ended, reconnecting")
        }
        StreamEvent::Gap { expected, found } => {
            // Data the source no longer has: nothing downstream can bring it back.
            tracing::warn!(target: T, event = "gap", expected = ?expected, found = ?found, "offsets skipped: items lost")
        }
        StreamEvent::GaveUp { attempts, reason } => {
            tracing::warn!(target: T, event = "gave_up", attempts, reason = reason.as_str(), "gave up reconnecting")
        }
        StreamEvent::Committed { position } => {
            tracing::debug!(target: T, event = "committed", position = ?position, "committed")
        }
    }
}
