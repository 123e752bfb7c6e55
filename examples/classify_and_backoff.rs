//! The foundation in one screen: how riprap classifies sample outcomes, and the delay schedules
//! each jitter kind produces.
//!
//! ```sh
//! cargo run --release --example classify_and_backoff
//! ```

use std::io;
use std::time::Duration;

use riprap::backoff::{BackoffPolicy, Jitter};
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
        Class::Throttled { .. } => "(wait as the server asked; pause every caller)",
        Class::Permanent => "(never retry)",
    }
}
