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
    AnyBudget, Budget, BudgetSpec, Failure, Outcome, RatioBudget, RatioBudgetSpec, RetryQuota,
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
    struct D(#[serde(with = "riprap::serde_duration")] Duration);
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
    let failed = Failure::new(Class::Transient);

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
        built.record(Outcome::Failure(failed));
        same.record(Outcome::Failure(failed));
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
    assert!(built.try_withdraw(Failure::timeout()).is_some());
    assert!(same.try_withdraw(Failure::timeout()).is_some());
    assert_eq!(built.available(), 5);
    assert_eq!(same.available(), 5);

    let any = from_toml::<BudgetSpec>("[token_throttle]\nmax_tokens = 2")
        .build()
        .unwrap();
    let AnyBudget::TokenThrottle(t) = &any else {
        panic!("{any:?}")
    };
    any.record(Outcome::Failure(failed));
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
retry_after_ceiling = "2m"

[backoff]
growth = "constant"
base = "10ms"

[budget]
unlimited = true
"#;

const RETRY_YAML: &str = "
max_attempts: 4
deadline: 30s
retry_after_ceiling: 2m
backoff:
  growth: constant
  base: 10ms
budget:
  unlimited: true
";

const RETRY_JSON: &str = r#"{
  "max_attempts": 4,
  "deadline": "30s",
  "retry_after_ceiling": "2m",
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
            retry_after_ceiling: Some(secs(120)),
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
    assert!(debug.contains("retry_after_ceiling: 120s"), "{debug}");
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
    refused_naming::<RetrySpec>(json!({ "retry_after_ceiling": 60 }), "retry_after_ceiling");
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
        knob("retry_after_ceiling = \"0s\""),
        "retry.retry_after_ceiling"
    );
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
