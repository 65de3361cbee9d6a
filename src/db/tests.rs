use super::*;
use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
use crate::model::{LabelSet, TraceId};

pub(super) fn config(dir: &std::path::Path) -> DbConfig {
    DbConfig {
        data_dir: dir.to_owned(),
        object_store: String::new(),
        wal_sync: SyncPolicy::Fsync,
        wal_segment_bytes: 1 << 20,
        wal_max_disk_bytes: u64::MAX,
        upload_timeout: crate::storage::store::DEFAULT_UPLOAD_TIMEOUT,
        head_max_bytes: 1 << 30,
        head_max_age: Duration::from_secs(3600),
        compaction: Default::default(),
        retention: Default::default(),
    }
}

pub(super) fn logs(service: &str, lines: &[(i64, &str)]) -> RecordBatch {
    let stream = Stream::new(LabelSet::new(vec![("service_name".into(), service.into())]).unwrap());
    let mut b = LogBatchBuilder::default();
    for (i, (ts, line)) in lines.iter().enumerate() {
        b.append(
            &stream,
            LogFields {
                timestamp: *ts,
                observed_timestamp: None,
                severity_number: None,
                body: line,
                trace_id: TraceId::from_bytes(&[(i as u8).wrapping_add(1); 16]).ok(),
                span_id: None,
                attributes: &[],
                scope_name: None,
            },
        );
    }
    b.finish()
}

async fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(config(dir), Arc::new(Metrics::default()))
        .await
        .unwrap()
}

/// Rows visible to a scan (chunks' and head's), and the chunks among them.
pub(super) fn rows(db: &Db, filter: &ScanFilter) -> (u64, usize) {
    let sel = db.select(&Tenant::default_tenant(), Signal::Logs, filter);
    let head: usize = sel.head.iter().map(|b| b.num_rows()).sum();
    (
        sel.chunks.iter().map(|c| c.rows).sum::<u64>() + head as u64,
        sel.chunks.len(),
    )
}

pub(super) const HOUR: i64 = crate::storage::keys::HOUR_NS;

#[tokio::test]
async fn rows_move_from_head_to_chunks_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    db.write(
        &tenant,
        Signal::Logs,
        logs("api", &[(10, "a"), (HOUR + 5, "b")]),
    )
    .await
    .unwrap();
    db.write(&tenant, Signal::Logs, logs("web", &[(20, "c")]))
        .await
        .unwrap();
    assert_eq!(rows(&db, &ScanFilter::default()), (3, 0));

    let report = db.flush(true).await.unwrap();
    assert_eq!(report.chunks, 3, "two windows of api, one of web");
    assert_eq!(rows(&db, &ScanFilter::default()), (3, 3));

    // The WAL still holds the records (its only segment is active); replay must skip
    // what is in chunks.
    db.close();
    drop(db);
    let db = open(dir.path()).await;
    assert_eq!(rows(&db, &ScanFilter::default()), (3, 3));
}

#[tokio::test]
async fn unflushed_rows_come_back_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    db.write(&tenant, Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    db.flush(true).await.unwrap();
    db.write(&tenant, Signal::Logs, logs("api", &[(11, "b"), (12, "c")]))
        .await
        .unwrap();
    // No close: as after a crash, only what the WAL synced is there.
    drop(db);
    let db = open(dir.path()).await;
    assert_eq!(rows(&db, &ScanFilter::default()), (3, 1));
}

#[tokio::test]
async fn indexes_prune_by_stream_time_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    db.write(&tenant, Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    db.write(
        &tenant,
        Signal::Logs,
        logs("web", &[(HOUR * 3, "b"), (HOUR * 3 + 1, "c")]),
    )
    .await
    .unwrap();
    db.flush(true).await.unwrap();

    let api = LabelSet::new(vec![("service_name".into(), "api".into())])
        .unwrap()
        .stream_id();
    let by_stream = ScanFilter {
        streams: Some([api].into()),
        ..ScanFilter::default()
    };
    assert_eq!(rows(&db, &by_stream), (1, 1));
    let by_time = ScanFilter {
        time: Some((HOUR * 2, HOUR * 4)),
        ..ScanFilter::default()
    };
    assert_eq!(rows(&db, &by_time), (2, 1));
    let second_trace = TraceId::from_bytes(&[2; 16]).unwrap().fingerprint();
    let by_trace = ScanFilter {
        ids: Some(vec![second_trace]),
        ..ScanFilter::default()
    };
    let sel = db.select(&tenant, Signal::Logs, &by_trace);
    assert_eq!(sel.chunks.len(), 1);
    assert_eq!(sel.pruned_chunks, 1);
}

/// A periodic flush once took every partition's head, due or not, and dropped the
/// ones that were not due: acknowledged rows vanished and the WAL was truncated past
/// them.
#[tokio::test]
async fn periodic_flush_keeps_heads_that_are_not_due() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    db.write(&tenant, Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    let report = db.flush(false).await.unwrap();
    assert_eq!(report.chunks, 0);
    assert_eq!(rows(&db, &ScanFilter::default()), (1, 0));
    drop(db);
    let db = open(dir.path()).await;
    assert_eq!(rows(&db, &ScanFilter::default()), (1, 0));
}

#[tokio::test]
async fn heads_are_cut_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let mut cfg = config(dir.path());
    cfg.head_max_age = Duration::from_millis(50);
    let db = Db::open(cfg.clone(), Arc::new(Metrics::default()))
        .await
        .unwrap();
    db.write(&tenant, Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    assert_eq!(db.flush(false).await.unwrap().chunks, 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(db.flush(false).await.unwrap().chunks, 1);
    db.close();
    drop(db);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.head_max_bytes = 1;
    let db = Db::open(cfg, Arc::new(Metrics::default())).await.unwrap();
    db.write(&tenant, Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    assert_eq!(db.flush(false).await.unwrap().chunks, 1);
}

/// Reopening with nothing new to write once let sequence numbers restart at 1; new rows
/// in a partition and hour that already had chunks were then skipped by replay.
#[tokio::test]
async fn rows_written_after_quiet_restarts_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    for line in ["a", "b", "c"] {
        db.write(&tenant, Signal::Logs, logs("api", &[(10, line)]))
            .await
            .unwrap();
    }
    db.flush(true).await.unwrap();
    db.close();
    drop(db);
    for _ in 0..2 {
        let db = open(dir.path()).await;
        db.flush(true).await.unwrap();
        db.close();
    }
    let db = open(dir.path()).await;
    db.write(&tenant, Signal::Logs, logs("api", &[(11, "d")]))
        .await
        .unwrap();
    drop(db); // a crash: "d" is only in the WAL
    let db = open(dir.path()).await;
    assert_eq!(rows(&db, &ScanFilter::default()), (4, 1));
}

#[tokio::test]
async fn head_batches_are_merged_without_losing_or_repeating_rows() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::default_tenant();
    let db = open(dir.path()).await;
    for i in 0..40 {
        db.write(&tenant, Signal::Logs, logs("api", &[(i, "line")]))
            .await
            .unwrap();
    }
    assert_eq!(db.coalesce_heads().unwrap(), 1);
    let selection = db.select(&tenant, Signal::Logs, &ScanFilter::default());
    assert_eq!(selection.head.len(), 1);
    assert_eq!(selection.head[0].num_rows(), 40);
    db.write(&tenant, Signal::Logs, logs("api", &[(41, "line")]))
        .await
        .unwrap();
    assert_eq!(
        db.coalesce_heads().unwrap(),
        0,
        "two batches are not worth merging"
    );
    assert_eq!(rows(&db, &ScanFilter::default()), (41, 0));
    assert_eq!(db.flush(true).await.unwrap().rows, 41);

    // A large batch stays as it is; only the small ones after it are merged.
    let many: Vec<(i64, &str)> = (0..65_536).map(|i| (i, "line")).collect();
    db.write(&tenant, Signal::Logs, logs("api", &many))
        .await
        .unwrap();
    for i in 0..32 {
        db.write(&tenant, Signal::Logs, logs("api", &[(i, "late")]))
            .await
            .unwrap();
    }
    let large = db
        .select(&tenant, Signal::Logs, &ScanFilter::default())
        .head[0]
        .clone();
    assert_eq!(db.coalesce_heads().unwrap(), 1);
    let head = db
        .select(&tenant, Signal::Logs, &ScanFilter::default())
        .head;
    assert_eq!(
        head.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        [65_536, 32]
    );
    assert!(
        head[0]
            .column(0)
            .to_data()
            .ptr_eq(&large.column(0).to_data()),
        "the large batch was copied"
    );
    assert_eq!(rows(&db, &ScanFilter::default()), (41 + 65_536 + 32, 1));
}
