//! What the fuzz targets check of the rows a decoder built, whatever bytes it was
//! given: the invariants the rest of the store relies on without checking them again.
//!
//! - a batch has its signal's schema;
//! - each row's `labels` are a canonical label set (valid, unique names in order, no
//!   empty values) and its `stream_id` is that set's ID: `storage::chunk::row_labels`,
//!   the head and the label index take both on trust;
//! - each label column (`service_name`, `severity`, `job`, `metric`) holds the value of
//!   its label, as `Signal::label_columns` promises the query planner;
//! - trace and span IDs are lowercase hex of their length, as the trace-ID index keys
//!   them.
//!
//! A violation panics, which the fuzzer reports as a crash.

use datafusion::arrow::array::{Array, AsArray, MapArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use threadline::model::schema::schema;
use threadline::model::{LabelSet, Signal, SpanId, TraceId};

/// The request body limit the server applies by default, after decompression.
pub const BODY_LIMIT: usize = threadline::config::DEFAULT_MAX_BODY_BYTES;

/// "Now" for decoders that stamp rows without a time of their own.
pub const NOW_NS: i64 = 1_700_000_000_000_000_000;

/// Checks every row of a batch the ingest path built for `signal`.
pub fn rows(signal: Signal, batch: &RecordBatch) {
    assert_eq!(
        batch.schema(),
        schema(signal),
        "{} batch with another schema",
        signal.as_str()
    );
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{} has no {name} column", signal.as_str()))
    };
    let labels: &MapArray = column("labels").as_map();
    let stream_ids = column("stream_id").as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
    let label_columns: Vec<_> = signal
        .label_columns()
        .iter()
        .map(|(column_name, label)| (*label, column(column_name).as_string::<i32>()))
        .collect();
    for row in 0..batch.num_rows() {
        let pairs = map_pairs(labels, row);
        let set = LabelSet::new(pairs.clone()).unwrap_or_else(|e| {
            panic!(
                "{} row {row} has labels that are not a label set: {e}: {pairs:?}",
                signal.as_str()
            )
        });
        let canonical: Vec<(&str, &str)> = set.iter().collect();
        let written: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            canonical,
            written,
            "{} row {row}: labels not canonical",
            signal.as_str()
        );
        assert_eq!(
            stream_ids.value(row),
            set.stream_id().0,
            "{} row {row}: stream_id is not its labels' ID",
            signal.as_str()
        );
        for (label, values) in &label_columns {
            let value = values.is_valid(row).then(|| values.value(row));
            assert_eq!(
                value,
                set.get(label),
                "{} row {row}: column for label {label} disagrees with the labels",
                signal.as_str()
            );
        }
    }
    for (name, len) in [("trace_id", TraceId::LEN), ("span_id", SpanId::LEN)] {
        let Some(ids) = batch.column_by_name(name) else {
            continue;
        };
        if ids.data_type() != &DataType::Utf8 {
            continue;
        }
        for id in ids.as_string::<i32>().iter().flatten() {
            assert!(
                id.len() == 2 * len && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{} {name} {id:?} is not {len} bytes of lowercase hex",
                signal.as_str()
            );
        }
    }
}

/// Checks a metric request's batches and that they hold the rows it counted.
pub fn metric_batches(batches: &[(Signal, RecordBatch)], sample_rows: usize, exemplar_rows: usize) {
    let mut samples = 0;
    let mut exemplars = 0;
    for (signal, batch) in batches {
        rows(*signal, batch);
        assert!(batch.num_rows() > 0, "empty {} batch", signal.as_str());
        match signal {
            Signal::Samples => samples += batch.num_rows(),
            Signal::Exemplars => exemplars += batch.num_rows(),
            other => panic!("a metric request built {} rows", other.as_str()),
        }
    }
    assert_eq!(samples, sample_rows, "sample rows written vs counted");
    assert_eq!(exemplars, exemplar_rows, "exemplar rows written vs counted");
}

/// Checks a profile request's batches: `profiles` rows, one per profile, and
/// `profile_samples` rows, one per positive sample value.
pub fn profile_batches(batches: &[(Signal, RecordBatch)], profiles: usize, sample_rows: usize) {
    let mut counted = (0, 0);
    for (signal, batch) in batches {
        rows(*signal, batch);
        match signal {
            Signal::Profiles => counted.0 += batch.num_rows(),
            Signal::ProfileSamples => counted.1 += batch.num_rows(),
            other => panic!("a profile request built {} rows", other.as_str()),
        }
    }
    assert_eq!(counted, (profiles, sample_rows), "(profiles, sample rows)");
}

/// Float columns compared as numbers (NaN equal to NaN, -0 to 0), the rest exactly:
/// how two readings of one request are compared when one went through a protobuf
/// encoder, which writes -0.0 as an absent field.
pub fn same_batches(a: &RecordBatch, b: &RecordBatch) -> bool {
    if a.schema() != b.schema() || a.num_rows() != b.num_rows() {
        return false;
    }
    a.columns().iter().zip(b.columns()).all(|(x, y)| {
        if x.data_type() == &DataType::Float64 {
            let (x, y) = (
                x.as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
                y.as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
            );
            x.iter().zip(y.iter()).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
                (x, y) => x.is_none() && y.is_none(),
            })
        } else {
            x == y
        }
    })
}

fn map_pairs(map: &MapArray, row: usize) -> Vec<(String, String)> {
    let entries = map.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
        .collect()
}

/// The `profile_samples` rows a profile becomes: one per positive sample value.
pub fn positive_values(profile: &threadline::profile::Profile) -> usize {
    profile
        .samples
        .iter()
        .map(|s| s.values.iter().filter(|v| **v > 0).count())
        .sum()
}
