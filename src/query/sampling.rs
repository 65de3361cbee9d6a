//! How many spans a stored span stands for: `span_weight(trace_state, probability)`,
//! the inverse of the probability it was sampled with, for span metrics that count
//! what happened rather than what was kept.
//!
//! The probability comes from the W3C `tracestate` entry OpenTelemetry writes
//! (`ot=th:<hex>`: spans were kept when their randomness reached the rejection
//! threshold `0x<hex>` padded to 56 bits, so with probability `1 - th / 2^56`), or
//! else from a `sampling.probability` attribute (a number in `(0, 1]`). Spans with
//! neither count once.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// 2^56: OpenTelemetry's randomness and thresholds are 56-bit.
const RANGE: f64 = 72_057_594_037_927_936.0;

/// The sampling probability in a `tracestate`'s `ot=…;th:…` entry.
pub fn threshold_probability(trace_state: &str) -> Option<f64> {
    let ot = trace_state
        .split(',')
        .map(str::trim)
        .find_map(|member| member.strip_prefix("ot="))?;
    let hex = ot.split(';').find_map(|field| field.strip_prefix("th:"))?;
    if hex.is_empty() || hex.len() > 14 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let threshold = u64::from_str_radix(&format!("{hex:0<14}"), 16).ok()? as f64;
    Some((RANGE - threshold) / RANGE)
}

/// The number of spans one stored span stands for.
pub fn weight(trace_state: Option<&str>, probability: Option<&str>) -> f64 {
    let p = trace_state
        .and_then(threshold_probability)
        .or_else(|| probability.and_then(|p| p.trim().parse::<f64>().ok()))
        .filter(|p| *p > 0.0 && *p <= 1.0);
    p.map_or(1.0, |p| 1.0 / p)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SpanWeight {
    signature: Signature,
}

pub fn span_weight_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(SpanWeight {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

fn strings(value: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let array = value.to_array(rows)?;
    match array.data_type() {
        DataType::Utf8 => Ok(array.as_string::<i32>().clone()),
        DataType::Null => Ok(StringArray::new_null(rows)),
        _ => {
            let cast = arrow::compute::cast(&array, &DataType::Utf8)?;
            Ok(cast.as_string::<i32>().clone())
        }
    }
}

impl ScalarUDFImpl for SpanWeight {
    fn name(&self) -> &str {
        "span_weight"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [state, probability] = args.args.as_slice() else {
            return exec_err!("span_weight takes trace_state and a probability");
        };
        let rows = args.number_rows;
        let states = strings(state, rows)?;
        let probabilities = strings(probability, rows)?;
        let weights: Float64Array = (0..rows)
            .map(|i| {
                let state = states.is_valid(i).then(|| states.value(i));
                let probability = probabilities.is_valid(i).then(|| probabilities.value(i));
                Some(weight(state, probability))
            })
            .collect();
        if rows == 1
            && matches!(state, ColumnarValue::Scalar(_))
            && matches!(probability, ColumnarValue::Scalar(_))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(Some(
                weights.value(0),
            ))));
        }
        Ok(ColumnarValue::Array(Arc::new(weights)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_attributes() {
        // th:0 keeps everything; th:8 keeps half; th:c a quarter; th:fc a sixty-fourth.
        assert_eq!(threshold_probability("ot=th:0"), Some(1.0));
        assert_eq!(threshold_probability("ot=th:8"), Some(0.5));
        assert_eq!(threshold_probability("vendor=x,ot=rv:abc;th:c"), Some(0.25));
        assert_eq!(threshold_probability("ot=th:fc"), Some(1.0 / 64.0));
        assert_eq!(threshold_probability("ot=th:zz"), None);
        assert_eq!(threshold_probability("other=th:8"), None);
        assert_eq!(weight(Some("ot=th:c"), Some("0.5")), 4.0);
        assert_eq!(weight(None, Some("0.1")), 10.0);
        assert_eq!(weight(Some(""), Some("2")), 1.0);
        assert_eq!(weight(None, Some("nope")), 1.0);
        assert_eq!(weight(None, None), 1.0);
    }
}
