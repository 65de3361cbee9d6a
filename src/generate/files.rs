//! Generated telemetry on disk, for benchmarks: the encoded ingest requests, to be
//! replayed into a server as fast as it takes them, and the same log lines and spans
//! as flat Parquet tables, to be loaded into other systems.
//!
//! A directory holds `requests/manifest.tsv` (file, path, content type, records per
//! line), the request bodies beside it, `logs.parquet` and `spans.parquet`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray, UInt16Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::encode::{Request, requests};
use super::push::{Pusher, Run, Summary, Totals, notice};
use super::topology::{Kind, OPERATIONS};
use super::{Batch, GenerateError, Generator, LogRecord, SpanRecord};
use crate::model::to_hex;

const MANIFEST: &str = "requests/manifest.tsv";

fn file_error(path: &Path, message: impl ToString) -> GenerateError {
    GenerateError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Log lines as a flat table: what any system can load.
pub fn logs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("instance", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("body", DataType::Utf8, false),
    ]))
}

/// Spans as a flat table.
pub fn spans_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("instance", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start_time", timestamp(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("http_status_code", DataType::UInt16, true),
    ]))
}

fn logs_batch(logs: &[LogRecord]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from_iter_values(logs.iter().map(|l| l.time_ns))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.source.service_name()),
        )),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.source.instance_name()),
        )),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.severity.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            logs.iter().map(|l| l.trace.map(|(t, _)| to_hex(&t))),
        )),
        Arc::new(StringArray::from_iter(
            logs.iter().map(|l| l.trace.map(|(_, s)| to_hex(&s))),
        )),
        Arc::new(StringArray::from_iter_values(
            logs.iter().map(|l| l.body.as_str()),
        )),
    ];
    RecordBatch::try_new(logs_schema(), columns).expect("columns match the schema")
}

fn spans_batch(spans: &[SpanRecord]) -> RecordBatch {
    let op = |s: &SpanRecord| &OPERATIONS[s.operation];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| to_hex(&s.trace_id)),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| to_hex(&s.span_id)),
        )),
        Arc::new(StringArray::from_iter(
            spans.iter().map(|s| s.parent.map(|p| to_hex(&p))),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.source.service_name()),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| s.source.instance_name()),
        )),
        Arc::new(StringArray::from_iter_values(
            spans.iter().map(|s| op(s).name),
        )),
        Arc::new(StringArray::from_iter_values(spans.iter().map(
            |s| match op(s).kind {
                Kind::Server => "server",
                Kind::Client => "client",
            },
        ))),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(spans.iter().map(|s| s.start_ns))
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(
            spans.iter().map(|s| s.end_ns - s.start_ns),
        )),
        Arc::new(StringArray::from_iter_values(
            spans
                .iter()
                .map(|s| if s.error.is_some() { "error" } else { "unset" }),
        )),
        Arc::new(StringArray::from_iter(
            spans.iter().map(|s| s.error.as_deref()),
        )),
        Arc::new(UInt16Array::from_iter(spans.iter().map(|s| {
            s.attributes
                .iter()
                .find(|(k, _)| *k == "http.response.status_code")
                .and_then(|(_, v)| v.parse().ok())
        }))),
    ];
    RecordBatch::try_new(spans_schema(), columns).expect("columns match the schema")
}

/// Writes generated batches to a directory.
pub struct Recorder {
    dir: PathBuf,
    manifest: BufWriter<File>,
    logs: ArrowWriter<File>,
    spans: ArrowWriter<File>,
    totals: Totals,
}

impl Recorder {
    pub fn create(dir: &Path) -> Result<Self, GenerateError> {
        std::fs::create_dir_all(dir.join("requests")).map_err(|e| file_error(dir, e))?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = File::create(&manifest_path).map_err(|e| file_error(&manifest_path, e))?;
        let properties = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build()
        };
        let table = |name: &str, schema: SchemaRef| {
            let path = dir.join(name);
            let file = File::create(&path).map_err(|e| file_error(&path, e))?;
            ArrowWriter::try_new(file, schema, Some(properties())).map_err(|e| file_error(&path, e))
        };
        Ok(Self {
            dir: dir.to_owned(),
            manifest: BufWriter::new(manifest),
            logs: table("logs.parquet", logs_schema())?,
            spans: table("spans.parquet", spans_schema())?,
            totals: Totals::default(),
        })
    }

    pub fn record(&mut self, batch: &Batch) -> Result<(), GenerateError> {
        for request in requests(batch) {
            let name = format!("{:08}.body", self.totals.requests);
            let path = self.dir.join("requests").join(&name);
            std::fs::write(&path, &request.body).map_err(|e| file_error(&path, e))?;
            writeln!(
                self.manifest,
                "{name}\t{}\t{}\t{}",
                request.path, request.content_type, request.records
            )
            .map_err(|e| file_error(&self.dir.join(MANIFEST), e))?;
            self.totals.count(&request);
        }
        let logs = self.dir.join("logs.parquet");
        self.logs
            .write(&logs_batch(&batch.logs))
            .map_err(|e| file_error(&logs, e))?;
        let spans = self.dir.join("spans.parquet");
        self.spans
            .write(&spans_batch(&batch.spans))
            .map_err(|e| file_error(&spans, e))?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<Totals, GenerateError> {
        let manifest = self.dir.join(MANIFEST);
        self.manifest
            .flush()
            .map_err(|e| file_error(&manifest, e))?;
        self.logs
            .close()
            .map_err(|e| file_error(&self.dir.join("logs.parquet"), e))?;
        self.spans
            .close()
            .map_err(|e| file_error(&self.dir.join("spans.parquet"), e))?;
        Ok(self.totals)
    }
}

/// Generates the backfill of `run` into `dir` instead of sending it.
pub fn record(run: &Run, dir: &Path) -> Result<Summary, GenerateError> {
    let started = Instant::now();
    let mut recorder = Recorder::create(dir)?;
    let mut generator = Generator::new(run.config.clone());
    let mut highlight = None;
    for batch in generator.until(run.until_ns) {
        notice(&batch.spans, &mut highlight);
        recorder.record(&batch)?;
    }
    Ok(Summary {
        totals: recorder.finish()?,
        elapsed: started.elapsed(),
        highlight,
    })
}

/// Sends the requests recorded in `dir`, in order, as fast as the server takes them.
pub async fn replay(dir: &Path, mut pusher: Pusher) -> Result<Summary, GenerateError> {
    let manifest_path = dir.join(MANIFEST);
    let manifest = File::open(&manifest_path).map_err(|e| file_error(&manifest_path, e))?;
    let started = Instant::now();
    for (n, line) in BufReader::new(manifest).lines().enumerate() {
        let line = line.map_err(|e| file_error(&manifest_path, e))?;
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, path, content_type, records] = fields[..] else {
            return Err(file_error(
                &manifest_path,
                format!("line {} has {} fields, not 4", n + 1, fields.len()),
            ));
        };
        let body_path = dir.join("requests").join(name);
        let body = tokio::fs::read(&body_path)
            .await
            .map_err(|e| file_error(&body_path, e))?;
        let records = records
            .parse()
            .map_err(|_| file_error(&manifest_path, format!("line {}: bad record count", n + 1)))?;
        pusher
            .post(Request {
                path: path.to_owned(),
                content_type: content_type.to_owned(),
                body,
                records,
            })
            .await?;
    }
    Ok(Summary {
        totals: pusher.finish().await?,
        elapsed: started.elapsed(),
        highlight: None,
    })
}
