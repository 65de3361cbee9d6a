//! Threadline's own metrics, exposed in Prometheus text format at `/metrics`.
//! Plain atomics: every counter is named once here, so `/metrics` lists them all even
//! before the first event.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($($name:ident: $kind:literal, $help:literal;)*) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// Prometheus text exposition format 0.0.4.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# HELP threadline_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE threadline_{} {}", stringify!($name), $kind);
                    let _ = writeln!(out, "threadline_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
                out
            }
        }
    };
}

metrics! {
    ingested_rows_total: "counter", "Rows acknowledged by push requests.";
    ingested_bytes_total: "counter", "Request body bytes, after decompression, of acknowledged pushes.";
    rejected_records_total: "counter", "Records refused one by one and reported as partial success.";
    limited_requests_total: "counter", "Pushes refused by a tenant's ingest rate or active-stream limit.";
    wal_records_total: "counter", "Records appended to the write-ahead log.";
    wal_bytes_total: "counter", "Bytes appended to the write-ahead log.";
    wal_syncs_total: "counter", "fsync calls on the write-ahead log (one per group commit).";
    wal_write_errors_total: "counter", "Failed write-ahead log writes or syncs.";
    wal_replayed_records_total: "counter", "Records replayed from the write-ahead log at start.";
    wal_corruptions_total: "counter", "Corrupt or torn write-ahead log records found at start.";
    wal_segments_removed_total: "counter", "Write-ahead log segments removed after their rows reached chunks.";
    wal_disk_bytes: "gauge", "Bytes of write-ahead log segments on disk, counting records queued for them.";
    wal_disk_full_refusals_total: "counter", "Pushes and scrapes refused because the write-ahead log reached wal.max_disk_bytes.";
    head_rows: "gauge", "Rows in the in-memory head, not yet in chunks.";
    head_bytes: "gauge", "Approximate memory held by the in-memory head.";
    chunks_written_total: "counter", "Parquet chunks written to the object store.";
    chunk_bytes_written_total: "counter", "Bytes of Parquet chunks written to the object store.";
    chunk_write_errors_total: "counter", "Failed chunk writes (the rows stay in the head and the WAL).";
    chunks: "gauge", "Chunks known to the label and trace-ID indexes.";
    chunks_retired: "gauge", "Chunks replaced by compaction or past retention, waiting for their deletion delay.";
    chunks_deleted_total: "counter", "Replaced or expired chunks deleted from the object store.";
    compaction_runs_total: "counter", "Compaction passes run (background and on demand).";
    compaction_chunks_merged_total: "counter", "Chunks merged into larger ones by compaction.";
    compaction_chunks_written_total: "counter", "Chunks written by compaction.";
    compaction_bytes_read_total: "counter", "Bytes of the chunks compaction merged.";
    compaction_bytes_written_total: "counter", "Bytes of the chunks compaction wrote.";
    compaction_failures_total: "counter", "Merges that failed (their chunks stay as they were).";
    retention_chunks_expired_total: "counter", "Chunks taken out of the store because their rows passed the retention period.";
    object_store_get_requests_total: "counter", "GET and ranged-GET requests made to the object store.";
    object_store_get_bytes_total: "counter", "Bytes read from the object store.";
    query_chunks_selected_total: "counter", "Chunks selected for reading by the indexes, over all queries.";
    query_chunks_pruned_total: "counter", "Chunks skipped by the indexes, over all queries.";
    queries_total: "counter", "Queries run (SQL, label-matcher and trace lookups).";
    query_errors_total: "counter", "Queries that failed.";
    query_cancelled_total: "counter", "Queries stopped because their client went away.";
    query_rejected_total: "counter", "Queries refused because every concurrency slot stayed busy.";
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
