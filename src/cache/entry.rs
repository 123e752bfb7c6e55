//! What the cache stores per key: the value and three deadlines as integers.

use std::sync::Arc;

/// One stored version of a key. Times are nanoseconds since the cache's base instant, so the
/// freshness check is two integer comparisons against one clock reading.
pub(crate) struct Entry<V, E> {
    pub(crate) slot: Slot<V, E>,
    /// Unique per landing: tells "the version I read" from a newer one with the same value.
    pub(crate) stamp: u64,
    pub(crate) refresh_at: u64,
    /// When a stale read may start a refresh: `refresh_at` at first, then pushed forward by
    /// each refresh started, so a burst of stale reads starts one.
    pub(crate) retry_at: u64,
    pub(crate) expire_at: u64,
}

/// A value, or a remembered permanent failure (negative caching).
pub(crate) enum Slot<V, E> {
    Value(V),
    Missing(Arc<E>),
}

/// Where an entry stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it and refresh it in the background.
    Stale,
    /// Do not serve it while a load can succeed.
    Expired,
}

impl<V, E> Entry<V, E> {
    #[inline]
    pub(crate) fn freshness(&self, now: u64) -> Freshness {
        if now < self.refresh_at {
            Freshness::Fresh
        } else if now < self.expire_at {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }
}

// Manual impls: `E` itself need not be `Clone`, it sits behind an `Arc`.
impl<V: Clone, E> Clone for Slot<V, E> {
    fn clone(&self) -> Self {
        match self {
            Slot::Value(v) => Slot::Value(v.clone()),
            Slot::Missing(e) => Slot::Missing(Arc::clone(e)),
        }
    }
}

impl<V: Clone, E> Clone for Entry<V, E> {
    fn clone(&self) -> Self {
        Entry {
            slot: self.slot.clone(),
            stamp: self.stamp,
            refresh_at: self.refresh_at,
            retry_at: self.retry_at,
            expire_at: self.expire_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_boundaries() {
        let e: Entry<u8, ()> = Entry {
            slot: Slot::Value(1),
            stamp: 0,
            refresh_at: 10,
            retry_at: 10,
            expire_at: 20,
        };
        assert_eq!(e.freshness(9), Freshness::Fresh);
        assert_eq!(e.freshness(10), Freshness::Stale);
        assert_eq!(e.freshness(19), Freshness::Stale);
        assert_eq!(e.freshness(20), Freshness::Expired);
    }
}
