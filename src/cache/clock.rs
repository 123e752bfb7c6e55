//! The clock freshness is judged by: nanoseconds since the cache was made, optionally coarse.
//!
//! Reading the system clock (25-30 ns on the machines measured) costs about twice a whole
//! quick_cache lookup, so by default a single process-wide ticker thread publishes a reading
//! every millisecond and a hit only loads that atomic. The ticker is a plain thread rather
//! than a tokio task so that a runtime whose workers are all busy cannot freeze the clock;
//! it parks after a tick in which nobody read it, and the next read (which then reads the
//! system clock itself) unparks it, so an idle process pays no wake-ups.
//!
//! Under tokio's paused clock the ticker would disagree with `advance` and auto-advance, so
//! a cache created while the clock is paused reads it exactly, every time. Tests on a paused
//! clock therefore see exact freshness (pause before creating the cache).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::Duration;

use tokio::time::Instant;

use crate::time::nanos;

/// The shared coarse reading. Times are nanoseconds since `base`.
struct Ticker {
    base: std::time::Instant,
    now: AtomicU64,
    /// `now` is trusted only while the ticker runs.
    ticking: AtomicBool,
    /// Set by readers, cleared by the ticker: was the clock read during the last tick?
    read: AtomicBool,
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

pub(crate) const TICK: Duration = Duration::from_millis(1);

static TICKER: OnceLock<Option<&'static Ticker>> = OnceLock::new();

/// The process's ticker, started on first use; `None` if its thread could not be spawned.
fn ticker() -> Option<&'static Ticker> {
    *TICKER.get_or_init(|| {
        let ticker: &'static Ticker = Box::leak(Box::new(Ticker {
            base: std::time::Instant::now(),
            now: AtomicU64::new(0),
            ticking: AtomicBool::new(false),
            read: AtomicBool::new(true),
            parked: AtomicBool::new(false),
            thread: OnceLock::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("riprap-clock".into())
            .spawn(move || tick(ticker));
        match spawned {
            Ok(handle) => {
                let _ = ticker.thread.set(handle.thread().clone());
                Some(ticker)
            }
            Err(_) => None,
        }
    })
}

fn tick(t: &'static Ticker) {
    loop {
        std::thread::sleep(TICK);
        t.now.store(nanos(t.base.elapsed()), Ordering::Release);
        t.ticking.store(true, Ordering::Release);
        if !t.read.swap(false, Ordering::AcqRel) {
            // A whole tick without a read: stop until a read needs the clock again.
            t.ticking.store(false, Ordering::Release);
            t.parked.store(true, Ordering::Release);
            while t.parked.load(Ordering::Acquire) {
                std::thread::park();
            }
        }
    }
}

/// One cache's clock: exact, or the shared ticker's reading shifted to this cache's base.
pub(crate) struct Clock {
    base: Instant,
    coarse: Option<Coarse>,
}

struct Coarse {
    ticker: &'static Ticker,
    /// The cache's base, in the ticker's nanoseconds.
    offset: u64,
}

impl Clock {
    /// A clock starting now: coarse when `resolution` is non-zero (the config checked it is at
    /// least the ticker's 1 ms), tokio's clock is running and the ticker thread is available;
    /// exact otherwise.
    pub(crate) fn new(resolution: Duration) -> Clock {
        let coarse = if resolution.is_zero() || tokio_clock_is_paused() {
            None
        } else {
            ticker()
        };
        let base = Instant::now();
        let coarse = coarse.map(|ticker| Coarse {
            ticker,
            offset: nanos(base.into_std().saturating_duration_since(ticker.base)),
        });
        Clock { base, coarse }
    }

    /// Nanoseconds since the cache was made; while coarse, at most about a millisecond behind
    /// and never ahead.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if let Some(c) = &self.coarse {
            let t = c.ticker;
            if t.ticking.load(Ordering::Acquire) {
                // Only the first read of a tick writes, so readers share the line read-only.
                if !t.read.load(Ordering::Relaxed) {
                    t.read.store(true, Ordering::Relaxed);
                }
                return t.now.load(Ordering::Acquire).saturating_sub(c.offset);
            }
            wake(t);
        }
        self.now_exact()
    }

    /// An exact reading.
    pub(crate) fn now_exact(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }

    /// The instant `at` nanoseconds after the base, for deadlines.
    pub(crate) fn instant(&self, at: u64) -> Instant {
        self.base + Duration::from_nanos(at)
    }
}

/// A read found the ticker stopped: count it as a read (so the ticker, once woken, keeps
/// ticking) and unpark it.
#[cold]
fn wake(t: &Ticker) {
    t.read.store(true, Ordering::Relaxed);
    if t.parked.load(Ordering::Relaxed) && t.parked.swap(false, Ordering::AcqRel) {
        if let Some(thread) = t.thread.get() {
            thread.unpark();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_is_read_exactly() {
        let clock = Clock::new(Duration::from_millis(1));
        assert!(clock.coarse.is_none());
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(clock.now() - t0, 5_000_000_000);
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert_eq!(clock.now() - t0, 5_003_000_000);
    }

    #[test]
    fn zero_resolution_reads_exactly() {
        let clock = Clock::new(Duration::ZERO);
        assert!(clock.coarse.is_none());
        let a = clock.now();
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(10) {
            std::hint::spin_loop();
        }
        assert!(clock.now() > a);
    }

    #[test]
    fn a_busy_clock_reads_the_ticker_and_never_runs_ahead() {
        let clock = Clock::new(Duration::from_millis(1));
        let ticker = clock.coarse.as_ref().expect("ticker thread").ticker;
        // Keep reading until the ticker has published (generous bound for a loaded machine).
        let start = std::time::Instant::now();
        let mut last = 0;
        while !ticker.ticking.load(Ordering::Acquire) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ticker never started"
            );
            let now = clock.now();
            assert!(now >= last, "monotonic");
            last = now;
            std::thread::yield_now();
        }
        // Coarse readings never decrease (an exact reading taken just before the ticker
        // published may be a fraction of a tick later, so start over from here).
        last = clock.now();
        for _ in 0..1_000 {
            let coarse = clock.now();
            assert!(coarse >= last, "monotonic");
            assert!(coarse <= clock.now_exact(), "never ahead of the real clock");
            last = coarse;
        }
    }
}
