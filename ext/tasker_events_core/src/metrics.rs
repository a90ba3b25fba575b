//! Metrics: the counters of [`Stats`] and a few labelled series, described as OpenTelemetry
//! instruments (name, kind, unit, attributes) and rendered in the Prometheus text format.
//!
//! The instrument names are OpenTelemetry's (`tasker.domain_events.published.total`); the
//! Prometheus names replace the dots with underscores and add the unit
//! (`tasker_domain_events_published_total`, `..._duration_seconds`).
//!
//! Series with user-chosen attribute values (event names, namespaces) are capped at
//! [`MAX_SERIES`] per instrument so that a worker minting event names at run time cannot grow
//! memory or a metrics backend without bound: once the cap is reached, new combinations are
//! counted under the attribute value [`OVERFLOW`], which no valid event name or namespace can
//! take.
//!
//! Durable write latencies are kept in fixed buckets. For exporters that need each
//! observation (OpenTelemetry histograms record values, not buckets), the latest
//! [`MAX_SAMPLES`] observations can also be kept, once [`Metrics::keep_samples`] asks for them;
//! older ones are then discarded and counted.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::stats::{PathSnapshot, Stats, StatsSnapshot};

/// Most series one labelled instrument keeps before counting new ones under [`OVERFLOW`].
pub const MAX_SERIES: usize = 1000;

/// The attribute value that stands for every combination past [`MAX_SERIES`].
pub const OVERFLOW: &str = "_overflow";

/// Most latency observations kept for [`Metrics::take_samples`].
pub const MAX_SAMPLES: usize = 10_000;

/// Upper bounds, in seconds, of the durable write latency buckets: from a local round trip to
/// a write that waited out a connection timeout.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Whether a durable write reached PGMQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Ok,
    Error,
}

impl WriteOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Series keyed by two attribute values, e.g. (namespace, event name). Looking up an existing
/// series takes a read lock and borrows the caller's strings, so the hot path allocates only
/// the first time a combination is seen. Past [`MAX_SERIES`], new combinations share the
/// series keyed ([`OVERFLOW`], [`OVERFLOW`]).
#[derive(Debug)]
struct Family<T> {
    series: RwLock<Series<T>>,
}

impl<T> Default for Family<T> {
    fn default() -> Self {
        Self {
            series: RwLock::default(),
        }
    }
}

type Series<T> = FxHashMap<String, FxHashMap<String, Arc<T>>>;

impl<T: Default> Family<T> {
    /// Calls `f` with the series; on the hot path (a known series) without cloning its `Arc`.
    fn with(&self, outer: &str, inner: &str, f: impl FnOnce(&T)) {
        {
            let series = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = series.get(outer).and_then(|m| m.get(inner)) {
                return f(found);
            }
        }
        f(&self.get(outer, inner));
    }

    fn get(&self, outer: &str, inner: &str) -> Arc<T> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = series.get(outer).and_then(|m| m.get(inner)) {
            return found.clone();
        }
        drop(series);

        let mut series = self.hold();
        let count: usize = series.values().map(|inner| inner.len()).sum();
        let known = series.get(outer).and_then(|m| m.get(inner)).is_some();
        let (outer, inner) = if known || count < MAX_SERIES {
            (outer, inner)
        } else {
            (OVERFLOW, OVERFLOW)
        };
        series
            .entry(outer.to_owned())
            .or_default()
            .entry(inner.to_owned())
            .or_default()
            .clone()
    }

    fn clear(&self) {
        self.hold().clear();
    }

    fn hold(&self) -> std::sync::RwLockWriteGuard<'_, Series<T>> {
        self.series.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every series as (outer, inner, value), sorted, the overflow series last.
    fn collect<V>(&self, read: impl Fn(&T) -> V) -> Vec<(String, String, V)> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut points: Vec<_> = series
            .iter()
            .flat_map(|(outer, inner)| {
                inner
                    .iter()
                    .map(|(name, value)| (outer.clone(), name.clone(), read(value)))
            })
            .collect();
        points.sort_by(|a, b| {
            let key = |p: &(String, String, V)| (p.0 == OVERFLOW, p.0.clone(), p.1.clone());
            key(a).cmp(&key(b))
        });
        points
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn snapshot(&self) -> HistogramPoint {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&le, n)| {
                cumulative += n.load(Relaxed);
                (le, cumulative)
            })
            .collect();
        HistogramPoint {
            buckets,
            count: self.count.load(Relaxed),
            sum: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// One durable write's latency, kept for exporters that record observations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySample {
    pub namespace: String,
    pub outcome: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Default)]
struct Samples {
    enabled: AtomicBool,
    kept: Mutex<VecDeque<LatencySample>>,
    discarded: AtomicU64,
}

/// The labelled series that [`Stats`] cannot hold in fixed arrays.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Keyed by (namespace, event name).
    published: Family<AtomicU64>,
    /// Keyed by (namespace, outcome).
    durable_write: Family<Histogram>,
    samples: Samples,
}

impl Metrics {
    pub fn record_published(&self, namespace: &str, event_name: &str) {
        self.published.with(namespace, event_name, |count| {
            count.fetch_add(1, Relaxed);
        });
    }

    pub fn record_durable_write(&self, namespace: &str, outcome: WriteOutcome, took: Duration) {
        self.durable_write
            .get(namespace, outcome.as_str())
            .observe(took);
        if !self.samples.enabled.load(Relaxed) {
            return;
        }
        let mut kept = self.samples.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_SAMPLES {
            kept.pop_front();
            self.samples.discarded.fetch_add(1, Relaxed);
        }
        kept.push_back(LatencySample {
            namespace: namespace.to_owned(),
            outcome: outcome.as_str(),
            seconds: took.as_secs_f64(),
        });
    }

    /// Forgets every series and sample (see [`Stats::reset`]).
    pub(crate) fn reset(&self) {
        self.published.clear();
        self.durable_write.clear();
        let mut kept = self.samples.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.clear();
        self.samples.discarded.store(0, Relaxed);
    }

    /// See [`Stats::hold_for_fork`].
    pub(crate) fn hold_for_fork(&self) -> impl Sized + '_ {
        (
            self.published.hold(),
            self.durable_write.hold(),
            self.samples.kept.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Starts (or stops) keeping each latency observation for [`Metrics::take_samples`].
    pub fn keep_samples(&self, keep: bool) {
        self.samples.enabled.store(keep, Relaxed);
        if !keep {
            self.samples
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    /// The observations kept since the last call, oldest first, and how many were discarded
    /// in total because nobody took them in time.
    pub fn take_samples(&self) -> (Vec<LatencySample>, u64) {
        let mut kept = self.samples.kept.lock().unwrap_or_else(|e| e.into_inner());
        (
            kept.drain(..).collect(),
            self.samples.discarded.load(Relaxed),
        )
    }
}

/// What an instrument measures, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// Only goes up.
    Counter,
    /// A current level, up or down.
    Gauge,
    Histogram,
}

/// A cumulative histogram: each bucket counts observations at or below its bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramPoint {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PointValue {
    Number(u64),
    Histogram(HistogramPoint),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Sorted by key, as Prometheus labels conventionally are.
    pub attributes: BTreeMap<&'static str, String>,
    pub value: PointValue,
}

/// One instrument and its current values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instrument {
    pub name: &'static str,
    pub prometheus_name: &'static str,
    pub kind: InstrumentKind,
    pub unit: &'static str,
    pub description: &'static str,
    pub points: Vec<Point>,
}

impl Instrument {
    fn new(
        name: &'static str,
        prometheus_name: &'static str,
        kind: InstrumentKind,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            prometheus_name,
            kind,
            unit: if kind == InstrumentKind::Histogram {
                "s"
            } else {
                "1"
            },
            description,
            points: Vec::new(),
        }
    }

    fn point<const N: usize>(
        mut self,
        attributes: [(&'static str, String); N],
        value: u64,
    ) -> Self {
        self.points.push(Point {
            attributes: attributes.into_iter().collect(),
            value: PointValue::Number(value),
        });
        self
    }
}

/// Every instrument with its current values, in a stable order.
pub fn instruments(stats: &Stats) -> Vec<Instrument> {
    let snapshot = stats.snapshot();
    let paths = paths(&snapshot);
    vec![
        published(&stats.metrics),
        per_path(
            Instrument::new(
                "tasker.domain_events.delivered.total",
                "tasker_domain_events_delivered_total",
                InstrumentKind::Counter,
                "Domain events that reached a path's destination",
            ),
            &paths,
            |p| p.delivered,
        ),
        dropped(&paths),
        labelled(
            Instrument::new(
                "tasker.domain_events.rejected.total",
                "tasker_domain_events_rejected_total",
                InstrumentKind::Counter,
                "Domain events refused before routing, by reason",
            ),
            "reason",
            &snapshot.rejected,
        ),
        per_path(
            Instrument::new(
                "tasker.domain_events.queued",
                "tasker_domain_events_queued",
                InstrumentKind::Gauge,
                "Domain events accepted by a path and not yet delivered or dropped",
            ),
            &paths,
            |p| p.queued,
        ),
        labelled(
            Instrument::new(
                "tasker.domain_events.declared.total",
                "tasker_domain_events_declared_total",
                InstrumentKind::Counter,
                "Declared events of completed steps, by what became of them",
            ),
            "outcome",
            &snapshot.declared_events,
        ),
        labelled(
            Instrument::new(
                "tasker.domain_events.subscriber_errors.total",
                "tasker_domain_events_subscriber_errors_total",
                InstrumentKind::Counter,
                "Subscriber calls that raised, returned an error or panicked",
            ),
            "kind",
            &snapshot.subscriber_errors,
        ),
        labelled(
            Instrument::new(
                "tasker.domain_events.subscriber_timeouts.total",
                "tasker_domain_events_subscriber_timeouts_total",
                InstrumentKind::Counter,
                "Subscriber calls abandoned after dispatch_timeout_ms",
            ),
            "kind",
            &snapshot.subscriber_timeouts,
        ),
        durable_write(&stats.metrics),
    ]
}

fn paths(snapshot: &StatsSnapshot) -> [(&'static str, &PathSnapshot); 5] {
    [
        ("dispatch", &snapshot.dispatch),
        ("ruby_publishers", &snapshot.ruby_publishers),
        ("durable", &snapshot.durable),
        ("rust_subscribers", &snapshot.rust_subscribers),
        ("ruby_subscribers", &snapshot.ruby_subscribers),
    ]
}

fn published(metrics: &Metrics) -> Instrument {
    let mut instrument = Instrument::new(
        "tasker.domain_events.published.total",
        "tasker_domain_events_published_total",
        InstrumentKind::Counter,
        "Domain events accepted for routing",
    );
    for (namespace, event_name, n) in metrics.published.collect(|c| c.load(Relaxed)) {
        instrument = instrument.point([("event_name", event_name), ("namespace", namespace)], n);
    }
    instrument
}

fn per_path(
    mut instrument: Instrument,
    paths: &[(&'static str, &PathSnapshot)],
    read: impl Fn(&PathSnapshot) -> u64,
) -> Instrument {
    for (path, snapshot) in paths {
        instrument = instrument.point([("path", (*path).to_owned())], read(snapshot));
    }
    instrument
}

fn dropped(paths: &[(&'static str, &PathSnapshot)]) -> Instrument {
    let mut instrument = Instrument::new(
        "tasker.domain_events.dropped.total",
        "tasker_domain_events_dropped_total",
        InstrumentKind::Counter,
        "Domain events and step completions lost on a path, by reason",
    );
    for (path, snapshot) in paths {
        for (reason, &n) in &snapshot.dropped {
            let attributes = [
                ("path", (*path).to_owned()),
                ("reason", (*reason).to_owned()),
            ];
            instrument = instrument.point(attributes, n);
        }
    }
    instrument
}

/// One point per entry of `counts`, its key as the attribute `label`.
fn labelled(
    mut instrument: Instrument,
    label: &'static str,
    counts: &BTreeMap<&'static str, u64>,
) -> Instrument {
    for (value, &n) in counts {
        instrument = instrument.point([(label, (*value).to_owned())], n);
    }
    instrument
}

fn durable_write(metrics: &Metrics) -> Instrument {
    let mut instrument = Instrument::new(
        "tasker.domain_events.durable_write.duration",
        "tasker_domain_events_durable_write_duration_seconds",
        InstrumentKind::Histogram,
        "Latency of one batch write to a PGMQ queue",
    );
    let histograms = metrics.durable_write.collect(Histogram::snapshot);
    for (namespace, outcome, histogram) in histograms {
        instrument.points.push(Point {
            attributes: [("namespace", namespace), ("outcome", outcome)].into(),
            value: PointValue::Histogram(histogram),
        });
    }
    instrument
}

/// Renders every instrument in the Prometheus text exposition format.
pub fn prometheus_text(stats: &Stats) -> String {
    let mut out = String::new();
    for instrument in instruments(stats) {
        write_instrument(&mut out, &instrument);
    }
    out
}

fn write_instrument(out: &mut String, instrument: &Instrument) {
    let name = instrument.prometheus_name;
    let kind = match instrument.kind {
        InstrumentKind::Counter => "counter",
        InstrumentKind::Gauge => "gauge",
        InstrumentKind::Histogram => "histogram",
    };
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {}", instrument.description);
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for point in &instrument.points {
        match &point.value {
            PointValue::Number(n) => {
                let _ = writeln!(out, "{name}{} {n}", labels(&point.attributes, None));
            }
            PointValue::Histogram(h) => write_histogram(out, name, &point.attributes, h),
        }
    }
}

fn write_histogram(
    out: &mut String,
    name: &str,
    attributes: &BTreeMap<&'static str, String>,
    histogram: &HistogramPoint,
) {
    for (le, n) in &histogram.buckets {
        let _ = writeln!(
            out,
            "{name}_bucket{} {n}",
            labels(attributes, Some(&le.to_string()))
        );
    }
    let all = labels(attributes, Some("+Inf"));
    let _ = writeln!(out, "{name}_bucket{all} {}", histogram.count);
    let plain = labels(attributes, None);
    let _ = writeln!(out, "{name}_sum{plain} {}", histogram.sum);
    let _ = writeln!(out, "{name}_count{plain} {}", histogram.count);
}

fn labels(attributes: &BTreeMap<&'static str, String>, le: Option<&str>) -> String {
    let mut pairs: Vec<String> = attributes
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Label values may hold any UTF-8; the format reserves backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DropReason;

    fn find<'a>(instruments: &'a [Instrument], name: &str) -> &'a Instrument {
        instruments.iter().find(|i| i.name == name).unwrap()
    }

    #[test]
    fn published_is_counted_per_event_name_and_namespace() {
        let stats = Stats::new();
        stats
            .metrics
            .record_published("payments", "payment.processed");
        stats
            .metrics
            .record_published("payments", "payment.processed");
        stats.metrics.record_published("orders", "order.placed");

        let text = prometheus_text(&stats);
        assert!(text.contains(
            "tasker_domain_events_published_total{event_name=\"payment.processed\",\
             namespace=\"payments\"} 2\n"
        ));
        assert!(text.contains(
            "tasker_domain_events_published_total{event_name=\"order.placed\",\
             namespace=\"orders\"} 1\n"
        ));
        assert!(text.contains("# TYPE tasker_domain_events_published_total counter\n"));
    }

    #[test]
    fn series_past_the_cap_are_counted_as_overflow() {
        let metrics = Metrics::default();
        for i in 0..MAX_SERIES + 5 {
            metrics.record_published("ns", &format!("a.e{i}"));
        }
        metrics.record_published("ns", "a.e0");
        let points = metrics.published.collect(|c| c.load(Relaxed));
        assert_eq!(points.len(), MAX_SERIES + 1);
        let overflow = points.last().unwrap();
        assert_eq!((overflow.0.as_str(), overflow.2), (OVERFLOW, 5));
        let first = points.iter().find(|p| p.1 == "a.e0").unwrap();
        assert_eq!(first.2, 2, "a known series keeps counting after the cap");
    }

    #[test]
    fn path_counters_appear_with_every_reason() {
        let stats = Stats::new();
        stats.durable.accept(3);
        stats.durable.deliver(1);
        stats.durable.drop_events(DropReason::DatabaseError, 1);
        let instruments = instruments(&stats);

        let dropped = find(&instruments, "tasker.domain_events.dropped.total");
        assert_eq!(dropped.points.len(), 5 * DropReason::ALL.len());
        let text = prometheus_text(&stats);
        assert!(text.contains(
            "tasker_domain_events_dropped_total{path=\"durable\",reason=\"database_error\"} 1\n"
        ));
        assert!(text.contains("tasker_domain_events_delivered_total{path=\"durable\"} 1\n"));
        assert!(text.contains("tasker_domain_events_queued{path=\"durable\"} 1\n"));
        assert!(text.contains("# TYPE tasker_domain_events_queued gauge\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let stats = Stats::new();
        let write = |ms| Duration::from_millis(ms);
        stats
            .metrics
            .record_durable_write("payments", WriteOutcome::Ok, write(2));
        stats
            .metrics
            .record_durable_write("payments", WriteOutcome::Ok, write(40));
        stats
            .metrics
            .record_durable_write("payments", WriteOutcome::Ok, write(20_000));

        let text = prometheus_text(&stats);
        let name = "tasker_domain_events_durable_write_duration_seconds";
        let at = |le: &str| {
            format!("{name}_bucket{{namespace=\"payments\",outcome=\"ok\",le=\"{le}\"}}")
        };
        assert!(text.contains(&format!("{} 0\n", at("0.001"))));
        assert!(text.contains(&format!("{} 1\n", at("0.0025"))));
        assert!(text.contains(&format!("{} 2\n", at("0.05"))));
        assert!(text.contains(&format!("{} 2\n", at("10"))));
        assert!(text.contains(&format!("{} 3\n", at("+Inf"))));
        assert!(text.contains(&format!(
            "{name}_count{{namespace=\"payments\",outcome=\"ok\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "{name}_sum{{namespace=\"payments\",outcome=\"ok\"}} 20.042\n"
        )));
    }

    #[test]
    fn samples_are_kept_only_when_asked_and_bounded() {
        let metrics = Metrics::default();
        metrics.record_durable_write("a", WriteOutcome::Ok, Duration::from_millis(1));
        assert!(metrics.take_samples().0.is_empty());

        metrics.keep_samples(true);
        for _ in 0..MAX_SAMPLES + 3 {
            metrics.record_durable_write("a", WriteOutcome::Error, Duration::from_millis(1));
        }
        let (samples, discarded) = metrics.take_samples();
        assert_eq!((samples.len(), discarded), (MAX_SAMPLES, 3));
        assert_eq!(samples[0].outcome, "error");
        assert!(metrics.take_samples().0.is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
