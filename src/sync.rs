//! The synchronisation primitives shared between threads by the acknowledgement tracker:
//! std's and futures', or loom's when the crate is built with `--cfg riprap_loom` for the
//! model-checking tests in `tests/loom.rs`.

#[cfg(not(riprap_loom))]
pub(crate) use futures_util::task::AtomicWaker;
#[cfg(not(riprap_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(riprap_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// loom's waker slot, with the by-reference `register` of futures' `AtomicWaker`.
#[cfg(riprap_loom)]
#[derive(Debug)]
pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(riprap_loom)]
impl AtomicWaker {
    pub(crate) fn new() -> Self {
        AtomicWaker(loom::future::AtomicWaker::new())
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.0.wake();
    }
}
#[cfg(riprap_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(riprap_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
