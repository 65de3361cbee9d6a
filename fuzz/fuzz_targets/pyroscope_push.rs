//! Pyroscope's `POST /push.v1.PusherService/Push`, as the handler decodes it: a
//! `push.v1.PushRequest` (after `Content-Encoding`), one series per label set, each
//! with raw pprof samples (gzipped or not) that together inflate under the body limit.
//!
//! Refusals are the handler's 400s (invalid request or pprof, labels the store cannot
//! take) and 413s (profiles or rows past the limits). Otherwise every raw profile is one
//! `profiles` row carrying its ID, plus one `profile_samples` row per positive value,
//! and the rows keep the store's invariants.

#![no_main]

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray};
use libfuzzer_sys::fuzz_target;
use threadline::ingest::profiles::{ProfileRowError, ProfileRows, Received};
use threadline::ingest::pyroscope::decode_push;
use threadline::model::Signal;
use threadline::profile::{PprofError, pprof};
use threadline_fuzz::{BODY_LIMIT, NOW_NS, positive_values};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_push(data) else {
        return;
    };
    let mut left = BODY_LIMIT;
    let mut rows = ProfileRows::default();
    let mut ids = Vec::new();
    let mut sample_rows = 0;
    for series in request.series {
        let labels: Vec<(String, String)> = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        for sample in series.samples {
            let original = match pprof::inflate(Bytes::from(sample.raw_profile), left) {
                Ok(original) => original,
                Err(PprofError::Body(_) | PprofError::TooLarge(_)) => return,
                Err(e) => panic!("inflating refused for another reason: {e}"),
            };
            left -= original.len();
            let profile = match pprof::decode(&original) {
                Ok(profile) => profile,
                Err(PprofError::Decode(_) | PprofError::Invalid(_)) => return,
                Err(e @ (PprofError::Body(_) | PprofError::TooLarge(_))) => {
                    panic!("decoding an inflated body: {e}")
                }
            };
            let id = (!sample.id.is_empty()).then_some(sample.id);
            let added = rows.add(Received {
                labels: labels.clone(),
                profile: &profile,
                original: &original,
                default_time: NOW_NS,
                default_duration: 0,
                id: id.as_deref(),
            });
            match added {
                Ok(()) => {}
                Err(ProfileRowError::Labels(_) | ProfileRowError::TooLarge) => return,
            }
            ids.push(id);
            sample_rows += positive_values(&profile);
        }
    }
    let batches = rows.finish();
    threadline_fuzz::profile_batches(&batches, ids.len(), sample_rows);
    if let Some((_, profiles)) = batches.iter().find(|(s, _)| *s == Signal::Profiles) {
        let column = profiles
            .column_by_name("profile_id")
            .expect("profile_id column");
        let column = column.as_string::<i32>();
        let stored: Vec<Option<&str>> = (0..column.len())
            .map(|i| column.is_valid(i).then(|| column.value(i)))
            .collect();
        let sent: Vec<Option<&str>> = ids.iter().map(Option::as_deref).collect();
        assert_eq!(stored, sent, "profile IDs stored vs sent");
    }
});
