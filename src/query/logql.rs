//! LogQL log queries. The selector goes through the label index to stream IDs; the
//! line filters that lead the pipeline run inside the scan (the whole-buffer search of
//! `grep`, pushed into Parquet decoding); the rest of the pipeline runs here, line by
//! line in the requested order, until the limit is reached.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, MapArray, RecordBatch, StringArray};
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, col, lit, not};
use futures::StreamExt;

use super::grep::{line_contains_udf, line_regex_udf};
use super::streams::SelectedStreams;
use super::table::ScanStats;
use super::{QueryEngine, QueryError, Result, columns};
use crate::logql::{Labels, LogExpr, Origin, Pipeline, sanitize};
use crate::model::schema::UTC;
use crate::model::{LineFilter, LineFilterOp, Signal, StreamId, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

#[derive(Debug, Clone)]
pub struct LogRequest {
    pub query: LogExpr,
    /// Lines with `start <= time < end`.
    pub start: i64,
    pub end: i64,
    pub limit: usize,
    pub direction: Direction,
    /// Group lines by their stream's labels only, carrying metadata and parsed labels
    /// per line (Loki's `categorize-labels`); otherwise by all their labels.
    pub categorize: bool,
}

#[derive(Debug)]
pub struct Entry {
    pub timestamp_ns: i64,
    pub line: String,
    /// The line's structured metadata and parsed labels.
    pub labels: Labels,
}

#[derive(Debug)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<Entry>,
}

/// How much a query read, for the `stats` Loki clients display.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineCounts {
    /// Lines that reached the pipeline (after the scan's filters).
    pub lines: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Lines the pipeline let through.
    pub returned: u64,
}

pub struct LogResult {
    pub streams: Vec<LogStream>,
    pub counts: LineCounts,
    pub stats: Arc<ScanStats>,
}

pub fn ts_literal(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(Some(ns), Some(UTC.into())))
}

fn line_filter(filter: &LineFilter) -> Result<Expr> {
    let body = col("body");
    Ok(match (filter.op, filter.regex()) {
        (LineFilterOp::Contains, _) => {
            line_contains_udf().call(vec![body, lit(filter.pattern.clone())])
        }
        (LineFilterOp::NotContains, _) => {
            not(line_contains_udf().call(vec![body, lit(filter.pattern.clone())]))
        }
        (LineFilterOp::Regex, Some(re)) => {
            line_regex_udf(re.clone()).call(vec![body, lit(re.as_str())])
        }
        (LineFilterOp::NotRegex, Some(re)) => {
            not(line_regex_udf(re.clone()).call(vec![body, lit(re.as_str())]))
        }
        (_, None) => return Err(QueryError::Invalid("regex filter without a regex".into())),
    })
}

/// The columns a LogQL query reads.
const LINE_COLUMNS: [&str; 6] = [
    "timestamp",
    "stream_id",
    "body",
    "trace_id",
    "span_id",
    "attributes",
];

/// The rows of `query`'s streams in `[start, end)` that pass its scan filters.
pub async fn scan_lines(
    ctx: &datafusion::prelude::SessionContext,
    selected: &SelectedStreams,
    query: &LogExpr,
    (start, end): (i64, i64),
) -> Result<DataFrame> {
    let mut df = selected
        .scan(ctx, Signal::Logs, (start, end.saturating_sub(1)))
        .await?;
    for filter in query.scan_filters() {
        df = df.filter(line_filter(filter)?)?;
    }
    Ok(df.select_columns(&LINE_COLUMNS)?)
}

/// Builds each line's labels: its stream's, then its metadata (attributes under
/// Loki-style names, trace and span IDs), which never replace a stream label.
pub struct LineLabels {
    streams: HashMap<StreamId, Labels>,
}

impl LineLabels {
    pub fn new(selected: &SelectedStreams) -> Self {
        let streams = selected
            .labels
            .iter()
            .map(|(id, set)| {
                let labels = set
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned(), Origin::Stream))
                    .collect();
                (*id, labels)
            })
            .collect();
        Self { streams }
    }

    pub fn stream(&self, id: StreamId) -> Labels {
        self.streams.get(&id).cloned().unwrap_or_default()
    }
}

/// One batch of scanned lines with typed columns.
pub struct LineBatch<'a> {
    pub timestamps: &'a arrow::array::PrimitiveArray<TimestampNanosecondType>,
    pub streams: &'a arrow::array::PrimitiveArray<UInt64Type>,
    pub bodies: &'a StringArray,
    trace_ids: &'a StringArray,
    span_ids: &'a StringArray,
    attributes: &'a MapArray,
}

impl<'a> LineBatch<'a> {
    pub fn new(batch: &'a RecordBatch) -> Result<Self> {
        Ok(Self {
            timestamps: columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?,
            streams: columns::primitive::<UInt64Type>(batch, "stream_id")?,
            bodies: columns::string(batch, "body")?,
            trace_ids: columns::string(batch, "trace_id")?,
            span_ids: columns::string(batch, "span_id")?,
            attributes: columns::map(batch, "attributes")?,
        })
    }

    pub fn rows(&self) -> usize {
        self.timestamps.len()
    }

    /// A 128-bit hash of row `row`'s metadata: rows of one stream with equal
    /// fingerprints have equal labels.
    pub fn metadata_fingerprint(&self, row: usize) -> u128 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let entries = self.attributes.value(row);
        if let (Some(keys), Some(values)) = (
            entries.column(0).as_any().downcast_ref::<StringArray>(),
            entries.column(1).as_any().downcast_ref::<StringArray>(),
        ) {
            for i in 0..keys.len() {
                for text in [keys.value(i), values.value(i)] {
                    hasher.update(&(text.len() as u64).to_le_bytes());
                    hasher.update(text.as_bytes());
                }
            }
        }
        for ids in [self.trace_ids, self.span_ids] {
            let text = if ids.is_valid(row) {
                ids.value(row)
            } else {
                ""
            };
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        hasher.digest128()
    }

    /// Row `row`'s labels: `base` (its stream's) plus its metadata.
    pub fn labels(&self, row: usize, mut base: Labels) -> Labels {
        let entries = self.attributes.value(row);
        if let (Some(keys), Some(values)) = (
            entries.column(0).as_any().downcast_ref::<StringArray>(),
            entries.column(1).as_any().downcast_ref::<StringArray>(),
        ) {
            for i in 0..keys.len() {
                let name = sanitize(keys.value(i));
                if base.get(&name).is_none() {
                    base.insert(&name, values.value(i), Origin::Metadata);
                }
            }
        }
        for (name, ids) in [("trace_id", self.trace_ids), ("span_id", self.span_ids)] {
            if ids.is_valid(row) && base.get(name).is_none() {
                base.insert(name, ids.value(row), Origin::Metadata);
            }
        }
        base
    }
}

impl QueryEngine {
    pub async fn logs(&self, tenant: &Tenant, request: &LogRequest) -> Result<LogResult> {
        self.counted(tenant, self.run_logs(tenant, request)).await
    }

    async fn run_logs(&self, tenant: &Tenant, request: &LogRequest) -> Result<LogResult> {
        self.check_range(tenant, (request.start, request.end))?;
        let stats = Arc::new(ScanStats::default());
        let range = (request.start, request.end);
        let selected = self.select_streams(tenant, Signal::Logs, &request.query.selector, range);
        let mut result = LogResult {
            streams: Vec::new(),
            counts: LineCounts::default(),
            stats: Arc::clone(&stats),
        };
        if selected.is_empty() || request.limit == 0 {
            return Ok(result);
        }
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let pipeline = Pipeline::new(request.query.remaining_stages());
        let descending = request.direction == Direction::Backward;
        // A pipeline that can drop lines cannot push the limit into the sort: read
        // growing windows from the requested end instead, so the newest (or oldest)
        // lines are found without sorting the whole range.
        let windows = if pipeline.can_drop() {
            windows(range, request.direction)
        } else {
            vec![range]
        };
        let labels = LineLabels::new(&selected);
        let mut index: HashMap<Labels, usize> = HashMap::new();
        'windows: for window in windows {
            let mut df = scan_lines(&ctx, &selected, &request.query, window)
                .await?
                .sort(vec![col("timestamp").sort(!descending, false)])?;
            if !pipeline.can_drop() {
                df = df.limit(0, Some(request.limit))?;
            }
            let mut batches = df.execute_stream().await?;
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                let lines = LineBatch::new(&batch)?;
                for row in 0..lines.rows() {
                    let id = StreamId(lines.streams.value(row));
                    let mut line_labels = lines.labels(row, labels.stream(id));
                    let mut line = Cow::Borrowed(lines.bodies.value(row));
                    let timestamp_ns = lines.timestamps.value(row);
                    result.counts.lines += 1;
                    result.counts.bytes += line.len() as u64;
                    if !pipeline.run(&mut line, timestamp_ns, &mut line_labels) {
                        continue;
                    }
                    let (key, entry_labels) = split(line_labels, request.categorize);
                    let slot = *index.entry(key.clone()).or_insert_with(|| {
                        result.streams.push(LogStream {
                            labels: key,
                            entries: Vec::new(),
                        });
                        result.streams.len() - 1
                    });
                    result.streams[slot].entries.push(Entry {
                        timestamp_ns,
                        line: line.into_owned(),
                        labels: entry_labels,
                    });
                    result.counts.returned += 1;
                    if result.counts.returned as usize >= request.limit {
                        break 'windows;
                    }
                }
            }
        }
        Ok(result)
    }
}

/// Windows covering `[start, end)` from the end a query reads first, each twice as
/// long as the one before: the first is 1/256 of the range (at least a second).
fn windows((start, end): (i64, i64), direction: Direction) -> Vec<(i64, i64)> {
    let mut width = ((end - start) / 256).max(1_000_000_000);
    let mut out = Vec::new();
    let (mut low, mut high) = (start, end);
    while low < high {
        match direction {
            Direction::Backward => {
                let from = high.saturating_sub(width).max(low);
                out.push((from, high));
                high = from;
            }
            Direction::Forward => {
                let to = low.saturating_add(width).min(high);
                out.push((low, to));
                low = to;
            }
        }
        width = width.saturating_mul(2);
    }
    out
}

/// A line's stream key and the labels it carries itself: with `categorize`, the stream
/// is its stream labels and the line keeps the rest; otherwise the stream is all of
/// them.
fn split(labels: Labels, categorize: bool) -> (Labels, Labels) {
    if !categorize {
        return (labels, Labels::default());
    }
    let mut stream = Labels::default();
    let mut own = Labels::default();
    for (name, value, origin) in labels.iter() {
        match origin {
            Origin::Stream => stream.insert(name, value, origin),
            _ => own.insert(name, value, origin),
        }
    }
    (stream, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_grow_from_the_end_read_first() {
        let s = 1_000_000_000;
        let back = windows((0, 1024 * s), Direction::Backward);
        assert_eq!(back[0], (1020 * s, 1024 * s));
        assert_eq!(back[1], (1012 * s, 1020 * s));
        assert_eq!(back.last().unwrap().0, 0);
        // Adjacent, no gaps, no overlaps.
        assert!(back.windows(2).all(|w| w[1].1 == w[0].0));
        let forward = windows((0, 10 * s), Direction::Forward);
        assert_eq!(
            forward,
            [(0, s), (s, 3 * s), (3 * s, 7 * s), (7 * s, 10 * s)]
        );
        assert!(windows((5, 5), Direction::Forward).is_empty());
    }
}
