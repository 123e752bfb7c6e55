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

mod bulkhead {
    //! The bulkhead's permit counter: one atomic word of permits in flight and callers
    //! waiting, a lock taken only while callers wait. Every interleaving of acquires and
    //! releases on two threads keeps the count within the limit, hands a returned permit to
    //! a waiter, and leaks nothing when a waiter gives up as its permit arrives.

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::task::noop_waker_ref;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;
    use riprap::bulkhead::{Bulkhead, Priority};

    fn bulkhead(limit: u32, queue: u32) -> Bulkhead {
        Bulkhead::builder()
            .max_concurrent(limit)
            .max_queue(queue)
            .no_queue_timeout()
            .build()
            .unwrap()
    }

    /// Two threads race for one permit: never both hold it, and it is back at the end.
    #[test]
    fn two_threads_never_hold_more_permits_than_the_limit() {
        loom::model(|| {
            let b = bulkhead(1, 0);
            let holders = loom::sync::Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (b, holders) = (b.clone(), holders.clone());
                    thread::spawn(move || {
                        if let Ok(p) = b.try_acquire() {
                            assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0);
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(p);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!((b.in_flight(), b.waiting()), (0, 0));
        });
    }

    /// A permit given back on another thread always reaches the caller waiting for it (a
    /// lost hand-off would leave the model with every thread blocked, which loom reports).
    #[test]
    fn a_release_on_another_thread_always_reaches_the_waiter() {
        loom::model(|| {
            let b = bulkhead(1, 1);
            let held = b.try_acquire().unwrap();
            let releaser = thread::spawn(move || drop(held));
            let permit = loom::future::block_on(b.acquire(Priority::NORMAL)).unwrap();
            releaser.join().unwrap();
            assert_eq!((b.in_flight(), b.waiting()), (1, 0));
            drop(permit);
            assert_eq!(b.in_flight(), 0);
        });
    }

    /// A waiter gives up while the permit is being handed to it on another thread: whichever
    /// wins, the permit ends back in the counter and nobody is left waiting.
    #[test]
    fn a_waiter_dropped_as_its_permit_arrives_leaks_nothing() {
        loom::model(|| {
            let b = bulkhead(1, 1);
            let held = b.try_acquire().unwrap();
            let mut waiter = b.acquire(Priority::NORMAL);
            let polled = Pin::new(&mut waiter).poll(&mut Context::from_waker(noop_waker_ref()));
            assert!(matches!(polled, Poll::Pending));
            let releaser = thread::spawn(move || drop(held));
            drop(waiter);
            releaser.join().unwrap();
            assert_eq!((b.in_flight(), b.waiting()), (0, 0));
        });
    }

    /// A caller that finds the permit taken queues just as the holder gives it back on
    /// another thread: it is never left waiting with the permit free.
    #[test]
    fn a_caller_never_queues_behind_a_free_permit() {
        loom::model(|| {
            let b = bulkhead(1, 1);
            let held = b.try_acquire().unwrap();
            let releaser = thread::spawn(move || drop(held));
            let permit = loom::future::block_on(b.acquire(Priority::LOW)).unwrap();
            releaser.join().unwrap();
            drop(permit);
            assert_eq!((b.in_flight(), b.waiting()), (0, 0));
        });
    }
}
