//! Profiles, the fourth signal: pprof in and out, profile types, cumulative profiles
//! turned into deltas, and merging stacks into one profile, folded stacks or a flame
//! graph.

mod delta;
pub mod merge;
pub mod pprof;

use std::fmt;
use std::str::FromStr;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

pub use delta::{Totals, to_delta};
pub use pprof::{Frame, PprofError, Profile, Sample, ValueType};

/// The label that carries a profile's kind (`process_cpu`, `memory`, …), as in
/// Pyroscope.
pub const PROFILE_NAME_LABEL: &str = "__name__";

/// One kind of value a profile measures, named as Pyroscope and Grafana name it:
/// `name:sample_type:sample_unit:period_type:period_unit`, for example
/// `process_cpu:cpu:nanoseconds:cpu:nanoseconds` or
/// `memory:alloc_space:bytes:space:bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileType {
    pub name: String,
    pub sample: ValueType,
    pub period: ValueType,
}

impl ProfileType {
    pub fn new(name: &str, sample: &ValueType, period: &ValueType) -> Self {
        Self {
            name: name.to_owned(),
            sample: sample.clone(),
            period: period.clone(),
        }
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.name, self.sample.kind, self.sample.unit, self.period.kind, self.period.unit
        )
    }
}

impl FromStr for ProfileType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [name, kind, unit, period_kind, period_unit] = parts[..] else {
            return Err(format!(
                "invalid profile type {s:?}: use name:sample_type:sample_unit:period_type:period_unit, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds"
            ));
        };
        if name.is_empty() {
            return Err(format!("invalid profile type {s:?}: the name is empty"));
        }
        Ok(Self {
            name: name.to_owned(),
            sample: ValueType::new(kind, unit),
            period: ValueType::new(period_kind, period_unit),
        })
    }
}

/// The kind of a profile that arrived without a name, from what it measures.
pub fn infer_name(profile: &Profile) -> &'static str {
    let kinds = || profile.sample_types.iter().map(|t| t.kind.as_str());
    if profile.period_type.kind == "cpu" || kinds().any(|k| k == "cpu") {
        "process_cpu"
    } else if kinds().any(|k| k.starts_with("alloc_") || k.starts_with("inuse_")) {
        "memory"
    } else if kinds().any(|k| k == "goroutine" || k == "goroutines") {
        "goroutines"
    } else if kinds().any(|k| k == "contentions" || k == "delay") {
        // Go's mutex and block profiles measure the same things; only the endpoint
        // they came from tells them apart.
        "mutex"
    } else if kinds().any(|k| k == "wall") {
        "wall"
    } else {
        "profile"
    }
}

/// Whether values of this sample type count up since the process started (Go's
/// allocation, mutex and block profiles) rather than describe a moment.
pub fn is_cumulative(sample_type: &str) -> bool {
    matches!(
        sample_type,
        "alloc_objects" | "alloc_space" | "contentions" | "delay"
    )
}

/// A hash of each frame's function, file and line.
pub fn frame_hashes(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| {
            let mut h = Xxh3::new();
            h.update(f.function.as_bytes());
            h.update(&[0]);
            h.update(f.file.as_bytes());
            h.update(&[0]);
            h.update(&f.line.to_le_bytes());
            h.digest()
        })
        .collect()
}

/// A stack's identity, equal across profiles for the same frames in the same order.
pub fn stack_id(frame_hashes: &[u64], stack: &[u32]) -> u64 {
    let mut bytes = Vec::with_capacity(stack.len() * 8);
    for &f in stack {
        bytes.extend_from_slice(&frame_hashes[f as usize].to_le_bytes());
    }
    xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_type_round_trips() {
        let text = "memory:alloc_space:bytes:space:bytes";
        let t: ProfileType = text.parse().unwrap();
        assert_eq!(t.name, "memory");
        assert_eq!(t.sample, ValueType::new("alloc_space", "bytes"));
        assert_eq!(t.to_string(), text);
        assert!("memory:alloc_space".parse::<ProfileType>().is_err());
        assert!(":a:b:c:d".parse::<ProfileType>().is_err());
    }

    #[test]
    fn stack_ids_depend_on_content_and_order() {
        let frames = vec![
            Frame {
                function: "main".into(),
                file: "main.go".into(),
                line: 3,
            },
            Frame {
                function: "work".into(),
                file: "main.go".into(),
                line: 9,
            },
        ];
        let hashes = frame_hashes(&frames);
        assert_ne!(stack_id(&hashes, &[0, 1]), stack_id(&hashes, &[1, 0]));
        let reordered = vec![frames[1].clone(), frames[0].clone()];
        let other = frame_hashes(&reordered);
        assert_eq!(stack_id(&hashes, &[0, 1]), stack_id(&other, &[1, 0]));
    }
}
