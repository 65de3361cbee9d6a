//! The kinds of telemetry Threadline stores; each is one table per tenant.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Logs,
    Spans,
    Samples,
    Exemplars,
    Profiles,
    ProfileSamples,
}

impl Signal {
    pub const ALL: [Signal; 6] = [
        Signal::Logs,
        Signal::Spans,
        Signal::Samples,
        Signal::Exemplars,
        Signal::Profiles,
        Signal::ProfileSamples,
    ];

    /// The table name in SQL and the segment name in object keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Spans => "spans",
            Signal::Samples => "samples",
            Signal::Exemplars => "exemplars",
            Signal::Profiles => "profiles",
            Signal::ProfileSamples => "profile_samples",
        }
    }

    /// The column that orders rows in time and places them in a chunk's time window.
    pub fn time_column(self) -> &'static str {
        match self {
            Signal::Spans => "start_time",
            Signal::Logs
            | Signal::Samples
            | Signal::Exemplars
            | Signal::Profiles
            | Signal::ProfileSamples => "timestamp",
        }
    }

    /// The label whose value names a stream's partition, and the column that carries
    /// it: the service for logs, spans and profiles, the scrape job for metrics
    /// (Prometheus and OTLP metrics both fill `job`).
    pub fn partition_label(self) -> &'static str {
        match self {
            Signal::Logs | Signal::Spans | Signal::Profiles | Signal::ProfileSamples => {
                "service_name"
            }
            Signal::Samples | Signal::Exemplars => "job",
        }
    }

    /// Columns whose value is a label of the row's stream, with that label's name; a
    /// filter on them is answered by the label index.
    pub fn label_columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Signal::Logs => &[("service_name", "service_name"), ("severity", "severity")],
            Signal::Spans | Signal::Profiles | Signal::ProfileSamples => {
                &[("service_name", "service_name")]
            }
            Signal::Samples | Signal::Exemplars => &[("job", "job"), ("metric", "__name__")],
        }
    }

    /// Whether rows carry a `trace_id` column (and so appear in the trace-ID index).
    pub fn has_trace_id(self) -> bool {
        matches!(
            self,
            Signal::Logs | Signal::Spans | Signal::Exemplars | Signal::ProfileSamples
        )
    }

    pub fn code(self) -> u8 {
        match self {
            Signal::Logs => 1,
            Signal::Spans => 2,
            Signal::Samples => 3,
            Signal::Exemplars => 4,
            Signal::Profiles => 5,
            Signal::ProfileSamples => 6,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|sig| sig.as_str() == s)
            .ok_or_else(|| format!("unknown signal {s:?}: use logs, spans, samples, exemplars, profiles or profile_samples"))
    }
}
