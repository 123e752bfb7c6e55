//! One listener for a whole stack: events from retry, breaker, rate limiter and cache reach
//! one `Listener` in order; `tracing` follows the documented scheme; with the `metrics`
//! feature, the counts published match what the layers did, and every metric is documented in
//! its layer's guide.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::backoff::BackoffPolicy;
use riprap::breaker::{BreakerEvent, CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures};
use riprap::cache::{Cache, CacheConfig, CacheEvent};
use riprap::classify::{ByError, Class, Classified, Through};
use riprap::events::{self, Event, Listener, ListenerExt};
use riprap::ratelimit::{RateLimitConfig, RateLimitEvent, RateLimitLayer, RateLimiter};
use riprap::retry::{RetryConfig, RetryEvent};
use riprap::stream::{CommitConfig, MemoryStore, OnEnd, Resumable, ResumeConfig, StreamEvent};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The tests in this file run one at a time. `tracing` caches each callsite's interest for the
/// whole process; while one test's thread-scoped subscriber is being installed, another test's
/// thread registering the same callsites can leave that cache stale, and the scoped subscriber
/// misses events. Serialised, every subscriber installation sees a quiet registry.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Upstream {
    Down,
    Throttled(Duration),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Down => f.write_str("upstream down"),
            Upstream::Throttled(_) => f.write_str("429 too many requests"),
        }
    }
}

impl StdError for Upstream {}

impl Classified for Upstream {
    fn class(&self) -> Class {
        match self {
            Upstream::Down => Class::Transient,
            Upstream::Throttled(d) => Class::Throttled {
                retry_after: Some(*d),
            },
        }
    }
}

/// cache → retry → breaker → rate limit → upstream, every layer reporting to `listener`.
///
/// The quota is one request a second. Upstream calls, by number: 1 ok; 2 answers 429 with
/// `Retry-After: 5s`; 3 ok; 4 and 5 fail. Reads: `a` (miss, loads), `a` (hit), `b` (miss;
/// waits a second for the quota, is throttled, retried after 5 s, loads), `c` (miss; waits
/// for the quota, fails twice, which opens the breaker, whose refusal ends the third
/// attempt). Returns when each upstream call was made, from the start.
async fn scenario(listener: impl Listener + Clone) -> Vec<Duration> {
    let start = Instant::now();
    let calls = Arc::new(AtomicU32::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let upstream = {
        let calls = Arc::clone(&calls);
        let log = Arc::clone(&log);
        tower::service_fn(move |key: &'static str| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            log.lock().unwrap().push(start.elapsed());
            async move {
                match n {
                    2 => Err(Upstream::Throttled(secs(5))),
                    4 | 5 => Err(Upstream::Down),
                    _ => Ok(format!("value of {key}")),
                }
            }
        })
    };

    let limiter = RateLimiter::new(
        RateLimitConfig::builder()
            .requests(1, secs(1))
            .reopen_jitter(Duration::from_millis(1))
            .seed(7)
            .listener(listener.clone())
            .build()
            .unwrap(),
    );
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(2).unwrap())
        .open_for(secs(10))
        .name("upstream")
        .listener(listener.clone())
        .build()
        .unwrap();
    let retry = RetryConfig::new()
        .max_attempts(3)
        .backoff(BackoffPolicy::constant(secs(1)).build().unwrap())
        // One classifier for the upstream's errors, lifted through the breaker's and the
        // rate limiter's error wrappers.
        .classifier(Through(Through(ByError)))
        .listener(listener.clone())
        .build()
        .unwrap();
    let cache: Cache<&'static str, String, _> = Cache::new(
        CacheConfig::builder()
            .expire_after(secs(600))
            .listener(listener)
            .build()
            .unwrap(),
    );

    let mut svc = ServiceBuilder::new()
        .layer(cache.layer())
        .layer(retry)
        .layer(CircuitBreakerLayer::new(breaker).classifier(Through(ByError)))
        .layer(RateLimitLayer::new(limiter).classifier(ByError))
        .service(upstream);

    for key in ["a", "a", "b"] {
        let v = svc.ready().await.unwrap().call(key).await.unwrap();
        assert_eq!(v, format!("value of {key}"));
    }
    assert!(svc.ready().await.unwrap().call("c").await.is_err());
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len() as u32, calls.load(Ordering::SeqCst));
    log
}

/// One line per event, with the details that make the sequence exact.
fn describe(e: &Event<'_>) -> String {
    if let Some(retry) = e.downcast_ref::<RetryEvent>() {
        return match *retry {
            RetryEvent::Attempt {
                attempt,
                class,
                delay,
            } => format!("retry attempt {attempt} {} {delay:?}", class.as_str()),
            RetryEvent::GaveUp { attempts, reason } => {
                format!("retry gave_up {attempts} {}", reason.as_str())
            }
            _ => format!("{} {}", e.layer(), e.kind()),
        };
    }
    match (e.downcast_ref(), e.downcast_ref(), e.downcast_ref()) {
        (
            Some(BreakerEvent::Transition {
                from, to, open_for, ..
            }),
            _,
            _,
        ) => format!("breaker {from} -> {to} {open_for:?}"),
        (Some(BreakerEvent::Rejected { rejected, .. }), _, _) => {
            format!("breaker rejected {}", rejected.as_str())
        }
        (_, Some(RateLimitEvent::GateClosed { reopens_in }), _) => {
            format!("ratelimit gate_closed {reopens_in:?}")
        }
        (_, Some(RateLimitEvent::Waited { waited }), _) => format!("ratelimit waited {waited:?}"),
        (_, _, Some(CacheEvent::LoadFailed { class })) => {
            format!("cache load_failed {}", class.as_str())
        }
        _ => format!("{} {}", e.layer(), e.kind()),
    }
}

#[tokio::test(start_paused = true)]
async fn one_listener_hears_every_layer_in_order() {
    let _serial = SERIAL.lock().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let names = Arc::new(Mutex::new(Vec::new()));
    let (sink, name_sink) = (Arc::clone(&seen), Arc::clone(&names));
    let events = (move |e: &Event<'_>| {
        sink.lock().unwrap().push(describe(e));
        name_sink.lock().unwrap().push(e.name().map(str::to_owned));
    })
    .named("llm");

    let calls = scenario(events).await;

    assert_eq!(calls, [0, 1, 6, 7, 8].map(secs));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            // a: miss, one attempt, loaded.
            "cache miss",
            "retry attempt 1 success None",
            "cache loaded",
            // a again: a hit; nothing below the cache hears of it.
            "cache hit",
            // b: waits for the quota (t = 1 s); the 429 closes the gate for 5 s; the throttle
            // does not count against the breaker; the retry waits the server's 5 s, and the
            // gate reopens for it (t = 6 s).
            "cache miss",
            "ratelimit waited 1s",
            "ratelimit gate_closed 5s",
            "retry attempt 1 throttled Some(5s)",
            "ratelimit gate_reopened",
            "retry attempt 2 success None",
            "cache loaded",
            // c: waits for the quota (t = 7 s); two failures (t = 7 s, 8 s) open the breaker;
            // its refusal (t = 9 s, an open breaker reads as a throttle) ends the last attempt.
            "cache miss",
            "ratelimit waited 1s",
            "retry attempt 1 transient Some(1s)",
            "breaker closed -> open Some(10s)",
            "retry attempt 2 transient Some(1s)",
            "breaker rejected open",
            "retry attempt 3 refused None",
            "retry gave_up 3 attempts_exhausted",
            // A retry layer that gave up is final to the layers above it.
            "cache load_failed permanent",
        ]
    );
    assert!(
        names
            .lock()
            .unwrap()
            .iter()
            .all(|n| n.as_deref() == Some("llm"))
    );
}

#[tokio::test(start_paused = true)]
async fn listeners_of_one_layer_hear_that_layers_events_typed() {
    let _serial = SERIAL.lock().await;
    // `events::only` narrows a listener to one layer's events, typed; four of them hear what
    // one listener of everything hears, in the same order.
    let typed = Arc::new(Mutex::new(Vec::new()));
    let (r, b, l, c) = (
        Arc::clone(&typed),
        Arc::clone(&typed),
        Arc::clone(&typed),
        Arc::clone(&typed),
    );
    let per_layer = events::only(move |e: &RetryEvent| r.lock().unwrap().push(e.as_str()));
    let breaker = events::only(move |e: &BreakerEvent| b.lock().unwrap().push(e.as_str()));
    let limiter = events::only(move |e: &RateLimitEvent| l.lock().unwrap().push(e.as_str()));
    let cache = events::only(move |e: &CacheEvent| c.lock().unwrap().push(e.as_str()));
    let all = Arc::new(move |e: &Event<'_>| {
        per_layer.on_event(e);
        breaker.on_event(e);
        limiter.on_event(e);
        cache.on_event(e);
    });
    scenario(all).await;

    let untyped = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&untyped);
    scenario(Arc::new(move |e: &Event<'_>| {
        sink.lock().unwrap().push(e.kind())
    }))
    .await;

    let typed = typed.lock().unwrap().clone();
    assert_eq!(typed.len(), 20);
    assert_eq!(typed, *untyped.lock().unwrap());
}

/// A `tracing` subscriber that keeps everything: spans, their recorded fields, and events with
/// the span they happened in.
mod capture {
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Debug, Clone, PartialEq)]
    pub struct Line {
        pub level: Level,
        pub target: String,
        pub message: String,
        pub fields: Vec<(String, String)>,
        pub span: Option<String>,
    }

    impl Line {
        pub fn field(&self, name: &str) -> Option<&str> {
            self.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    #[derive(Debug, Clone)]
    pub struct Span {
        pub name: String,
        pub target: String,
        pub level: Level,
        pub fields: Vec<(String, String)>,
    }

    #[derive(Default)]
    struct State {
        spans: Vec<Span>,
        entered: Vec<usize>,
        lines: Vec<Line>,
    }

    #[derive(Clone, Default)]
    pub struct Capture(Arc<Mutex<State>>);

    impl Capture {
        pub fn lines(&self) -> Vec<Line> {
            self.0.lock().unwrap().lines.clone()
        }
        pub fn spans(&self) -> Vec<Span> {
            self.0.lock().unwrap().spans.clone()
        }
    }

    #[derive(Default)]
    struct Fields {
        message: String,
        fields: Vec<(String, String)>,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.message = format!("{value:?}");
            } else {
                self.fields
                    .push((field.name().to_string(), format!("{value:?}")));
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut f = Fields::default();
            attrs.record(&mut f);
            let mut s = self.0.lock().unwrap();
            s.spans.push(Span {
                name: attrs.metadata().name().to_string(),
                target: attrs.metadata().target().to_string(),
                level: *attrs.metadata().level(),
                fields: f.fields,
            });
            Id::from_u64(s.spans.len() as u64)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut f = Fields::default();
            values.record(&mut f);
            let mut s = self.0.lock().unwrap();
            s.spans[span.into_u64() as usize - 1]
                .fields
                .extend(f.fields);
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut f = Fields::default();
            event.record(&mut f);
            let mut s = self.0.lock().unwrap();
            let span = s.entered.last().map(|&i| s.spans[i].name.clone());
            s.lines.push(Line {
                level: *event.metadata().level(),
                target: event.metadata().target().to_string(),
                message: f.message,
                fields: f.fields,
                span,
            });
        }
        fn enter(&self, span: &Id) {
            self.0
                .lock()
                .unwrap()
                .entered
                .push(span.into_u64() as usize - 1);
        }
        fn exit(&self, _: &Id) {
            self.0.lock().unwrap().entered.pop();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn tracing_follows_one_scheme_and_is_quiet_at_info_on_success() {
    let _serial = SERIAL.lock().await;
    use tracing::Level;

    let capture = capture::Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    scenario(Arc::new(|_: &Event<'_>| {})).await;

    let lines: Vec<_> = capture
        .lines()
        .into_iter()
        .filter(|l| l.target.starts_with("riprap"))
        .collect();
    assert_eq!(lines.len(), 20, "one line per event: {lines:#?}");
    for l in &lines {
        assert!(
            [
                "riprap::retry",
                "riprap::breaker",
                "riprap::ratelimit",
                "riprap::cache"
            ]
            .contains(&l.target.as_str()),
            "{l:?}"
        );
        assert!(l.field("event").is_some(), "no event field: {l:?}");
        assert!(!l.message.is_empty(), "no message: {l:?}");
        if l.target == "riprap::retry" {
            assert_eq!(l.span.as_deref(), Some("riprap.retry"), "{l:?}");
        }
    }

    // What an operator running at info sees: the gate, the breaker opening, the give-up.
    // Nothing from `a`, which succeeded at once, nor from the recovered `b` request itself.
    let loud: Vec<_> = lines
        .iter()
        .filter(|l| l.level <= Level::INFO)
        .map(|l| {
            let mut fields: Vec<_> = l.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            fields.sort();
            format!(
                "{} {} {}: {}",
                l.level,
                l.target,
                l.message,
                fields.join(" ")
            )
        })
        .collect();
    assert_eq!(
        loud,
        [
            "INFO riprap::ratelimit gate closed by the server: event=gate_closed reopen_ms=5000",
            "INFO riprap::ratelimit gate reopened: event=gate_reopened",
            "WARN riprap::breaker circuit opened: event=transition generation=1 name=upstream open_ms=10000 state.from=closed state.to=open",
            "WARN riprap::retry gave up: attempts=3 event=gave_up reason=attempts_exhausted",
        ]
    );

    // The first-try success is at trace; a retry at debug with its delay in whole ms.
    let retry: Vec<_> = lines
        .iter()
        .filter(|l| l.target == "riprap::retry")
        .map(|l| (l.level, l.message.as_str(), l.field("delay_ms")))
        .collect();
    assert_eq!(
        retry[..3],
        [
            (Level::TRACE, "attempt succeeded", None),
            (Level::DEBUG, "attempt failed, retrying", Some("5000")),
            (Level::DEBUG, "attempt succeeded", None),
        ]
    );

    // A request held up by the quota waits inside its own span: `b`'s first attempt and
    // `c`'s.
    let waits = capture
        .spans()
        .into_iter()
        .filter(|s| s.name == "riprap.ratelimit.wait")
        .count();
    assert_eq!(waits, 2);
    for l in lines.iter().filter(|l| l.field("event") == Some("waited")) {
        assert_eq!(l.span.as_deref(), Some("riprap.ratelimit.wait"), "{l:?}");
    }

    // One span per logical request that reached the retry layer (the hit did not), each
    // recording its attempts.
    let spans: Vec<_> = capture
        .spans()
        .into_iter()
        .filter(|s| s.name == "riprap.retry")
        .map(|s| {
            assert_eq!(
                (s.target.as_str(), s.level),
                ("riprap::retry", Level::DEBUG)
            );
            s.fields
        })
        .collect();
    let attempts = |f: &Vec<(String, String)>| {
        f.iter()
            .find(|(k, _)| k == "attempts")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        spans.iter().map(attempts).collect::<Vec<_>>(),
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
}

/// A log of 0..6 whose connection drops after 0, 1, 2 (once), read with every item acked
/// and a commit every 3 acks; every stream event goes to `listener`.
async fn stream_scenario(listener: impl Listener) {
    let calls = Arc::new(AtomicU32::new(0));
    let source = tower::service_fn(move |after: Option<u64>| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let from = after.map_or(0, |a| a + 1);
            let items: Vec<std::io::Result<(u64, u64)>> = if first {
                let mut v: Vec<_> = (from..3).map(|n| Ok((n, n))).collect();
                v.push(Err(std::io::ErrorKind::ConnectionReset.into()));
                v
            } else {
                (from..6).map(|n| Ok((n, n))).collect()
            };
            Ok::<_, std::io::Error>(futures_util::stream::iter(items))
        }
    });
    let backoff = BackoffPolicy::constant(Duration::from_millis(100))
        .build()
        .unwrap();
    let config = ResumeConfig::builder()
        .on_end(OnEnd::Finish)
        .build()
        .unwrap();
    let commits = CommitConfig::builder().every(3).build().unwrap();
    let mut stream = Resumable::new(source, backoff)
        .config(config)
        .listener(listener)
        .checkpointed(MemoryStore::new(), commits);
    let acker = stream.acker();
    let mut offsets = Vec::new();
    while let Some(delivery) = futures_util::StreamExt::next(&mut stream).await {
        let (item, ack) = delivery.unwrap().into_parts();
        offsets.push(item);
        acker.ack(ack).unwrap();
    }
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn one_listener_hears_a_resumable_stream() {
    let _serial = SERIAL.lock().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let events = (move |e: &Event<'_>| {
        let line = match e.downcast_ref::<StreamEvent<u64>>() {
            Some(StreamEvent::Reconnecting {
                after,
                attempt,
                delay,
                class,
            }) => format!(
                "reconnecting after {after:?} #{attempt} in {delay:?} ({})",
                class.as_str()
            ),
            Some(StreamEvent::Committed { position }) => format!("committed {position:?}"),
            Some(StreamEvent::Loaded { position }) => format!("loaded {position:?}"),
            _ => format!("{}.{}", e.layer(), e.kind()),
        };
        sink.lock()
            .unwrap()
            .push(format!("{} {line}", e.name().unwrap_or("-")));
    })
    .named("logs");

    stream_scenario(events).await;

    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [
            "logs loaded None",
            "logs committed 2",
            "logs reconnecting after Some(2) #1 in 100ms (transient)",
            "logs committed 5",
        ]
    );
}

#[cfg(feature = "metrics")]
mod metrics_feature {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use riprap::events::{ListenerExt, MetricsListener};

    use super::scenario;

    /// `metric{label=value,...}` (without `name`) → counter value or histogram samples.
    fn published(
        recorder: &DebuggingRecorder,
        name: &str,
    ) -> BTreeMap<String, Result<u64, Vec<f64>>> {
        let mut out = BTreeMap::new();
        for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
            let key = key.key();
            let mut labels = Vec::new();
            for l in key.labels() {
                if l.key() == "name" {
                    assert_eq!(l.value(), name);
                } else {
                    labels.push(format!("{}={}", l.key(), l.value()));
                }
            }
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(n) => Ok(n),
                DebugValue::Histogram(v) => Err(v.into_iter().map(|f| f.0).collect()),
                DebugValue::Gauge(_) => panic!("no gauges expected"),
            };
            assert!(out.insert(id, value).is_none());
        }
        out
    }

    fn expected() -> BTreeMap<String, Result<u64, Vec<f64>>> {
        [
            ("riprap_retry_attempts_total{class=success}", Ok(2)),
            ("riprap_retry_attempts_total{class=throttled}", Ok(1)),
            ("riprap_retry_attempts_total{class=refused}", Ok(1)),
            ("riprap_retry_attempts_total{class=transient}", Ok(2)),
            (
                "riprap_retry_giveups_total{reason=attempts_exhausted}",
                Ok(1),
            ),
            ("riprap_retry_delay_seconds{}", Err(vec![5.0, 1.0, 1.0])),
            (
                "riprap_breaker_transitions_total{from=closed,to=open}",
                Ok(1),
            ),
            ("riprap_breaker_open_seconds{}", Err(vec![10.0])),
            ("riprap_breaker_rejections_total{reason=open}", Ok(1)),
            ("riprap_ratelimit_waits_total{}", Ok(2)),
            ("riprap_ratelimit_wait_seconds{}", Err(vec![1.0, 1.0])),
            ("riprap_ratelimit_gate_closed_total{}", Ok(1)),
            ("riprap_ratelimit_gate_pause_seconds{}", Err(vec![5.0])),
            ("riprap_ratelimit_gate_reopened_total{}", Ok(1)),
            ("riprap_cache_misses_total{}", Ok(3)),
            ("riprap_cache_hits_total{}", Ok(1)),
            ("riprap_cache_loads_total{}", Ok(2)),
            // `a` loaded at once; `b` waited a second for the quota and 5 s for the server.
            ("riprap_cache_load_seconds{}", Err(vec![0.0, 6.0])),
            ("riprap_cache_load_errors_total{class=permanent}", Ok(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn metrics_count_what_the_layers_did() {
        let _serial = crate::SERIAL.lock().await;
        let recorder = DebuggingRecorder::new();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let calls = scenario(MetricsListener::new("llm")).await;
        assert_eq!(calls.len(), 5);
        assert_eq!(published(&recorder, "llm"), expected());
    }

    #[tokio::test(start_paused = true)]
    async fn through_a_named_listener_the_counts_are_the_same() {
        let _serial = crate::SERIAL.lock().await;
        let recorder = DebuggingRecorder::new();
        let _guard = metrics::set_default_local_recorder(&recorder);
        // The metrics listener's own name labels the series, whatever a `Named` wrapper says.
        scenario(MetricsListener::new("db").named("other")).await;
        assert_eq!(published(&recorder, "db"), expected());
    }

    #[tokio::test(start_paused = true)]
    async fn stream_events_are_counted_with_bounded_labels() {
        let _serial = crate::SERIAL.lock().await;
        let recorder = DebuggingRecorder::new();
        let _guard = metrics::set_default_local_recorder(&recorder);
        // Directly, and named: the same series.
        super::stream_scenario(MetricsListener::new("logs")).await;
        super::stream_scenario(Arc::new(MetricsListener::new("logs").named("other"))).await;
        let expected: BTreeMap<_, _> = [
            ("riprap_stream_loads_total{from=start}", Ok(2)),
            ("riprap_stream_reconnects_total{class=transient}", Ok(2)),
            (
                "riprap_stream_reconnect_delay_seconds{}",
                Err(vec![0.1, 0.1]),
            ),
            ("riprap_stream_commits_total{}", Ok(4)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(published(&recorder, "logs"), expected);
    }
}

/// Every metric a layer publishes is in its layer's module guide, with its type: adding a
/// metric touches that layer's folder, and this keeps the guide honest.
#[cfg(feature = "metrics")]
#[test]
fn every_metric_published_is_in_its_layers_guide() {
    use riprap::classify::Class;
    use riprap::events::{Measure, Metric, MetricKind};
    use riprap::retry::GiveUp;

    #[derive(Default)]
    struct Names(Mutex<Vec<(&'static str, MetricKind, &'static str)>>);
    impl Measure for Names {
        fn count(&self, m: &'static Metric, v: usize, _: &[&'static str], _: u64) {
            assert!(v < m.variants(), "{}: variant {v}", m.name());
            self.0.lock().unwrap().push((m.name(), m.kind(), m.help()));
        }
        fn record(&self, m: &'static Metric, v: usize, _: &[&'static str], _: Duration) {
            assert!(v < m.variants(), "{}: variant {v}", m.name());
            self.0.lock().unwrap().push((m.name(), m.kind(), m.help()));
        }
    }
    let d = Duration::from_millis(5);
    let names = Names::default();
    let guide = |layer: &str| match layer {
        "retry" => include_str!("../src/retry/mod.rs"),
        "breaker" => include_str!("../src/breaker/mod.rs"),
        "ratelimit" => include_str!("../src/ratelimit/mod.rs"),
        "cache" => include_str!("../src/cache/mod.rs"),
        "stream" => include_str!("../src/stream/mod.rs"),
        other => panic!("no guide for {other}"),
    };
    let check = |e: &dyn riprap::events::LayerEvent| {
        names.0.lock().unwrap().clear();
        Event::new(e).measure(&names);
        for (name, kind, help) in names.0.lock().unwrap().drain(..) {
            let kind = match kind {
                MetricKind::Histogram => "histogram",
                _ => "counter",
            };
            let row = format!("| `{name}` | {kind} |");
            assert!(
                guide(e.layer()).contains(&row),
                "{row} not in the {} guide",
                e.layer()
            );
            assert!(!help.is_empty(), "{name}");
            assert_eq!(kind == "histogram", name.ends_with("_seconds"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
        }
    };
    for class in [
        Class::Transient,
        Class::TimedOut,
        Class::Refused { retry_after: None },
    ] {
        check(&RetryEvent::Attempt {
            attempt: 1,
            class,
            delay: Some(d),
        });
        check(&CacheEvent::LoadFailed { class });
    }
    check(&RetryEvent::GaveUp {
        attempts: 1,
        reason: GiveUp::WaitTooLong,
    });
    check(&BreakerEvent::Transition {
        name: None,
        from: riprap::breaker::BreakerState::Closed,
        to: riprap::breaker::BreakerState::Open,
        open_for: Some(d),
        generation: 1,
    });
    check(&BreakerEvent::WouldTrip { name: None });
    check(&BreakerEvent::Rejected {
        name: None,
        rejected: riprap::breaker::Rejected::Isolated,
    });
    for e in [
        RateLimitEvent::GateClosed { reopens_in: d },
        RateLimitEvent::GateReopened,
        RateLimitEvent::Pacing {
            interval: d,
            lasts: d,
        },
        RateLimitEvent::Waited { waited: d },
        RateLimitEvent::Rejected { by: None },
        RateLimitEvent::RateDecreased { rate: 1.0 },
        RateLimitEvent::RateRecovered { rate: 1.0 },
    ] {
        check(&e);
    }
    for e in [
        CacheEvent::Hit,
        CacheEvent::StaleHit,
        CacheEvent::NegativeHit,
        CacheEvent::Miss,
        CacheEvent::Loaded { took: d },
        CacheEvent::StaleIfError,
        CacheEvent::BatchLoaded {
            keys: 3,
            stored: 2,
            took: d,
        },
        CacheEvent::BatchFailed {
            keys: 3,
            class: Class::Transient,
        },
        CacheEvent::RefreshDropped,
        CacheEvent::Overloaded,
        CacheEvent::Evicted,
        CacheEvent::Inserted,
        CacheEvent::InvalidatedAll,
    ] {
        check(&e);
    }
    for e in [
        StreamEvent::Loaded {
            position: Some(3u64),
        },
        StreamEvent::Reconnecting {
            after: Some(3),
            attempt: 1,
            delay: d,
            class: Class::Transient,
        },
        StreamEvent::Gap {
            expected: 4,
            found: 6,
        },
        StreamEvent::GaveUp {
            attempts: 2,
            reason: GiveUp::AttemptsExhausted,
        },
        StreamEvent::Committed { position: 6 },
    ] {
        check(&e);
    }
}
