//! pprof, as `POST /threadline/v1/profiles` and Pyroscope's `/ingest?format=pprof` take
//! it: gzipped or raw (told apart by gzip's magic number), inflated under the body
//! limit, decoded and resolved, then built into `profiles` and `profile_samples` rows.
//!
//! The body is refused as bad gzip / too large, invalid protobuf or an invalid profile
//! (a dangling index, too many values), or the rows as too large; nothing else. A
//! resolved profile written back as pprof (plain and gzipped, as queries serve it)
//! resolves to itself; turned into deltas against its own totals, its cumulative values
//! are all 0 and the others untouched; its rows are one `profiles` row and one
//! `profile_samples` row per positive value, keeping the store's invariants.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use threadline::ingest::profiles::{ProfileRowError, ProfileRows, Received};
use threadline::profile::{PprofError, Profile, is_cumulative, pprof, to_delta};
use threadline_fuzz::{BODY_LIMIT, NOW_NS};

fuzz_target!(|data: &[u8]| {
    let raw = match pprof::inflate(Bytes::copy_from_slice(data), BODY_LIMIT) {
        Ok(raw) => raw,
        Err(PprofError::Body(_) | PprofError::TooLarge(_)) => return,
        Err(e) => panic!("inflating refused for another reason: {e}"),
    };
    let profile = match pprof::decode(&raw) {
        Ok(profile) => profile,
        Err(PprofError::Decode(_) | PprofError::Invalid(_)) => return,
        Err(e @ (PprofError::Body(_) | PprofError::TooLarge(_))) => {
            panic!("decoding an inflated body: {e}")
        }
    };
    let written = pprof::encode(&profile).encode_to_vec();
    let again = pprof::decode(&written)
        .unwrap_or_else(|e| panic!("a resolved profile written back does not decode: {e}"));
    assert_eq!(
        again, profile,
        "a resolved profile written back resolves to another"
    );
    let gzipped = pprof::inflate(pprof::encode_gzip(&profile).into(), u32::MAX as usize)
        .expect("encode_gzip writes gzip");
    assert_eq!(
        gzipped, written,
        "encode_gzip inflates to what encode writes"
    );

    deltas_against_itself(&profile);

    let mut rows = ProfileRows::default();
    let added = rows.add(Received {
        labels: vec![("service_name".into(), "fuzz".into())],
        profile: &profile,
        original: &raw,
        default_time: NOW_NS,
        default_duration: 0,
        id: None,
    });
    match added {
        Ok(()) => {}
        Err(ProfileRowError::TooLarge) => return,
        Err(e @ ProfileRowError::Labels(_)) => panic!("valid labels refused: {e}"),
    }
    threadline_fuzz::profile_batches(
        &rows.finish(),
        1,
        threadline_fuzz::positive_values(&profile),
    );
});

fn deltas_against_itself(profile: &Profile) {
    let cumulative: Vec<bool> = profile
        .sample_types
        .iter()
        .map(|t| is_cumulative(&t.kind))
        .collect();
    let mut first = profile.clone();
    let totals = to_delta(&mut first, None);
    let mut second = profile.clone();
    to_delta(&mut second, Some(&totals));
    for delta in [&first, &second] {
        for (sample, original) in delta.samples.iter().zip(&profile.samples) {
            for (t, (&value, &before)) in sample.values.iter().zip(&original.values).enumerate() {
                let expected = if cumulative[t] { 0 } else { before };
                assert_eq!(
                    value, expected,
                    "sample type {t} after deltas against itself"
                );
            }
        }
    }
}
