//! Counters and histograms through the `metrics` facade (feature `metrics`).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Label, SharedString, Unit};

use super::{Event, Listener, Measure, Metric, MetricKind};

/// Publishes every layer's events as counters and histograms through the
/// [`metrics`](https://docs.rs/metrics) facade, to whichever recorder (Prometheus, StatsD, ...)
/// the application installed.
///
/// It is a [`Listener`] like any other, so one value serves a whole stack; clones share their
/// series. It knows no layer: each event names the series it feeds (see [`Measure`]), and
/// each layer's module guide lists its metrics. Every series is labelled `name` with the name
/// given to [`new`](Self::new); other labels take a few fixed values (a class, a reason, a
/// state), never anything from a request.
///
/// Each series is registered with the recorder, and its metric described (unit and help
/// text), at its first event (so install the recorder first); its handle is kept, so after
/// that an event costs a few loads and the recorder's own increment, and allocates nothing.
///
/// ```
/// use riprap::breaker::CircuitBreaker;
/// use riprap::events::MetricsListener;
/// use riprap::retry::RetryConfig;
///
/// let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// metrics::with_local_recorder(&recorder, || {
///     let metrics = MetricsListener::new("llm");
///     let _retry = RetryConfig::new().listener(metrics.clone()).build().unwrap();
///     let breaker = CircuitBreaker::builder().listener(metrics).build().unwrap();
///     breaker.force_open();
/// });
///
/// let snapshot = snapshotter.snapshot().into_vec();
/// let (key, _, _, value) = &snapshot[0];
/// assert_eq!(key.key().name(), "riprap_breaker_transitions_total");
/// let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
/// assert_eq!(labels, [("name", "llm"), ("from", "closed"), ("to", "isolated")]);
/// assert_eq!(*value, metrics_util::debugging::DebugValue::Counter(1));
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    inner: Arc<Inner>,
}

/// Room for the handles of this many metrics; a metric numbered beyond it (more metrics than
/// riprap and a few extensions declare) is registered on every event instead of cached.
const CACHED_METRICS: usize = 256;

enum Handles {
    Counters(Box<[OnceLock<Counter>]>),
    Histograms(Box<[OnceLock<Histogram>]>),
}

struct Inner {
    name: Arc<str>,
    // Indexed by `Metric::index`, then by the label-value variant.
    handles: Box<[OnceLock<Handles>]>,
}

const TARGET: &str = "riprap::events";

impl MetricsListener {
    /// A listener labelling every series `name = name`: the dependency or stack it watches
    /// (`"llm"`, `"orders-db"`). Give each stack its own.
    ///
    /// ```
    /// let metrics = riprap::events::MetricsListener::new("orders-db");
    /// assert_eq!(metrics.name(), "orders-db");
    /// ```
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        MetricsListener {
            inner: Arc::new(Inner {
                name: name.into(),
                handles: (0..CACHED_METRICS).map(|_| OnceLock::new()).collect(),
            }),
        }
    }

    /// The `name` label of every series.
    ///
    /// ```
    /// assert_eq!(riprap::events::MetricsListener::new("llm").name(), "llm");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn labels(&self, metric: &Metric, values: &[&'static str]) -> Vec<Label> {
        let mut labels = Vec::with_capacity(1 + values.len());
        labels.push(Label::new(
            "name",
            SharedString::from_shared(Arc::clone(&self.name)),
        ));
        labels.extend(
            metric
                .labels()
                .iter()
                .zip(values)
                .map(|(&k, &v)| Label::from_static_parts(k, v)),
        );
        labels
    }

    fn describe(metric: &Metric) {
        match metric.kind() {
            MetricKind::Histogram => {
                metrics::describe_histogram!(metric.name(), Unit::Seconds, metric.help())
            }
            _ => metrics::describe_counter!(metric.name(), Unit::Count, metric.help()),
        }
    }

    fn register_counter(&self, metric: &Metric, values: &[&'static str]) -> Counter {
        metrics::counter!(target: TARGET, metric.name(), self.labels(metric, values))
    }

    fn register_histogram(&self, metric: &Metric, values: &[&'static str]) -> Histogram {
        metrics::histogram!(target: TARGET, metric.name(), self.labels(metric, values))
    }

    /// This listener's handles for `metric`, made (and the metric described) at first use.
    fn handles(&self, metric: &Metric) -> Option<&Handles> {
        let slot = self.handles.get(metric.index())?;
        Some(slot.get_or_init(|| {
            Self::describe(metric);
            let n = metric.variants();
            match metric.kind() {
                MetricKind::Histogram => {
                    Handles::Histograms((0..n).map(|_| OnceLock::new()).collect())
                }
                _ => Handles::Counters((0..n).map(|_| OnceLock::new()).collect()),
            }
        }))
    }
}

impl Measure for MetricsListener {
    #[inline]
    fn count(&self, metric: &'static Metric, variant: usize, labels: &[&'static str], n: u64) {
        let s = &*self.inner;
        match s.handles(metric) {
            Some(Handles::Counters(row)) => match row.get(variant) {
                Some(slot) => slot
                    .get_or_init(|| s.register_counter(metric, labels))
                    .increment(n),
                None => s.register_counter(metric, labels).increment(n),
            },
            _ => s.register_counter(metric, labels).increment(n),
        }
    }

    #[inline]
    fn record(
        &self,
        metric: &'static Metric,
        variant: usize,
        labels: &[&'static str],
        value: Duration,
    ) {
        let s = &*self.inner;
        let seconds = value.as_secs_f64();
        match s.handles(metric) {
            Some(Handles::Histograms(row)) => match row.get(variant) {
                Some(slot) => slot
                    .get_or_init(|| s.register_histogram(metric, labels))
                    .record(seconds),
                None => s.register_histogram(metric, labels).record(seconds),
            },
            _ => s.register_histogram(metric, labels).record(seconds),
        }
    }
}

/// Records each event's metrics under this listener's own name (a [`Named`](super::Named)
/// listener's name is not used: series labels must not depend on who delivered the event).
impl Listener for MetricsListener {
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        event.measure(self);
    }
}
