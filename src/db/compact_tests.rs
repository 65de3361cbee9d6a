//! Compaction and retention against the catalog and an object store: every row is in
//! force exactly once before, during and after a merge, across restarts at each step,
//! and replaced or expired chunks leave the store only after their delay.

use arrow::array::AsArray;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use super::fault_tests::{FaultyStore, open_on, restart, stored_lines, tenant};
use super::tests::{HOUR, config};
use super::*;
use crate::compact::{Periods, Progress};
use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
use crate::model::{LabelSet, TraceId};

/// `n` lines of two streams of one service, at `start + i`, each with a trace ID
/// shared by every tenth line.
fn lines(start: i64, n: usize, tag: &str) -> RecordBatch {
    lines_of(["a", "b"], start, n, tag)
}

/// `lines` of two given pods.
fn lines_of(pods: [&str; 2], start: i64, n: usize, tag: &str) -> RecordBatch {
    let streams: Vec<Stream> = pods
        .iter()
        .map(|pod| {
            Stream::new(
                LabelSet::new(vec![
                    ("service_name".into(), "api".into()),
                    ("pod".into(), (*pod).into()),
                ])
                .unwrap(),
            )
        })
        .collect();
    let mut b = LogBatchBuilder::default();
    for i in 0..n {
        let body = format!("{tag}-{i}");
        b.append(
            &streams[i % 2],
            LogFields {
                timestamp: start + i as i64,
                observed_timestamp: None,
                severity_number: None,
                body: &body,
                trace_id: TraceId::from_bytes(&[(i / 10) as u8 + 1; 16]).ok(),
                span_id: None,
                attributes: &[],
                scope_name: None,
            },
        );
    }
    b.finish()
}

/// `pushes` pushes of 50 lines each, every one flushed into its own chunk.
async fn small_chunks(db: &Db, pushes: usize, start: i64) {
    for p in 0..pushes {
        db.write(
            &tenant(),
            Signal::Logs,
            lines(start + p as i64 * 100, 50, &format!("p{p}")),
        )
        .await
        .unwrap();
        db.flush(true).await.unwrap();
    }
}

fn chunk_ids(db: &Db) -> Vec<ChunkId> {
    db.select(&tenant(), Signal::Logs, &ScanFilter::default())
        .chunks
        .iter()
        .map(|c| c.id.clone())
        .collect()
}

async fn object_count(store: &FaultyStore) -> usize {
    store.inner.list(None).count().await
}

fn quiet(_: Progress) {}

fn with_delay(dir: &std::path::Path, delete_delay: Duration) -> DbConfig {
    let mut config = config(dir);
    config.compaction.delete_delay = delete_delay;
    config
}

#[tokio::test]
async fn small_chunks_merge_into_sorted_chunks_holding_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_delay(dir.path(), Duration::from_secs(3600));
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 40, 0).await;
    let before = stored_lines(&db).await;
    assert_eq!(before.1.len(), 2000);
    assert_eq!(chunk_ids(&db).len(), 40);

    let events = std::sync::Mutex::new(Vec::new());
    let report = db
        .compact(i64::MAX, 0, &|p| events.lock().unwrap().push(p))
        .await
        .unwrap();
    // 32 inputs at most per merge: 40 chunks make two merges.
    assert_eq!((report.merges, report.failed_merges), (2, 0));
    assert_eq!((report.chunks_before, report.chunks_after), (40, 2));
    assert_eq!(report.rows_merged, 2000);
    assert_eq!(stored_lines(&db).await, before);
    let events = events.into_inner().unwrap();
    assert!(
        matches!(
            events[0],
            Progress::Planned {
                merges: 2,
                chunks: 40,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::Merging { rows_done, rows, .. } if rows_done == rows))
    );

    // Each merged chunk is sorted by stream, then time, and its statistics are its own.
    for meta in db
        .select(&tenant(), Signal::Logs, &ScanFilter::default())
        .chunks
    {
        assert_eq!(meta.streams.len(), 2);
        assert_eq!(meta.streams.iter().map(|s| s.rows).sum::<u64>(), meta.rows);
        let bytes = store
            .inner
            .get(&meta.key().data_path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let mut keys = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch
                .column_by_name("stream_id")
                .unwrap()
                .as_primitive::<arrow::datatypes::UInt64Type>();
            let times = batch
                .column_by_name("timestamp")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            keys.extend(
                ids.values()
                    .iter()
                    .zip(times.values().iter())
                    .map(|(a, b)| (*a, *b)),
            );
        }
        assert_eq!(keys.len() as u64, meta.rows);
        assert!(
            keys.windows(2).all(|w| w[0] <= w[1]),
            "merged chunk is not sorted"
        );
    }

    // The trace locator of the merged chunks finds a trace without a time range.
    let trace = TraceId::from_bytes(&[3; 16]).unwrap().fingerprint();
    let filter = ScanFilter {
        ids: Some(vec![trace]),
        ..ScanFilter::default()
    };
    assert_eq!(db.select(&tenant(), Signal::Logs, &filter).chunks.len(), 2);

    // The two merged chunks are small too: the next pass merges them.
    let report = db.compact(i64::MAX, 0, &quiet).await.unwrap();
    assert_eq!((report.merges, report.chunks_after), (1, 1));
    let merged = db
        .select(&tenant(), Signal::Logs, &ScanFilter::default())
        .chunks;
    assert_eq!(merged[0].replaces.len(), 2);
    assert_eq!(stored_lines(&db).await, before);
    assert_eq!(Metrics::get(&db.metrics().chunks_retired), 42);
    assert_eq!(
        Metrics::get(&db.metrics().compaction_chunks_merged_total),
        42
    );
}

/// Windows that have not ended before `settled_before` are left alone.
#[tokio::test]
async fn open_windows_are_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 3, 0).await;
    small_chunks(&db, 3, HOUR).await;
    let report = db.compact(HOUR, 0, &quiet).await.unwrap();
    assert_eq!((report.chunks_before, report.chunks_after), (6, 4));
}

/// A query that chose its chunks before a merge reads them after it: the replaced
/// chunks stay stored for the delay, and the rows are the same either way.
#[tokio::test]
async fn a_query_planned_before_a_merge_still_reads_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_delay(dir.path(), Duration::from_secs(3600));
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 5, 0).await;
    let before = db.select(&tenant(), Signal::Logs, &ScanFilter::default());
    db.compact(i64::MAX, 0, &quiet).await.unwrap();
    let mut lines = Vec::new();
    for meta in &before.chunks {
        let bytes = store
            .inner
            .get(&meta.key().data_path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            lines.extend(super::fault_tests::bodies(&batch.unwrap()));
        }
    }
    lines.sort();
    assert_eq!(lines, stored_lines(&db).await.1);
}

/// A crash after the merged chunk's metadata is stored, before anything is deleted:
/// the reopened store serves the merged chunk only, and deletes the old ones later.
#[tokio::test]
async fn a_restart_after_the_commit_serves_the_merged_chunk_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_delay(dir.path(), Duration::from_secs(3600));
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 6, 0).await;
    let before = stored_lines(&db).await;
    db.compact(i64::MAX, 0, &quiet).await.unwrap();
    let objects = object_count(&store).await;
    assert_eq!(
        objects,
        2 * 7,
        "six replaced chunks and the merged one, data and metadata"
    );

    let db = restart(db, &config, &store).await;
    assert_eq!(chunk_ids(&db).len(), 1);
    assert_eq!(stored_lines(&db).await, before);
    assert_eq!(Metrics::get(&db.metrics().chunks_retired), 6);

    // With no delay left, the next pass deletes the six.
    let mut config = config;
    config.compaction.delete_delay = Duration::ZERO;
    let db = restart(db, &config, &store).await;
    let report = db.compact(i64::MAX, 0, &quiet).await.unwrap();
    assert_eq!(report.chunks_deleted, 6);
    assert_eq!(object_count(&store).await, 2);
    let db = restart(db, &config, &store).await;
    assert_eq!(stored_lines(&db).await, before);
}

/// A merge whose commit fails leaves the old chunks in force, now and after a
/// restart; the merged data object without metadata is ignored.
#[tokio::test]
async fn a_merge_that_cannot_commit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 4, 0).await;
    let before = stored_lines(&db).await;
    let ids = chunk_ids(&db);
    store
        .fail_meta_puts
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let report = db.compact(i64::MAX, 0, &quiet).await.unwrap();
    assert_eq!((report.merges, report.failed_merges), (1, 1));
    assert_eq!(chunk_ids(&db), ids);
    assert_eq!(stored_lines(&db).await, before);
    assert_eq!(Metrics::get(&db.metrics().compaction_failures_total), 1);

    store
        .fail_meta_puts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let db = restart(db, &config, &store).await;
    assert_eq!(chunk_ids(&db), ids);
    assert_eq!(stored_lines(&db).await, before);
    // Once the store works again, so does compaction.
    let report = db.compact(i64::MAX, 0, &quiet).await.unwrap();
    assert_eq!((report.failed_merges, report.chunks_after), (0, 1));
    assert_eq!(stored_lines(&db).await, before);
}

/// A deleted chunk's WAL mark lives on in the chunk that replaced it: a restart whose
/// WAL still holds the rows replays none of them.
#[tokio::test]
async fn wal_marks_survive_the_chunks_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_delay(dir.path(), Duration::ZERO);
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 4, 0).await;
    let before = stored_lines(&db).await;
    let report = db.compact(i64::MAX, 0, &quiet).await.unwrap();
    assert_eq!(report.chunks_deleted, 4);
    let db = restart(db, &config, &store).await;
    let (head, chunks) = stored_lines(&db).await;
    assert!(
        head.is_empty(),
        "replayed {} rows already in chunks",
        head.len()
    );
    assert_eq!((head, chunks), before);
}

/// A chunk is deleted only after the chunks it replaces: deleting it first would bring
/// them back into force at the next start.
#[tokio::test]
async fn replaced_chunks_are_deleted_before_their_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_delay(dir.path(), Duration::from_secs(3600));
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 40, 0).await;
    let before = stored_lines(&db).await;
    db.compact(i64::MAX, 0, &quiet).await.unwrap();
    db.compact(i64::MAX, 0, &quiet).await.unwrap();
    // 40 originals and 2 first-round chunks wait; each first-round chunk goes only
    // after the originals it replaces.
    let deleted = db
        .delete_retired(Instant::now() + Duration::from_secs(7200))
        .await;
    assert_eq!(deleted, 42);
    assert_eq!(object_count(&store).await, 2);
    let db = restart(db, &config, &store).await;
    assert_eq!(stored_lines(&db).await, before);
}

#[tokio::test]
async fn retention_expires_whole_chunks_past_their_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_delay(dir.path(), Duration::ZERO);
    config.retention.default = Periods {
        logs: Some(Duration::from_secs(3600)),
        ..Periods::default()
    };
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    let now = 10 * HOUR;
    // The old lines come from two pods that have no newer rows.
    for p in 0..2 {
        let old = lines_of(["x", "y"], now - 3 * HOUR + p * 100, 50, &format!("old{p}"));
        db.write(&tenant(), Signal::Logs, old).await.unwrap();
        db.flush(true).await.unwrap();
    }
    small_chunks(&db, 2, now - HOUR / 2).await;
    let report = db.compact(0, now, &quiet).await.unwrap();
    assert_eq!(report.chunks_expired, 2);
    assert_eq!(report.chunks_deleted, 2);
    let (_, lines) = stored_lines(&db).await;
    assert_eq!(lines.len(), 100);
    assert_eq!(object_count(&store).await, 4);
    assert_eq!(
        Metrics::get(&db.metrics().retention_chunks_expired_total),
        2
    );
    // The WAL still holds the expired rows, whose chunks and WAL marks are gone:
    // replay must not bring them back.
    let db = restart(db, &config, &store).await;
    let (head, chunks) = stored_lines(&db).await;
    assert_eq!((head.len(), chunks.len()), (0, 100));
}

/// A chunk object whose metadata was never written (a flush or merge cut short) is
/// listed as abandoned once it is old enough, and deleted on start; a young one may
/// still be in progress and is left alone.
#[tokio::test]
async fn abandoned_chunk_objects_are_deleted_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&config, &store).await;
    small_chunks(&db, 1, 0).await;
    let committed = chunk_ids(&db);
    let abandoned = object_store::path::Path::from(
        "default/logs/api/1970-01-01/00/000000000001-00ff-00000001.parquet",
    );
    store
        .inner
        .put(&abandoned, b"cut short".to_vec().into())
        .await
        .unwrap();
    let listing = db.store().load_metas(Duration::ZERO).await.unwrap();
    assert_eq!(listing.orphans, vec![abandoned.clone()]);
    assert_eq!(listing.metas.len(), 1);
    let listing = db
        .store()
        .load_metas(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(listing.orphans.is_empty());
    // Too young to be deleted on start.
    let db = restart(db, &config, &store).await;
    assert!(store.inner.head(&abandoned).await.is_ok());
    assert_eq!(chunk_ids(&db), committed);
}

/// One pass at a time: a second one is refused while the first runs.
#[tokio::test]
async fn a_second_pass_is_refused_while_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_on(&config(dir.path()), &Arc::new(FaultyStore::default())).await;
    let running = db.compact_lock.lock().await;
    assert!(db.compacting());
    let refused = db.compact(i64::MAX, 0, &quiet).await;
    assert!(
        matches!(refused, Err(Error::CompactionRunning)),
        "{refused:?}"
    );
    drop(running);
    assert!(!db.compacting());
    assert!(db.compact(i64::MAX, 0, &quiet).await.is_ok());
}

/// A merged chunk keeps each ingester's highest WAL mark among its inputs.
#[test]
fn merged_chunks_keep_each_ingesters_highest_wal_mark() {
    let meta = |marks: &[(&str, u64)]| {
        let mut meta = ChunkMeta::example();
        meta.wal = marks
            .iter()
            .map(|(ingester, through)| crate::storage::WalMark {
                ingester: (*ingester).into(),
                through: *through,
            })
            .collect();
        Arc::new(meta)
    };
    let inputs = [
        meta(&[("aa", 7)]),
        meta(&[("bb", 3)]),
        meta(&[("aa", 9), ("cc", 1)]),
        meta(&[("aa", 8)]),
    ];
    let marks: Vec<(String, u64)> = super::compact::merged_wal_marks(&inputs)
        .into_iter()
        .map(|m| (m.ingester, m.through))
        .collect();
    assert_eq!(
        marks,
        vec![("aa".into(), 9), ("bb".into(), 3), ("cc".into(), 1)]
    );
}
