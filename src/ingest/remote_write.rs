//! Prometheus remote write 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`) bodies → metric rows.
//!
//! Samples, exemplars and native histograms are kept. Metadata (type and unit) fills the
//! `metric_type` and `unit` columns of the series it names in the same request; 1.0
//! senders ship metadata in separate requests, so their samples usually have none, and
//! metadata alone is accepted and otherwise not stored. Help text is not stored.

use std::collections::HashMap;

use prost::Message;

use super::metrics::{
    ClassicHistogram, Exponential, MAX_HISTOGRAM_BUCKETS, MetricRows, RawExemplar,
};
use super::protowire::{Fields, Value, WireError};
use crate::model::schema::{MetricMeta, SampleFields, Series};
use crate::proto::io::prometheus::write::v2;
use crate::proto::prometheus as v1;

/// The two protobuf messages remote write defines, chosen by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// `application/x-protobuf` means 1.0, as does `proto=prometheus.WriteRequest`;
    /// `proto=io.prometheus.write.v2.Request` means 2.0. `None` for anything else.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let Some(content_type) = content_type else {
            return Some(Self::V1);
        };
        let mut parts = content_type.split(';').map(str::trim);
        let essence = parts.next()?.to_ascii_lowercase();
        if essence != "application/x-protobuf" && essence != "application/protobuf" {
            return None;
        }
        let proto = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("proto"))
            .map(|(_, v)| v.trim().trim_matches('"'));
        match proto {
            None | Some("prometheus.WriteRequest") => Some(Self::V1),
            Some("io.prometheus.write.v2.Request") => Some(Self::V2),
            Some(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid remote write protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid remote write protobuf: {0}")]
    Wire(#[from] WireError),
    #[error("invalid remote write 2.0 request: {0}")]
    Symbols(String),
}

/// What a request held, for remote write 2.0's `X-Prometheus-Remote-Write-*-Written`
/// headers and for the error message when something was refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub samples: usize,
    pub histograms: usize,
    pub exemplars: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.samples += other.samples;
        self.histograms += other.histograms;
        self.exemplars += other.exemplars;
    }
}

/// Decodes a 1.0 request. Labels are borrowed from `body`, not copied one by one. Native histograms and exemplars, which are
/// rare, are decoded into owned messages.
pub fn decode_v1(body: &[u8]) -> Result<(MetricRows, Counts), DecodeError> {
    // Metadata may follow the series it describes, so it is read first.
    let mut metadata = HashMap::new();
    for field in Fields::new(body) {
        if let (3, value) = field? {
            let (name, meta) = v1_metadata(value.bytes()?)?;
            metadata.insert(name, meta);
        }
    }
    let mut rows = MetricRows::default();
    let mut counts = Counts::default();
    let mut labels = Vec::new();
    let mut samples = Vec::new();
    let mut exemplars = Vec::new();
    let mut histograms = Vec::new();
    for field in Fields::new(body) {
        let (1, value) = field? else { continue };
        for field in Fields::new(value.bytes()?) {
            match field? {
                (1, v) => labels.push(v1_label(v.bytes()?)?),
                (2, v) => samples.push(v1_sample(v.bytes()?)?),
                (3, v) => exemplars.push(v1_exemplar(v.bytes()?)?),
                (4, v) => histograms.push(v1::Histogram::decode(v.bytes()?)?),
                _ => {}
            }
        }
        if let Some(series) = rows.series(labels.drain(..)) {
            let (metric_type, unit) = family_meta(&metadata, series.metric_name());
            counts += write_series(
                &mut rows,
                &series,
                MetricMeta { metric_type, unit },
                samples.iter().copied(),
                &histograms,
                &exemplars,
                None,
            );
        }
        samples.clear();
        exemplars.clear();
        histograms.clear();
    }
    Ok((rows, counts))
}

fn v1_label(message: &[u8]) -> Result<(&str, &str), DecodeError> {
    let (mut name, mut value) = ("", "");
    for field in Fields::new(message) {
        match field? {
            (1, v) => name = v.string()?,
            (2, v) => value = v.string()?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// `(timestamp ms, value)`.
fn v1_sample(message: &[u8]) -> Result<(i64, f64), DecodeError> {
    let (mut timestamp, mut value) = (0, 0.0);
    for field in Fields::new(message) {
        match field? {
            (1, v) => value = v.double()?,
            (2, v) => timestamp = v.int64()?,
            _ => {}
        }
    }
    Ok((timestamp, value))
}

fn v1_exemplar(message: &[u8]) -> Result<RawExemplar, DecodeError> {
    let mut exemplar = RawExemplar {
        labels: Vec::new(),
        value: 0.0,
        timestamp: None,
    };
    for field in Fields::new(message) {
        match field? {
            (1, v) => {
                let (name, value) = v1_label(v.bytes()?)?;
                exemplar.labels.push((name.to_owned(), value.to_owned()));
            }
            (2, v) => exemplar.value = v.double()?,
            // proto3 cannot tell 0 from absent; either means the point's time.
            (3, v) => {
                exemplar.timestamp = Some(v.int64()?)
                    .filter(|t| *t != 0)
                    .and_then(millis_to_nanos)
            }
            _ => {}
        }
    }
    Ok(exemplar)
}

type FamilyMeta<'a> = (Option<&'static str>, Option<&'a str>);

/// `(family name, (type, unit))`; help text is not stored.
fn v1_metadata(message: &[u8]) -> Result<(&str, FamilyMeta<'_>), DecodeError> {
    let (mut name, mut metric_type, mut unit) = ("", None, None);
    for field in Fields::new(message) {
        match field? {
            // An enum is an int32: a longer varint keeps its low 32 bits, as protobuf
            // (and prost, and Prometheus's Go decoder) read it.
            (1, Value::Varint(t)) => {
                metric_type = v1::metric_metadata::MetricType::try_from(t as i32)
                    .ok()
                    .and_then(v1_type_name)
            }
            (2, v) => name = v.string()?,
            (5, v) => unit = Some(v.string()?).filter(|u| !u.is_empty()),
            _ => {}
        }
    }
    Ok((name, (metric_type, unit)))
}

pub fn decode_v2(body: &[u8]) -> Result<(MetricRows, Counts), DecodeError> {
    let request = v2::Request::decode(body)?;
    let symbols = &request.symbols;
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(DecodeError::Symbols(
            "symbols must start with the empty string".into(),
        ));
    }
    let symbol = |index: u32| -> Result<&str, DecodeError> {
        symbols
            .get(index as usize)
            .map(String::as_str)
            .ok_or_else(|| {
                DecodeError::Symbols(format!(
                    "symbol reference {index} is past the end of the {} symbols",
                    symbols.len()
                ))
            })
    };
    let pairs = |refs: &[u32]| -> Result<Vec<(&str, &str)>, DecodeError> {
        if !refs.len().is_multiple_of(2) {
            return Err(DecodeError::Symbols(format!(
                "labels_refs has odd length {}",
                refs.len()
            )));
        }
        refs.chunks_exact(2)
            .map(|pair| Ok((symbol(pair[0])?, symbol(pair[1])?)))
            .collect()
    };
    let mut rows = MetricRows::default();
    let mut counts = Counts::default();
    for ts in &request.timeseries {
        let labels = pairs(&ts.labels_refs)?;
        let exemplars = ts
            .exemplars
            .iter()
            .map(|e| {
                Ok(RawExemplar {
                    labels: pairs(&e.labels_refs)?
                        .into_iter()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect(),
                    value: e.value,
                    timestamp: (e.timestamp != 0)
                        .then(|| millis_to_nanos(e.timestamp))
                        .flatten(),
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let (metric_type, unit) = match &ts.metadata {
            Some(m) => (
                v2::metadata::MetricType::try_from(m.r#type)
                    .ok()
                    .and_then(v2_type_name),
                // A bad unit reference costs the unit, not the series.
                symbols
                    .get(m.unit_ref as usize)
                    .map(String::as_str)
                    .filter(|u| !u.is_empty()),
            ),
            None => (None, None),
        };
        let Some(series) = rows.series(labels) else {
            continue;
        };
        let created = (ts.created_timestamp != 0)
            .then(|| millis_to_nanos(ts.created_timestamp))
            .flatten();
        let written = write_series(
            &mut rows,
            &series,
            MetricMeta { metric_type, unit },
            ts.samples.iter().map(|s| (s.timestamp, s.value)),
            &ts.histograms,
            &exemplars,
            created,
        );
        counts += written;
    }
    Ok((rows, counts))
}

/// Writes one series' samples, native histograms and exemplars; returns what was kept.
fn write_series(
    rows: &mut MetricRows,
    series: &Series<'_>,
    meta: MetricMeta<'_>,
    samples: impl Iterator<Item = (i64, f64)>,
    histograms: &[v1::Histogram],
    exemplars: &[RawExemplar],
    created: Option<i64>,
) -> Counts {
    let mut counts = Counts::default();
    let mut last_time = None;
    for (millis, value) in samples {
        let Some(timestamp) = millis_to_nanos(millis) else {
            rows.rejected
                .add(format!("sample timestamp {millis} ms is out of range"));
            continue;
        };
        rows.sample(
            series,
            meta,
            SampleFields {
                timestamp,
                start_timestamp: created,
                value,
            },
        );
        last_time = Some(timestamp);
        counts.samples += 1;
    }
    if !histograms.is_empty() {
        let name = series.metric_name().to_owned();
        let labels: Vec<(String, String)> = series
            .labels_without_name()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let mut accepted = Vec::with_capacity(histograms.len());
        for h in histograms {
            let Some(timestamp) = millis_to_nanos(h.timestamp) else {
                rows.rejected.add(format!(
                    "histogram timestamp {} ms is out of range",
                    h.timestamp
                ));
                continue;
            };
            match native_histogram(h) {
                Ok(classic) => accepted.push((timestamp, h.reset_hint, classic)),
                Err(reason) => rows.rejected.add(format!("series {name}: {reason}")),
            }
        }
        let last = accepted.len().saturating_sub(1);
        for (i, (timestamp, reset_hint, classic)) in accepted.into_iter().enumerate() {
            let gauge = reset_hint == v1::histogram::ResetHint::Gauge as i32;
            let meta = MetricMeta {
                metric_type: meta.metric_type.or(Some(if gauge {
                    "gaugehistogram"
                } else {
                    "histogram"
                })),
                unit: meta.unit,
            };
            // Exemplars ride on the last accepted histogram of the series.
            let attached = if i == last { exemplars } else { &[] };
            rows.point(|rows| {
                classic.write(rows, &name, &labels, meta, (timestamp, created), attached)
            });
            counts.histograms += 1;
            counts.exemplars += attached.len();
        }
        return counts;
    }
    let point_time = last_time.unwrap_or_default();
    for exemplar in exemplars {
        rows.exemplar(series, exemplar, point_time);
        counts.exemplars += 1;
    }
    counts
}

/// A native histogram as classic series. Prometheus numbers exponential buckets so
/// that bucket `i` has upper bound `base^i` (OTLP's `i` has lower bound `base^i`).
fn native_histogram(h: &v1::Histogram) -> Result<ClassicHistogram, String> {
    use v1::histogram::{Count, ZeroCount};
    // The count says which kind it is: integer histograms send deltas, float ones counts.
    let (count, float) = match h.count {
        Some(Count::CountInt(n)) => (n as f64, false),
        Some(Count::CountFloat(n)) => (n, true),
        None => (
            0.0,
            !h.positive_counts.is_empty() || !h.negative_counts.is_empty(),
        ),
    };
    let zero_count = match h.zero_count {
        Some(ZeroCount::ZeroCountInt(n)) => n as f64,
        Some(ZeroCount::ZeroCountFloat(n)) => n,
        None => 0.0,
    };
    let positive = expand_spans(
        &h.positive_spans,
        &h.positive_deltas,
        &h.positive_counts,
        float,
    )?;
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        if h.custom_values.len() >= MAX_HISTOGRAM_BUCKETS {
            return Err(format!(
                "histogram has {} custom bounds; at most {} are accepted",
                h.custom_values.len(),
                MAX_HISTOGRAM_BUCKETS - 1
            ));
        }
        // Positive buckets index into the custom bounds; one past them is +Inf.
        let mut counts = vec![0.0; h.custom_values.len() + 1];
        for (index, n) in positive {
            let slot = usize::try_from(index)
                .ok()
                .and_then(|i| counts.get_mut(i))
                .ok_or_else(|| format!("custom bucket index {index} is out of range"))?;
            *slot += n;
        }
        let mut classic = ClassicHistogram::explicit(&h.custom_values, &counts)?;
        classic.set_count(count);
        classic.sum = Some(h.sum);
        return Ok(classic);
    }
    if !(-4..=8).contains(&h.schema) {
        return Err(format!(
            "native histogram schema {} is not supported: use -4..=8, or -53 for custom buckets",
            h.schema
        ));
    }
    let negative = expand_spans(
        &h.negative_spans,
        &h.negative_deltas,
        &h.negative_counts,
        float,
    )?;
    let shift = |buckets: Vec<(i64, f64)>| buckets.into_iter().map(|(i, n)| (i - 1, n)).collect();
    ClassicHistogram::exponential(&Exponential {
        scale: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count,
        positive: shift(positive),
        negative: shift(negative),
        count,
        sum: Some(h.sum),
        min: None,
        max: None,
    })
}

const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// Spans and deltas (integer histograms) or absolute counts (float histograms) →
/// `(bucket index, count)` in ascending index order.
fn expand_spans(
    spans: &[v1::BucketSpan],
    deltas: &[i64],
    counts: &[f64],
    float: bool,
) -> Result<Vec<(i64, f64)>, String> {
    if (float && !deltas.is_empty()) || (!float && !counts.is_empty()) {
        return Err(
            "an integer histogram sends bucket deltas and a float histogram bucket counts, not the other"
                .into(),
        );
    }
    let given = if float { counts.len() } else { deltas.len() };
    let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if total != given as u64 {
        return Err(format!(
            "histogram spans cover {total} buckets but {given} were sent"
        ));
    }
    if given > MAX_HISTOGRAM_BUCKETS {
        return Err(format!(
            "histogram has {given} buckets; at most {MAX_HISTOGRAM_BUCKETS} are accepted"
        ));
    }
    let mut out = Vec::with_capacity(given);
    let mut index: i64 = 0;
    let mut running: i64 = 0;
    let mut position = 0usize;
    // The first offset is the first bucket's index; later ones are gaps after the
    // previous span, so they cannot be negative.
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(format!("histogram span {n} has a negative offset"));
        }
        index = index
            .checked_add(i64::from(span.offset))
            .ok_or("histogram bucket index out of range")?;
        for _ in 0..span.length {
            let count = if float {
                counts[position]
            } else {
                running = running
                    .checked_add(deltas[position])
                    .filter(|c| *c >= 0)
                    .ok_or("histogram bucket deltas give a negative count")?;
                running as f64
            };
            out.push((index, count));
            index += 1;
            position += 1;
        }
    }
    Ok(out)
}

fn family_meta<'a>(metadata: &HashMap<&str, FamilyMeta<'a>>, name: &str) -> FamilyMeta<'a> {
    if metadata.is_empty() {
        return (None, None);
    }
    let family = ["_bucket", "_count", "_sum", "_total", "_created", "_info"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|family| metadata.contains_key(family))
        .unwrap_or(name);
    metadata.get(family).copied().unwrap_or((None, None))
}

fn v1_type_name(t: v1::metric_metadata::MetricType) -> Option<&'static str> {
    use v1::metric_metadata::MetricType as T;
    Some(match t {
        T::Unknown => return None,
        T::Counter => "counter",
        T::Gauge => "gauge",
        T::Histogram => "histogram",
        T::Gaugehistogram => "gaugehistogram",
        T::Summary => "summary",
        T::Info => "info",
        T::Stateset => "stateset",
    })
}

fn v2_type_name(t: v2::metadata::MetricType) -> Option<&'static str> {
    use v2::metadata::MetricType as T;
    Some(match t {
        T::Unspecified => return None,
        T::Counter => "counter",
        T::Gauge => "gauge",
        T::Histogram => "histogram",
        T::Gaugehistogram => "gaugehistogram",
        T::Summary => "summary",
        T::Info => "info",
        T::Stateset => "stateset",
    })
}

/// Remote write times are milliseconds since the epoch.
pub fn millis_to_nanos(millis: i64) -> Option<i64> {
    millis.checked_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::metrics::MAX_ROWS_PER_REQUEST;
    use proptest::prelude::*;

    fn request(histogram: v1::Histogram, series: usize) -> Vec<u8> {
        v1::WriteRequest {
            timeseries: (0..series)
                .map(|i| v1::TimeSeries {
                    labels: vec![
                        v1::Label {
                            name: "__name__".into(),
                            value: "latency_seconds".into(),
                        },
                        v1::Label {
                            name: "pod".into(),
                            value: format!("p{i}"),
                        },
                    ],
                    histograms: vec![histogram.clone()],
                    ..Default::default()
                })
                .collect(),
            metadata: Vec::new(),
        }
        .encode_to_vec()
    }

    #[test]
    fn mismatched_deltas_and_counts_are_refused_not_a_panic() {
        let histogram = v1::Histogram {
            count: Some(v1::histogram::Count::CountInt(5)),
            positive_spans: vec![v1::BucketSpan {
                offset: 0,
                length: 5,
            }],
            positive_deltas: vec![1, 1, 1],
            positive_counts: vec![1.0; 5],
            timestamp: 1,
            ..Default::default()
        };
        let (rows, counts) = decode_v1(&request(histogram, 1)).unwrap();
        assert_eq!(counts.histograms, 0);
        assert_eq!(rows.rejected.count, 1);
    }

    #[test]
    fn a_request_expanding_past_the_row_limit_is_refused() {
        let histogram = v1::Histogram {
            count: Some(v1::histogram::Count::CountInt(0)),
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: (0..150).map(f64::from).collect(),
            positive_spans: vec![v1::BucketSpan {
                offset: 0,
                length: 150,
            }],
            positive_deltas: vec![0; 150],
            timestamp: 1,
            ..Default::default()
        };
        let series = MAX_ROWS_PER_REQUEST / 150 + 1;
        let (rows, _) = decode_v1(&request(histogram, series)).unwrap();
        assert!(rows.overflowed());
    }

    /// The same request read through prost's generated types: what `decode_v1` must
    /// produce.
    fn decode_v1_with_prost(body: &[u8]) -> (MetricRows, Counts) {
        let request = v1::WriteRequest::decode(body).unwrap();
        let mut rows = MetricRows::default();
        let mut counts = Counts::default();
        for ts in &request.timeseries {
            let labels = ts
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()));
            let Some(series) = rows.series(labels) else {
                continue;
            };
            let exemplars: Vec<RawExemplar> = ts
                .exemplars
                .iter()
                .map(|e| RawExemplar {
                    labels: e
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    value: e.value,
                    timestamp: Some(e.timestamp)
                        .filter(|t| *t != 0)
                        .and_then(millis_to_nanos),
                })
                .collect();
            let samples = ts.samples.iter().map(|s| (s.timestamp, s.value));
            let meta = MetricMeta::default();
            counts += write_series(&mut rows, &series, meta, samples, &[], &exemplars, None);
        }
        (rows, counts)
    }

    fn label_strategy() -> impl Strategy<Value = v1::Label> {
        let name = prop_oneof![Just("__name__".to_owned()), "[a-z_]{1,6}", "\\PC{0,4}"];
        (name, prop_oneof!["[a-z_]{1,8}", "\\PC{0,8}"])
            .prop_map(|(name, value)| v1::Label { name, value })
    }

    fn series_strategy() -> impl Strategy<Value = v1::TimeSeries> {
        let sample = (any::<i64>(), any::<f64>())
            .prop_map(|(timestamp, value)| v1::Sample { value, timestamp });
        let exemplar = (
            prop::collection::vec(label_strategy(), 0..3),
            any::<f64>(),
            prop_oneof![Just(0i64), any::<i64>()],
        )
            .prop_map(|(labels, value, timestamp)| v1::Exemplar {
                labels,
                value,
                timestamp,
            });
        (
            prop::collection::vec(label_strategy(), 0..6),
            prop::collection::vec(sample, 0..3),
            prop::collection::vec(exemplar, 0..2),
        )
            .prop_map(|(labels, samples, exemplars)| v1::TimeSeries {
                labels,
                samples,
                exemplars,
                histograms: Vec::new(),
            })
    }

    #[test]
    fn metadata_before_or_after_the_series_types_them() {
        for after in [false, true] {
            let series = v1::TimeSeries {
                labels: vec![v1::Label {
                    name: "__name__".into(),
                    value: "jobs_total".into(),
                }],
                samples: vec![v1::Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
                ..Default::default()
            };
            let meta = v1::MetricMetadata {
                r#type: v1::metric_metadata::MetricType::Counter as i32,
                metric_family_name: "jobs".into(),
                unit: "jobs".into(),
                ..Default::default()
            };
            let mut body = v1::WriteRequest {
                timeseries: vec![series],
                metadata: Vec::new(),
            }
            .encode_to_vec();
            let meta = v1::WriteRequest {
                timeseries: Vec::new(),
                metadata: vec![meta],
            }
            .encode_to_vec();
            // Concatenated messages merge: repeated fields append.
            body = if after {
                [body, meta].concat()
            } else {
                [meta, body].concat()
            };
            let (rows, _) = decode_v1(&body).unwrap();
            let (batches, _) = rows.finish();
            let types = arrow::array::AsArray::as_string::<i32>(
                batches[0].1.column_by_name("metric_type").unwrap().as_ref(),
            );
            assert_eq!(types.value(0), "counter");
        }
    }

    proptest! {
        #[test]
        fn the_wire_reader_reads_what_prost_reads(
            timeseries in prop::collection::vec(series_strategy(), 0..6),
        ) {
            let body = v1::WriteRequest { timeseries, metadata: Vec::new() }.encode_to_vec();
            let (ours, our_counts) = decode_v1(&body).unwrap();
            let (theirs, their_counts) = decode_v1_with_prost(&body);
            prop_assert_eq!(our_counts, their_counts);
            prop_assert_eq!(&ours.rejected, &theirs.rejected);
            let (ours, _) = ours.finish();
            let (theirs, _) = theirs.finish();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn arbitrary_bytes_are_an_error_or_rows(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_v1(&bytes);
        }

        #[test]
        fn any_native_histogram_is_rows_or_a_refusal(
            schema in prop_oneof![Just(-53), -6i32..10],
            spans in prop::collection::vec((-3i32..3, 0u32..4), 0..4),
            deltas in prop::collection::vec(-3i64..3, 0..12),
            counts in prop::collection::vec(0.0f64..5.0, 0..12),
            custom in prop::collection::vec(0.0f64..10.0, 0..4),
            float in any::<bool>(),
        ) {
            let histogram = v1::Histogram {
                count: Some(if float {
                    v1::histogram::Count::CountFloat(3.0)
                } else {
                    v1::histogram::Count::CountInt(3)
                }),
                schema,
                positive_spans: spans.iter().map(|(offset, length)| v1::BucketSpan { offset: *offset, length: *length }).collect(),
                positive_deltas: deltas,
                positive_counts: counts,
                custom_values: custom,
                timestamp: 1,
                ..Default::default()
            };
            let (rows, counts) = decode_v1(&request(histogram, 1)).unwrap();
            prop_assert!(counts.histograms + rows.rejected.count == 1);
        }
    }
}
