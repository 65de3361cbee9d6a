//! Profile scraping, Conprof-style: a job with a `profiling` section also fetches the
//! Go `net/http/pprof` endpoints of each target, one task per target and kind, on the
//! profiling interval. A scraped profile is stored under the target's labels (the same
//! `job` and `instance` as its metrics), `__name__` for its kind, and `service_name`
//! (the job, unless a static label sets it). Cumulative kinds (heap and allocs
//! allocations, mutex, block) are stored as the growth since the target's previous
//! scrape of that kind.

use std::time::Duration;

/// One `/debug/pprof` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    Cpu,
    Heap,
    Allocs,
    Goroutine,
    Mutex,
    Block,
}

impl ProfileKind {
    /// What a job scrapes when its `profiling` section names no kinds: `allocs` holds
    /// the same data as `heap`, so it is left out.
    pub const DEFAULT: [ProfileKind; 5] = [
        ProfileKind::Cpu,
        ProfileKind::Heap,
        ProfileKind::Goroutine,
        ProfileKind::Mutex,
        ProfileKind::Block,
    ];

    const ALL: [ProfileKind; 6] = [
        ProfileKind::Cpu,
        ProfileKind::Heap,
        ProfileKind::Allocs,
        ProfileKind::Goroutine,
        ProfileKind::Mutex,
        ProfileKind::Block,
    ];

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                format!("unknown profile kind {text:?}: use cpu, heap, allocs, goroutine, mutex or block")
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "cpu",
            ProfileKind::Heap => "heap",
            ProfileKind::Allocs => "allocs",
            ProfileKind::Goroutine => "goroutine",
            ProfileKind::Mutex => "mutex",
            ProfileKind::Block => "block",
        }
    }

    /// The endpoint under the pprof prefix; a CPU profile records for `cpu_duration`.
    pub fn path(self, cpu_duration: Duration) -> String {
        match self {
            ProfileKind::Cpu => format!("profile?seconds={}", cpu_duration.as_secs().max(1)),
            other => other.as_str().to_owned(),
        }
    }

    /// The profile name (`__name__`) its profiles are stored under, as Pyroscope names
    /// Go's profiles.
    pub fn profile_name(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "process_cpu",
            ProfileKind::Heap | ProfileKind::Allocs => "memory",
            ProfileKind::Goroutine => "goroutines",
            ProfileKind::Mutex => "mutex",
            ProfileKind::Block => "block",
        }
    }
}

/// A job's `profiling` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiling {
    pub kinds: Vec<ProfileKind>,
    pub interval: Duration,
    /// How long each CPU profile records; shorter than the interval.
    pub cpu_duration: Duration,
    /// Where the pprof endpoints are, `/debug/pprof` by default.
    pub path_prefix: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_paths() {
        assert_eq!(ProfileKind::parse("heap"), Ok(ProfileKind::Heap));
        assert!(
            ProfileKind::parse("threads")
                .unwrap_err()
                .contains("use cpu")
        );
        assert_eq!(
            ProfileKind::Cpu.path(Duration::from_secs(14)),
            "profile?seconds=14"
        );
        assert_eq!(ProfileKind::Allocs.path(Duration::from_secs(14)), "allocs");
    }
}
