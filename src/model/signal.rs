//! The kinds of telemetry Threadline stores; each is one table per tenant.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Logs,
    Spans,
}

impl Signal {
    pub const ALL: [Signal; 2] = [Signal::Logs, Signal::Spans];

    /// The table name in SQL and the segment name in object keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Spans => "spans",
        }
    }

    /// The column that orders rows in time and places them in a chunk's time window.
    pub fn time_column(self) -> &'static str {
        match self {
            Signal::Logs => "timestamp",
            Signal::Spans => "start_time",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Signal::Logs => 1,
            Signal::Spans => 2,
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
            .ok_or_else(|| format!("unknown signal {s:?}: use logs or spans"))
    }
}
