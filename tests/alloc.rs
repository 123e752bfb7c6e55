//! Hot paths allocate nothing: a counting global allocator, per thread so parallel tests do not
//! disturb each other's counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use riprap::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `f`.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

#[test]
fn drawing_a_thousand_delays_allocates_nothing() {
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let policy = BackoffPolicy::exponential(Duration::from_millis(100))
            .jitter(jitter)
            .seed(9)
            .build()
            .unwrap();
        let (allocs, total) = allocations_during(|| {
            let mut schedule = policy.make_backoff();
            let mut total = Duration::ZERO;
            for _ in 0..1_000 {
                total += schedule.next_delay().unwrap_or_default();
            }
            schedule.reset();
            total
        });
        assert!(total > Duration::ZERO);
        assert_eq!(allocs, 0, "{jitter:?} allocated {allocs} times");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let (allocs, v) = allocations_during(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert!(allocs >= 1);
}
