//! Typed access to the columns of a query's result batches. A missing or mistyped
//! column is a bug in the plan that produced the batch, reported as an execution error.

use arrow::array::{Array, AsArray, ListArray, MapArray, PrimitiveArray, RecordBatch, StringArray};
use arrow::datatypes::ArrowPrimitiveType;

use super::{QueryError, Result};

fn missing(name: &str) -> QueryError {
    QueryError::Execution(format!("result column {name} missing"))
}

pub fn primitive<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| missing(name))
}

pub fn string<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

pub fn map<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a MapArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_map_opt())
        .ok_or_else(|| missing(name))
}

pub fn list<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ListArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| missing(name))
}

/// A nullable string cell as an owned value.
pub fn optional(array: &StringArray, row: usize) -> Option<String> {
    array.is_valid(row).then(|| array.value(row).to_owned())
}
