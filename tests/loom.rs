//! Model-checked concurrency of the acknowledgement tracker: every interleaving of acks on
//! other threads with a producer waiting for room.
//!
//! `RUSTFLAGS="--cfg riprap_loom" cargo test --test loom --target-dir target/loom`
#![cfg(riprap_loom)]

use std::future::poll_fn;

use loom::thread;
use riprap::stream::AckTracker;

/// The producer has filled its window and waits for room while a worker acks the oldest
/// item: the ack must wake it whatever the interleaving (a lost wakeup would leave the model
/// with every thread blocked, which loom reports).
#[test]
fn an_ack_on_another_thread_always_wakes_the_waiting_producer() {
    loom::model(|| {
        let mut tracker = AckTracker::new(1).unwrap();
        let acker = tracker.handle();
        let first = tracker.track(10u64).unwrap();
        assert!(tracker.track(11).is_err(), "the window is full");

        let worker = thread::spawn(move || acker.ack(first).unwrap());
        loom::future::block_on(poll_fn(|cx| tracker.poll_capacity(cx)));
        assert!(tracker.track(11).is_ok());
        worker.join().unwrap();
        assert_eq!(tracker.handle().committed(), Some(10));
    });
}

/// Two workers ack in either order while the producer waits for room twice: both waits end,
/// the lock-free prefix length never lags the committed position, and the committed position
/// ends at the last acked item.
#[test]
fn two_workers_acking_in_either_order_both_wake_the_producer() {
    // Three threads make a large space; two preemptions per execution covers the orders that
    // matter (each ack before, between or after the producer's checks) in seconds.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let mut tracker = AckTracker::new(2).unwrap();
        let first = tracker.track(1u64).unwrap();
        let second = tracker.track(2u64).unwrap();
        let (a, b) = (tracker.handle(), tracker.handle());
        let watcher = tracker.handle();

        let late = thread::spawn(move || a.ack(second).unwrap());
        let early = thread::spawn(move || b.ack(first).unwrap());
        // Mid-way, the published prefix length (what the producer reads without the lock)
        // is never behind the committed position an observer has already seen.
        let committed = watcher.committed();
        let acked = watcher.acked();
        match committed {
            None => {}
            Some(1) => assert!(acked >= 1),
            Some(2) => assert_eq!(acked, 2),
            other => panic!("committed {other:?} was never delivered"),
        }

        // Each new item waits for room, which only the acks make.
        for offset in [3, 4] {
            loom::future::block_on(poll_fn(|cx| tracker.poll_capacity(cx)));
            let _ = tracker.track(offset).unwrap();
        }
        late.join().unwrap();
        early.join().unwrap();
        assert_eq!(watcher.committed(), Some(2));
    });
}
