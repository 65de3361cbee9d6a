//! Prometheus remote write, as `POST /api/v1/write` decodes it. The first byte says
//! what the headers would: bit 0 the version (`proto=io.prometheus.write.v2.Request`),
//! bit 1 `Content-Encoding: identity`; without it the rest is snappy's block format, the
//! protocol's default, inflated under the body limit first.
//!
//! The body is refused as bad snappy, too large, or invalid protobuf / 2.0 symbols, or
//! it becomes rows, or the request is refused whole as too large (413). The batches
//! hold exactly the rows counted and keep the store's invariants. For 1.0, whose
//! decoder reads the wire format by hand, a body that prost also reads gives the same
//! rows, counts and refusals as prost's re-encoding of it.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use threadline::api::{ErrorCode, metric_batches};
use threadline::ingest::remote_write::{self, Counts, DecodeError};
use threadline::ingest::{BodyError, ContentEncoding, decompress};
use threadline::proto::io::prometheus::write::v2;
use threadline::proto::prometheus as v1;
use threadline_fuzz::{BODY_LIMIT, same_batches};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = if mode & 2 == 0 {
        ContentEncoding::Snappy
    } else {
        ContentEncoding::Identity
    };
    let body = match decompress(Bytes::copy_from_slice(body), encoding, BODY_LIMIT) {
        Ok(body) => body,
        Err(BodyError::BadSnappy(_) | BodyError::TooLarge { .. }) => return,
        Err(e) => panic!("snappy or identity body refused for another reason: {e}"),
    };
    assert!(body.len() <= BODY_LIMIT);
    let v2 = mode & 1 == 1;
    let decoded = if v2 {
        remote_write::decode_v2(&body)
    } else {
        remote_write::decode_v1(&body)
    };
    let (rows, counts) = match decoded {
        Ok(decoded) => decoded,
        Err(DecodeError::Protobuf(_) | DecodeError::Wire(_) | DecodeError::Symbols(_)) => return,
    };
    // 1.0: the same body as prost reads it, re-encoded and read by hand again.
    let mut prost_reading = None;
    if v2 {
        if let Ok(request) = v2::Request::decode(&body[..]) {
            let sent = |f: fn(&v2::TimeSeries) -> usize| request.timeseries.iter().map(f).sum();
            within(
                counts,
                sent(|t| t.samples.len()),
                sent(|t| t.histograms.len()),
                sent(|t| t.exemplars.len()),
            );
        }
    } else if let Ok(request) = v1::WriteRequest::decode(&body[..]) {
        let sent = |f: fn(&v1::TimeSeries) -> usize| request.timeseries.iter().map(f).sum();
        within(
            counts,
            sent(|t| t.samples.len()),
            sent(|t| t.histograms.len()),
            sent(|t| t.exemplars.len()),
        );
        let (theirs, their_counts) = remote_write::decode_v1(&request.encode_to_vec())
            .unwrap_or_else(|e| panic!("prost's encoding of a body both read is refused: {e}"));
        assert_eq!(
            counts, their_counts,
            "counts: read by hand vs through prost"
        );
        assert_eq!(
            rows.rejected, theirs.rejected,
            "refusals: read by hand vs through prost"
        );
        assert_eq!(rows.overflowed(), theirs.overflowed());
        prost_reading = Some(theirs);
    }
    let (samples, exemplars) = (rows.sample_count(), rows.exemplar_count());
    let (batches, _) = match metric_batches(rows) {
        Ok(written) => written,
        Err(e) if e.code == ErrorCode::PayloadTooLarge => return,
        Err(e) => panic!("a metric request refused for another reason: {e:?}"),
    };
    assert!(
        counts.samples <= samples,
        "{counts:?} but {samples} sample rows"
    );
    threadline_fuzz::metric_batches(&batches, samples, exemplars);
    if let Some(theirs) = prost_reading {
        let (theirs, _) = theirs.finish();
        assert_eq!(
            batches.len(),
            theirs.len(),
            "batches: read by hand vs through prost"
        );
        for ((signal, ours), (their_signal, theirs)) in batches.iter().zip(&theirs) {
            assert_eq!(signal, their_signal);
            assert!(
                same_batches(ours, theirs),
                "{} rows read by hand differ from those read through prost",
                signal.as_str()
            );
        }
    }
});

/// What was written cannot exceed what was sent.
fn within(counts: Counts, samples: usize, histograms: usize, exemplars: usize) {
    assert!(
        counts.samples <= samples
            && counts.histograms <= histograms
            && counts.exemplars <= exemplars,
        "{counts:?} written of {samples} samples, {histograms} histograms, {exemplars} exemplars"
    );
}
