//! How an event names the metrics it feeds, so an exporter needs to know no layer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Whether a [`Metric`] counts or records durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonic count.
    Counter,
    /// A distribution of durations, in seconds.
    Histogram,
}

/// One metric a layer publishes: its name, what it measures, its label keys, and how many
/// label-value combinations it can take. Layers declare theirs as `static`s next to their
/// events; the set of series is bounded by construction, since labels take only fixed values.
///
/// ```
/// use riprap::events::Metric;
///
/// static RETRIES: Metric = Metric::counter(
///     "myapp_retries_total",
///     "Retries made, by outcome",
///     &["outcome"],
///     2, // "ok" and "failed"
/// );
/// assert_eq!(RETRIES.name(), "myapp_retries_total");
/// ```
#[derive(Debug)]
pub struct Metric {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    variants: usize,
    // A small number unique to this metric in the process, so an exporter can keep its
    // handles in an array instead of a map.
    index: OnceLock<usize>,
}

static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

impl Metric {
    const fn new(
        kind: MetricKind,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        variants: usize,
    ) -> Metric {
        Metric {
            name,
            help,
            kind,
            labels,
            variants,
            index: OnceLock::new(),
        }
    }

    /// A counter with label keys `labels`, whose label values take `variants` combinations.
    pub const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        variants: usize,
    ) -> Metric {
        Metric::new(MetricKind::Counter, name, help, labels, variants)
    }

    /// A histogram of durations in seconds, with label keys `labels` taking `variants`
    /// combinations.
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        variants: usize,
    ) -> Metric {
        Metric::new(MetricKind::Histogram, name, help, labels, variants)
    }

    /// The series name, such as `riprap_retry_attempts_total`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line saying what it measures.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// Counter or histogram.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// The label keys, in the order [`Measure`] passes their values.
    pub fn labels(&self) -> &'static [&'static str] {
        self.labels
    }

    /// How many label-value combinations the metric takes; a `variant` passed to [`Measure`]
    /// is below it.
    pub fn variants(&self) -> usize {
        self.variants
    }

    /// This metric's number in the process, from 0, given at first use.
    pub fn index(&self) -> usize {
        *self
            .index
            .get_or_init(|| NEXT_INDEX.fetch_add(1, Ordering::Relaxed))
    }
}

/// Where an event's metrics go: implemented by exporters such as `MetricsListener` (feature
/// `metrics`), and by anything that wants every layer's numbers without knowing the layers.
///
/// `variant` numbers the combination of label values (below [`Metric::variants`]), so an
/// exporter can cache one handle per combination; `labels` are those values, in the order of
/// [`Metric::labels`], always from a fixed set, never from request data.
///
/// ```
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use riprap::events::{Event, Measure, Metric};
/// use riprap::retry::{GiveUp, RetryEvent};
///
/// #[derive(Default)]
/// struct Tally(Mutex<Vec<String>>);
///
/// impl Measure for Tally {
///     fn count(&self, metric: &'static Metric, _: usize, labels: &[&'static str], n: u64) {
///         self.0.lock().unwrap().push(format!("{} {labels:?} +{n}", metric.name()));
///     }
///     fn record(&self, metric: &'static Metric, _: usize, _: &[&'static str], value: Duration) {
///         self.0.lock().unwrap().push(format!("{} {value:?}", metric.name()));
///     }
/// }
///
/// let tally = Tally::default();
/// Event::new(&RetryEvent::GaveUp { attempts: 3, reason: GiveUp::Deadline }).measure(&tally);
/// assert_eq!(tally.0.lock().unwrap().as_slice(), ["riprap_retry_giveups_total [\"deadline\"] +1"]);
/// ```
pub trait Measure {
    /// Add `n` to `metric`'s series for these label values.
    fn count(&self, metric: &'static Metric, variant: usize, labels: &[&'static str], n: u64);

    /// Record `value` in `metric`'s histogram for these label values.
    fn record(
        &self,
        metric: &'static Metric,
        variant: usize,
        labels: &[&'static str],
        value: Duration,
    );
}
