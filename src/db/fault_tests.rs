//! Storage faults under the write path: object-store PUTs that fail, fail only for
//! chunk metadata, fail after storing it, or hang past the upload timeout; WAL writes
//! that fail; and the WAL's disk bound while the store is down. What must hold in every
//! case: an acknowledged row stays in the WAL and in the head (queryable) until its
//! chunk and that chunk's metadata are durable, ends up in chunks exactly once, and no
//! restart in between loses or repeats it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use arrow::array::AsArray;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::tests::{HOUR, config, logs, rows};
use super::*;
use crate::storage::ChunkStore;

/// An in-memory object store whose PUTs can be made to fail or to hang.
#[derive(Debug, Default)]
pub(super) struct FaultyStore {
    pub(super) inner: object_store::memory::InMemory,
    /// Every PUT fails before storing anything.
    pub(super) fail_puts: AtomicBool,
    /// Metadata PUTs fail before storing anything; data PUTs succeed.
    pub(super) fail_meta_puts: AtomicBool,
    /// Metadata PUTs store the object, then answer with an error.
    pub(super) fail_after_storing_meta: AtomicBool,
    /// Every PUT waits forever.
    pub(super) hang_puts: AtomicBool,
    /// Metadata PUTs wait forever; data PUTs succeed.
    pub(super) hang_meta_puts: AtomicBool,
    pub(super) puts: AtomicUsize,
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultyStore")
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: "injected failure".into(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts.fetch_add(1, SeqCst);
        let meta = location.as_ref().ends_with(".meta");
        if self.hang_puts.load(SeqCst) || (meta && self.hang_meta_puts.load(SeqCst)) {
            std::future::pending::<()>().await;
        }
        if self.fail_puts.load(SeqCst) || (meta && self.fail_meta_puts.load(SeqCst)) {
            return Err(injected());
        }
        let stored = self.inner.put_opts(location, payload, opts).await?;
        if meta && self.fail_after_storing_meta.load(SeqCst) {
            return Err(injected());
        }
        Ok(stored)
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

pub(super) async fn open_on(config: &DbConfig, store: &Arc<FaultyStore>) -> Arc<Db> {
    let metrics = Arc::new(Metrics::default());
    let chunks = ChunkStore::from_store(Arc::clone(store) as _, Arc::clone(&metrics));
    Db::open_with_store(config.clone(), chunks, metrics)
        .await
        .unwrap()
}

/// Closes the store (as a graceful stop does, without flushing) and opens it again.
pub(super) async fn restart(db: Arc<Db>, config: &DbConfig, store: &Arc<FaultyStore>) -> Arc<Db> {
    db.close();
    drop(db);
    open_on(config, store).await
}

pub(super) fn tenant() -> Tenant {
    Tenant::default_tenant()
}

pub(super) fn bodies(batch: &RecordBatch) -> Vec<String> {
    let column = batch.column_by_name("body").unwrap();
    let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
    column
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect()
}

/// The log lines in the head and, read back from the object store, in registered
/// chunks; each list sorted, duplicates kept.
pub(super) async fn stored_lines(db: &Db) -> (Vec<String>, Vec<String>) {
    let selection = db.select(&tenant(), Signal::Logs, &ScanFilter::default());
    let mut head: Vec<String> = selection.head.iter().flat_map(bodies).collect();
    let mut chunks = Vec::new();
    for meta in &selection.chunks {
        let bytes = db
            .store()
            .object_store()
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
            chunks.extend(bodies(&batch.unwrap()));
        }
    }
    head.sort();
    chunks.sort();
    (head, chunks)
}

fn wal_files(config: &DbConfig) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(config.data_dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Waits for the WAL writer's rotation after the last acknowledged write (it rotates
/// after answering) so that segment counts are stable.
async fn wal_files_settle(config: &DbConfig, expected: usize) {
    for _ in 0..200 {
        if wal_files(config).len() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(wal_files(config).len(), expected, "wal segments");
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

/// Failing PUTs: nothing is removed from the WAL or the head, restarts while the store
/// is down bring every row back once, and the first flush after the store recovers
/// writes each row into a chunk exactly once and truncates the WAL.
#[tokio::test]
async fn failing_uploads_keep_rows_in_the_wal_and_head_until_a_flush_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.wal_segment_bytes = 1; // one record per segment
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&cfg, &store).await;
    let lines = ["a", "b", "c", "d"];
    for (i, line) in lines.iter().enumerate() {
        // Two hour windows: two chunks per flush.
        let ts = (i as i64 % 2) * HOUR + i as i64;
        db.write(&tenant(), Signal::Logs, logs("api", &[(ts, line)]))
            .await
            .unwrap();
    }
    wal_files_settle(&cfg, lines.len() + 1).await;
    let segments = wal_files(&cfg);

    store.fail_puts.store(true, SeqCst);
    let report = db.flush(true).await.unwrap();
    assert_eq!((report.chunks, report.failed_windows), (0, 2));
    assert_eq!(report.wal_segments_removed, 0);
    assert_eq!(wal_files(&cfg), segments, "the wal keeps every segment");
    assert_eq!(rows(&db, &ScanFilter::default()), (4, 0), "still queryable");
    assert_eq!(Metrics::get(&db.metrics().chunk_write_errors_total), 2);

    // Restarts while the store is down: every row comes back from the WAL, once.
    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (strings(&lines), vec![]));
    assert_eq!(db.flush(true).await.unwrap().chunks, 0);
    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (strings(&lines), vec![]));
    drop(db); // and a crash
    let db = open_on(&cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (strings(&lines), vec![]));

    store.fail_puts.store(false, SeqCst);
    let report = db.flush(true).await.unwrap();
    assert_eq!((report.chunks, report.failed_windows), (2, 0));
    assert_eq!(report.wal_segments_removed, lines.len());
    assert!(segments.iter().all(|s| !s.exists()), "the wal is truncated");
    assert_eq!(stored_lines(&db).await, (vec![], strings(&lines)));
    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (vec![], strings(&lines)));
    assert_eq!(rows(&db, &ScanFilter::default()), (4, 2));
}

/// A chunk whose data was stored but whose metadata PUT failed is not committed: it is
/// never loaded, and its rows stay in the WAL and the head until a later flush.
#[tokio::test]
async fn a_failed_metadata_upload_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&cfg, &store).await;
    db.write(
        &tenant(),
        Signal::Logs,
        logs("api", &[(10, "a"), (11, "b")]),
    )
    .await
    .unwrap();
    store.fail_meta_puts.store(true, SeqCst);
    let report = db.flush(true).await.unwrap();
    assert_eq!((report.chunks, report.failed_windows), (0, 1));
    let objects: Vec<_> = store
        .inner
        .list(None)
        .map(|o| o.unwrap().location.to_string())
        .collect()
        .await;
    assert!(
        objects.len() == 1 && objects[0].ends_with(".parquet"),
        "only the data object was stored: {objects:?}"
    );
    assert_eq!(stored_lines(&db).await, (strings(&["a", "b"]), vec![]));

    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (strings(&["a", "b"]), vec![]));
    store.fail_meta_puts.store(false, SeqCst);
    assert_eq!(db.flush(true).await.unwrap().chunks, 1);
    assert_eq!(stored_lines(&db).await, (vec![], strings(&["a", "b"])));
    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (vec![], strings(&["a", "b"])));
}

#[tokio::test]
async fn a_metadata_put_that_errors_after_storing_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&cfg, &store).await;
    db.write(&tenant(), Signal::Logs, logs("api", &[(10, "a")]))
        .await
        .unwrap();
    store.fail_after_storing_meta.store(true, SeqCst);
    let report = db.flush(true).await.unwrap();
    assert_eq!((report.chunks, report.failed_windows), (1, 0));
    assert_eq!(rows(&db, &ScanFilter::default()), (1, 1));
    drop(db);
    let db = open_on(&cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (vec![], strings(&["a"])));
}

/// A PUT that never answers (of the data, or of the metadata that commits it) fails
/// after the upload timeout instead of holding up flushing for good; its rows stay in
/// the WAL and the head, and are written once the store answers again.
#[tokio::test]
async fn hung_uploads_time_out_and_keep_rows_in_the_wal() {
    for hang_meta_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.upload_timeout = Duration::from_millis(200);
        let store = Arc::new(FaultyStore::default());
        let db = open_on(&cfg, &store).await;
        db.write(
            &tenant(),
            Signal::Logs,
            logs("api", &[(10, "a"), (11, "b")]),
        )
        .await
        .unwrap();
        let hang = match hang_meta_only {
            false => &store.hang_puts,
            true => &store.hang_meta_puts,
        };
        hang.store(true, SeqCst);
        let started = std::time::Instant::now();
        let report = tokio::time::timeout(Duration::from_secs(20), db.flush(true))
            .await
            .expect("a hung upload held up the flush")
            .unwrap();
        assert!(started.elapsed() >= cfg.upload_timeout);
        assert_eq!((report.chunks, report.failed_windows), (0, 1));
        assert_eq!(stored_lines(&db).await, (strings(&["a", "b"]), vec![]));

        let db = restart(db, &cfg, &store).await;
        assert_eq!(stored_lines(&db).await, (strings(&["a", "b"]), vec![]));
        hang.store(false, SeqCst);
        assert_eq!(db.flush(true).await.unwrap().chunks, 1);
        let db = restart(db, &cfg, &store).await;
        assert_eq!(
            stored_lines(&db).await,
            (vec![], strings(&["a", "b"])),
            "hang_meta_only: {hang_meta_only}"
        );
    }
}

/// A failed WAL write (a full disk) is an error to the writer, never an
/// acknowledgement; after a restart only acknowledged rows are there. (The refused
/// rows are visible in the head until then: delivery is at least once.)
#[tokio::test]
async fn a_failed_wal_write_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&cfg, &store).await;
    db.write(&tenant(), Signal::Logs, logs("api", &[(10, "before")]))
        .await
        .unwrap();
    db.wal
        .inject_write_error(Some(std::io::ErrorKind::StorageFull));
    let refused = db
        .write(&tenant(), Signal::Logs, logs("api", &[(11, "refused")]))
        .await;
    match refused {
        Err(Error::Wal(wal::Error::Write(e))) => {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("a failed wal write was acknowledged: {other:?}"),
    }
    assert_eq!(Metrics::get(&db.metrics().ingested_rows_total), 1);
    db.wal.inject_write_error(None);
    db.write(&tenant(), Signal::Logs, logs("api", &[(12, "after")]))
        .await
        .unwrap();
    drop(db); // a crash
    let db = open_on(&cfg, &store).await;
    assert_eq!(
        stored_lines(&db).await,
        (strings(&["after", "before"]), vec![])
    );
}

/// With the store down, the WAL grows to its disk bound; from there pushes are refused
/// before anything is written (not in the WAL, not in the head), across restarts, until
/// the store recovers and a flush removes segments. Every acknowledged row then ends
/// up in chunks once.
#[tokio::test]
async fn the_wal_disk_bound_refuses_pushes_while_the_store_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.wal_segment_bytes = 1;
    cfg.wal_max_disk_bytes = 16 * 1024;
    let store = Arc::new(FaultyStore::default());
    store.fail_puts.store(true, SeqCst);
    let db = open_on(&cfg, &store).await;
    let padding = "z".repeat(300);
    let line = |i: usize| format!("row-{i:03}-{padding}");
    let mut acknowledged = Vec::new();
    let refused = loop {
        let i = acknowledged.len();
        let batch = logs("api", &[(i as i64, &line(i))]);
        match db.write(&tenant(), Signal::Logs, batch).await {
            Ok(()) => acknowledged.push(line(i)),
            Err(e) => break e,
        }
        assert!(
            acknowledged.len() < 200,
            "the disk bound never refused a push"
        );
        if acknowledged.len() % 4 == 0 {
            assert_eq!(db.flush(true).await.unwrap().chunks, 0);
        }
    };
    assert!(
        matches!(refused, Error::Wal(wal::Error::Full { limit: 16384, .. })),
        "{refused}"
    );
    assert!(acknowledged.len() >= 4);
    assert_eq!(Metrics::get(&db.metrics().wal_disk_full_refusals_total), 1);
    assert_eq!(
        stored_lines(&db).await,
        (acknowledged.clone(), vec![]),
        "the refused push left nothing in the head"
    );
    let more = || logs("api", &[(0, "more")]);
    assert!(db.flush(true).await.unwrap().chunks == 0);
    assert!(db.write(&tenant(), Signal::Logs, more()).await.is_err());

    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (acknowledged.clone(), vec![]));
    assert!(
        matches!(
            db.write(&tenant(), Signal::Logs, more()).await,
            Err(Error::Wal(wal::Error::Full { .. }))
        ),
        "still full after a restart"
    );

    store.fail_puts.store(false, SeqCst);
    assert!(db.flush(true).await.unwrap().wal_segments_removed > 0);
    assert!(db.wal.disk_bytes() < cfg.wal_max_disk_bytes / 2);
    db.write(&tenant(), Signal::Logs, more()).await.unwrap();
    acknowledged.push("more".to_owned());
    acknowledged.sort();
    db.flush(true).await.unwrap();
    let db = restart(db, &cfg, &store).await;
    assert_eq!(stored_lines(&db).await, (vec![], acknowledged));
}

/// From half the disk bound on, the periodic flusher cuts every head, due or not, so a
/// healthy store keeps the WAL well below the bound.
#[tokio::test]
async fn disk_pressure_cuts_heads_before_they_are_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.wal_segment_bytes = 1;
    cfg.wal_max_disk_bytes = 16 * 1024;
    cfg.head_max_age = Duration::from_secs(10); // checked every second
    let store = Arc::new(FaultyStore::default());
    let db = open_on(&cfg, &store).await;
    let padding = "p".repeat(300);
    let mut i = 0;
    while !db.wal.disk_pressure() {
        let line = format!("{i}-{padding}");
        db.write(&tenant(), Signal::Logs, logs("api", &[(i, &line)]))
            .await
            .unwrap();
        i += 1;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let flusher = tokio::spawn(Arc::clone(&db).run_flusher(stopped));
    let mut flushed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if rows(&db, &ScanFilter::default()) == (i as u64, 1) {
            flushed = true;
            break;
        }
    }
    stop.send(true).unwrap();
    flusher.await.unwrap();
    assert!(flushed, "the head was not cut under disk pressure");
    assert!(!db.wal.disk_pressure());
}
