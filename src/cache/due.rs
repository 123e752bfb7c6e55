//! The bounded queue of keys due for a batch refresh.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

/// Keys waiting for the batch refresher: a bounded set, so a key is queued once.
pub(crate) struct DueQueue<K> {
    keys: Mutex<HashSet<K>>,
    /// The most keys waiting; zero while no refresher is attached.
    cap: AtomicUsize,
    pub(crate) wake: Notify,
}

impl<K: Hash + Eq> DueQueue<K> {
    pub(crate) fn new() -> Self {
        DueQueue {
            keys: Mutex::new(HashSet::new()),
            cap: AtomicUsize::new(0),
            wake: Notify::new(),
        }
    }

    #[inline]
    pub(crate) fn attached(&self) -> bool {
        self.cap.load(Ordering::Acquire) > 0
    }

    pub(crate) fn attach(&self, cap: usize) -> bool {
        self.cap
            .compare_exchange(0, cap, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn detach(&self) {
        self.cap.store(0, Ordering::Release);
        self.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<K>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `key`; `false` if the queue is full or detached.
    pub(crate) fn push(&self, key: K) -> bool {
        let cap = self.cap.load(Ordering::Acquire);
        let mut keys = self.lock();
        if keys.contains(&key) {
            return true;
        }
        if keys.len() >= cap {
            return false;
        }
        let was_empty = keys.is_empty();
        keys.insert(key);
        drop(keys);
        if was_empty {
            self.wake.notify_one();
        }
        true
    }

    pub(crate) fn take(&self) -> Vec<K> {
        self.lock().drain().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
