//! Loki push, as `POST /loki/api/v1/push` decodes it. The first byte says what the
//! headers would: 0 `Content-Type: application/json`; 1 protobuf without
//! `Content-Encoding` (snappy's block format all the same, as Loki clients send it,
//! inflated under the body limit); 2 protobuf with `Content-Encoding: snappy`, already
//! undone, so the rest is the protobuf itself.
//!
//! The body is refused as bad snappy, too large, invalid protobuf/JSON or a JSON entry
//! of the wrong shape; otherwise its entries become rows or are refused one by one,
//! never lost (rows + refusals = entries), and the rows keep the store's invariants.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use threadline::ingest::loki::{self, DecodeError};
use threadline::ingest::{BodyError, ContentEncoding, IngestRules, decompress};
use threadline::model::Signal;
use threadline_fuzz::{BODY_LIMIT, NOW_NS};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let streams = match mode % 3 {
        0 => loki::decode_json(body),
        1 => match decompress(
            Bytes::copy_from_slice(body),
            ContentEncoding::Snappy,
            BODY_LIMIT,
        ) {
            Ok(raw) => loki::decode_protobuf(&raw),
            Err(BodyError::BadSnappy(_) | BodyError::TooLarge { .. }) => return,
            Err(e) => panic!("snappy body refused for another reason: {e}"),
        },
        _ => loki::decode_protobuf(body),
    };
    let streams = match streams {
        Ok(streams) => streams,
        Err(DecodeError::Protobuf(_) | DecodeError::Json(_) | DecodeError::Shape(_)) => return,
    };
    let total = loki::entry_count(&streams);
    let decoded = loki::push_to_batch(&streams, &IngestRules::default(), NOW_NS);
    threadline_fuzz::rows(Signal::Logs, &decoded.batch);
    assert_eq!(
        decoded.batch.num_rows() + decoded.rejected.count,
        total,
        "rows + refusals vs entries"
    );
    assert_eq!(
        decoded.rejected.reasons.is_empty(),
        decoded.rejected.count == 0
    );
    let _ = decoded.rejected.message(total, "log entries");
});
