//! The foundation in one screen: how riprap classifies sample outcomes, and the delay schedules
//! each jitter kind produces.
//!
//! ```sh
//! cargo run --release --example classify_and_backoff
//! ```

use std::io;
use std::time::Duration;

use riprap::backoff::{BackoffPolicy, Jitter};
use riprap::classify::headers::{MAX_SERVER_DELAY, RateLimitSignal};
use riprap::classify::{ByError, Class, Classify};

fn main() -> Result<(), riprap::ConfigError> {
    println!("How riprap classifies outcomes\n");
    let samples: [(&str, io::ErrorKind); 6] = [
        ("connection reset by peer", io::ErrorKind::ConnectionReset),
        ("connection refused", io::ErrorKind::ConnectionRefused),
        ("read timed out", io::ErrorKind::TimedOut),
        ("invalid input", io::ErrorKind::InvalidInput),
        ("permission denied", io::ErrorKind::PermissionDenied),
        ("not found", io::ErrorKind::NotFound),
    ];
    for (what, kind) in samples {
        let err = io::Error::new(kind, what);
        let class = ByError.classify(Err::<&(), _>(&err));
        println!("  {what:<28} -> {:<10} {}", class.as_str(), advice(class));
    }

    println!("\nWhat servers say through headers (every delay capped at {MAX_SERVER_DELAY:?})\n");
    let responses: [(&str, &[(&str, &str)]); 5] = [
        ("429, Retry-After: 20", &[("retry-after", "20")]),
        (
            "429, hostile Retry-After",
            &[("retry-after", "99999999999")],
        ),
        (
            "200, OpenAI quota spent",
            &[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-remaining-tokens", "1200"),
                ("x-ratelimit-reset-tokens", "1.5s"),
            ],
        ),
        (
            "200, IETF RateLimit",
            &[("ratelimit", "\"default\";r=0;t=30")],
        ),
        (
            "429, malformed Retry-After",
            &[("retry-after", "soon, maybe")],
        ),
    ];
    let now = std::time::SystemTime::now();
    for (what, headers) in responses {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        };
        let signal = RateLimitSignal::from_lookup(lookup, now, MAX_SERVER_DELAY);
        let pause = match signal.pause() {
            Some(d) => format!("every caller pauses {d:?}"),
            None => "no pause".to_string(),
        };
        println!("  {what:<28} -> {pause}");
    }

    println!(
        "\nBackoff schedules: exponential from 100 ms, factor 2, cap 5 s, 8 retries, seed 42\n"
    );
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let policy = BackoffPolicy::exponential(Duration::from_millis(100))
            .factor(2.0)
            .max_delay(Duration::from_secs(5))
            .max_retries(8)
            .jitter(jitter)
            .build()?;
        let schedule: Vec<String> = policy
            .schedule_with_seed(42)
            .map(|d| format!("{:>5}", d.as_millis()))
            .collect();
        println!("  {:<13} {} ms", format!("{jitter:?}"), schedule.join(" "));
    }
    println!(
        "\nWithout jitter every client that failed together retries together; with full jitter\n\
         the same retries spread across the whole window."
    );
    Ok(())
}

fn advice(class: Class) -> &'static str {
    match class {
        Class::Success => "",
        Class::Transient => "(retry with backoff; counts against the dependency)",
        Class::TimedOut => {
            "(retry with backoff; counts against the dependency, priced as a timeout)"
        }
        Class::Throttled { .. } => "(wait as the server asked, never less; pause every caller)",
        Class::Refused { .. } => {
            "(our own layer refused: wait for it, never counted against the dependency)"
        }
        Class::Permanent => "(never retry)",
        _ => "",
    }
}
