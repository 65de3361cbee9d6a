//! OTLP/HTTP logs, as `POST /v1/logs` decodes them: the first byte picks the encoding
//! (even: protobuf, odd: JSON), the rest is the request body after `Content-Encoding`.
//! The body decodes or is refused as invalid protobuf/JSON; the records become rows or
//! are refused one by one, never lost (rows + refusals = records), and the rows keep
//! the store's invariants (`threadline_fuzz::rows`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use threadline::ingest::IngestRules;
use threadline::ingest::otlp::{self, DecodeError, Encoding};
use threadline::model::Signal;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = if mode & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let request = match otlp::decode_logs_request(body, encoding) {
        Ok(request) => request,
        Err(DecodeError::Protobuf(_) | DecodeError::Json(_)) => return,
    };
    let total = otlp::log_record_count(&request);
    let decoded = otlp::logs_to_batch(&request, &IngestRules::default(), threadline_fuzz::NOW_NS);
    threadline_fuzz::rows(Signal::Logs, &decoded.batch);
    assert_eq!(
        decoded.batch.num_rows() + decoded.rejected.count,
        total,
        "rows + refusals vs log records"
    );
    assert_eq!(
        decoded.rejected.reasons.is_empty(),
        decoded.rejected.count == 0
    );
    let _ = otlp::logs_response(&decoded.rejected, total, encoding);
});
