//! Received profiles into rows: one `profiles` row per profile and one
//! `profile_samples` row per sample and sample type with a positive value. Sample
//! labels that name a trace, a span or a span's name (as tracing integrations such as
//! Pyroscope's OpenTelemetry one set them) become the `trace_id`, `span_id` and
//! `span_name` columns.

use arrow::array::RecordBatch;

use super::label_name_for_attribute;
use crate::model::schema::{
    ProfileBatchBuilder, ProfileFields, ProfileSampleBatchBuilder, ProfileSampleFields, Stream,
};
use crate::model::{LabelSet, Signal, SpanId, TraceId};
use crate::profile::{
    PROFILE_NAME_LABEL, Profile, ProfileType, frame_hashes, infer_name, stack_id,
};

/// Frames (over all sample rows) one request may expand to; a profile's stack is
/// written once per sample type, so this bounds the rows a request can build.
pub const MAX_FRAMES_PER_REQUEST: usize = 4_000_000;
/// Bytes of rows (names, labels, original profiles) one request may build.
pub const MAX_ROW_BYTES_PER_REQUEST: usize = 512 << 20;

const TRACE_ID_LABELS: &[&str] = &["trace_id", "traceID", "trace.id"];
const SPAN_ID_LABELS: &[&str] = &[
    "span_id",
    "spanID",
    "span.id",
    "pyroscope.profile.id",
    "profile_id",
];
const SPAN_NAME_LABELS: &[&str] = &["span_name", "span.name", "pyroscope.span.name"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileRowError {
    #[error("{0}")]
    Labels(String),
    #[error(
        "the request expands to more than {MAX_FRAMES_PER_REQUEST} stack frames or {} MiB over all sample rows; send fewer or smaller profiles per request",
        MAX_ROW_BYTES_PER_REQUEST >> 20
    )]
    TooLarge,
}

/// One received profile and what came with it.
pub struct Received<'a> {
    /// The series labels. `__name__` is inferred from the profile when missing;
    /// other names of the form `__x__` are the sender's bookkeeping (Pyroscope's
    /// `__delta__`, `__session_id__`) and dropped; characters outside
    /// `[a-zA-Z0-9_]` in names become `_`.
    pub labels: Vec<(String, String)>,
    /// The resolved profile (with cumulative values already turned into growth,
    /// where the caller knew the previous profile).
    pub profile: &'a Profile,
    /// The profile as received, uncompressed.
    pub original: &'a [u8],
    /// Time and duration to use when the profile does not say.
    pub default_time: i64,
    pub default_duration: i64,
    pub id: Option<&'a str>,
}

#[derive(Default)]
pub struct ProfileRows {
    profiles: ProfileBatchBuilder,
    samples: ProfileSampleBatchBuilder,
    bytes: usize,
}

/// A sample's labels sorted into the columns they fill.
#[derive(Default)]
struct SampleLabels<'a> {
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    span_name: Option<&'a str>,
    other: Vec<(String, String)>,
}

impl<'a> SampleLabels<'a> {
    fn sort(labels: &'a [(String, String)]) -> Self {
        let mut out = Self::default();
        for (key, value) in labels {
            let key = key.as_str();
            match key {
                k if TRACE_ID_LABELS.contains(&k) && out.trace_id.is_none() => {
                    out.trace_id = TraceId::from_hex(value).ok();
                    if out.trace_id.is_some() {
                        continue;
                    }
                }
                k if SPAN_ID_LABELS.contains(&k) && out.span_id.is_none() => {
                    out.span_id = SpanId::from_hex(value).ok();
                    if out.span_id.is_some() {
                        continue;
                    }
                }
                k if SPAN_NAME_LABELS.contains(&k) && out.span_name.is_none() => {
                    out.span_name = Some(value.as_str());
                    continue;
                }
                _ => {}
            }
            out.other.push((key.to_owned(), value.clone()));
        }
        out
    }

    fn bytes(&self) -> usize {
        self.span_name.map_or(0, str::len)
            + self
                .other
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 56
    }
}

/// A stream's labels, with `__name__` valid for a profile type.
fn profile_labels(
    labels: Vec<(String, String)>,
    profile: &Profile,
) -> Result<LabelSet, ProfileRowError> {
    let mut labels: Vec<(String, String)> = labels
        .into_iter()
        .filter(|(k, _)| k == PROFILE_NAME_LABEL || !(k.starts_with("__") && k.ends_with("__")))
        .map(|(k, v)| {
            // Profilers name labels as OpenTelemetry attributes (`otel.scope.name`);
            // they are stored the way OTLP resource attributes are.
            let k = if k == PROFILE_NAME_LABEL {
                k
            } else {
                label_name_for_attribute(&k)
            };
            (k, v)
        })
        .collect();
    match labels.iter().find(|(k, _)| k == PROFILE_NAME_LABEL) {
        None => labels.push((PROFILE_NAME_LABEL.into(), infer_name(profile).into())),
        Some((_, name)) if name.is_empty() || name.contains(':') => {
            return Err(ProfileRowError::Labels(format!(
                "invalid profile name __name__={name:?}: it must be non-empty and without ':'"
            )));
        }
        Some(_) => {}
    }
    LabelSet::new(labels).map_err(|e| ProfileRowError::Labels(e.to_string()))
}

impl ProfileRows {
    pub fn add(&mut self, received: Received<'_>) -> Result<(), ProfileRowError> {
        let profile = received.profile;
        let labels = profile_labels(received.labels, profile)?;
        let name = labels
            .get(PROFILE_NAME_LABEL)
            .unwrap_or_default()
            .to_owned();
        let stream = Stream::new(labels);
        let label_bytes: usize = stream.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        let timestamp = if profile.time_nanos > 0 {
            profile.time_nanos
        } else {
            received.default_time
        };
        let duration_ns = if profile.duration_nanos > 0 {
            profile.duration_nanos
        } else {
            received.default_duration
        };
        let types: Vec<String> = profile
            .sample_types
            .iter()
            .map(|t| ProfileType::new(&name, t, &profile.period_type).to_string())
            .collect();
        self.take(received.original.len() + label_bytes)?;
        self.profiles.append(
            &stream,
            ProfileFields {
                timestamp,
                duration_ns,
                profile_types: &types,
                period: profile.period,
                sample_count: profile.samples.len() as i64,
                profile_id: received.id,
                pprof: received.original,
            },
        );

        let hashes = frame_hashes(&profile.frames);
        let frame_bytes: Vec<usize> = profile
            .frames
            .iter()
            .map(|f| f.function.len() + f.file.len() + 24)
            .collect();
        for sample in &profile.samples {
            let rows = sample.values.iter().filter(|&&v| v > 0).count();
            if rows == 0 {
                continue;
            }
            let labels = SampleLabels::sort(&sample.labels);
            let stack_bytes: usize = sample.stack.iter().map(|&f| frame_bytes[f as usize]).sum();
            if self.samples.frame_count() + sample.stack.len() * rows > MAX_FRAMES_PER_REQUEST {
                return Err(ProfileRowError::TooLarge);
            }
            self.take(rows * (stack_bytes + label_bytes + labels.bytes() + types[0].len()))?;
            let id = stack_id(&hashes, &sample.stack);
            for (t, &value) in sample.values.iter().enumerate() {
                if value <= 0 {
                    continue;
                }
                self.samples.append(
                    &stream,
                    ProfileSampleFields {
                        timestamp,
                        profile_type: &types[t],
                        value,
                        stack_id: id,
                        frames: &profile.frames,
                        stack: &sample.stack,
                        trace_id: labels.trace_id,
                        span_id: labels.span_id,
                        span_name: labels.span_name,
                        labels: &labels.other,
                    },
                );
            }
        }
        Ok(())
    }

    fn take(&mut self, bytes: usize) -> Result<(), ProfileRowError> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > MAX_ROW_BYTES_PER_REQUEST {
            return Err(ProfileRowError::TooLarge);
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<(Signal, RecordBatch)> {
        let mut out = Vec::with_capacity(2);
        if !self.profiles.is_empty() {
            out.push((Signal::Profiles, self.profiles.finish()));
        }
        if !self.samples.is_empty() {
            out.push((Signal::ProfileSamples, self.samples.finish()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, ListArray};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::profile::{Frame, Sample, ValueType};

    fn profile() -> Profile {
        Profile {
            time_nanos: 1_000,
            duration_nanos: 10,
            period_type: ValueType::new("cpu", "nanoseconds"),
            period: 10_000_000,
            sample_types: vec![
                ValueType::new("samples", "count"),
                ValueType::new("cpu", "nanoseconds"),
            ],
            frames: ["main", "checkout", "hash"]
                .iter()
                .enumerate()
                .map(|(i, f)| Frame {
                    function: (*f).into(),
                    file: "app.go".into(),
                    line: i as i64 + 1,
                })
                .collect(),
            samples: vec![
                Sample {
                    stack: vec![0, 1, 2],
                    values: vec![3, 30_000_000],
                    labels: vec![
                        ("span_id".into(), "0102030405060708".into()),
                        ("span_name".into(), "checkout".into()),
                        ("handler".into(), "/pay".into()),
                    ],
                },
                Sample {
                    stack: vec![0],
                    values: vec![0, 0],
                    labels: vec![],
                },
            ],
        }
    }

    #[test]
    fn one_row_per_sample_and_type() {
        let p = profile();
        let mut rows = ProfileRows::default();
        rows.add(Received {
            labels: vec![("service_name".into(), "shop".into())],
            profile: &p,
            original: b"raw",
            default_time: 5,
            default_duration: 5,
            id: Some("abc"),
        })
        .unwrap();
        let batches = rows.finish();
        assert_eq!(batches.len(), 2);
        let (_, profiles) = &batches[0];
        assert_eq!(profiles.num_rows(), 1);
        let types = profiles.column_by_name("profile_types").unwrap();
        let types = types.as_any().downcast_ref::<ListArray>().unwrap().value(0);
        let types: Vec<&str> = types.as_string::<i32>().iter().flatten().collect();
        assert_eq!(
            types,
            [
                "process_cpu:samples:count:cpu:nanoseconds",
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
            ]
        );
        let (_, samples) = &batches[1];
        // The all-zero sample is skipped.
        assert_eq!(samples.num_rows(), 2);
        let column = |name: &str| samples.column_by_name(name).unwrap().clone();
        assert_eq!(
            column("span_id").as_string::<i32>().value(0),
            "0102030405060708"
        );
        assert_eq!(column("span_name").as_string::<i32>().value(1), "checkout");
        assert!(column("trace_id").is_null(0));
        let values = column("value");
        assert_eq!(
            values.as_primitive::<Int64Type>().values(),
            &[3, 30_000_000]
        );
        let functions = column("functions");
        let functions = functions.as_list::<i32>().value(0);
        let functions: Vec<&str> = functions.as_string::<i32>().iter().flatten().collect();
        assert_eq!(functions, ["main", "checkout", "hash"]);
        let labels = column("sample_labels");
        assert_eq!(arrow::array::Array::len(&labels.as_map().value(0)), 1);
    }

    #[test]
    fn frames_are_bounded_per_request() {
        let mut p = profile();
        let deep: Vec<u32> = (0..1000).map(|i| i % 3).collect();
        p.samples = vec![
            Sample {
                stack: deep,
                values: vec![1, 1],
                labels: vec![],
            };
            MAX_FRAMES_PER_REQUEST / 2000 + 1
        ];
        let mut rows = ProfileRows::default();
        let err = rows.add(Received {
            labels: vec![],
            profile: &p,
            original: b"",
            default_time: 0,
            default_duration: 0,
            id: None,
        });
        assert_eq!(err, Err(ProfileRowError::TooLarge));
    }
}
