//! OTLP/HTTP metrics, as `POST /v1/metrics` decodes them: the first byte picks the
//! encoding (even: protobuf, odd: JSON), the rest is the request body after
//! `Content-Encoding`. The body decodes or is refused as invalid protobuf/JSON; its
//! points expand into Prometheus-style series (histograms into buckets) or the whole
//! request is refused as too large (413). A point is refused at most once, however
//! many series it expands to; the batches hold exactly the rows counted, and the rows
//! keep the store's invariants (`threadline_fuzz::rows`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use threadline::api::{ErrorCode, metric_batches};
use threadline::ingest::IngestRules;
use threadline::ingest::otlp::{DecodeError, Encoding};
use threadline::ingest::otlp_metrics;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = if mode & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let request = match otlp_metrics::decode_metrics_request(body, encoding) {
        Ok(request) => request,
        Err(DecodeError::Protobuf(_) | DecodeError::Json(_)) => return,
    };
    let total = otlp_metrics::data_point_count(&request);
    let rows = otlp_metrics::metrics_to_rows(&request, &IngestRules::default());
    assert!(
        rows.rejected.count <= total,
        "{} refusals for {total} data points: {:?}",
        rows.rejected.count,
        rows.rejected.reasons
    );
    let (samples, exemplars) = (rows.sample_count(), rows.exemplar_count());
    let (batches, rejected) = match metric_batches(rows) {
        Ok(written) => written,
        Err(e) if e.code == ErrorCode::PayloadTooLarge => return,
        Err(e) => panic!("a metric request refused for another reason: {e:?}"),
    };
    threadline_fuzz::metric_batches(&batches, samples, exemplars);
    let _ = otlp_metrics::metrics_response(&rejected, total, encoding);
});
