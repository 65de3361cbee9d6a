//! Failpoints: named pauses at the moments where a crash is most dangerous, so that a
//! crash test can `kill -9` the process inside them deterministically. A testing aid,
//! never needed in operation.
//!
//! Every point is off unless `THREADLINE_FAILPOINTS` names it:
//! `THREADLINE_FAILPOINTS=wal.rotate,flush.after_upload=300` pauses at those two points,
//! the first for [`DEFAULT_PAUSE`], the second for 300 ms. A process that reaches a
//! listed point writes `failpoint reached: <name>` to stderr, then sleeps; the test that
//! reads stderr kills it during the sleep. After the sleep the process carries on as if
//! nothing happened, so a point is harmless to a run nobody kills.
//!
//! The variable is read once, on the first point reached; after that an unlisted point
//! costs one load and a scan of an empty list. The list lives in a process-wide static
//! rather than in the application state because points are reached from places that
//! state does not travel to (the WAL's writer thread).
//!
//! The points, in the order data passes them:
//!
//! - [`WAL_ROTATE`]: a WAL segment is full, synced and closed; its successor's file
//!   exists but is still empty, without even its header (also reached once on start,
//!   when the WAL begins its first segment).
//! - [`FLUSH_BEFORE_UPLOAD`]: a chunk is encoded, nothing of it is stored yet.
//! - [`FLUSH_AFTER_UPLOAD`]: the chunk's Parquet object is stored, its metadata (the
//!   commit point) is not.
//! - [`FLUSH_AFTER_META`]: the chunk's metadata is stored too: the chunk is committed,
//!   but not yet registered in the catalog, and its rows are still in the head.
//! - [`FLUSH_BEFORE_TRUNCATE`]: every chunk of a flush is committed and registered; the
//!   WAL segments they cover are not yet removed.
//! - [`COMPACT_AFTER_UPLOAD`]: a merged chunk's Parquet object is stored, its metadata
//!   (the commit point of the compaction) is not.
//! - [`COMPACT_AFTER_COMMIT`]: the merged chunk's metadata is stored; the catalog still
//!   serves the chunks it replaces, which are all still stored.
//! - [`DELETE_AFTER_META`]: a replaced or expired chunk's metadata is deleted, its
//!   Parquet object is not.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable listing the points to pause at.
pub const ENV: &str = "THREADLINE_FAILPOINTS";

/// How long a listed point pauses unless the list gives its own `=<ms>`.
pub const DEFAULT_PAUSE: Duration = Duration::from_millis(1500);

pub const WAL_ROTATE: &str = "wal.rotate";
pub const FLUSH_BEFORE_UPLOAD: &str = "flush.before_upload";
pub const FLUSH_AFTER_UPLOAD: &str = "flush.after_upload";
pub const FLUSH_AFTER_META: &str = "flush.after_meta";
pub const FLUSH_BEFORE_TRUNCATE: &str = "flush.before_truncate";
pub const COMPACT_AFTER_UPLOAD: &str = "compact.after_upload";
pub const COMPACT_AFTER_COMMIT: &str = "compact.after_commit";
pub const DELETE_AFTER_META: &str = "delete.after_meta";

/// Every point, in the order data passes them.
pub const ALL: &[&str] = &[
    WAL_ROTATE,
    FLUSH_BEFORE_UPLOAD,
    FLUSH_AFTER_UPLOAD,
    FLUSH_AFTER_META,
    FLUSH_BEFORE_TRUNCATE,
    COMPACT_AFTER_UPLOAD,
    COMPACT_AFTER_COMMIT,
    DELETE_AFTER_META,
];

static LISTED: OnceLock<Vec<(&'static str, Duration)>> = OnceLock::new();

/// Pauses the calling thread if `name` is listed. For threads that may block (the WAL
/// writer); async code uses [`pause_async`].
pub fn pause(name: &str) {
    if let Some(pause) = reached(name) {
        std::thread::sleep(pause);
    }
}

/// Pauses the calling task if `name` is listed, without blocking its worker thread.
pub async fn pause_async(name: &str) {
    if let Some(pause) = reached(name) {
        tokio::time::sleep(pause).await;
    }
}

/// The pause for `name` if it is listed, after announcing it on stderr.
fn reached(name: &str) -> Option<Duration> {
    let listed = LISTED.get_or_init(|| std::env::var(ENV).map(|v| parse(&v)).unwrap_or_default());
    let (_, pause) = listed.iter().find(|(listed, _)| *listed == name)?;
    eprintln!("failpoint reached: {name}");
    Some(*pause)
}

/// Reads `name[=ms],…`. Unknown names and unreadable pauses are reported on stderr:
/// a typo must not silently turn a crash test into one that never crashes where meant.
fn parse(value: &str) -> Vec<(&'static str, Duration)> {
    let mut listed = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, ms) = match entry.split_once('=') {
            Some((name, ms)) => (name.trim(), Some(ms.trim())),
            None => (entry, None),
        };
        let Some(known) = ALL.iter().copied().find(|known| *known == name) else {
            eprintln!(
                "{ENV}: unknown failpoint {name:?}; known: {}",
                ALL.join(", ")
            );
            continue;
        };
        let pause = match ms {
            None => DEFAULT_PAUSE,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    eprintln!(
                        "{ENV}: pause {ms:?} of {name} is not a whole number of milliseconds; \
                         using {} ms",
                        DEFAULT_PAUSE.as_millis()
                    );
                    DEFAULT_PAUSE
                }
            },
        };
        listed.push((known, pause));
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_pauses() {
        assert_eq!(
            parse(" wal.rotate, flush.after_upload=300 ,,"),
            vec![
                (WAL_ROTATE, DEFAULT_PAUSE),
                (FLUSH_AFTER_UPLOAD, Duration::from_millis(300))
            ]
        );
    }

    #[test]
    fn unknown_names_are_dropped_and_bad_pauses_take_the_default() {
        assert_eq!(
            parse("wal.rotat,flush.before_upload=soon"),
            vec![(FLUSH_BEFORE_UPLOAD, DEFAULT_PAUSE)]
        );
        assert!(parse("").is_empty());
    }
}
