//! Arbitrary configs and operation sequences on a rate limiter, on a paused clock: building
//! never panics (bad knobs are typed errors), and whatever the sequence, the gate never
//! closes past the one bound on a server's delay, the adaptive rate stays within its bounds, every refusal is a
//! typed error, and a closed gate always reopens.

use std::time::Duration;

use riprap::classify::Class;
use riprap::classify::headers::{Quota, RateLimitSignal};
use riprap::ratelimit::{RateLimitConfig, RateLimitError, RateLimiter};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    fn millis(&mut self) -> Duration {
        Duration::from_millis(u64::from(self.u32() % 200_000))
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.u8() & 1 == 1).then(|| f(self))
    }
}

pub fn run(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(drive(Bytes(data)));
}

async fn drive(mut b: Bytes<'_>) {
    let mut builder = RateLimitConfig::builder().seed(b.u64());
    let flags = b.u8();
    if flags & 1 != 0 {
        builder = builder.requests(b.u32() % 10_000, b.millis());
    }
    if flags & 2 != 0 {
        builder = builder.request_burst(b.u32() % 1_000);
    }
    if flags & 4 != 0 {
        builder = builder.cost(b.u32(), b.millis());
    }
    if flags & 8 != 0 {
        builder = builder.cost_burst(b.u32());
    }
    if flags & 16 != 0 {
        builder = builder.adaptive(f64::from(b.u32()) / 100.0);
        if flags & 32 != 0 {
            builder = builder.adaptive_floor(f64::from(b.u32()) / 1_000.0);
        }
    }
    builder = builder
        .max_wait(b.millis())
        .default_pause(b.millis())
        .reopen_jitter(b.millis());
    let Ok(config) = builder.build() else { return };
    let ceiling = riprap::classify::headers::MAX_SERVER_DELAY;
    let adaptive = config.adaptive();
    let limiter = RateLimiter::new(config);
    let mut last = None;

    for _ in 0..64 {
        match b.u8() % 7 {
            0 => tokio::time::advance(b.millis()).await,
            1 => match limiter.try_acquire(b.u32() % 5_000) {
                Ok(a) => last = Some(a),
                Err(RateLimitError::Limited { retry_after, .. }) => {
                    assert!(retry_after.is_some(), "an immediate refusal knows when");
                }
                Err(RateLimitError::CostExceedsBurst { cost, burst }) => assert!(cost > burst),
                Err(e) => panic!("unexpected {e}"),
            },
            2 => {
                let cost = b.u32() % 5_000;
                let budget = b.millis();
                if let Ok(Ok(a)) = tokio::time::timeout(budget, limiter.acquire(cost)).await {
                    last = Some(a);
                }
            }
            3 => {
                if let Some(a) = last {
                    let class = match b.u8() % 4 {
                        0 => Class::Success,
                        1 => Class::Transient,
                        2 => Class::Permanent,
                        _ => Class::Throttled {
                            retry_after: b.opt(|b| Duration::from_nanos(b.u64())),
                        },
                    };
                    limiter.observe(a, &class, None);
                }
            }
            4 => {
                if let Some(a) = last {
                    let mut quota = || Quota {
                        limit: b.opt(Bytes::u64),
                        remaining: b.opt(|b| b.u64() % 8),
                        reset_after: b.opt(|b| Duration::from_nanos(b.u64())),
                    };
                    let signal = RateLimitSignal {
                        retry_after: None,
                        should_retry: None,
                        requests: Some(quota()),
                        tokens: Some(quota()),
                    };
                    limiter.observe(a, &Class::Success, Some(&signal));
                }
            }
            5 => limiter.close_for(Duration::from_nanos(b.u64())),
            _ => {
                if let Some(wait) = limiter.reopens_in() {
                    // It reopens, and never later than the bound on a server's delay.
                    assert!(wait <= ceiling, "{wait:?} > {ceiling:?}");
                    tokio::time::advance(wait).await;
                    assert_eq!(limiter.reopens_in(), None);
                }
            }
        }
        if let (Some(rate), Some(a)) = (limiter.current_rate(), adaptive) {
            let slack = 1e-6 * a.max_rate;
            assert!(
                rate <= a.max_rate + slack && rate >= a.min_rate - slack,
                "rate {rate}"
            );
        }
        assert!(limiter.reopens_in().is_none_or(|w| w <= ceiling));
    }
}
