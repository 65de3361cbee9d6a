//! pprof in and out: a received profile (gzipped or not) is checked and resolved into
//! stacks of frames, root first; merged stacks are written back as a gzipped pprof that
//! `go tool pprof` reads.
//!
//! Every index in a received profile (string table, location and function IDs) is
//! checked: a bad one is an error naming it, never a panic.

use std::collections::HashMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use crate::ingest::{BodyError, ContentEncoding, decompress};
use crate::proto::perftools::profiles as pb;

/// Frames kept per stack; deeper stacks keep their leaf-most frames under a
/// `TRUNCATED_FRAME` root, so a runaway recursion cannot blow up one row.
pub const MAX_STACK_DEPTH: usize = 1024;
pub const TRUNCATED_FRAME: &str = "(truncated)";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PprofError {
    #[error("profile is not valid gzip: {0}")]
    Body(String),
    #[error("profile exceeds the size limit: {0}")]
    TooLarge(String),
    #[error("profile is not a valid pprof protobuf: {0}")]
    Decode(String),
    #[error("invalid pprof: {0}")]
    Invalid(String),
}

/// What a value measures (`cpu`/`nanoseconds`, `alloc_space`/`bytes`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueType {
    pub kind: String,
    pub unit: String,
}

impl ValueType {
    pub fn new(kind: &str, unit: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            unit: unit.to_owned(),
        }
    }
}

/// One frame of a stack: the function, its source file and the line in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: i64,
}

/// One pprof sample with its stack resolved to frame indexes, root first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub stack: Vec<u32>,
    /// One value per sample type.
    pub values: Vec<i64>,
    /// The sample's string labels (pprof's `label` with a `str`), in order.
    pub labels: Vec<(String, String)>,
}

/// A profile with every index resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub period_type: ValueType,
    pub period: i64,
    pub sample_types: Vec<ValueType>,
    /// Distinct frames; samples refer to them by index.
    pub frames: Vec<Frame>,
    pub samples: Vec<Sample>,
}

/// Undoes gzip when the bytes start with its magic number (clients send both), keeping
/// the inflated size under `limit`.
pub fn inflate(raw: bytes::Bytes, limit: usize) -> Result<bytes::Bytes, PprofError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        decompress(raw, ContentEncoding::Gzip, limit).map_err(|e| match e {
            BodyError::TooLarge { .. } => PprofError::TooLarge(e.to_string()),
            _ => PprofError::Body(e.to_string()),
        })
    } else if raw.len() > limit {
        Err(PprofError::TooLarge(format!(
            "{} bytes exceed the limit of {limit}",
            raw.len()
        )))
    } else {
        Ok(raw)
    }
}

/// Decodes an uncompressed pprof message.
pub fn decode(data: &[u8]) -> Result<Profile, PprofError> {
    let message = pb::Profile::decode(data).map_err(|e| PprofError::Decode(e.to_string()))?;
    resolve(&message)
}

/// Resolves string, location and function references.
pub fn resolve(message: &pb::Profile) -> Result<Profile, PprofError> {
    let strings = &message.string_table;
    if strings.first().is_some_and(|s| !s.is_empty()) {
        return Err(PprofError::Invalid(
            "string_table[0] must be the empty string".into(),
        ));
    }
    let string = |index: i64, what: &str| -> Result<&str, PprofError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| {
                PprofError::Invalid(format!(
                    "{what} refers to string {index}, but the string table has {} entries",
                    strings.len()
                ))
            })
    };
    let value_type = |v: &pb::ValueType, what: &str| -> Result<ValueType, PprofError> {
        Ok(ValueType::new(
            string(v.r#type, what)?,
            string(v.unit, what)?,
        ))
    };
    let sample_types = message
        .sample_type
        .iter()
        .map(|v| value_type(v, "sample_type"))
        .collect::<Result<Vec<_>, _>>()?;
    let period_type = match &message.period_type {
        Some(v) => value_type(v, "period_type")?,
        None => ValueType::default(),
    };

    if sample_types.len() > MAX_SAMPLE_TYPES {
        return Err(PprofError::Invalid(format!(
            "{} sample types; at most {MAX_SAMPLE_TYPES} are accepted",
            sample_types.len()
        )));
    }
    let mut budget = Budget(MAX_RESOLVED_BYTES);

    // Each function once: its name and file, cut to a sane length.
    let mut functions: HashMap<u64, (&str, &str)> = HashMap::with_capacity(message.function.len());
    for f in &message.function {
        let name = truncate(string(f.name, "function name")?, MAX_SYMBOL_BYTES);
        let file = truncate(string(f.filename, "function filename")?, MAX_SYMBOL_BYTES);
        functions.insert(f.id, (name, file));
    }
    let mut frames = FrameTable::default();
    // Frames by (function ID, line), so each is interned by content only once.
    let mut frame_of_line: HashMap<(u64, i64), u32> = HashMap::new();
    // Each location expands to its frames, innermost (leaf) first, as pprof lists
    // inlined functions.
    let mut locations: HashMap<u64, Vec<u32>> = HashMap::with_capacity(message.location.len());
    for location in &message.location {
        if location.line.len() > MAX_INLINED {
            return Err(PprofError::Invalid(format!(
                "location {} has {} lines; at most {MAX_INLINED} inlined frames are accepted",
                location.id,
                location.line.len()
            )));
        }
        let mut expanded = Vec::with_capacity(location.line.len().max(1));
        for line in &location.line {
            let by_id = (line.function_id, line.line);
            if let Some(&frame) = frame_of_line.get(&by_id) {
                expanded.push(frame);
                continue;
            }
            let &(function, file) = functions.get(&line.function_id).ok_or_else(|| {
                PprofError::Invalid(format!(
                    "location {} refers to function {}, which the profile does not define",
                    location.id, line.function_id
                ))
            })?;
            let frame = frames.intern(function, file, line.line, &mut budget)?;
            frame_of_line.insert(by_id, frame);
            expanded.push(frame);
        }
        if expanded.is_empty() {
            // Not symbolized: the address stands in for the function.
            let address = format!("0x{:x}", location.address);
            expanded.push(frames.intern(&address, "", 0, &mut budget)?);
        }
        budget.take(expanded.len() * 4)?;
        locations.insert(location.id, expanded);
    }

    let mut samples = Vec::with_capacity(message.sample.len());
    for sample in &message.sample {
        if sample.value.len() != sample_types.len() {
            return Err(PprofError::Invalid(format!(
                "a sample has {} values for {} sample types",
                sample.value.len(),
                sample_types.len()
            )));
        }
        // Leaf first, stopping at the depth limit; then root first.
        let mut stack = Vec::with_capacity(sample.location_id.len().min(MAX_STACK_DEPTH));
        'locations: for id in &sample.location_id {
            let expanded = locations.get(id).ok_or_else(|| {
                PprofError::Invalid(format!(
                    "a sample refers to location {id}, which the profile does not define"
                ))
            })?;
            for &frame in expanded {
                if stack.len() == MAX_STACK_DEPTH - 1 {
                    stack.push(frames.intern(TRUNCATED_FRAME, "", 0, &mut budget)?);
                    break 'locations;
                }
                stack.push(frame);
            }
        }
        stack.reverse();
        budget.take(stack.len() * 4 + sample.value.len() * 8)?;
        let mut labels = Vec::new();
        for label in sample.label.iter().filter(|l| l.str != 0) {
            if labels.len() == MAX_SAMPLE_LABELS {
                break;
            }
            let key = truncate(string(label.key, "label key")?, MAX_LABEL_BYTES);
            let value = truncate(string(label.str, "label value")?, MAX_LABEL_BYTES);
            // An empty string is no value wherever the table holds it, as at index 0:
            // otherwise the label would vanish when the profile is written back.
            if value.is_empty() {
                continue;
            }
            budget.take(key.len() + value.len())?;
            labels.push((key.to_owned(), value.to_owned()));
        }
        samples.push(Sample {
            stack,
            values: sample.value.clone(),
            labels,
        });
    }
    Ok(Profile {
        time_nanos: message.time_nanos,
        duration_nanos: message.duration_nanos,
        period_type,
        period: message.period,
        sample_types,
        frames: frames.frames,
        samples,
    })
}

/// What resolving one profile may allocate (frames, stacks, labels), so that a small
/// body that refers to the same long strings many times cannot expand without bound.
pub const MAX_RESOLVED_BYTES: usize = 64 << 20;
/// Function and file names are cut to this length.
pub const MAX_SYMBOL_BYTES: usize = 1024;
pub const MAX_SAMPLE_TYPES: usize = 32;
pub const MAX_INLINED: usize = 256;
/// String labels kept per sample, each key and value cut to this length.
pub const MAX_SAMPLE_LABELS: usize = 32;
pub const MAX_LABEL_BYTES: usize = 2048;

struct Budget(usize);

impl Budget {
    fn take(&mut self, bytes: usize) -> Result<(), PprofError> {
        self.0 = self.0.checked_sub(bytes).ok_or_else(|| {
            PprofError::Invalid(format!(
                "the profile expands to more than {} MiB of stacks and labels",
                MAX_RESOLVED_BYTES >> 20
            ))
        })?;
        Ok(())
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Default)]
struct FrameTable {
    frames: Vec<Frame>,
    index: HashMap<(String, String, i64), u32>,
}

impl FrameTable {
    fn intern(
        &mut self,
        function: &str,
        file: &str,
        line: i64,
        budget: &mut Budget,
    ) -> Result<u32, PprofError> {
        let key = (function.to_owned(), file.to_owned(), line);
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        budget.take(2 * (function.len() + file.len()) + 64)?;
        let i = self.frames.len() as u32;
        self.frames.push(Frame {
            function: key.0.clone(),
            file: key.1.clone(),
            line,
        });
        self.index.insert(key, i);
        Ok(i)
    }
}

/// Writes a resolved profile as pprof: one function per distinct (name, file), one
/// location per distinct frame, strings de-duplicated.
pub fn encode(profile: &Profile) -> pb::Profile {
    let mut strings = StringTable::default();
    let mut functions: HashMap<(&str, &str), u64> = HashMap::new();
    let mut out = pb::Profile {
        time_nanos: profile.time_nanos,
        duration_nanos: profile.duration_nanos,
        period: profile.period,
        ..pb::Profile::default()
    };
    let value_type = |v: &ValueType, strings: &mut StringTable| pb::ValueType {
        r#type: strings.index(&v.kind),
        unit: strings.index(&v.unit),
    };
    out.sample_type = profile
        .sample_types
        .iter()
        .map(|v| value_type(v, &mut strings))
        .collect();
    out.period_type = Some(value_type(&profile.period_type, &mut strings));
    for (i, frame) in profile.frames.iter().enumerate() {
        let next_id = functions.len() as u64 + 1;
        let function_id = *functions
            .entry((&frame.function, &frame.file))
            .or_insert_with(|| {
                out.function.push(pb::Function {
                    id: next_id,
                    name: strings.index(&frame.function),
                    system_name: strings.index(&frame.function),
                    filename: strings.index(&frame.file),
                    start_line: 0,
                });
                next_id
            });
        out.location.push(pb::Location {
            id: i as u64 + 1,
            line: vec![pb::Line {
                function_id,
                line: frame.line,
                column: 0,
            }],
            ..pb::Location::default()
        });
    }
    out.sample = profile
        .samples
        .iter()
        .map(|sample| pb::Sample {
            location_id: sample.stack.iter().rev().map(|&f| f as u64 + 1).collect(),
            value: sample.values.clone(),
            label: sample
                .labels
                .iter()
                .map(|(k, v)| pb::Label {
                    key: strings.index(k),
                    str: strings.index(v),
                    ..pb::Label::default()
                })
                .collect(),
        })
        .collect();
    out.string_table = strings.strings;
    out
}

/// `encode`, serialised and gzipped, as `/debug/pprof` endpoints serve profiles.
pub fn encode_gzip(profile: &Profile) -> Vec<u8> {
    let bytes = encode(profile).encode_to_vec();
    let mut gz = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&bytes);
    gz.finish().unwrap_or_default()
}

struct StringTable {
    strings: Vec<String>,
    index: HashMap<String, i64>,
}

impl Default for StringTable {
    fn default() -> Self {
        Self {
            strings: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }
}

impl StringTable {
    fn index(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fixture(name: &str) -> Profile {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(path).unwrap();
        decode(&inflate(raw.into(), 64 << 20).unwrap()).unwrap()
    }

    #[test]
    fn go_heap_profile_resolves_root_first() {
        let profile = fixture("go_heap.pb.gz");
        let kinds: Vec<&str> = profile
            .sample_types
            .iter()
            .map(|v| v.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space"
            ]
        );
        assert_eq!(profile.period_type, ValueType::new("space", "bytes"));
        assert!(!profile.samples.is_empty());
        // Go stacks start at the runtime's entry points and end in the allocator.
        let roots: std::collections::HashSet<&str> = profile
            .samples
            .iter()
            .map(|s| profile.frames[s.stack[0] as usize].function.as_str())
            .collect();
        assert!(roots.iter().any(|f| f.starts_with("runtime.")), "{roots:?}");
        assert!(profile.frames.iter().all(|f| !f.function.is_empty()));
    }

    #[test]
    fn node_cpu_profile_resolves() {
        let profile = fixture("node_cpu.pb.gz");
        assert!(profile.samples.len() > 1);
        assert!(profile.sample_types.iter().any(|v| v.unit == "nanoseconds"));
    }

    #[test]
    fn bad_references_are_errors() {
        let mut message = pb::Profile {
            string_table: vec![String::new(), "cpu".into()],
            sample_type: vec![pb::ValueType { r#type: 1, unit: 9 }],
            ..pb::Profile::default()
        };
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("string 9"), "{err}");
        message.sample_type[0].unit = 1;
        message.sample.push(pb::Sample {
            location_id: vec![7],
            value: vec![1],
            label: vec![],
        });
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("location 7"), "{err}");
        message.sample[0].location_id.clear();
        message.sample[0].value.push(2);
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("2 values for 1 sample types"), "{err}");
        message.string_table[0] = "x".into();
        assert!(resolve(&message).is_err());
    }

    #[test]
    fn deep_stacks_keep_their_leaves() {
        let frames = MAX_STACK_DEPTH + 10;
        let mut message = pb::Profile {
            string_table: vec![String::new(), "samples".into(), "count".into()],
            sample_type: vec![pb::ValueType { r#type: 1, unit: 2 }],
            ..pb::Profile::default()
        };
        for i in 0..frames as u64 {
            message.string_table.push(format!("f{i}"));
            message.function.push(pb::Function {
                id: i + 1,
                name: i as i64 + 3,
                ..pb::Function::default()
            });
            message.location.push(pb::Location {
                id: i + 1,
                line: vec![pb::Line {
                    function_id: i + 1,
                    ..pb::Line::default()
                }],
                ..pb::Location::default()
            });
        }
        // Leaf first: f0 is the leaf.
        message.sample.push(pb::Sample {
            location_id: (1..=frames as u64).collect(),
            value: vec![1],
            label: vec![],
        });
        let profile = resolve(&message).unwrap();
        let stack = &profile.samples[0].stack;
        assert_eq!(stack.len(), MAX_STACK_DEPTH);
        assert_eq!(profile.frames[stack[0] as usize].function, TRUNCATED_FRAME);
        assert_eq!(
            profile.frames[stack[MAX_STACK_DEPTH - 1] as usize].function,
            "f0"
        );
    }

    #[test]
    fn expansion_is_bounded() {
        // One long name on many distinct lines: small on the wire, large resolved.
        let mut message = pb::Profile {
            string_table: vec![String::new(), "f".repeat(4096)],
            sample_type: vec![pb::ValueType::default()],
            function: vec![pb::Function {
                id: 1,
                name: 1,
                ..pb::Function::default()
            }],
            ..pb::Profile::default()
        };
        for id in 1..=200u64 {
            message.location.push(pb::Location {
                id,
                line: (0..MAX_INLINED as i64)
                    .map(|line| pb::Line {
                        function_id: 1,
                        line: id as i64 * 1000 + line,
                        column: 0,
                    })
                    .collect(),
                ..pb::Location::default()
            });
        }
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("MiB"), "{err}");

        message.location.truncate(1);
        message.location[0].line.push(pb::Line::default());
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("inlined frames"), "{err}");

        message.location.clear();
        message.sample_type = vec![pb::ValueType::default(); MAX_SAMPLE_TYPES + 1];
        let err = resolve(&message).unwrap_err().to_string();
        assert!(err.contains("sample types"), "{err}");
    }

    #[test]
    fn names_and_labels_are_cut() {
        let message = pb::Profile {
            string_table: vec![String::new(), "é".repeat(MAX_SYMBOL_BYTES), "k".into()],
            sample_type: vec![pb::ValueType::default()],
            function: vec![pb::Function {
                id: 1,
                name: 1,
                ..pb::Function::default()
            }],
            location: vec![pb::Location {
                id: 1,
                line: vec![pb::Line {
                    function_id: 1,
                    ..pb::Line::default()
                }],
                ..pb::Location::default()
            }],
            sample: vec![pb::Sample {
                location_id: vec![1],
                value: vec![1],
                label: vec![
                    pb::Label {
                        key: 2,
                        str: 1,
                        ..pb::Label::default()
                    };
                    MAX_SAMPLE_LABELS + 5
                ],
            }],
            ..pb::Profile::default()
        };
        let profile = resolve(&message).unwrap();
        assert_eq!(profile.frames[0].function.len(), MAX_SYMBOL_BYTES);
        assert_eq!(profile.samples[0].labels.len(), MAX_SAMPLE_LABELS);
    }

    #[test]
    fn unsymbolized_locations_name_their_address() {
        let message = pb::Profile {
            string_table: vec![String::new()],
            sample_type: vec![pb::ValueType::default()],
            location: vec![pb::Location {
                id: 1,
                address: 0xabc,
                ..pb::Location::default()
            }],
            sample: vec![pb::Sample {
                location_id: vec![1],
                value: vec![3],
                label: vec![],
            }],
            ..pb::Profile::default()
        };
        let profile = resolve(&message).unwrap();
        assert_eq!(profile.frames[0].function, "0xabc");
    }

    fn profiles() -> impl Strategy<Value = Profile> {
        let frame =
            ("[a-z.]{1,8}", "[a-z/]{0,6}", 0i64..500).prop_map(|(function, file, line)| Frame {
                function,
                file,
                line,
            });
        (
            proptest::collection::hash_set(frame, 1..12),
            1usize..4,
            any::<i64>(),
            0i64..1_000_000,
        )
            .prop_flat_map(|(frames, types, time_nanos, period)| {
                let frames: Vec<Frame> = frames.into_iter().collect();
                let n = frames.len() as u32;
                let sample = (
                    proptest::collection::vec(0..n, 0..8),
                    proptest::collection::vec(any::<i64>(), types),
                    proptest::collection::vec(("[a-z_]{1,6}", "[a-f0-9]{1,8}"), 0..3),
                )
                    .prop_map(|(stack, values, labels)| Sample {
                        stack,
                        values,
                        labels,
                    });
                (
                    Just(frames),
                    proptest::collection::vec(("[a-z]{1,6}", "[a-z]{0,6}"), types),
                    proptest::collection::vec(sample, 0..10),
                    Just(time_nanos),
                    Just(period),
                )
            })
            .prop_map(|(frames, types, samples, time_nanos, period)| Profile {
                time_nanos,
                duration_nanos: 10_000_000_000,
                period_type: ValueType::new("cpu", "nanoseconds"),
                period,
                sample_types: types.iter().map(|(k, u)| ValueType::new(k, u)).collect(),
                frames,
                samples,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(profile in profiles()) {
            let bytes = encode(&profile).encode_to_vec();
            prop_assert_eq!(decode(&bytes).unwrap(), profile.clone());
            let gz = encode_gzip(&profile);
            prop_assert_eq!(decode(&inflate(gz.into(), 1 << 20).unwrap()).unwrap(), profile);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
