//! Compaction and retention: the background work that keeps the store to few large,
//! well-sorted chunks and lets old data go.
//!
//! **Compaction** merges the small chunks of one tenant, signal, label partition and
//! hour window (see [`plan`]) into one chunk, re-sorted by stream then time, with its
//! own statistics and trace locator (see [`merge`]). Its metadata lists the chunks it
//! `replaces` and is the commit point: a store opened after it was written serves the
//! new chunk and not the old ones; one opened before serves the old ones, and the new
//! chunk's data object, without metadata, is ignored. In the running process the swap
//! happens under the catalog lock, so a query sees either the old chunks or the new
//! one, never both and never neither.
//!
//! **Retention** takes chunks whose newest row is past their tenant's period for their
//! signal (see [`retention`]) out of the catalog.
//!
//! **Deletion** of replaced and expired chunks waits `delete_delay`, longer than any
//! query may run, so a query that chose a chunk before it was replaced can still read
//! it. Metadata goes first, then data. A chunk is deleted only after the chunks it
//! replaces are gone, so no crash can bring a replaced chunk back into force.

pub mod merge;
pub mod plan;
pub mod retention;

use std::time::Duration;

pub use plan::{Candidate, Merge, PlanConfig, plan};
pub use retention::{Periods, Retention};

/// Merged chunks are packed up to this size unless configured otherwise.
pub const DEFAULT_TARGET_BYTES: u64 = 128 << 20;
/// The largest target size: a merge may hold its inputs' current row groups in memory,
/// which for small inputs is all of them.
pub const MAX_TARGET_BYTES: u64 = 4 << 30;
/// The shortest retention period (other than none): shorter ones are typos that would
/// delete data before anyone looks at it.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// The shortest interval between background passes.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How often the background compactor runs unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// How long a replaced or expired chunk stays readable unless configured otherwise.
pub const DEFAULT_DELETE_DELAY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionConfig {
    /// Whether the server compacts and applies retention in the background.
    pub enabled: bool,
    pub interval: Duration,
    pub target_bytes: u64,
    /// How long replaced and expired chunks stay readable before they are deleted:
    /// longer than the longest query timeout.
    pub delete_delay: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: DEFAULT_INTERVAL,
            target_bytes: DEFAULT_TARGET_BYTES,
            delete_delay: DEFAULT_DELETE_DELAY,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactionReport {
    /// Merges run, and those that failed (their chunks stay as they were).
    pub merges: usize,
    pub failed_merges: usize,
    pub chunks_before: usize,
    pub chunks_after: usize,
    pub chunks_merged: usize,
    pub chunks_written: usize,
    pub rows_merged: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Chunks taken out of the catalog by retention.
    pub chunks_expired: usize,
    /// Replaced or expired chunks deleted from the object store.
    pub chunks_deleted: usize,
}

/// Progress of a pass, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Planned {
        merges: usize,
        chunks: usize,
        bytes: u64,
    },
    Merging {
        merge: usize,
        of: usize,
        rows_done: u64,
        rows: u64,
    },
    Merged {
        merge: usize,
        of: usize,
        chunks: usize,
        bytes_read: u64,
        bytes_written: u64,
    },
    MergeFailed {
        merge: usize,
        of: usize,
        error: String,
    },
    Expired {
        chunks: usize,
    },
    Deleted {
        chunks: usize,
    },
}
