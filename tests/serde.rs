//! Every config spec from TOML, YAML and JSON: realistic documents, round trips, errors that
//! name the field, and built configs that behave as the builder's do.
#![cfg(feature = "serde")]

use std::fmt::Debug;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use riprap::backoff::{BackoffPolicy, BackoffSpec, GrowthKind, Jitter};
use riprap::budget::{
    AnyBudget, Attempt, Budget, BudgetSpec, RatioBudget, RatioBudgetSpec, RetryQuota,
    RetryQuotaSpec, TokenThrottle, TokenThrottleSpec,
};
use riprap::classify::Class;
use riprap::retry::RetrySpec;

// ---------------------------------------------------------------------------------------------
// Helpers

fn from_json<T: DeserializeOwned>(doc: &str) -> T {
    serde_json::from_str(doc).unwrap_or_else(|e| panic!("JSON: {e}\n{doc}"))
}

fn from_toml<T: DeserializeOwned>(doc: &str) -> T {
    toml::from_str(doc).unwrap_or_else(|e| panic!("TOML: {e}\n{doc}"))
}

fn from_yaml<T: DeserializeOwned>(doc: &str) -> T {
    serde_norway::from_str(doc).unwrap_or_else(|e| panic!("YAML: {e}\n{doc}"))
}

/// The same spec from all three formats, which must agree.
fn from_all<T: DeserializeOwned + PartialEq + Debug>(json: &str, toml: &str, yaml: &str) -> T {
    let j: T = from_json(json);
    assert_eq!(j, from_toml::<T>(toml), "TOML differs from JSON");
    assert_eq!(j, from_yaml::<T>(yaml), "YAML differs from JSON");
    j
}

/// Serialize and read back through every format.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(spec: &T) {
    let j = serde_json::to_string(spec).unwrap();
    assert_eq!(&serde_json::from_str::<T>(&j).unwrap(), spec, "JSON: {j}");
    let t = toml::to_string(spec).unwrap();
    assert_eq!(&toml::from_str::<T>(&t).unwrap(), spec, "TOML: {t}");
    let y = serde_norway::to_string(spec).unwrap();
    assert_eq!(&serde_norway::from_str::<T>(&y).unwrap(), spec, "YAML: {y}");
}

/// A malformed document, written in each format from one JSON value, must fail in each with
/// an error naming `field`. JSON goes through `serde_path_to_error`, the way the docs
/// recommend, since serde_json locates type errors by line and column only.
fn refused_naming<T: DeserializeOwned + Debug>(doc: Value, field: &str) {
    let json = doc.to_string();
    let mut de = serde_json::Deserializer::from_str(&json);
    let err = serde_path_to_error::deserialize::<_, T>(&mut de).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(field),
        "JSON error does not name `{field}`: {msg}"
    );

    let toml = toml::to_string(&doc).unwrap();
    let msg = toml::from_str::<T>(&toml).unwrap_err().to_string();
    assert!(
        msg.contains(field),
        "TOML error does not name `{field}`: {msg}\n{toml}"
    );

    let yaml = serde_norway::to_string(&doc).unwrap();
    let msg = serde_norway::from_str::<T>(&yaml).unwrap_err().to_string();
    assert!(
        msg.contains(field),
        "YAML error does not name `{field}`: {msg}\n{yaml}"
    );
}

/// Unknown fields are named by serde itself, with plain serde_json too.
fn unknown_field_named<T: DeserializeOwned + Debug>(doc: Value, field: &str) {
    let msg = serde_json::from_value::<T>(doc.clone())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("unknown field `{field}`")),
        "plain JSON: {msg}"
    );
    refused_naming::<T>(doc, field);
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

// ---------------------------------------------------------------------------------------------
// Durations

#[test]
fn durations_read_human_forms_and_write_go_forms() {
    #[derive(Debug, PartialEq, serde::Deserialize, Serialize)]
    struct D(#[serde(with = "riprap::config::duration")] Duration);
    for (text, d) in [
        ("250ms", ms(250)),
        ("2m", secs(120)),
        ("1h30m", secs(5_400)),
        ("1.5s", ms(1_500)),
        ("0", Duration::ZERO),
        ("20us", Duration::from_micros(20)),
    ] {
        assert_eq!(serde_json::from_value::<D>(json!(text)).unwrap(), D(d));
    }
    assert_eq!(
        serde_json::to_value(D(secs(5_400))).unwrap(),
        json!("1h30m0s")
    );
    assert_eq!(serde_json::to_value(D(ms(250))).unwrap(), json!("250ms"));
    for bad in ["5 parsecs", "10", "-5s", "", "1h 30m", "ms"] {
        let msg = serde_json::from_value::<D>(json!(bad))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("duration"), "{bad}: {msg}");
    }
    let msg = serde_json::from_value::<D>(json!(5))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("expected a duration with a unit"), "{msg}");
    let msg = serde_json::from_value::<D>(json!("-5s"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not negative"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Backoff

#[test]
fn backoff_spec_from_every_format() {
    let spec: BackoffSpec = from_all(
        r#"{ "base": "100ms", "factor": 3.0, "max_delay": "5s", "jitter": "equal",
             "max_retries": 6, "max_elapsed": "20s", "seed": 42 }"#,
        r#"
            base = "100ms"
            factor = 3.0
            max_delay = "5s"
            jitter = "equal"
            max_retries = 6
            max_elapsed = "20s"
            seed = 42
        "#,
        "base: 100ms\nfactor: 3.0\nmax_delay: 5s\njitter: equal\nmax_retries: 6\n\
         max_elapsed: 20s\nseed: 42\n",
    );
    assert_eq!(
        spec,
        BackoffSpec {
            factor: Some(3.0),
            max_delay: Some(secs(5)),
            jitter: Some(Jitter::Equal),
            max_retries: Some(6),
            max_elapsed: Some(secs(20)),
            seed: Some(42),
            ..BackoffSpec::new(ms(100))
        }
    );
    round_trip(&spec);
    round_trip(&BackoffSpec::new(ms(1)));
    round_trip(&BackoffSpec {
        growth: GrowthKind::Linear,
        step: Some(Duration::from_micros(1_500)),
        ..BackoffSpec::new(Duration::new(3_723, 500_000_000))
    });
}

#[test]
fn backoff_spec_schedules_equal_the_builders() {
    let cases = [
        (
            from_toml::<BackoffSpec>(
                "base = \"100ms\"\nfactor = 3.0\nmax_delay = \"5s\"\njitter = \"equal\"\nseed = 42",
            ),
            BackoffPolicy::exponential(ms(100))
                .factor(3.0)
                .max_delay(secs(5))
                .jitter(Jitter::Equal)
                .seed(42),
        ),
        (
            from_yaml("growth: linear\nbase: 1s\nstep: 500ms\nmax_retries: 5\n"),
            BackoffPolicy::linear(secs(1), ms(500)).max_retries(5),
        ),
        (
            from_json(r#"{ "growth": "constant", "base": "2s", "max_elapsed": "7s" }"#),
            BackoffPolicy::constant(secs(2)).max_elapsed(secs(7)),
        ),
        (
            from_json(r#"{ "base": "10ms", "jitter": "decorrelated", "seed": 9 }"#),
            BackoffPolicy::exponential(ms(10))
                .jitter(Jitter::Decorrelated)
                .seed(9),
        ),
    ];
    for (spec, builder) in cases {
        let (a, b) = (spec.build().unwrap(), builder.build().unwrap());
        let a: Vec<_> = a.schedule_with_seed(5).take(20).collect();
        let b: Vec<_> = b.schedule_with_seed(5).take(20).collect();
        assert_eq!(a, b, "{spec:?}");
    }
    // Defaults are the builder's: exponential, factor 2, full jitter, 30 s cap.
    let p = BackoffSpec::new(ms(100)).build().unwrap();
    assert_eq!(p.jitter(), Jitter::Full);
    assert_eq!(p.max_delay(), secs(30));
    assert_eq!(p.worst_case_total(3), ms(700));
}

#[test]
fn malformed_backoff_spec_names_the_field() {
    unknown_field_named::<BackoffSpec>(json!({ "base": "1s", "factr": 2.0 }), "factr");
    refused_naming::<BackoffSpec>(json!({ "base": "1s", "factor": "double" }), "factor");
    refused_naming::<BackoffSpec>(json!({ "base": "5 parsecs" }), "base");
    refused_naming::<BackoffSpec>(json!({ "base": "1s", "max_delay": "-3s" }), "max_delay");
    refused_naming::<BackoffSpec>(json!({ "base": "1s", "jitter": "lots" }), "jitter");
    refused_naming::<BackoffSpec>(json!({ "factor": 2.0 }), "base"); // missing

    let knob = |doc: Value| {
        let spec: BackoffSpec = serde_json::from_value(doc).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains(err.knob()));
        err.knob()
    };
    assert_eq!(
        knob(json!({ "base": "1s", "factor": 0.0 })),
        "backoff.factor"
    );
    assert_eq!(knob(json!({ "base": "0s" })), "backoff.base");
    assert_eq!(
        knob(json!({ "base": "2s", "max_delay": "1s" })),
        "backoff.max_delay"
    );
    assert_eq!(
        knob(json!({ "base": "1s", "max_retries": 0 })),
        "backoff.max_retries"
    );
    assert_eq!(
        knob(json!({ "base": "1s", "max_elapsed": "0s" })),
        "backoff.max_elapsed"
    );
    // A knob for another growth is a mistake, not a silent no-op.
    assert_eq!(
        knob(json!({ "growth": "linear", "base": "1s", "step": "1s", "factor": 2.0 })),
        "backoff.factor"
    );
    assert_eq!(knob(json!({ "base": "1s", "step": "1s" })), "backoff.step");
    assert_eq!(
        knob(json!({ "growth": "linear", "base": "1s" })),
        "backoff.step"
    );
}

// ---------------------------------------------------------------------------------------------
// Budgets

#[test]
fn budget_specs_from_every_format() {
    let ratio: RatioBudgetSpec = from_all(
        r#"{ "ratio": 0.1, "min_retries_per_sec": 5, "ttl": "30s" }"#,
        "ratio = 0.1\nmin_retries_per_sec = 5\nttl = \"30s\"",
        "ratio: 0.1\nmin_retries_per_sec: 5\nttl: 30s\n",
    );
    assert_eq!(
        ratio,
        RatioBudgetSpec {
            ratio: Some(0.1),
            min_retries_per_sec: Some(5),
            ttl: Some(secs(30)),
        }
    );
    round_trip(&ratio);
    round_trip(&RatioBudgetSpec::default());

    let throttle: TokenThrottleSpec = from_all(
        r#"{ "max_tokens": 10, "token_ratio": 0.5 }"#,
        "max_tokens = 10\ntoken_ratio = 0.5",
        "max_tokens: 10\ntoken_ratio: 0.5\n",
    );
    round_trip(&throttle);

    let quota: RetryQuotaSpec = from_all(
        r#"{ "capacity": 100, "retry_cost": 4, "timeout_cost": 8, "throttle_cost": 0,
             "success_increment": 2 }"#,
        "capacity = 100\nretry_cost = 4\ntimeout_cost = 8\nthrottle_cost = 0\nsuccess_increment = 2",
        "capacity: 100\nretry_cost: 4\ntimeout_cost: 8\nthrottle_cost: 0\nsuccess_increment: 2\n",
    );
    round_trip(&quota);

    let choice: BudgetSpec = from_all(
        r#"{ "retry_quota": { "capacity": 100 } }"#,
        "[retry_quota]\ncapacity = 100",
        "retry_quota:\n  capacity: 100\n",
    );
    assert_eq!(
        choice,
        BudgetSpec::RetryQuota(RetryQuotaSpec {
            capacity: Some(100),
            ..Default::default()
        })
    );
    for spec in [
        BudgetSpec::RatioBudget(ratio),
        BudgetSpec::TokenThrottle(throttle),
        BudgetSpec::RetryQuota(quota),
        BudgetSpec::Unlimited,
        BudgetSpec::default(),
    ] {
        round_trip(&spec);
    }
    let unlimited: BudgetSpec = from_all(
        r#"{ "unlimited": true }"#,
        "unlimited = true",
        "unlimited: true\n",
    );
    assert_eq!(unlimited, BudgetSpec::Unlimited);
}

#[test]
fn built_budgets_behave_as_the_builders() {
    let failed = Class::Transient;

    let spec: RatioBudgetSpec = from_toml("ratio = 0.5\nmin_retries_per_sec = 1\nttl = \"2s\"");
    let built = spec.build().unwrap();
    let same = RatioBudget::builder()
        .ratio(0.5)
        .min_retries_per_sec(1)
        .ttl(secs(2))
        .build()
        .unwrap();
    assert_eq!(built.reserve(), same.reserve());
    assert_eq!(built.reserve(), 2.0);

    let spec: TokenThrottleSpec = from_toml("max_tokens = 4\ntoken_ratio = 0.5");
    let (built, same) = (
        spec.build().unwrap(),
        TokenThrottle::builder()
            .max_tokens(4)
            .token_ratio(0.5)
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        built.record(Attempt::Failed(failed));
        same.record(Attempt::Failed(failed));
        assert_eq!(built.tokens(), same.tokens());
        assert_eq!(
            built.try_withdraw(failed).is_some(),
            same.try_withdraw(failed).is_some()
        );
    }

    let spec: RetryQuotaSpec = from_toml("capacity = 12\ntimeout_cost = 7");
    let built = spec.build().unwrap();
    let same = RetryQuota::builder()
        .capacity(12)
        .timeout_cost(7)
        .build()
        .unwrap();
    assert!(built.try_withdraw(Class::TimedOut).is_some());
    assert!(same.try_withdraw(Class::TimedOut).is_some());
    assert_eq!(built.available(), 5);
    assert_eq!(same.available(), 5);

    let any = from_toml::<BudgetSpec>("[token_throttle]\nmax_tokens = 2")
        .build()
        .unwrap();
    let AnyBudget::TokenThrottle(t) = &any else {
        panic!("{any:?}")
    };
    any.record(Attempt::Failed(failed));
    assert_eq!(t.tokens(), 1.0); // the enum and the budget inside share one account
    assert!(any.try_withdraw(failed).is_none());
    assert!(matches!(
        BudgetSpec::default().build().unwrap(),
        AnyBudget::Ratio(_)
    ));
}

#[test]
fn malformed_budget_specs_name_the_field() {
    unknown_field_named::<RatioBudgetSpec>(json!({ "ratoi": 0.1 }), "ratoi");
    refused_naming::<RatioBudgetSpec>(json!({ "ratio": "lots" }), "ratio");
    refused_naming::<RatioBudgetSpec>(json!({ "ttl": "5 parsecs" }), "ttl");
    refused_naming::<RatioBudgetSpec>(json!({ "min_retries_per_sec": -1 }), "min_retries_per_sec");
    unknown_field_named::<TokenThrottleSpec>(json!({ "tokens": 1 }), "tokens");
    refused_naming::<TokenThrottleSpec>(json!({ "max_tokens": 1.5 }), "max_tokens");
    unknown_field_named::<RetryQuotaSpec>(json!({ "cost": 1 }), "cost");
    refused_naming::<RetryQuotaSpec>(json!({ "capacity": "big" }), "capacity");
    // Inside the choice, the path reaches the knob.
    refused_naming::<BudgetSpec>(json!({ "ratio_budget": { "ttl": "forever" } }), "ttl");
    refused_naming::<BudgetSpec>(json!({ "retry_quota": { "capacityy": 3 } }), "capacityy");
    // The choice itself.
    refused_naming::<BudgetSpec>(json!({ "leaky_bucket": {} }), "leaky_bucket");
    let msg = serde_json::from_value::<BudgetSpec>(json!({}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("exactly one of `ratio_budget`"), "{msg}");
    let msg =
        serde_json::from_value::<BudgetSpec>(json!({ "unlimited": true, "token_throttle": {} }))
            .unwrap_err()
            .to_string();
    assert!(msg.contains("(got 2)"), "{msg}");

    let knob = |spec: BudgetSpec| spec.build().unwrap_err().knob();
    assert_eq!(
        knob(from_json(r#"{ "ratio_budget": { "ratio": 11.0 } }"#)),
        "ratio_budget.ratio"
    );
    assert_eq!(
        knob(from_json(r#"{ "ratio_budget": { "ttl": "2h" } }"#)),
        "ratio_budget.ttl"
    );
    assert_eq!(
        knob(from_json(r#"{ "token_throttle": { "max_tokens": 0 } }"#)),
        "token_throttle.max_tokens"
    );
    assert_eq!(
        knob(from_json(r#"{ "token_throttle": { "token_ratio": 0.0 } }"#)),
        "token_throttle.token_ratio"
    );
    assert_eq!(
        knob(from_json(r#"{ "retry_quota": { "capacity": 4 } }"#)),
        "retry_quota.retry_cost"
    );
    assert_eq!(
        knob(from_json(r#"{ "retry_quota": { "timeout_cost": 501 } }"#)),
        "retry_quota.timeout_cost"
    );
}

// ---------------------------------------------------------------------------------------------
// Retry

const RETRY_TOML: &str = r#"
max_attempts = 4
deadline = "30s"
max_retry_after = "2m"

[backoff]
growth = "constant"
base = "10ms"

[budget]
unlimited = true
"#;

const RETRY_YAML: &str = "
max_attempts: 4
deadline: 30s
max_retry_after: 2m
backoff:
  growth: constant
  base: 10ms
budget:
  unlimited: true
";

const RETRY_JSON: &str = r#"{
  "max_attempts": 4,
  "deadline": "30s",
  "max_retry_after": "2m",
  "backoff": { "growth": "constant", "base": "10ms" },
  "budget": { "unlimited": true }
}"#;

#[test]
fn retry_spec_from_every_format() {
    let spec: RetrySpec = from_all(RETRY_JSON, RETRY_TOML, RETRY_YAML);
    assert_eq!(
        spec,
        RetrySpec {
            max_attempts: Some(4),
            deadline: Some(secs(30)),
            max_retry_after: Some(secs(120)),
            backoff: Some(BackoffSpec {
                growth: GrowthKind::Constant,
                ..BackoffSpec::new(ms(10))
            }),
            budget: Some(BudgetSpec::Unlimited),
        }
    );
    round_trip(&spec);
    round_trip(&RetrySpec::default());
    round_trip(&RetrySpec {
        budget: Some(BudgetSpec::RatioBudget(RatioBudgetSpec {
            ratio: Some(0.25),
            ..Default::default()
        })),
        backoff: Some(BackoffSpec {
            jitter: Some(Jitter::None),
            ..BackoffSpec::new(ms(100))
        }),
        ..RetrySpec::default()
    });
}

#[tokio::test(start_paused = true)]
async fn built_retry_layer_behaves_as_configured() {
    use tower::{Service, ServiceBuilder, ServiceExt};

    let spec: RetrySpec = from_toml(RETRY_TOML);
    let layer = spec.build().unwrap();
    let debug = format!("{layer:?}");
    assert!(debug.contains("max_attempts: 4"), "{debug}");
    assert!(debug.contains("deadline: Some(30s)"), "{debug}");
    assert!(debug.contains("max_retry_after: 120s"), "{debug}");
    assert!(matches!(layer.budget(), AnyBudget::Unlimited(_)));

    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let mut svc = ServiceBuilder::new().layer(layer).service_fn(move |_: ()| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) }
    });
    let start = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(start.elapsed(), ms(30)); // three constant 10 ms waits

    // Left out, every knob is the builder's default.
    let default = format!("{:?}", RetrySpec::default().build().unwrap());
    let builder = format!("{:?}", riprap::retry::RetryConfig::new().build().unwrap());
    assert_eq!(default, builder);
}

#[test]
fn malformed_retry_spec_names_the_field() {
    unknown_field_named::<RetrySpec>(json!({ "maxx_attempts": 3 }), "maxx_attempts");
    refused_naming::<RetrySpec>(json!({ "max_attempts": "three" }), "max_attempts");
    refused_naming::<RetrySpec>(json!({ "deadline": "5 parsecs" }), "deadline");
    refused_naming::<RetrySpec>(json!({ "max_retry_after": 60 }), "max_retry_after");
    refused_naming::<RetrySpec>(
        json!({ "backoff": { "base": "1s", "factor": "x" } }),
        "factor",
    );
    refused_naming::<RetrySpec>(json!({ "backoff": { "bsae": "1s" } }), "bsae");
    refused_naming::<RetrySpec>(
        json!({ "budget": { "token_throttle": { "max_tokens": "many" } } }),
        "max_tokens",
    );

    let knob = |doc: &str| from_toml::<RetrySpec>(doc).build().unwrap_err().knob();
    assert_eq!(knob("max_attempts = 0"), "retry.max_attempts");
    assert_eq!(knob("max_attempts = 101"), "retry.max_attempts");
    assert_eq!(knob("deadline = \"0s\""), "retry.deadline");
    assert_eq!(
        knob("[backoff]\nbase = \"1s\"\nfactor = 0.0"),
        "backoff.factor"
    );
    assert_eq!(
        knob("[budget.ratio_budget]\nratio = -1.0"),
        "ratio_budget.ratio"
    );
    let err = from_toml::<RetrySpec>("max_attempts = 0")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`retry.max_attempts`"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Breaker

const BREAKER_TOML: &str = r#"
consecutive_failures = 5
open_base = "2s"
open_max = "30s"
half_open_probes = 2
close_after = 3
count_throttled_as = "ignored"
count_permanent_as = "success"
name = "inventory-db"

[count_window]
size = 100
min_calls = 20
failure_rate = 0.5
slow_threshold = "2s"
slow_rate = 0.8

[time_window]
span = "30s"
buckets = 6
only_slow_calls = true
slow_threshold = "1.5s"
slow_rate = 0.5
min_throughput = 10
"#;

const BREAKER_YAML: &str = "
consecutive_failures: 5
open_base: 2s
open_max: 30s
half_open_probes: 2
close_after: 3
count_throttled_as: ignored
count_permanent_as: success
name: inventory-db
count_window:
  size: 100
  min_calls: 20
  failure_rate: 0.5
  slow_threshold: 2s
  slow_rate: 0.8
time_window:
  span: 30s
  buckets: 6
  only_slow_calls: true
  slow_threshold: 1.5s
  slow_rate: 0.5
  min_throughput: 10
";

const BREAKER_JSON: &str = r#"{
  "consecutive_failures": 5,
  "open_base": "2s",
  "open_max": "30s",
  "half_open_probes": 2,
  "close_after": 3,
  "count_throttled_as": "ignored",
  "count_permanent_as": "success",
  "name": "inventory-db",
  "count_window": {
    "size": 100, "min_calls": 20, "failure_rate": 0.5,
    "slow_threshold": "2s", "slow_rate": 0.8
  },
  "time_window": {
    "span": "30s", "buckets": 6, "only_slow_calls": true,
    "slow_threshold": "1.5s", "slow_rate": 0.5, "min_throughput": 10
  }
}"#;

#[test]
fn breaker_spec_from_every_format() {
    use riprap::breaker::{BreakerSpec, CountWindowSpec, Counted, TimeWindowSpec};

    let spec: BreakerSpec = from_all(BREAKER_JSON, BREAKER_TOML, BREAKER_YAML);
    assert_eq!(
        spec,
        BreakerSpec {
            consecutive_failures: Some(5),
            count_window: Some(CountWindowSpec {
                min_calls: Some(20),
                failure_rate: Some(0.5),
                slow_threshold: Some(secs(2)),
                slow_rate: Some(0.8),
                ..CountWindowSpec::new(100)
            }),
            time_window: Some(TimeWindowSpec {
                buckets: Some(6),
                only_slow_calls: true,
                slow_threshold: Some(ms(1_500)),
                slow_rate: Some(0.5),
                min_throughput: Some(10),
                ..TimeWindowSpec::new(secs(30))
            }),
            open_for: None,
            open_base: Some(secs(2)),
            open_max: Some(secs(30)),
            half_open_probes: Some(2),
            close_after: Some(3),
            count_throttled_as: Some(Counted::Ignored),
            count_permanent_as: Some(Counted::Success),
            name: Some("inventory-db".into()),
            seed: None,
        }
    );
    round_trip(&spec);
    round_trip(&BreakerSpec::default());
    round_trip(&BreakerSpec {
        open_for: Some(ms(2_500)),
        count_throttled_as: Some(Counted::Failure),
        time_window: Some(TimeWindowSpec::new(secs(60))),
        ..BreakerSpec::default()
    });

    let breaker = spec.build().unwrap();
    let policies = breaker.policy();
    assert_eq!(policies.consecutive_failures().unwrap().threshold(), 5);
    assert_eq!(policies.count_window().unwrap().size(), 100);
    assert_eq!(policies.time_window().unwrap().span(), secs(30));
    assert_eq!(breaker.name(), Some("inventory-db"));
}

#[tokio::test(start_paused = true)]
async fn built_breaker_behaves_as_configured() {
    use riprap::breaker::{BreakerSpec, BreakerState, Rejected};

    let spec: BreakerSpec = from_yaml(
        "consecutive_failures: 2\nopen_for: 10s\nhalf_open_probes: 1\nclose_after: 1\n\
         count_permanent_as: failure\n",
    );
    let breaker = spec.build().unwrap();
    for _ in 0..2 {
        breaker.try_acquire().unwrap().record(Class::Permanent);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        breaker.try_acquire().unwrap_err(),
        Rejected::Open { retry_in: secs(10) }
    );
    tokio::time::advance(secs(10)).await;
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(breaker.try_acquire().unwrap_err(), Rejected::HalfOpen); // one probe at a time
    probe.record(Class::Success); // one success closes
    assert_eq!(breaker.state(), BreakerState::Closed);

    // Only the policies listed trip: a count window alone ignores a streak below its rate.
    let spec: BreakerSpec =
        from_toml("[count_window]\nsize = 4\nmin_calls = 4\nfailure_rate = 0.75");
    let breaker = spec.build().unwrap();
    assert!(breaker.policy().consecutive_failures().is_none());
    for class in [Class::Transient, Class::Transient, Class::Success] {
        breaker.try_acquire().unwrap().record(class);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.try_acquire().unwrap().record(Class::Transient); // 3 of 4
    assert_eq!(breaker.state(), BreakerState::Open);

    // With nothing listed, the builder's defaults: 5 in a row, open 5 s growing, jittered.
    let breaker = BreakerSpec::default().build().unwrap();
    for _ in 0..4 {
        breaker.try_acquire().unwrap().record(Class::Transient);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.try_acquire().unwrap().record(Class::Transient);
    let retry_in = breaker.try_acquire().unwrap_err().retry_in().unwrap();
    assert!((ms(2_500)..=secs(5)).contains(&retry_in), "{retry_in:?}");
    // Permanent errors are ignored by default.
    breaker.reset();
    for _ in 0..10 {
        breaker.try_acquire().unwrap().record(Class::Permanent);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn malformed_breaker_spec_names_the_field() {
    use riprap::breaker::BreakerSpec;

    unknown_field_named::<BreakerSpec>(json!({ "consecutive_failure": 5 }), "consecutive_failure");
    unknown_field_named::<BreakerSpec>(
        json!({ "count_window": { "size": 10, "minimum_calls": 5 } }),
        "minimum_calls",
    );
    refused_naming::<BreakerSpec>(json!({ "half_open_probes": "two" }), "half_open_probes");
    refused_naming::<BreakerSpec>(json!({ "half_open_probes": 70_000 }), "half_open_probes");
    refused_naming::<BreakerSpec>(json!({ "open_for": "5 parsecs" }), "open_for");
    refused_naming::<BreakerSpec>(
        json!({ "count_permanent_as": "maybe" }),
        "count_permanent_as",
    );
    refused_naming::<BreakerSpec>(json!({ "count_window": { "min_calls": 5 } }), "size");
    refused_naming::<BreakerSpec>(json!({ "time_window": { "span": "soon" } }), "span");
    refused_naming::<BreakerSpec>(
        json!({ "time_window": { "span": "1m", "slow_rate": "most" } }),
        "slow_rate",
    );

    let knob = |doc: Value| {
        let spec: BreakerSpec = serde_json::from_value(doc).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains(err.knob()));
        err.knob()
    };
    assert_eq!(
        knob(json!({ "consecutive_failures": 0 })),
        "breaker.consecutive_failures"
    );
    assert_eq!(
        knob(json!({ "open_for": "10s", "open_max": "1m" })),
        "breaker.open_for"
    );
    assert_eq!(knob(json!({ "open_for": "0s" })), "breaker.open_for");
    assert_eq!(
        knob(json!({ "open_base": "10s", "open_max": "5s" })),
        "breaker.open_max"
    );
    assert_eq!(knob(json!({ "open_base": "0s" })), "breaker.open_base");
    assert_eq!(
        knob(json!({ "half_open_probes": 0 })),
        "breaker.half_open_probes"
    );
    assert_eq!(knob(json!({ "close_after": 0 })), "breaker.close_after");
    assert_eq!(
        knob(json!({ "count_window": { "size": 0 } })),
        "breaker.count_window.size"
    );
    assert_eq!(
        knob(json!({ "count_window": { "size": 10, "min_calls": 11 } })),
        "breaker.count_window.min_calls"
    );
    assert_eq!(
        knob(json!({ "count_window": { "size": 10, "failure_rate": 0.0 } })),
        "breaker.count_window.failure_rate"
    );
    assert_eq!(
        knob(json!({ "count_window": { "size": 10, "slow_rate": 0.5 } })),
        "breaker.count_window.slow_threshold"
    );
    assert_eq!(
        knob(json!({ "count_window": { "size": 10, "slow_threshold": "1s" } })),
        "breaker.count_window.slow_rate"
    );
    assert_eq!(
        knob(json!({ "count_window": { "size": 10, "only_slow_calls": true } })),
        "breaker.count_window.failure_rate"
    );
    assert_eq!(
        knob(json!({ "time_window": { "span": "0s" } })),
        "breaker.time_window.span"
    );
    assert_eq!(
        knob(json!({ "time_window": { "span": "1m", "buckets": 0 } })),
        "breaker.time_window.buckets"
    );
    assert_eq!(
        knob(json!({ "time_window": { "span": "1m", "failure_rate": 1.5 } })),
        "breaker.time_window.failure_rate"
    );
    assert_eq!(
        knob(json!({ "time_window": { "span": "1m", "min_throughput": 0 } })),
        "breaker.time_window.min_throughput"
    );
}

// ---------------------------------------------------------------------------------------------
// Rate limit

const RATELIMIT_TOML: &str = r#"
requests = { rate = 500, per = "1m", burst = 50 }
cost = { rate = 30000, per = "1m" }
max_wait = "10s"
default_pause = "2s"
reopen_jitter = "50ms"
probe_timeout = "500ms"
seed = 3

[adaptive]
max_rate = 8.0
min_rate = 0.5
decrease = 0.7
increase = 0.25
"#;

const RATELIMIT_YAML: &str = "
requests: { rate: 500, per: 1m, burst: 50 }
cost: { rate: 30000, per: 1m }
max_wait: 10s
default_pause: 2s
reopen_jitter: 50ms
probe_timeout: 500ms
seed: 3
adaptive:
  max_rate: 8.0
  min_rate: 0.5
  decrease: 0.7
  increase: 0.25
";

const RATELIMIT_JSON: &str = r#"{
  "requests": { "rate": 500, "per": "1m", "burst": 50 },
  "cost": { "rate": 30000, "per": "1m" },
  "max_wait": "10s",
  "default_pause": "2s",
  "reopen_jitter": "50ms",
  "probe_timeout": "500ms",
  "seed": 3,
  "adaptive": { "max_rate": 8.0, "min_rate": 0.5, "decrease": 0.7, "increase": 0.25 }
}"#;

#[test]
fn ratelimit_spec_from_every_format_builds_the_builders_config() {
    use riprap::ratelimit::{AdaptiveSpec, QuotaSpec, RateLimitConfig, RateLimitSpec};

    let spec: RateLimitSpec = from_all(RATELIMIT_JSON, RATELIMIT_TOML, RATELIMIT_YAML);
    assert_eq!(
        spec,
        RateLimitSpec {
            requests: Some(QuotaSpec {
                rate: 500,
                per: secs(60),
                burst: Some(50)
            }),
            cost: Some(QuotaSpec {
                rate: 30_000,
                per: secs(60),
                burst: None
            }),
            max_wait: Some(secs(10)),
            default_pause: Some(secs(2)),
            reopen_jitter: Some(ms(50)),
            probe_timeout: Some(ms(500)),
            adaptive: Some(AdaptiveSpec {
                max_rate: 8.0,
                min_rate: Some(0.5),
                decrease: Some(0.7),
                increase: Some(0.25),
            }),
            seed: Some(3),
        }
    );
    round_trip(&spec);
    round_trip(&RateLimitSpec::default());

    let same = RateLimitConfig::builder()
        .requests(500, secs(60))
        .request_burst(50)
        .cost(30_000, secs(60))
        .max_wait(secs(10))
        .default_pause(secs(2))
        .reopen_jitter(ms(50))
        .probe_timeout(ms(500))
        .adaptive(8.0)
        .adaptive_floor(0.5)
        .adaptive_decrease(0.7)
        .adaptive_increase(0.25)
        .seed(3)
        .build()
        .unwrap();
    assert_eq!(spec.build().unwrap(), same);
    assert_eq!(
        RateLimitSpec::default().build().unwrap(),
        RateLimitConfig::builder().build().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn built_ratelimit_config_limits_as_configured() {
    use riprap::ratelimit::{RateLimitSpec, RateLimiter};

    let spec: RateLimitSpec = from_yaml("requests: { rate: 2, per: 1s }\nmax_wait: 0s\n");
    let limiter = RateLimiter::new(spec.build().unwrap());
    assert!(limiter.try_acquire(1).is_ok());
    assert!(limiter.try_acquire(1).is_ok());
    assert!(limiter.try_acquire(1).is_err()); // a burst of two, then limited
    tokio::time::advance(ms(500)).await;
    assert!(limiter.try_acquire(1).is_ok()); // one more every 500 ms
}

#[test]
fn malformed_ratelimit_spec_names_the_field() {
    use riprap::ratelimit::RateLimitSpec;

    unknown_field_named::<RateLimitSpec>(json!({ "max_wiat": "1s" }), "max_wiat");
    unknown_field_named::<RateLimitSpec>(
        json!({ "requests": { "rate": 1, "per": "1s", "brust": 2 } }),
        "brust",
    );
    refused_naming::<RateLimitSpec>(json!({ "requests": { "rate": 5 } }), "per");
    refused_naming::<RateLimitSpec>(json!({ "requests": { "rate": -5, "per": "1s" } }), "rate");
    refused_naming::<RateLimitSpec>(json!({ "max_wait": "5 parsecs" }), "max_wait");
    refused_naming::<RateLimitSpec>(json!({ "adaptive": { "max_rate": "fast" } }), "max_rate");

    let knob = |doc: Value| {
        let spec: RateLimitSpec = serde_json::from_value(doc).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains(err.knob()));
        err.knob()
    };
    assert_eq!(
        knob(json!({ "requests": { "rate": 0, "per": "1s" } })),
        "ratelimit.requests"
    );
    assert_eq!(
        knob(json!({ "requests": { "rate": 5, "per": "1s", "burst": 0 } })),
        "ratelimit.request_burst"
    );
    assert_eq!(
        knob(json!({ "cost": { "rate": 5, "per": "0s" } })),
        "ratelimit.cost"
    );
    assert_eq!(
        knob(json!({ "cost": { "rate": 5, "per": "1s", "burst": 0 } })),
        "ratelimit.cost_burst"
    );
    assert_eq!(
        knob(json!({ "default_pause": "25h" })),
        "ratelimit.default_pause"
    );
    assert_eq!(
        knob(json!({ "adaptive": { "max_rate": 0.0 } })),
        "ratelimit.adaptive.max_rate"
    );
    assert_eq!(
        knob(json!({ "adaptive": { "max_rate": 10.0, "min_rate": 20.0 } })),
        "ratelimit.adaptive.min_rate"
    );
    assert_eq!(
        knob(json!({ "adaptive": { "max_rate": 10.0, "decrease": 1.0 } })),
        "ratelimit.adaptive.decrease"
    );
    assert_eq!(
        knob(json!({ "adaptive": { "max_rate": 10.0, "increase": -1.0 } })),
        "ratelimit.adaptive.increase"
    );
}

// ---------------------------------------------------------------------------------------------
// Cache

#[test]
fn cache_specs_from_every_format_build_the_builders_config() {
    use riprap::cache::{BatchConfig, BatchSpec, CacheConfig, CacheSpec};

    let spec: CacheSpec = from_all(
        r#"{ "capacity": 50000, "refresh_after": "30s", "expire_after": "5m",
             "stale_if_error": "1h", "negative_ttl": "10s", "max_in_flight": 500,
             "early_refresh": 1.5, "clock_resolution": "0s", "seed": 11 }"#,
        r#"
            capacity = 50000
            refresh_after = "30s"
            expire_after = "5m"
            stale_if_error = "1h"
            negative_ttl = "10s"
            max_in_flight = 500
            early_refresh = 1.5
            clock_resolution = "0s"
            seed = 11
        "#,
        "capacity: 50000\nrefresh_after: 30s\nexpire_after: 5m\nstale_if_error: 1h\n\
         negative_ttl: 10s\nmax_in_flight: 500\nearly_refresh: 1.5\nclock_resolution: 0s\n\
         seed: 11\n",
    );
    assert_eq!(
        spec,
        CacheSpec {
            capacity: Some(50_000),
            refresh_after: Some(secs(30)),
            expire_after: Some(secs(300)),
            stale_if_error: Some(secs(3_600)),
            negative_ttl: Some(secs(10)),
            max_in_flight: Some(500),
            early_refresh: Some(1.5),
            clock_resolution: Some(Duration::ZERO),
            seed: Some(11),
        }
    );
    round_trip(&spec);
    round_trip(&CacheSpec::default());
    let same = CacheConfig::builder()
        .capacity(50_000)
        .refresh_after(secs(30))
        .expire_after(secs(300))
        .stale_if_error(secs(3_600))
        .negative_ttl(secs(10))
        .max_in_flight(500)
        .early_refresh(1.5)
        .clock_resolution(Duration::ZERO)
        .seed(11)
        .build()
        .unwrap();
    // CacheConfig has no PartialEq (it may hold a listener); its Debug shows every knob.
    assert_eq!(format!("{:?}", spec.build().unwrap()), format!("{same:?}"));
    assert_eq!(
        format!("{:?}", CacheSpec::default().build().unwrap()),
        format!("{:?}", CacheConfig::builder().build().unwrap())
    );

    let batch: BatchSpec = from_all(
        r#"{ "max_batch": 200, "interval": "250ms", "max_pending": 5000 }"#,
        "max_batch = 200\ninterval = \"250ms\"\nmax_pending = 5000",
        "max_batch: 200\ninterval: 250ms\nmax_pending: 5000\n",
    );
    round_trip(&batch);
    round_trip(&BatchSpec::default());
    let built = batch.build().unwrap();
    let same = BatchConfig::builder()
        .max_batch(200)
        .interval(ms(250))
        .max_pending(5_000)
        .build()
        .unwrap();
    assert_eq!(
        (built.max_batch(), built.interval(), built.max_pending()),
        (same.max_batch(), same.interval(), same.max_pending())
    );
}

#[tokio::test(start_paused = true)]
async fn built_cache_expires_as_configured() {
    use riprap::cache::{Cache, CacheSpec};

    let spec: CacheSpec =
        from_toml("capacity = 10\nexpire_after = \"2s\"\nclock_resolution = \"0s\"");
    let cache: Cache<String, u32, std::io::Error> = Cache::new(spec.build().unwrap());
    cache.insert("a".to_string(), 1);
    assert_eq!(cache.get("a"), Some(1));
    tokio::time::advance(ms(2_001)).await;
    assert_eq!(cache.get("a"), None);
}

#[test]
fn malformed_cache_specs_name_the_field() {
    use riprap::cache::{BatchSpec, CacheSpec};

    unknown_field_named::<CacheSpec>(json!({ "ttl": "1m" }), "ttl");
    refused_naming::<CacheSpec>(json!({ "capacity": "lots" }), "capacity");
    refused_naming::<CacheSpec>(json!({ "expire_after": "5 parsecs" }), "expire_after");
    refused_naming::<CacheSpec>(json!({ "stale_if_error": "-1h" }), "stale_if_error");
    unknown_field_named::<BatchSpec>(json!({ "batch": 5 }), "batch");
    refused_naming::<BatchSpec>(json!({ "interval": 100 }), "interval");

    let knob = |doc: Value| {
        let spec: CacheSpec = serde_json::from_value(doc).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains(err.knob()));
        err.knob()
    };
    assert_eq!(knob(json!({ "capacity": 0 })), "cache.capacity");
    assert_eq!(knob(json!({ "max_in_flight": 0 })), "cache.max_in_flight");
    assert_eq!(knob(json!({ "expire_after": "0s" })), "cache.expire_after");
    assert_eq!(
        knob(json!({ "refresh_after": "2m", "expire_after": "1m" })),
        "cache.refresh_after"
    );
    assert_eq!(knob(json!({ "negative_ttl": "0s" })), "cache.negative_ttl");
    assert_eq!(knob(json!({ "early_refresh": 1.0 })), "cache.early_refresh");
    assert_eq!(
        knob(json!({ "clock_resolution": "500us" })),
        "cache.clock_resolution"
    );
    let batch_knob = |doc: Value| {
        let spec: BatchSpec = serde_json::from_value(doc).unwrap();
        spec.build().unwrap_err().knob()
    };
    assert_eq!(batch_knob(json!({ "max_batch": 0 })), "cache.max_batch");
    assert_eq!(batch_knob(json!({ "max_pending": 0 })), "cache.max_pending");
    assert_eq!(batch_knob(json!({ "interval": "0s" })), "cache.interval");
}

// ---------------------------------------------------------------------------------------------
// Chaos

const CHAOS_TOML: &str = r#"
seed = 7
error_rate = 0.2
throttle_rate = 0.1
throttle_retry_after = "20s"
latency_rate = 0.5
latency = { min = "50ms", max = "200ms" }

[[outages]]
from = "1m"
until = "2m"

[[outages]]
from = "10m"
until = "10m30s"
"#;

const CHAOS_YAML: &str = "
seed: 7
error_rate: 0.2
throttle_rate: 0.1
throttle_retry_after: 20s
latency_rate: 0.5
latency: { min: 50ms, max: 200ms }
outages:
  - { from: 1m, until: 2m }
  - { from: 10m, until: 10m30s }
";

const CHAOS_JSON: &str = r#"{
  "seed": 7,
  "error_rate": 0.2,
  "throttle_rate": 0.1,
  "throttle_retry_after": "20s",
  "latency_rate": 0.5,
  "latency": { "min": "50ms", "max": "200ms" },
  "outages": [{ "from": "1m", "until": "2m" }, { "from": "10m", "until": "10m30s" }]
}"#;

#[test]
fn chaos_spec_from_every_format() {
    use riprap::chaos::{ChaosSpec, LatencySpec, OutageSpec};

    let spec: ChaosSpec = from_all(CHAOS_JSON, CHAOS_TOML, CHAOS_YAML);
    assert_eq!(
        spec,
        ChaosSpec {
            seed: Some(7),
            error_rate: Some(0.2),
            throttle_rate: Some(0.1),
            throttle_retry_after: Some(secs(20)),
            latency_rate: Some(0.5),
            latency: Some(LatencySpec::Uniform {
                min: ms(50),
                max: ms(200)
            }),
            outages: vec![
                OutageSpec {
                    from: secs(60),
                    until: secs(120)
                },
                OutageSpec {
                    from: secs(600),
                    until: secs(630)
                },
            ],
        }
    );
    round_trip(&spec);
    round_trip(&ChaosSpec::default());
    round_trip(&ChaosSpec {
        latency_rate: Some(1.0),
        latency: Some(LatencySpec::Fixed(ms(100))),
        ..ChaosSpec::default()
    });
    let fixed: ChaosSpec = from_toml("latency_rate = 1.0\nlatency = { fixed = \"100ms\" }");
    assert_eq!(fixed.latency, Some(LatencySpec::Fixed(ms(100))));
}

/// Outcomes and times of `n` calls through `layer`, one every 100 ms.
async fn chaos_trace(layer: riprap::chaos::ChaosLayer, n: usize) -> Vec<(bool, Duration)> {
    use riprap::chaos::ChaosError;
    use tower::{Service, ServiceBuilder, ServiceExt};

    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: ()| async { Ok::<_, ChaosError>(()) });
    let mut out = Vec::new();
    for _ in 0..n {
        let start = tokio::time::Instant::now();
        let ok = svc.ready().await.unwrap().call(()).await.is_ok();
        out.push((ok, start.elapsed()));
        tokio::time::sleep(ms(100)).await;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn built_chaos_layer_injects_what_the_builders_does() {
    use riprap::chaos::{ChaosLayer, ChaosSpec, Latency};

    let spec: ChaosSpec = from_toml(CHAOS_TOML);
    let same = ChaosLayer::builder()
        .seed(7)
        .error_rate(0.2)
        .throttle_rate(0.1, secs(20))
        .latency(0.5, Latency::Uniform(ms(50), ms(200)))
        .outage(secs(60), secs(120))
        .outage(secs(600), secs(630))
        .build()
        .unwrap();
    let a = chaos_trace(spec.build().unwrap(), 200).await;
    let b = chaos_trace(same, 200).await;
    assert_eq!(a, b);
    let failed = a.iter().filter(|(ok, _)| !ok).count();
    assert!((30..=90).contains(&failed), "{failed} of 200 failed");
    assert!(a.iter().any(|(_, took)| *took >= ms(50)));

    // Nothing configured, nothing injected.
    let clean = chaos_trace(ChaosSpec::default().build().unwrap(), 50).await;
    assert!(clean.iter().all(|&(ok, took)| ok && took == Duration::ZERO));
}

#[test]
fn malformed_chaos_spec_names_the_field() {
    use riprap::chaos::ChaosSpec;

    unknown_field_named::<ChaosSpec>(json!({ "eror_rate": 0.1 }), "eror_rate");
    unknown_field_named::<ChaosSpec>(json!({ "outages": [{ "from": "1m", "to": "2m" }] }), "to");
    refused_naming::<ChaosSpec>(json!({ "error_rate": "often" }), "error_rate");
    refused_naming::<ChaosSpec>(
        json!({ "throttle_retry_after": "5 parsecs" }),
        "throttle_retry_after",
    );
    refused_naming::<ChaosSpec>(json!({ "outages": [{ "from": "1m" }] }), "until");
    refused_naming::<ChaosSpec>(json!({ "latency": { "min": "1s", "max": "soon" } }), "max");
    // A latency with neither form says which fields it wants.
    refused_naming::<ChaosSpec>(json!({ "latency": { "min": "1s" } }), "`fixed`");

    let knob = |doc: Value| {
        let spec: ChaosSpec = serde_json::from_value(doc).unwrap();
        let err = spec.build().unwrap_err();
        assert!(err.to_string().contains(err.knob()));
        err.knob()
    };
    assert_eq!(knob(json!({ "error_rate": 1.5 })), "chaos.error_rate");
    assert_eq!(
        knob(json!({ "throttle_rate": 0.5 })),
        "chaos.throttle_retry_after"
    );
    assert_eq!(
        knob(json!({ "throttle_retry_after": "1s" })),
        "chaos.throttle_rate"
    );
    assert_eq!(
        knob(json!({ "error_rate": 0.8, "throttle_rate": 0.5, "throttle_retry_after": "1s" })),
        "chaos.throttle_rate"
    );
    assert_eq!(
        knob(json!({ "latency_rate": -0.1, "latency": { "fixed": "1s" } })),
        "chaos.latency_rate"
    );
    assert_eq!(knob(json!({ "latency_rate": 0.5 })), "chaos.latency");
    assert_eq!(
        knob(json!({ "latency": { "fixed": "1s" } })),
        "chaos.latency_rate"
    );
    assert_eq!(
        knob(json!({ "latency_rate": 0.5, "latency": { "min": "2s", "max": "1s" } })),
        "chaos.latency"
    );
    assert_eq!(
        knob(json!({ "outages": [{ "from": "2m", "until": "1m" }] })),
        "chaos.outage"
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips of arbitrary specs

mod arbitrary {
    use super::*;
    use proptest::prelude::*;
    use riprap::chaos::{ChaosSpec, LatencySpec, OutageSpec};

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..1_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            (0u64..10_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            (0u64..1_000_000).prop_map(Duration::from_nanos),
            Just(Duration::MAX),
        ]
    }

    /// A number as a person writes one, up to four decimals: serde_json's default float
    /// parser can be a unit in the last place off on 17-digit ones.
    fn decimal(max: u32) -> impl Strategy<Value = f64> {
        (0..=max * 10_000).prop_map(|n| f64::from(n) / 10_000.0)
    }

    fn rate() -> impl Strategy<Value = f64> {
        decimal(1)
    }

    // TOML integers are i64, so seeds beyond i64::MAX cannot be written to TOML.
    fn seed() -> impl Strategy<Value = Option<u64>> {
        proptest::option::of(0..=i64::MAX as u64)
    }

    fn backoff() -> impl Strategy<Value = BackoffSpec> {
        (
            prop_oneof![
                Just(GrowthKind::Exponential),
                Just(GrowthKind::Linear),
                Just(GrowthKind::Constant)
            ],
            duration(),
            proptest::option::of(decimal(10)),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(prop_oneof![
                Just(Jitter::None),
                Just(Jitter::Full),
                Just(Jitter::Equal),
                Just(Jitter::Decorrelated)
            ]),
            proptest::option::of(any::<u32>()),
            proptest::option::of(duration()),
            seed(),
        )
            .prop_map(
                |(
                    growth,
                    base,
                    factor,
                    step,
                    max_delay,
                    jitter,
                    max_retries,
                    max_elapsed,
                    seed,
                )| {
                    BackoffSpec {
                        growth,
                        base,
                        factor,
                        step,
                        max_delay,
                        jitter,
                        max_retries,
                        max_elapsed,
                        seed,
                    }
                },
            )
    }

    fn budget() -> impl Strategy<Value = BudgetSpec> {
        prop_oneof![
            (
                proptest::option::of(decimal(10)),
                proptest::option::of(any::<u32>()),
                proptest::option::of(duration())
            )
                .prop_map(|(ratio, min_retries_per_sec, ttl)| {
                    BudgetSpec::RatioBudget(RatioBudgetSpec {
                        ratio,
                        min_retries_per_sec,
                        ttl,
                    })
                }),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(rate())
            )
                .prop_map(|(max_tokens, token_ratio)| BudgetSpec::TokenThrottle(
                    TokenThrottleSpec {
                        max_tokens,
                        token_ratio
                    }
                )),
            proptest::collection::vec(proptest::option::of(0..=i64::MAX as u64), 5).prop_map(|v| {
                BudgetSpec::RetryQuota(RetryQuotaSpec {
                    capacity: v[0],
                    retry_cost: v[1],
                    timeout_cost: v[2],
                    throttle_cost: v[3],
                    success_increment: v[4],
                })
            }),
            Just(BudgetSpec::Unlimited),
        ]
    }

    fn retry() -> impl Strategy<Value = RetrySpec> {
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(backoff()),
            proptest::option::of(budget()),
        )
            .prop_map(
                |(max_attempts, deadline, max_retry_after, backoff, budget)| RetrySpec {
                    max_attempts,
                    deadline,
                    max_retry_after,
                    backoff,
                    budget,
                },
            )
    }

    fn chaos() -> impl Strategy<Value = ChaosSpec> {
        let latency = prop_oneof![
            duration().prop_map(LatencySpec::Fixed),
            (duration(), duration()).prop_map(|(min, max)| LatencySpec::Uniform { min, max }),
        ];
        let outage = (duration(), duration()).prop_map(|(from, until)| OutageSpec { from, until });
        (
            seed(),
            proptest::option::of(rate()),
            proptest::option::of(rate()),
            proptest::option::of(duration()),
            proptest::option::of(rate()),
            proptest::option::of(latency),
            proptest::collection::vec(outage, 0..4),
        )
            .prop_map(
                |(
                    seed,
                    error_rate,
                    throttle_rate,
                    throttle_retry_after,
                    latency_rate,
                    latency,
                    outages,
                )| ChaosSpec {
                    seed,
                    error_rate,
                    throttle_rate,
                    throttle_retry_after,
                    latency_rate,
                    latency,
                    outages,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn durations_round_trip(d in duration()) {
            #[derive(Debug, PartialEq, serde::Deserialize, Serialize)]
            struct D {
                #[serde(with = "riprap::config::duration")]
                d: Duration,
            }
            round_trip(&D { d });
        }

        #[test]
        fn retry_specs_round_trip(spec in retry()) {
            round_trip(&spec);
        }

        #[test]
        fn chaos_specs_round_trip(spec in chaos()) {
            round_trip(&spec);
        }

        /// Whatever the values, building never panics: it succeeds or names a knob.
        #[test]
        fn building_any_spec_is_total(spec in retry(), chaos in chaos()) {
            if let Err(e) = spec.build() {
                prop_assert!(e.to_string().contains(e.knob()));
            }
            if let Err(e) = chaos.build() {
                prop_assert!(e.knob().starts_with("chaos."));
            }
        }
    }
}

#[test]
fn stack_spec_round_trips_and_is_validated() {
    use riprap::classify::ByError;
    use riprap::stack::StackSpec;

    let doc = r#"
        total_deadline = "30s"
        attempt_timeout = "5s"

        [retry]
        max_attempts = 4

        [breaker]
        consecutive_failures = 10
        open_for = "15s"

        [rate_limit]
        requests = { rate = 600, per = "1m" }

        [bulkhead]
        max_concurrent = 32
    "#;
    let spec: StackSpec = toml::from_str(doc).unwrap();
    assert_eq!(
        spec.total_deadline,
        Some(std::time::Duration::from_secs(30))
    );
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<StackSpec>(&json).unwrap(), spec);
    let yaml = serde_norway::to_string(&spec).unwrap();
    assert_eq!(serde_norway::from_str::<StackSpec>(&yaml).unwrap(), spec);
    let stack = spec.builder(ByError).unwrap().build().unwrap();
    assert_eq!(stack.bulkhead().metrics().limit, 32);

    // Unknown fields are named.
    let err = toml::from_str::<StackSpec>("total_deadlin = \"3s\"").unwrap_err();
    assert!(err.to_string().contains("total_deadlin"), "{err}");
    // Cross-layer rules name the knob.
    let bad: StackSpec =
        toml::from_str("total_deadline = \"5s\"\nattempt_timeout = \"10s\"").unwrap();
    let err = bad.builder(ByError).unwrap().build().unwrap_err();
    assert_eq!(err.knob(), "stack.attempt_timeout");
}

#[test]
fn json_errors_name_the_field_through_config_deserialize() {
    use riprap::stack::StackSpec;
    let cases = [
        (
            r#"{ "retry": { "max_attempts": "three" } }"#,
            "retry.max_attempts",
        ),
        (r#"{ "total_deadline": "5 parsecs" }"#, "total_deadline"),
        (r#"{ "breaker": { "open_for": 15 } }"#, "breaker.open_for"),
    ];
    for (json, path) in cases {
        let err = riprap::config::deserialize::<_, StackSpec>(
            &mut serde_json::Deserializer::from_str(json),
        )
        .unwrap_err();
        assert_eq!(err.path(), path, "{err}");
        assert!(err.to_string().starts_with(path), "{err}");
    }
}
