//! Pyroscope's `POST /ingest`, as the handler decodes it. The input is four lines —
//! the `name` parameter (`app.cpu{env=prod}`), the `Content-Type`, the `format` and the
//! `units` parameters — then the body: a multipart form (when the content type names a
//! boundary) whose `profile` part and optional `prev_profile` part are pprof, a raw
//! pprof (`format=pprof`), or folded stacks (no format, or `folded`).
//!
//! Refusals are the handler's 400s (a bad name, form, pprof or folded line; labels the
//! store cannot take), 413 (profiles that inflate past the body limit or rows past the
//! request's) and 415 (another format). A form's parts lie inside the body; folded
//! stacks give one sample per line, with frames in range and stacks no deeper than
//! pprof's, and write back as pprof that reads the same (for frame names within the
//! length pprof reading keeps); the rows keep the store's invariants.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use threadline::ingest::profiles::{ProfileRowError, ProfileRows, Received};
use threadline::ingest::pyroscope::{
    multipart_boundary, parse_app_name, parse_folded, parse_multipart,
};
use threadline::profile::pprof::{MAX_STACK_DEPTH, MAX_SYMBOL_BYTES};
use threadline::profile::{PprofError, Profile, pprof, to_delta};
use threadline_fuzz::{BODY_LIMIT, NOW_NS};

/// Pyroscope's default `sampleRate`.
const SAMPLE_RATE: u32 = 100;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(5, |b| *b == b'\n');
    let mut line = || std::str::from_utf8(lines.next().unwrap_or_default()).ok();
    let (Some(name), Some(content_type), Some(format), Some(units)) =
        (line(), line(), line(), line())
    else {
        return;
    };
    let body = Bytes::copy_from_slice(lines.next().unwrap_or_default());
    let Ok(name) = parse_app_name(name) else {
        return;
    };
    let (profile, original) = if let Some(boundary) = multipart_boundary(content_type) {
        let Ok(parts) = parse_multipart(&body, boundary) else {
            return;
        };
        let range = body.as_ptr_range();
        for part in &parts {
            let inside = range.start <= part.data.as_ptr_range().start
                && part.data.as_ptr_range().end <= range.end;
            assert!(inside, "part {:?} is not a slice of the body", part.name);
        }
        let part = |name: &str| {
            parts
                .iter()
                .find(|p| p.name == name)
                .map(|p| body.slice_ref(p.data))
        };
        let Some(raw) = part("profile") else {
            return;
        };
        let Some((profile, original)) = decode_pprof(raw, part("prev_profile")) else {
            return;
        };
        (profile, original)
    } else {
        match format {
            "pprof" => match decode_pprof(body, None) {
                Some(decoded) => decoded,
                None => return,
            },
            "" | "folded" => {
                let Ok(text) = std::str::from_utf8(&body) else {
                    return;
                };
                let Ok(profile) = parse_folded(text, units, SAMPLE_RATE) else {
                    return;
                };
                check_folded(text, &profile);
                let original = Bytes::from(pprof::encode(&profile).encode_to_vec());
                (profile, original)
            }
            _ => return,
        }
    };
    let mut rows = ProfileRows::default();
    let added = rows.add(Received {
        labels: name.labels,
        profile: &profile,
        original: &original,
        default_time: NOW_NS,
        default_duration: 0,
        id: None,
    });
    match added {
        Ok(()) => {}
        Err(ProfileRowError::Labels(_) | ProfileRowError::TooLarge) => return,
    }
    threadline_fuzz::profile_batches(
        &rows.finish(),
        1,
        threadline_fuzz::positive_values(&profile),
    );
});

/// The handler's pprof path: both parts inflate together under the body limit; with a
/// previous profile, cumulative values become their growth since it.
fn decode_pprof(raw: Bytes, previous: Option<Bytes>) -> Option<(Profile, Bytes)> {
    let original = match pprof::inflate(raw, BODY_LIMIT) {
        Ok(original) => original,
        Err(PprofError::Body(_) | PprofError::TooLarge(_)) => return None,
        Err(e) => panic!("inflating refused for another reason: {e}"),
    };
    let mut profile = decode(&original)?;
    if let Some(previous) = previous {
        let previous = match pprof::inflate(previous, BODY_LIMIT - original.len()) {
            Ok(previous) => previous,
            Err(PprofError::Body(_) | PprofError::TooLarge(_)) => return None,
            Err(e) => panic!("inflating refused for another reason: {e}"),
        };
        let mut before = decode(&previous)?;
        let totals = to_delta(&mut before, None);
        to_delta(&mut profile, Some(&totals));
    }
    Some((profile, original))
}

fn decode(data: &[u8]) -> Option<Profile> {
    match pprof::decode(data) {
        Ok(profile) => Some(profile),
        Err(PprofError::Decode(_) | PprofError::Invalid(_)) => None,
        Err(e @ (PprofError::Body(_) | PprofError::TooLarge(_))) => {
            panic!("decoding an inflated body: {e}")
        }
    }
}

fn check_folded(text: &str, profile: &Profile) {
    let lines = text.lines().filter(|l| !l.trim_end().is_empty()).count();
    assert_eq!(profile.samples.len(), lines, "samples vs folded lines");
    for sample in &profile.samples {
        assert!(
            sample.stack.len() <= MAX_STACK_DEPTH,
            "stack of {}",
            sample.stack.len()
        );
        assert!(
            sample
                .stack
                .iter()
                .all(|f| (*f as usize) < profile.frames.len())
        );
        assert_eq!(sample.values.len(), profile.sample_types.len());
    }
    if profile
        .frames
        .iter()
        .all(|f| f.function.len() <= MAX_SYMBOL_BYTES)
    {
        let written = pprof::encode(profile).encode_to_vec();
        let again = pprof::decode(&written)
            .unwrap_or_else(|e| panic!("folded stacks written as pprof do not decode: {e}"));
        assert_eq!(
            &again, profile,
            "folded stacks written as pprof read back otherwise"
        );
    }
}
