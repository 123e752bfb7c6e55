//! The clock freshness is judged by: nanoseconds since the cache was made, optionally coarse.
//!
//! Reading the system clock (about 25-30 ns here) costs twice a whole quick_cache lookup, so
//! by default a ticker task publishes a reading every `resolution` while the cache is read,
//! and a hit only loads that atomic. The ticker parks after an idle tick and the next read
//! (which then reads the clock itself) wakes it, so an idle cache costs no wake-ups.
//!
//! Under tokio's paused clock a ticker would lag behind `advance` and auto-advance, so none
//! is started when the clock is paused at creation, and a running one stops for good the
//! first time tokio's time runs ahead of the system clock. Tests on a paused clock therefore
//! see exact freshness whatever the resolution (pause before creating the cache).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) struct Clock {
    shared: Arc<Shared>,
    ticker: Option<AbortHandle>,
}

struct Shared {
    base: Instant,
    /// The ticker's last reading; trusted only while `ticking`.
    coarse: AtomicU64,
    ticking: AtomicBool,
    /// Set by readers, cleared by the ticker: was the cache read during the last tick?
    read: AtomicBool,
    parked: AtomicBool,
    wake: Notify,
}

impl Shared {
    fn exact(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock {
    /// A clock starting now. With a non-zero resolution and a tokio runtime at hand, a ticker
    /// task keeps a coarse reading; otherwise every read is exact.
    pub(crate) fn new(resolution: Duration) -> Clock {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            coarse: AtomicU64::new(0),
            ticking: AtomicBool::new(false),
            read: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let ticker = match tokio::runtime::Handle::try_current() {
            Ok(rt) if !resolution.is_zero() && !tokio_clock_is_paused() => Some(
                rt.spawn(tick(Arc::clone(&shared), resolution))
                    .abort_handle(),
            ),
            _ => None,
        };
        Clock { shared, ticker }
    }

    /// Nanoseconds since the cache was made, at most one resolution behind while ticking.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let s = &*self.shared;
        if s.ticking.load(Ordering::Acquire) {
            // Only the first read of a tick writes, so readers share the line read-only.
            if !s.read.load(Ordering::Relaxed) {
                s.read.store(true, Ordering::Relaxed);
            }
            return s.coarse.load(Ordering::Acquire);
        }
        self.now_exact_and_wake()
    }

    #[cold]
    fn now_exact_and_wake(&self) -> u64 {
        let s = &*self.shared;
        if self.ticker.is_none() {
            return s.exact();
        }
        // Counts as a read, so a ticker this wakes keeps ticking instead of parking again.
        s.read.store(true, Ordering::Relaxed);
        if s.parked.load(Ordering::Relaxed) && s.parked.swap(false, Ordering::AcqRel) {
            s.wake.notify_one();
        }
        s.exact()
    }

    /// An exact reading, for load timings.
    pub(crate) fn now_exact(&self) -> u64 {
        self.shared.exact()
    }

    /// The instant `at` nanoseconds after the base, for timers.
    pub(crate) fn instant(&self, at: u64) -> Instant {
        self.shared.base + Duration::from_nanos(at)
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

/// A paused tokio clock stands still while real time passes (for about 2 µs here).
fn tokio_clock_is_paused() -> bool {
    let (virtual_start, real_start) = (Instant::now(), std::time::Instant::now());
    while real_start.elapsed() < Duration::from_micros(2) {
        std::hint::spin_loop();
    }
    Instant::now() == virtual_start
}

async fn tick(s: Arc<Shared>, resolution: Duration) {
    loop {
        let (virtual_before, real_before) = (Instant::now(), std::time::Instant::now());
        tokio::time::sleep(resolution).await;
        let virtual_elapsed = virtual_before.elapsed();
        let real_elapsed = real_before.elapsed();
        if virtual_elapsed > real_elapsed + resolution {
            // tokio's clock is paused or was advanced: keep every read exact from now on.
            s.ticking.store(false, Ordering::Release);
            return;
        }
        s.coarse.store(s.exact(), Ordering::Release);
        s.ticking.store(true, Ordering::Release);
        if !s.read.swap(false, Ordering::AcqRel) {
            // A whole tick without a read: stop ticking until a read needs the clock again.
            s.ticking.store(false, Ordering::Release);
            s.parked.store(true, Ordering::Release);
            s.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_is_read_exactly() {
        let clock = Clock::new(Duration::from_millis(1));
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now() - t0, 5_000_000_000);
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert_eq!(clock.now() - t0, 5_003_000_000);
    }

    #[test]
    fn without_a_runtime_reads_are_exact() {
        let clock = Clock::new(Duration::from_millis(1));
        assert!(clock.ticker.is_none());
        let a = clock.now();
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(10) {
            std::hint::spin_loop();
        }
        assert!(clock.now() > a);
    }

    #[test]
    fn a_busy_cache_reads_the_ticker_and_it_never_runs_ahead() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let clock = rt.block_on(async { Clock::new(Duration::from_millis(1)) });
        assert!(clock.ticker.is_some());
        // Keep reading until the ticker has published (generous bound for a loaded machine).
        let start = std::time::Instant::now();
        let mut last = 0;
        while !clock.shared.ticking.load(Ordering::Acquire) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ticker never started"
            );
            let now = clock.now();
            assert!(now >= last, "monotonic");
            last = now;
            std::thread::yield_now();
        }
        for _ in 0..1_000 {
            let coarse = clock.now();
            assert!(coarse >= last, "monotonic");
            assert!(coarse <= clock.now_exact(), "never ahead of the real clock");
            last = coarse;
        }
        drop(clock);
        drop(rt);
    }
}
