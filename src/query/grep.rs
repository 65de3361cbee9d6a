//! Grep, the hot loop: line filters as DataFusion scalar functions.
//!
//! `line_contains(text, 'needle')` runs one memmem search over a batch's whole value
//! buffer instead of one search per row, and maps each hit back to its row through the
//! offsets; once a row matches, the search jumps to the next row. Short log lines
//! therefore cost little more than a scan of their bytes. `LineRegex` holds a regex
//! compiled once per query (with the size limits of the matcher language), never once
//! per batch.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, GenericStringArray,
    OffsetSizeTrait, StringViewArray,
};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use memchr::memmem;
use regex::Regex;

/// Whole-buffer substring search over a string array.
pub fn contains<O: OffsetSizeTrait>(array: &GenericStringArray<O>, needle: &[u8]) -> BooleanArray {
    let len = array.len();
    let mut result = BooleanBufferBuilder::new(len);
    if needle.is_empty() {
        result.append_n(len, true);
        return BooleanArray::new(result.finish(), array.nulls().cloned());
    }
    result.append_n(len, false);
    let offsets = array.value_offsets();
    let base = offsets[0].as_usize();
    let haystack = &array.value_data()[base..offsets[len].as_usize()];
    let finder = memmem::Finder::new(needle);
    let mut pos = 0;
    let mut row = 0;
    while pos < haystack.len() {
        let Some(found) = finder.find(&haystack[pos..]) else {
            break;
        };
        let at = pos + found;
        // The row holding byte `at`: the first whose end lies past it.
        row += offsets[row + 1..=len].partition_point(|end| end.as_usize() - base <= at);
        let row_end = offsets[row + 1].as_usize() - base;
        if at + needle.len() <= row_end {
            result.set_bit(row, true);
            pos = row_end;
        } else {
            pos = at + 1;
        }
    }
    BooleanArray::new(result.finish(), array.nulls().cloned())
}

fn contains_view(array: &StringViewArray, needle: &[u8]) -> BooleanArray {
    let finder = memmem::Finder::new(needle);
    array
        .iter()
        .map(|v| v.map(|s| finder.find(s.as_bytes()).is_some()))
        .collect()
}

fn apply(
    text: &ColumnarValue,
    f: impl Fn(&ArrayRef) -> Result<BooleanArray>,
) -> Result<ColumnarValue> {
    match text {
        ColumnarValue::Array(array) => Ok(ColumnarValue::Array(Arc::new(f(array)?))),
        ColumnarValue::Scalar(scalar) => {
            let array = scalar.to_array()?;
            let result = f(&array)?;
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        }
    }
}

/// A line filter condition (`line_contains` or `line_matches` of a column and a
/// literal, possibly negated) written so that different conditions never read the
/// same: the filter cache's key. `None` for any other expression.
pub fn line_filter_key(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Not(inner) => line_filter_key(inner).map(|key| format!("not {key}")),
        Expr::ScalarFunction(call) => {
            let name = call.func.name();
            let [Expr::Column(column), Expr::Literal(value, _)] = call.args.as_slice() else {
                return None;
            };
            let (ScalarValue::Utf8(Some(text))
            | ScalarValue::LargeUtf8(Some(text))
            | ScalarValue::Utf8View(Some(text))) = value
            else {
                return None;
            };
            (name == "line_contains" || name == "line_matches")
                .then(|| format!("{name}({}) {}:{text}", column.name, text.len()))
        }
        _ => None,
    }
}

fn literal_text(value: &ColumnarValue) -> Option<String> {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(s.clone()),
        _ => None,
    }
}

/// `line_contains(text, needle)`: true where `text` contains `needle` (a literal).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LineContains {
    signature: Signature,
}

impl Default for LineContains {
    fn default() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

pub fn line_contains_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(LineContains::default())
}

impl ScalarUDFImpl for LineContains {
    fn name(&self) -> &str {
        "line_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text, needle] = args.args.as_slice() else {
            return exec_err!("line_contains takes two arguments");
        };
        let Some(needle) = literal_text(needle) else {
            return exec_err!("line_contains needs a literal string as its second argument");
        };
        apply(text, |array| match array.data_type() {
            DataType::Utf8 => Ok(contains(array.as_string::<i32>(), needle.as_bytes())),
            DataType::LargeUtf8 => Ok(contains(array.as_string::<i64>(), needle.as_bytes())),
            DataType::Utf8View => Ok(contains_view(array.as_string_view(), needle.as_bytes())),
            other => exec_err!("line_contains cannot search {other}"),
        })
    }
}

/// A line regex compiled once for the query that uses it.
#[derive(Debug)]
pub struct LineRegex {
    regex: Regex,
    signature: Signature,
}

impl PartialEq for LineRegex {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str()
    }
}

impl Eq for LineRegex {}

impl Hash for LineRegex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.regex.as_str().hash(state);
    }
}

/// `line_matches(text, pattern)`: true where `text` matches `regex`. The pattern
/// argument is `regex`'s own text: it names the filter in plans (and in the filter
/// cache's keys), while the compiled `regex` does the work.
pub fn line_regex_udf(regex: Regex) -> ScalarUDF {
    ScalarUDF::new_from_impl(LineRegex {
        regex,
        signature: Signature::string(2, Volatility::Immutable),
    })
}

fn regex_matches<'a>(values: impl Iterator<Item = Option<&'a str>>, regex: &Regex) -> BooleanArray {
    values.map(|v| v.map(|s| regex.is_match(s))).collect()
}

impl ScalarUDFImpl for LineRegex {
    fn name(&self) -> &str {
        "line_matches"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text, pattern] = args.args.as_slice() else {
            return exec_err!("line_matches takes two arguments");
        };
        if literal_text(pattern).as_deref() != Some(self.regex.as_str()) {
            return exec_err!("line_matches needs its own pattern as its second argument");
        }
        apply(text, |array| match array.data_type() {
            DataType::Utf8 => Ok(regex_matches(array.as_string::<i32>().iter(), &self.regex)),
            DataType::LargeUtf8 => Ok(regex_matches(array.as_string::<i64>().iter(), &self.regex)),
            DataType::Utf8View => Ok(regex_matches(array.as_string_view().iter(), &self.regex)),
            other => exec_err!("line_matches cannot search {other}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use datafusion::logical_expr::{col, lit, not};
    use proptest::prelude::*;

    #[test]
    fn line_filter_keys_name_each_condition_apart() {
        let contains = |text: &str| line_contains_udf().call(vec![col("body"), lit(text)]);
        let key = |expr: &Expr| line_filter_key(expr).unwrap();
        assert_eq!(key(&contains("x")), "line_contains(body) 1:x");
        assert_eq!(key(&not(contains("x"))), "not line_contains(body) 1:x");
        let regex = Regex::new("dead.ock").unwrap();
        let matches = line_regex_udf(regex).call(vec![col("body"), lit("dead.ock")]);
        assert_eq!(key(&matches), "line_matches(body) 8:dead.ock");
        // A needle that spells out two conditions is still one.
        assert_ne!(
            key(&contains("x\nline_contains(body) 1:y")),
            "line_contains(body) 1:x\nline_contains(body) 1:y"
        );
        // Anything else is not a line filter.
        assert!(line_filter_key(&col("body").like(lit("%x%"))).is_none());
        assert!(
            line_filter_key(&line_contains_udf().call(vec![col("body"), col("name")])).is_none()
        );
    }

    proptest! {
        /// The whole-buffer search agrees with a per-row search, including matches
        /// that would straddle two rows.
        #[test]
        fn agrees_with_per_row_search(
            rows in prop::collection::vec(prop::option::of("[ab]{0,6}"), 0..30),
            needle in "[ab]{0,3}",
            skip in 0usize..3,
        ) {
            let array = StringArray::from(rows.clone());
            let array = array.slice(skip.min(rows.len()), rows.len() - skip.min(rows.len()));
            let got = contains(&array, needle.as_bytes());
            for i in 0..array.len() {
                let want = array.is_valid(i).then(|| array.value(i).contains(&needle));
                prop_assert_eq!(got.is_valid(i).then(|| got.value(i)), want, "row {}", i);
            }
        }
    }
}
