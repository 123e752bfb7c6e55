//! Instructions per call on the success path of the bulkhead and hedging layers and their
//! peers, for `valgrind --tool=callgrind` (see the performance notes in the README): each run
//! builds one layer over an always-ready service and drives `poll_ready`, `call` and one poll
//! of the future, polled in place as a task would, N times.
//!
//! ```sh
//! cargo build --release -p riprap-benches --example icount
//! count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
//!           | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
//! for w in tower_limit riprap_bulkhead resilience_bulkhead riprap_hedge resilience_hedge; do
//!   z=$(count target/release/examples/icount $w 0)
//!   t=$(count target/release/examples/icount $w 20000)
//!   echo "$w $(( (t - z) / 20000 ))"
//! done
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use riprap::bulkhead::{Bulkhead, BulkheadLayer};
use riprap::hedge::HedgeLayer;
use tower::{Layer, Service, service_fn};

async fn ok(x: u64) -> Result<u64, Infallible> {
    Ok(x)
}

fn drive<S: Service<u64>>(mut svc: S, n: u64) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for i in 0..n {
        if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            panic!("the inner service is always ready");
        }
        let fut = pin!(svc.call(i));
        match fut.poll(&mut cx) {
            Poll::Ready(r) => {
                std::hint::black_box(r.is_ok());
            }
            Poll::Pending => panic!("the inner service answers at once"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let n: u64 = args.next().unwrap_or_default().parse().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let _runtime = rt.enter();
    let delay = Duration::from_millis(100);
    match which.as_str() {
        "inner" => drive(service_fn(ok), n),
        "tower_limit" => drive(
            tower::limit::ConcurrencyLimitLayer::new(1024).layer(service_fn(ok)),
            n,
        ),
        "riprap_bulkhead" => drive(
            BulkheadLayer::new(
                Bulkhead::builder()
                    .max_concurrent(1024)
                    .max_queue(100)
                    .build()?,
            )
            .layer(service_fn(ok)),
            n,
        ),
        "resilience_bulkhead" => drive(
            tower_resilience::bulkhead::BulkheadLayer::builder()
                .max_concurrent_calls(1024)
                .reject_when_full()
                .build()?
                .layer(service_fn(ok)),
            n,
        ),
        "riprap_hedge" => drive(
            HedgeLayer::builder()
                .delay(delay)
                .build()?
                .layer(service_fn(ok)),
            n,
        ),
        "resilience_hedge" => drive(
            tower_resilience::hedge::HedgeLayer::builder()
                .delay(delay)
                .max_hedged_attempts(2)
                .build()
                .layer(service_fn(ok)),
            n,
        ),
        "stack" => drive(
            riprap::stack::StackBuilder::new(riprap::classify::ByError)
                .build()?
                .layer(service_fn(
                    |x: u64| async move { Ok::<u64, std::io::Error>(x) },
                )),
            n,
        ),
        other => return Err(format!("unknown layer {other:?}").into()),
    }
    Ok(())
}
