//! Circuit breaker: model-based properties, cancellation, concurrency, paused-clock timing.

mod common;

#[path = "../fuzz/checks/breaker_ops.rs"]
mod breaker_ops_check;

use proptest::prelude::*;

#[test]
fn fuzz_corpus_replays() {
    common::replay_corpus("breaker_ops", breaker_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random ops (outcomes, durations, clock advances, dropped futures, manual commands)
    /// against the reference model: state and counts agree after every step.
    #[test]
    fn breaker_agrees_with_model(data in proptest::collection::vec(any::<u8>(), 14..600)) {
        breaker_ops_check::run(&data);
    }
}
