//! The `profiles` and `profile_samples` tables. A profile's stream is its labels
//! (`service_name`, `__name__` — the profile kind — and whatever else the sender or the
//! scrape target gave); `profiles` keeps each received profile whole, and
//! `profile_samples` one row per sample and sample type, with its stack spelled out
//! root first in three aligned lists (`functions[i]`, `files[i]`, `lines[i]` is frame
//! `i`). Parquet's dictionary encoding stores each distinct function and file name
//! once per column chunk.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{
    Stream, StringMapBuilder, append_map, finish_batch, hex_or_null, map_builder, string_map_type,
    timestamp_type, ts_builder,
};
use crate::model::{Signal, SpanId, TraceId};
use crate::profile::Frame;

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

pub(super) static PROFILES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("service_name", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("profile_types", list_of(DataType::Utf8), false),
        Field::new("period", DataType::Int64, false),
        Field::new("sample_count", DataType::Int64, false),
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("pprof", DataType::Binary, false),
    ]))
});

pub(super) static PROFILE_SAMPLES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("service_name", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("profile_type", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
        Field::new("stack_id", DataType::UInt64, false),
        Field::new("functions", list_of(DataType::Utf8), false),
        Field::new("files", list_of(DataType::Utf8), false),
        Field::new("lines", list_of(DataType::Int64), false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("span_name", DataType::Utf8, true),
        Field::new("sample_labels", string_map_type(), false),
    ]))
});

/// One received profile.
pub struct ProfileFields<'a> {
    pub timestamp: i64,
    pub duration_ns: i64,
    /// Every profile type it measures, as `ProfileType` spells them.
    pub profile_types: &'a [String],
    pub period: i64,
    pub sample_count: i64,
    /// The sender's ID for it (Pyroscope's `RawSample.ID`), when it gave one.
    pub profile_id: Option<&'a str>,
    /// The profile as received, uncompressed.
    pub pprof: &'a [u8],
}

pub struct ProfileBatchBuilder {
    timestamp: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    stream_id: UInt64Builder,
    service_name: StringBuilder,
    labels: StringMapBuilder,
    profile_types: ListBuilder<StringBuilder>,
    period: Int64Builder,
    sample_count: Int64Builder,
    profile_id: StringBuilder,
    pprof: BinaryBuilder,
    rows: usize,
}

impl Default for ProfileBatchBuilder {
    fn default() -> Self {
        Self {
            timestamp: ts_builder(),
            duration_ns: Int64Builder::new(),
            stream_id: UInt64Builder::new(),
            service_name: StringBuilder::new(),
            labels: map_builder(),
            profile_types: ListBuilder::new(StringBuilder::new()),
            period: Int64Builder::new(),
            sample_count: Int64Builder::new(),
            profile_id: StringBuilder::new(),
            pprof: BinaryBuilder::new(),
            rows: 0,
        }
    }
}

impl ProfileBatchBuilder {
    pub fn append(&mut self, stream: &Stream, row: ProfileFields<'_>) {
        self.timestamp.append_value(row.timestamp);
        self.duration_ns.append_value(row.duration_ns);
        self.stream_id.append_value(stream.id.0);
        self.service_name.append_option(stream.service_name());
        append_map(&mut self.labels, stream.labels.iter());
        for t in row.profile_types {
            self.profile_types.values().append_value(t);
        }
        self.profile_types.append(true);
        self.period.append_value(row.period);
        self.sample_count.append_value(row.sample_count);
        self.profile_id.append_option(row.profile_id);
        self.pprof.append_value(row.pprof);
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
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.profile_types.finish()),
            Arc::new(self.period.finish()),
            Arc::new(self.sample_count.finish()),
            Arc::new(self.profile_id.finish()),
            Arc::new(self.pprof.finish()),
        ];
        finish_batch(Signal::Profiles, columns)
    }
}

/// One sample's value for one profile type.
pub struct ProfileSampleFields<'a> {
    pub timestamp: i64,
    pub profile_type: &'a str,
    pub value: i64,
    pub stack_id: u64,
    /// The profile's frame table and the sample's stack in it, root first.
    pub frames: &'a [Frame],
    pub stack: &'a [u32],
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub span_name: Option<&'a str>,
    /// The sample's other string labels.
    pub labels: &'a [(String, String)],
}

pub struct ProfileSampleBatchBuilder {
    timestamp: TimestampNanosecondBuilder,
    stream_id: UInt64Builder,
    service_name: StringBuilder,
    labels: StringMapBuilder,
    profile_type: StringBuilder,
    value: Int64Builder,
    stack_id: UInt64Builder,
    functions: ListBuilder<StringBuilder>,
    files: ListBuilder<StringBuilder>,
    lines: ListBuilder<Int64Builder>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    span_name: StringBuilder,
    sample_labels: StringMapBuilder,
    rows: usize,
    frames: usize,
}

impl Default for ProfileSampleBatchBuilder {
    fn default() -> Self {
        Self {
            timestamp: ts_builder(),
            stream_id: UInt64Builder::new(),
            service_name: StringBuilder::new(),
            labels: map_builder(),
            profile_type: StringBuilder::new(),
            value: Int64Builder::new(),
            stack_id: UInt64Builder::new(),
            functions: ListBuilder::new(StringBuilder::new()),
            files: ListBuilder::new(StringBuilder::new()),
            lines: ListBuilder::new(Int64Builder::new()),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            span_name: StringBuilder::new(),
            sample_labels: map_builder(),
            rows: 0,
            frames: 0,
        }
    }
}

impl ProfileSampleBatchBuilder {
    pub fn append(&mut self, stream: &Stream, row: ProfileSampleFields<'_>) {
        self.timestamp.append_value(row.timestamp);
        self.stream_id.append_value(stream.id.0);
        self.service_name.append_option(stream.service_name());
        append_map(&mut self.labels, stream.labels.iter());
        self.profile_type.append_value(row.profile_type);
        self.value.append_value(row.value);
        self.stack_id.append_value(row.stack_id);
        for &f in row.stack {
            let frame = &row.frames[f as usize];
            self.functions.values().append_value(&frame.function);
            self.files.values().append_value(&frame.file);
            self.lines.values().append_value(frame.line);
        }
        self.functions.append(true);
        self.files.append(true);
        self.lines.append(true);
        hex_or_null(&mut self.trace_id, row.trace_id);
        hex_or_null(&mut self.span_id, row.span_id);
        self.span_name.append_option(row.span_name);
        append_map(
            &mut self.sample_labels,
            row.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.rows += 1;
        self.frames += row.stack.len();
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Frames written so far, over all rows.
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.profile_type.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.stack_id.finish()),
            Arc::new(self.functions.finish()),
            Arc::new(self.files.finish()),
            Arc::new(self.lines.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.span_name.finish()),
            Arc::new(self.sample_labels.finish()),
        ];
        finish_batch(Signal::ProfileSamples, columns)
    }
}
