use super::*;
use crate::model::LabelSet;
use crate::model::schema::{LogBatchBuilder, LogFields, Stream};

fn batch(line: &str) -> RecordBatch {
    let stream = Stream::new(LabelSet::new(vec![("service_name".into(), "a".into())]).unwrap());
    let mut b = LogBatchBuilder::default();
    b.append(
        &stream,
        LogFields {
            timestamp: 1,
            observed_timestamp: None,
            severity_number: None,
            body: line,
            trace_id: None,
            span_id: None,
            attributes: &[],
            scope_name: None,
        },
    );
    b.finish()
}

fn config(dir: &Path, segment_bytes: u64) -> WalConfig {
    WalConfig {
        dir: dir.to_owned(),
        sync: SyncPolicy::Fsync,
        segment_bytes,
    }
}

async fn write(wal: &Wal, line: &str) -> u64 {
    let rows = encode_rows(&batch(line)).unwrap();
    let appended = wal
        .append(&Tenant::default_tenant(), Signal::Logs, &rows)
        .unwrap();
    let seq = appended.seq;
    appended.durable().await.unwrap();
    seq
}

fn open(dir: &Path, segment_bytes: u64) -> (Arc<Wal>, Vec<WalRecord>, ReplayReport) {
    Wal::open(config(dir, segment_bytes), 1, Arc::new(Metrics::default())).unwrap()
}

fn lines(records: &[WalRecord]) -> Vec<String> {
    use arrow::array::AsArray;
    records
        .iter()
        .map(|r| {
            r.batch
                .column_by_name("body")
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_owned()
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn replays_in_order_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, records, _) = open(dir.path(), 1 << 20);
    assert!(records.is_empty());
    let seqs = [write(&wal, "a").await, write(&wal, "b").await];
    assert!(seqs[0] < seqs[1]);
    wal.close();
    let (wal, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["a", "b"]);
    assert!(report.torn_tail.is_none() && report.corrupt.is_empty());
    assert!(write(&wal, "c").await > seqs[1]);
    wal.close();
    let (_, records, _) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["a", "b", "c"]);
}

#[tokio::test]
async fn torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    write(&wal, "kept").await;
    write(&wal, "torn").await;
    wal.close();
    let file = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["kept"]);
    assert!(report.torn_tail.is_some());
}

#[tokio::test]
async fn bad_checksum_in_older_segment_skips_only_its_rest() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny segment size puts every record in its own segment.
    let (wal, _, _) = open(dir.path(), 1);
    for line in ["one", "two", "three"] {
        write(&wal, line).await;
    }
    wal.close();
    let files = segment_files(dir.path());
    let middle = files
        .iter()
        .find(|f| fs::metadata(f).unwrap().len() > 8)
        .unwrap()
        .clone();
    let mut data = fs::read(&middle).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&middle, data).unwrap();
    let (_, records, report) = open(dir.path(), 1);
    assert_eq!(lines(&records), ["two", "three"]);
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].2, "checksum mismatch");
}

#[tokio::test]
async fn lying_length_does_not_allocate_or_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    write(&wal, "ok").await;
    wal.close();
    let file = segment_files(dir.path()).pop().unwrap();
    let mut data = fs::read(&file).unwrap();
    data.extend_from_slice(&u32::MAX.to_le_bytes());
    data.extend_from_slice(&[0; 4]);
    fs::write(&file, data).unwrap();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["ok"]);
    assert!(report.torn_tail.is_some());
}

#[tokio::test]
async fn removes_only_segments_fully_below_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1);
    let a = write(&wal, "a").await;
    let b = write(&wal, "b").await;
    assert_eq!(wal.remove_before(a).unwrap(), 0);
    assert_eq!(wal.remove_before(b).unwrap(), 1);
    wal.close();
    let (_, records, _) = open(dir.path(), 1);
    assert_eq!(lines(&records), ["b"]);
}

/// A bad frame with good frames after it, in the newest segment, is corruption: the
/// file is kept whole rather than cut at the fault.
#[tokio::test]
async fn corruption_before_good_frames_is_not_cut_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    write(&wal, "first").await;
    write(&wal, "second").await;
    wal.close();
    let file = segment_files(dir.path()).pop().unwrap();
    let mut data = fs::read(&file).unwrap();
    let len = data.len();
    data[MAGIC.len() + FRAME_HEADER + 12] ^= 0xff; // inside the first record
    fs::write(&file, &data).unwrap();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert!(records.is_empty());
    assert!(report.torn_tail.is_none());
    assert_eq!(report.corrupt.len(), 1);
    // No good record left to read: set aside for inspection, not deleted.
    assert!(!file.exists());
    assert_eq!(
        fs::metadata(file.with_extension("corrupt")).unwrap().len(),
        len as u64
    );
}

/// A crash can leave zeros where the last write should be; that is a torn tail.
#[tokio::test]
async fn zeroed_tail_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    write(&wal, "kept").await;
    wal.close();
    let file = segment_files(dir.path()).pop().unwrap();
    let mut data = fs::read(&file).unwrap();
    data.extend_from_slice(&[0; 4096]);
    fs::write(&file, data).unwrap();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["kept"]);
    assert!(report.torn_tail.is_some() && report.corrupt.is_empty());
}

/// Sequence numbers only grow, even when reopening leaves no record behind and when
/// every segment is gone: the caller's floor (from chunk metadata) still holds.
#[tokio::test]
async fn sequence_numbers_never_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    let a = write(&wal, "a").await;
    wal.close();
    for _ in 0..2 {
        let (wal, _, _) = open(dir.path(), 1 << 20);
        assert!(wal.next_seq() > a);
        wal.remove_before(u64::MAX).unwrap();
        wal.close();
    }
    for file in segment_files(dir.path()) {
        fs::remove_file(file).unwrap();
    }
    let (wal, _, _) = Wal::open(
        config(dir.path(), 1 << 20),
        50,
        Arc::new(Metrics::default()),
    )
    .unwrap();
    assert_eq!(wal.next_seq(), 50);
}

/// A record whose checksum holds but whose rows are not a batch of the signal's
/// schema is reported, never replayed and never a panic.
#[tokio::test]
async fn well_framed_garbage_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(dir.path(), 1 << 20);
    write(&wal, "ok").await;
    let garbage = EncodedRows::new(bytes::Bytes::from_static(b"not arrow at all"));
    let appended = wal
        .append(&Tenant::default_tenant(), Signal::Spans, &garbage)
        .unwrap();
    appended.durable().await.unwrap();
    wal.close();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["ok"]);
    assert_eq!(report.corrupt.len(), 1);
}
