//! The Arrow schemas of the tables and builders that append rows to them.
//!
//! Column names are the public SQL interface and stay stable. Times are nanosecond UTC
//! timestamps; trace and span IDs are lowercase hex strings (zstd stores hex at close
//! to the raw 16 bytes, and every reader sees the same form the APIs use); labels and
//! attributes are string→string maps.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, ListBuilder, MapBuilder, RecordBatch, StringBuilder,
    StructBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

mod metrics;
mod profiles;

pub use metrics::{
    ExemplarBatchBuilder, ExemplarFields, METRIC_NAME_LABEL, MetricMeta, SampleBatchBuilder,
    SampleFields, Series,
};
pub use profiles::{
    ProfileBatchBuilder, ProfileFields, ProfileSampleBatchBuilder, ProfileSampleFields,
};

use super::{LabelSet, Signal, SpanId, StreamId, TraceId};

pub const UTC: &str = "UTC";

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

/// The map type `MapBuilder<StringBuilder, StringBuilder>` produces.
pub fn string_map_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("timestamp", timestamp_type(), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("attributes", string_map_type(), true),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("attributes", string_map_type(), true),
    ])
}

static LOGS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("observed_timestamp", timestamp_type(), true),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("service_name", DataType::Utf8, true),
        Field::new("severity", DataType::Utf8, true),
        Field::new("severity_number", DataType::Int32, true),
        Field::new("labels", string_map_type(), false),
        Field::new("body", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("attributes", string_map_type(), false),
        Field::new("scope_name", DataType::Utf8, true),
    ]))
});

static SPANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start_time", timestamp_type(), false),
        Field::new("end_time", timestamp_type(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("service_name", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("attributes", string_map_type(), false),
        Field::new(
            "events",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(event_fields()),
                true,
            ))),
            false,
        ),
        Field::new(
            "links",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(link_fields()),
                true,
            ))),
            false,
        ),
        Field::new("scope_name", DataType::Utf8, true),
    ]))
});

pub fn schema(signal: Signal) -> SchemaRef {
    match signal {
        Signal::Logs => LOGS.clone(),
        Signal::Spans => SPANS.clone(),
        Signal::Samples => metrics::SAMPLES.clone(),
        Signal::Exemplars => metrics::EXEMPLARS.clone(),
        Signal::Profiles => profiles::PROFILES.clone(),
        Signal::ProfileSamples => profiles::PROFILE_SAMPLES.clone(),
    }
}

/// A stream as rows carry it: its ID, its labels, and the `service_name` label broken
/// out because nearly every query filters on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub id: StreamId,
    pub labels: LabelSet,
}

impl Stream {
    pub fn new(labels: LabelSet) -> Self {
        Self {
            id: labels.stream_id(),
            labels,
        }
    }

    pub fn service_name(&self) -> Option<&str> {
        self.labels.get("service_name")
    }
}

type StringMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

fn map_builder() -> StringMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn append_map<'a>(
    builder: &mut StringMapBuilder,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (k, v) in pairs {
        builder.keys().append_value(k);
        builder.values().append_value(v);
    }
    // Appending a map entry only fails when keys and values differ in count, which the
    // loop above rules out.
    let _ = builder.append(true);
}

fn ts_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone(UTC)
}

fn hex_or_null<T: ToString>(builder: &mut StringBuilder, id: Option<T>) {
    match id {
        Some(id) => builder.append_value(id.to_string()),
        None => builder.append_null(),
    }
}

/// One log record's fields, borrowed from the decoded request.
pub struct LogFields<'a> {
    pub timestamp: i64,
    pub observed_timestamp: Option<i64>,
    pub severity_number: Option<i32>,
    pub body: &'a str,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// Attribute groups (resource, scope, record), written as one map in this order.
    pub attributes: &'a [&'a [(String, String)]],
    pub scope_name: Option<&'a str>,
}

pub struct LogBatchBuilder {
    timestamp: TimestampNanosecondBuilder,
    observed_timestamp: TimestampNanosecondBuilder,
    stream_id: UInt64Builder,
    service_name: StringBuilder,
    severity: StringBuilder,
    severity_number: Int32Builder,
    labels: StringMapBuilder,
    body: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    attributes: StringMapBuilder,
    scope_name: StringBuilder,
    rows: usize,
}

impl Default for LogBatchBuilder {
    fn default() -> Self {
        Self {
            timestamp: ts_builder(),
            observed_timestamp: ts_builder(),
            stream_id: UInt64Builder::new(),
            service_name: StringBuilder::new(),
            severity: StringBuilder::new(),
            severity_number: Int32Builder::new(),
            labels: map_builder(),
            body: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            attributes: map_builder(),
            scope_name: StringBuilder::new(),
            rows: 0,
        }
    }
}

impl LogBatchBuilder {
    pub fn append(&mut self, stream: &Stream, row: LogFields<'_>) {
        self.timestamp.append_value(row.timestamp);
        self.observed_timestamp
            .append_option(row.observed_timestamp);
        self.stream_id.append_value(stream.id.0);
        self.service_name.append_option(stream.service_name());
        self.severity.append_option(stream.labels.get("severity"));
        self.severity_number.append_option(row.severity_number);
        append_map(&mut self.labels, stream.labels.iter());
        self.body.append_value(row.body);
        hex_or_null(&mut self.trace_id, row.trace_id);
        hex_or_null(&mut self.span_id, row.span_id);
        append_map(
            &mut self.attributes,
            row.attributes
                .iter()
                .flat_map(|group| group.iter())
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.scope_name.append_option(row.scope_name);
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.observed_timestamp.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.scope_name.finish()),
        ];
        finish_batch(Signal::Logs, columns)
    }
}

/// Builders reserve room for a thousand rows; a batch gives back what it did not use,
/// since the head holds it (and counts its memory) until the next flush.
fn finish_batch(signal: Signal, mut columns: Vec<ArrayRef>) -> RecordBatch {
    for column in &mut columns {
        if let Some(array) = Arc::get_mut(column) {
            array.shrink_to_fit();
        }
    }
    match RecordBatch::try_new(schema(signal), columns) {
        Ok(batch) => batch,
        // The builders above produce exactly the schema's types; a mismatch is a bug
        // caught by the unit tests, not something input can cause.
        Err(e) => panic!("{signal} builder does not match its schema: {e}"),
    }
}

pub struct SpanEvent<'a> {
    pub timestamp: i64,
    pub name: &'a str,
    pub attributes: Vec<(String, String)>,
}

pub struct SpanLink {
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub attributes: Vec<(String, String)>,
}

/// One span's fields, borrowed from the decoded request.
pub struct SpanFields<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: &'a str,
    pub name: &'a str,
    pub kind: &'static str,
    pub start_time: i64,
    pub end_time: i64,
    pub status_code: &'static str,
    pub status_message: &'a str,
    /// Attribute groups (resource, scope, span), written as one map in this order.
    pub attributes: &'a [&'a [(String, String)]],
    pub events: Vec<SpanEvent<'a>>,
    pub links: Vec<SpanLink>,
    pub scope_name: Option<&'a str>,
}

pub struct SpanBatchBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    stream_id: UInt64Builder,
    service_name: StringBuilder,
    labels: StringMapBuilder,
    attributes: StringMapBuilder,
    events: ListBuilder<StructBuilder>,
    links: ListBuilder<StructBuilder>,
    scope_name: StringBuilder,
    rows: usize,
}

fn nested_list(
    fields: Fields,
    first: Box<dyn arrow::array::ArrayBuilder>,
) -> ListBuilder<StructBuilder> {
    let builders: Vec<Box<dyn arrow::array::ArrayBuilder>> = vec![
        first,
        Box::new(StringBuilder::new()),
        Box::new(map_builder()),
    ];
    let item = Field::new("item", DataType::Struct(fields.clone()), true);
    ListBuilder::new(StructBuilder::new(fields, builders)).with_field(Arc::new(item))
}

impl Default for SpanBatchBuilder {
    fn default() -> Self {
        Self {
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            start_time: ts_builder(),
            end_time: ts_builder(),
            duration_ns: Int64Builder::new(),
            status_code: StringBuilder::new(),
            status_message: StringBuilder::new(),
            stream_id: UInt64Builder::new(),
            service_name: StringBuilder::new(),
            labels: map_builder(),
            attributes: map_builder(),
            events: nested_list(event_fields(), Box::new(ts_builder())),
            links: nested_list(link_fields(), Box::new(StringBuilder::new())),
            scope_name: StringBuilder::new(),
            rows: 0,
        }
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl SpanBatchBuilder {
    pub fn append(&mut self, stream: &Stream, row: SpanFields<'_>) {
        self.trace_id.append_value(row.trace_id.to_hex());
        self.span_id.append_value(row.span_id.to_hex());
        hex_or_null(&mut self.parent_span_id, row.parent_span_id);
        self.trace_state.append_option(non_empty(row.trace_state));
        self.name.append_value(row.name);
        self.kind.append_value(row.kind);
        self.start_time.append_value(row.start_time);
        self.end_time.append_value(row.end_time);
        self.duration_ns
            .append_value(row.end_time.saturating_sub(row.start_time).max(0));
        self.status_code.append_value(row.status_code);
        self.status_message
            .append_option(non_empty(row.status_message));
        self.stream_id.append_value(stream.id.0);
        self.service_name.append_option(stream.service_name());
        append_map(&mut self.labels, stream.labels.iter());
        append_map(
            &mut self.attributes,
            row.attributes
                .iter()
                .flat_map(|group| group.iter())
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let events = self.events.values();
        for event in &row.events {
            if let Some(b) = events.field_builder::<TimestampNanosecondBuilder>(0) {
                b.append_value(event.timestamp);
            }
            if let Some(b) = events.field_builder::<StringBuilder>(1) {
                b.append_value(event.name);
            }
            if let Some(b) = events.field_builder::<StringMapBuilder>(2) {
                append_map(
                    b,
                    event
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            events.append(true);
        }
        self.events.append(true);
        let links = self.links.values();
        for link in &row.links {
            if let Some(b) = links.field_builder::<StringBuilder>(0) {
                hex_or_null(b, link.trace_id);
            }
            if let Some(b) = links.field_builder::<StringBuilder>(1) {
                hex_or_null(b, link.span_id);
            }
            if let Some(b) = links.field_builder::<StringMapBuilder>(2) {
                append_map(
                    b,
                    link.attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            links.append(true);
        }
        self.links.append(true);
        self.scope_name.append_option(row.scope_name);
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.scope_name.finish()),
        ];
        finish_batch(Signal::Spans, columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Stream {
        Stream::new(
            LabelSet::new(vec![
                ("service_name".into(), "api".into()),
                ("severity".into(), "info".into()),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn log_builder_matches_schema() {
        let mut b = LogBatchBuilder::default();
        let attrs = vec![("user".to_owned(), "42".to_owned())];
        b.append(
            &stream(),
            LogFields {
                timestamp: 1,
                observed_timestamp: None,
                severity_number: Some(9),
                body: "hello",
                trace_id: TraceId::from_bytes(&[1; 16]).ok(),
                span_id: None,
                attributes: &[&attrs],
                scope_name: None,
            },
        );
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), schema(Signal::Logs));
    }

    #[test]
    fn span_builder_matches_schema() {
        let mut b = SpanBatchBuilder::default();
        b.append(
            &stream(),
            SpanFields {
                trace_id: TraceId::from_bytes(&[1; 16]).unwrap(),
                span_id: SpanId::from_bytes(&[2; 8]).unwrap(),
                parent_span_id: None,
                trace_state: "",
                name: "GET /",
                kind: "server",
                start_time: 10,
                end_time: 25,
                status_code: "ok",
                status_message: "",
                attributes: &[&[]],
                events: vec![SpanEvent {
                    timestamp: 12,
                    name: "retry",
                    attributes: vec![("n".into(), "1".into())],
                }],
                links: vec![SpanLink {
                    trace_id: None,
                    span_id: None,
                    attributes: vec![],
                }],
                scope_name: Some("lib"),
            },
        );
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), schema(Signal::Spans));
    }
}
