//! The ack tracker against a model: for any sequence of deliveries, out-of-order, repeated and
//! batched acks, the committed position is the last offset of the longest acknowledged prefix of the
//! delivery order, and the window refuses exactly when `max_unacked` items are outstanding.

use std::collections::BTreeSet;
use std::task::{Context, Poll};

use riprap::stream::{Ack, AckTracker};

pub fn run(data: &[u8]) {
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let max_unacked = 1 + usize::from(first % 8);
    let start = if first & 0x80 != 0 {
        Some(1_000u64)
    } else {
        None
    };
    let mut tracker = AckTracker::new(max_unacked).expect("non-zero window");
    tracker.start_after(start);
    let acker = tracker.handle();
    let waker = futures_util_noop_waker();
    let mut cx = Context::from_waker(&waker);

    // The model.
    let mut delivered: Vec<u64> = Vec::new();
    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let mut outstanding: Vec<Ack<u64>> = Vec::new();
    let mut done: Vec<Ack<u64>> = Vec::new();
    let mut next_offset = 1_001u64;

    let mut bytes = ops.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = usize::from(bytes.next().unwrap_or(0));
        let prefix = (0..delivered.len())
            .take_while(|i| acked.contains(i))
            .count();
        let full = delivered.len() - prefix >= max_unacked;
        match op % 5 {
            0 => match tracker.track(next_offset) {
                Ok(ack) => {
                    assert!(!full, "tracked past a full window");
                    assert_eq!(ack.seq(), delivered.len() as u64);
                    delivered.push(next_offset);
                    outstanding.push(ack);
                    // Offsets only increase, by any step.
                    next_offset += 1 + (arg % 3) as u64;
                }
                Err(back) => {
                    assert!(full, "refused with room in the window");
                    assert_eq!(back, next_offset);
                }
            },
            1 if !outstanding.is_empty() => {
                let ack = outstanding.swap_remove(arg % outstanding.len());
                acked.insert(ack.seq() as usize);
                done.push(ack.clone());
                acker.ack(ack).expect("own ack");
            }
            2 if !done.is_empty() => {
                // A repeat changes nothing.
                acker.ack(done[arg % done.len()].clone()).expect("own ack");
            }
            3 => {
                let ready = tracker.poll_capacity(&mut cx) == Poll::Ready(());
                assert_eq!(ready, !full);
            }
            4 if !outstanding.is_empty() => {
                // A batch of up to `arg % 4 + 1` acks, in the order they are drawn.
                let mut batch = Vec::new();
                for _ in 0..=(arg % 4) {
                    if outstanding.is_empty() {
                        break;
                    }
                    let ack = outstanding.swap_remove((arg * 7 + batch.len()) % outstanding.len());
                    acked.insert(ack.seq() as usize);
                    done.push(ack.clone());
                    batch.push(ack);
                }
                acker.ack_many(batch).expect("own acks");
            }
            _ => {}
        }
        let prefix = (0..delivered.len())
            .take_while(|i| acked.contains(i))
            .count();
        let expected = if prefix == 0 {
            start
        } else {
            Some(delivered[prefix - 1])
        };
        assert_eq!(acker.committed(), expected);
        assert_eq!(acker.acked(), prefix as u64);
        assert_eq!(tracker.delivered(), delivered.len() as u64);
    }
}

fn futures_util_noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}
