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
        max_disk_bytes: u64::MAX,
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

/// Log lines written while `f` runs on this thread (replay logs from the caller's).
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&lock(&captured.0)).into_owned();
    (out, text)
}

/// Records per segment in the corruption fixture; each is about 1 KiB, so a segment
/// spans several 4 KiB pages.
const RECORDS: usize = 12;
const PAGE: usize = 4096;
const OLDEST: usize = 0;
const MIDDLE: usize = 1;
const NEWEST: usize = 2;

fn fixture_line(segment: usize, record: usize) -> String {
    format!("s{segment}-r{record}-{}", "x".repeat(800))
}

/// One segment of the fixture: its file, and where each of its frames starts and ends.
struct FixtureSegment {
    path: PathBuf,
    frames: Vec<(usize, usize)>,
    len: usize,
}

/// Three segments of `RECORDS` records each, written and closed the ordinary way.
async fn fixture(dir: &Path) -> Vec<FixtureSegment> {
    for segment in 0..3 {
        let (wal, _, _) = open(dir, 1 << 20);
        for record in 0..RECORDS {
            write(&wal, &fixture_line(segment, record)).await;
        }
        wal.close();
    }
    let segments: Vec<_> = segment_files(dir)
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).unwrap();
            let mut frames = Vec::new();
            let mut at = MAGIC.len();
            while at < data.len() {
                let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
                frames.push((at, at + FRAME_HEADER + len));
                at += FRAME_HEADER + len;
            }
            assert_eq!(frames.len(), RECORDS);
            assert!(data.len() > 3 * PAGE, "a segment spans several pages");
            FixtureSegment {
                path,
                frames,
                len: data.len(),
            }
        })
        .collect();
    assert_eq!(segments.len(), 3);
    segments
}

/// Where a case damaged its segment: replay must keep every record before this.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The segment header: no record of the segment is readable.
    Header,
    /// The frame with this index.
    Frame(usize),
    /// Just after the last frame.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Cut at the fault, reported as a torn tail.
    Torn,
    /// Reported as corruption (reason containing this); the rest of the segment is
    /// skipped and the file is left as it is.
    Corrupt(&'static str),
    /// Reported as corruption (reason containing this) and, having no readable record,
    /// renamed `*.corrupt`.
    SetAside(&'static str),
}

type Damage = fn(&mut Vec<u8>, &[(usize, usize)]) -> Fault;

/// The index of the frame holding byte `at`.
fn frame_holding(frames: &[(usize, usize)], at: usize) -> usize {
    frames.iter().position(|(_, end)| *end > at).unwrap()
}

/// The start of the page-aligned page in the middle of a segment.
fn middle_page(data: &[u8]) -> usize {
    data.len() / 2 / PAGE * PAGE
}

fn set_length(data: &mut [u8], frame_start: usize, len: u32) {
    data[frame_start..frame_start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Every kind of damage, in an older and in the newest segment. The policy: a bad
/// record in the newest segment with nothing intact after it is a torn write, cut off;
/// any other bad record is corruption, and it and the rest of its segment are skipped
/// (the file is kept, or set aside as `*.corrupt` when no record of it is readable);
/// every other segment is replayed whole. Each case is reported once, in the report,
/// the log and `wal_corruptions_total`, and never panics.
#[tokio::test]
async fn corruption_matrix() {
    let cases: &[(&str, usize, Damage, Outcome)] = &[
        (
            "torn last record, cut in its body",
            NEWEST,
            |d, f| {
                d.truncate(f[RECORDS - 1].0 + FRAME_HEADER + 5);
                Fault::Frame(RECORDS - 1)
            },
            Outcome::Torn,
        ),
        (
            "torn last record, cut in its header",
            NEWEST,
            |d, f| {
                d.truncate(f[RECORDS - 1].0 + 3);
                Fault::Frame(RECORDS - 1)
            },
            Outcome::Torn,
        ),
        (
            "torn last record, failing its checksum",
            NEWEST,
            |d, _| {
                let last = d.len() - 1;
                d[last] ^= 0xff;
                Fault::Frame(RECORDS - 1)
            },
            Outcome::Torn,
        ),
        (
            "a lying length in a header at the very end",
            NEWEST,
            |d, _| {
                d.extend_from_slice(&u32::MAX.to_le_bytes());
                d.extend_from_slice(&[0; 4]);
                Fault::End
            },
            Outcome::Torn,
        ),
        (
            "bad segment header",
            MIDDLE,
            |d, _| {
                d[..MAGIC.len()].copy_from_slice(b"NOTAWAL!");
                Fault::Header
            },
            Outcome::SetAside("bad segment header"),
        ),
        (
            "bad segment header",
            NEWEST,
            |d, _| {
                d[..MAGIC.len()].copy_from_slice(b"NOTAWAL!");
                Fault::Header
            },
            Outcome::SetAside("bad segment header"),
        ),
        (
            "zeroed segment header and nothing else (a crash creating it)",
            NEWEST,
            |d, _| {
                *d = vec![0; MAGIC.len()];
                Fault::Header
            },
            Outcome::Torn,
        ),
        (
            "bad record header (its checksum field)",
            MIDDLE,
            |d, f| {
                d[f[3].0 + 5] ^= 0x10;
                Fault::Frame(3)
            },
            Outcome::Corrupt("checksum mismatch"),
        ),
        (
            "bad record header (its checksum field)",
            NEWEST,
            |d, f| {
                d[f[3].0 + 5] ^= 0x10;
                Fault::Frame(3)
            },
            Outcome::Corrupt("checksum mismatch"),
        ),
        (
            "bad first record",
            NEWEST,
            |d, f| {
                d[f[0].0 + FRAME_HEADER + 12] ^= 0xff;
                Fault::Frame(0)
            },
            Outcome::SetAside("checksum mismatch"),
        ),
        (
            "lying length, past the end of the segment",
            OLDEST,
            |d, f| {
                let len = d.len() as u32 * 2;
                set_length(d, f[3].0, len);
                Fault::Frame(3)
            },
            Outcome::Corrupt("runs past the end"),
        ),
        (
            // Once cut as a torn tail, with the intact records after it.
            "lying length, past the end of the segment",
            NEWEST,
            |d, f| {
                let len = d.len() as u32 * 2;
                set_length(d, f[3].0, len);
                Fault::Frame(3)
            },
            Outcome::Corrupt("runs past the end"),
        ),
        (
            "lying length, past any record's bound",
            NEWEST,
            |d, f| {
                set_length(d, f[3].0, u32::MAX);
                Fault::Frame(3)
            },
            Outcome::Corrupt("exceeds"),
        ),
        (
            "lying length, shorter than the record",
            NEWEST,
            |d, f| {
                let (start, end) = f[3];
                set_length(d, start, (end - start - FRAME_HEADER - 100) as u32);
                Fault::Frame(3)
            },
            Outcome::Corrupt("checksum mismatch"),
        ),
        (
            "bad checksum (a flipped byte in the rows)",
            OLDEST,
            |d, f| {
                d[f[3].1 - 1] ^= 0xff;
                Fault::Frame(3)
            },
            Outcome::Corrupt("checksum mismatch"),
        ),
        (
            "bad checksum (a flipped byte in the rows)",
            NEWEST,
            |d, f| {
                d[f[3].1 - 1] ^= 0xff;
                Fault::Frame(3)
            },
            Outcome::Corrupt("checksum mismatch"),
        ),
        (
            "zeroed page in the middle",
            MIDDLE,
            |d, f| {
                let from = middle_page(d);
                d[from..from + PAGE].fill(0);
                Fault::Frame(frame_holding(f, from))
            },
            Outcome::Corrupt(""),
        ),
        (
            "zeroed page in the middle",
            NEWEST,
            |d, f| {
                let from = middle_page(d);
                d[from..from + PAGE].fill(0);
                Fault::Frame(frame_holding(f, from))
            },
            Outcome::Corrupt(""),
        ),
        (
            "zeroed last page",
            MIDDLE,
            |d, f| {
                let from = d.len() - PAGE;
                d[from..].fill(0);
                Fault::Frame(frame_holding(f, from))
            },
            Outcome::Corrupt(""),
        ),
        (
            // Once reported as corruption: several records were left to the zeros.
            "zeroed last page",
            NEWEST,
            |d, f| {
                let from = d.len() - PAGE;
                d[from..].fill(0);
                Fault::Frame(frame_holding(f, from))
            },
            Outcome::Torn,
        ),
        (
            "zeroed page after the last record",
            MIDDLE,
            |d, _| {
                d.extend_from_slice(&[0; PAGE]);
                Fault::End
            },
            Outcome::Corrupt("below the minimum"),
        ),
        (
            "zeroed page after the last record",
            NEWEST,
            |d, _| {
                d.extend_from_slice(&[0; PAGE]);
                Fault::End
            },
            Outcome::Torn,
        ),
        (
            "segment truncated mid-record",
            OLDEST,
            |d, f| {
                let (start, end) = f[5];
                d.truncate((start + end) / 2);
                Fault::Frame(5)
            },
            Outcome::Corrupt("runs past the end"),
        ),
        (
            "segment truncated mid-record",
            NEWEST,
            |d, f| {
                let (start, end) = f[5];
                d.truncate((start + end) / 2);
                Fault::Frame(5)
            },
            Outcome::Torn,
        ),
        (
            "a corrupt segment in the middle of several (garbage after its header)",
            MIDDLE,
            |d, _| {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                for b in &mut d[MAGIC.len()..] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                Fault::Frame(0)
            },
            Outcome::SetAside(""),
        ),
    ];
    for &(name, damaged, damage, outcome) in cases {
        let which = if damaged == NEWEST { "newest" } else { "older" };
        let case = format!("{name} ({which} segment)");
        let dir = tempfile::tempdir().unwrap();
        let segments = fixture(dir.path()).await;
        let target = &segments[damaged];
        let mut data = fs::read(&target.path).unwrap();
        let fault = damage(&mut data, &target.frames);
        fs::write(&target.path, &data).unwrap();
        let (kept, offset) = match fault {
            Fault::Header => (0, 0),
            Fault::Frame(i) => (i, target.frames[i].0 as u64),
            Fault::End => (RECORDS, target.len as u64),
        };
        let expected: Vec<String> = (0..3)
            .flat_map(|s| {
                let n = if s == damaged { kept } else { RECORDS };
                (0..n).map(move |r| fixture_line(s, r))
            })
            .collect();

        let metrics = Arc::new(Metrics::default());
        let config = config(dir.path(), 1 << 20);
        let ((wal, records, report), log) =
            logged(|| Wal::open(config.clone(), 1, Arc::clone(&metrics)).unwrap());
        assert_eq!(lines(&records), expected, "{case}: records replayed");
        assert_eq!(
            Metrics::get(&metrics.wal_corruptions_total),
            1,
            "{case}: counted once"
        );
        let file_name = target.path.file_name().unwrap().to_str().unwrap();
        assert!(log.contains(file_name), "{case}: log names the file: {log}");
        let aside = target.path.with_extension("corrupt");
        match outcome {
            Outcome::Torn => {
                assert_eq!(
                    report.torn_tail,
                    Some((target.path.clone(), offset)),
                    "{case}"
                );
                assert!(report.corrupt.is_empty(), "{case}: {:?}", report.corrupt);
                assert!(log.contains("cutting torn tail"), "{case}: {log}");
                if kept == 0 {
                    assert!(!target.path.exists(), "{case}: an empty segment is removed");
                } else {
                    assert_eq!(fs::metadata(&target.path).unwrap().len(), offset, "{case}");
                }
            }
            Outcome::Corrupt(reason) | Outcome::SetAside(reason) => {
                assert!(report.torn_tail.is_none(), "{case}: {:?}", report.torn_tail);
                assert_eq!(report.corrupt.len(), 1, "{case}: {:?}", report.corrupt);
                let (path, at, why) = &report.corrupt[0];
                assert_eq!((path, *at), (&target.path, offset), "{case}");
                assert!(why.contains(reason), "{case}: reason {why:?}");
                assert!(log.contains("corrupt record"), "{case}: {log}");
                assert!(log.contains(why.as_str()), "{case}: log gives the reason");
                let kept_as = if matches!(outcome, Outcome::SetAside(_)) {
                    assert_eq!(
                        kept, 0,
                        "{case}: only a segment with no record is set aside"
                    );
                    assert_eq!(report.set_aside, std::slice::from_ref(&aside), "{case}");
                    assert!(log.contains("set aside"), "{case}: {log}");
                    assert!(!target.path.exists(), "{case}");
                    &aside
                } else {
                    assert!(kept > 0, "{case}: records before the fault");
                    assert!(report.set_aside.is_empty(), "{case}");
                    &target.path
                };
                assert_eq!(fs::read(kept_as).unwrap(), data, "{case}: left as it was");
            }
        }

        // Writing goes on with sequence numbers above every record replayed, and a
        // second replay finds what the first left: a cut tail or a set-aside segment
        // is not reported again; corruption left in place is.
        let max_seq = records.iter().map(|r| r.seq).max().unwrap_or(0);
        assert!(write(&wal, "after").await > max_seq, "{case}");
        wal.close();
        let metrics = Arc::new(Metrics::default());
        let (_, records, report) = Wal::open(config, 1, Arc::clone(&metrics)).unwrap();
        let mut expected = expected;
        expected.push("after".to_owned());
        assert_eq!(lines(&records), expected, "{case}: second replay");
        assert!(report.torn_tail.is_none(), "{case}");
        let again = usize::from(matches!(outcome, Outcome::Corrupt(_)));
        assert_eq!(report.corrupt.len(), again, "{case}: second replay");
        assert_eq!(Metrics::get(&metrics.wal_corruptions_total), again as u64);
    }
}

/// A write that fails (here a full disk, after half the group reached the file) is
/// never acknowledged and leaves nothing behind: the partial frame is cut off, writing
/// goes on in a fresh segment, and replay finds only acknowledged records, cleanly.
#[tokio::test]
async fn failed_write_is_never_acknowledged_and_leaves_no_partial_frame() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20), 1, Arc::clone(&metrics)).unwrap();
    write(&wal, "before").await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();

    wal.inject_write_error(Some(std::io::ErrorKind::StorageFull));
    let rows = encode_rows(&batch("refused")).unwrap();
    let appended = wal
        .append(&Tenant::default_tenant(), Signal::Logs, &rows)
        .unwrap();
    match appended.durable().await {
        Err(Error::Write(e)) => assert_eq!(e.kind(), std::io::ErrorKind::StorageFull),
        other => panic!("a failed write was acknowledged: {other:?}"),
    }
    assert_eq!(Metrics::get(&metrics.wal_write_errors_total), 1);
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        len,
        "partial frame cut"
    );

    wal.inject_write_error(None);
    write(&wal, "after").await;
    assert_eq!(
        segment_files(dir.path()).len(),
        2,
        "went on in a fresh segment"
    );
    assert_counted(&wal, dir.path()).await;
    wal.close();
    let (_, records, report) = open(dir.path(), 1 << 20);
    assert_eq!(lines(&records), ["before", "after"]);
    assert!(report.torn_tail.is_none() && report.corrupt.is_empty());
}

fn disk_usage(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum()
}

/// Asserts that the bytes the WAL counts are the bytes its segments hold, once the
/// writer has finished rotating (it rotates after acknowledging).
async fn assert_counted(wal: &Wal, dir: &Path) {
    for _ in 0..200 {
        if wal.disk_bytes() == disk_usage(dir) {
            assert_eq!(Metrics::get(&wal.metrics.wal_disk_bytes), wal.disk_bytes());
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        wal.disk_bytes(),
        disk_usage(dir),
        "counted bytes are the bytes on disk"
    );
}

/// At the disk bound an append is refused before anything is written or sequenced,
/// and counted; removing flushed segments makes room again. The count of bytes the
/// bound is checked against is the segments' true size on disk.
#[tokio::test]
async fn appends_are_refused_at_the_disk_bound_until_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut cfg = config(dir.path(), 1); // one record per segment
    cfg.max_disk_bytes = 4 * 1024;
    let (wal, _, _) = Wal::open(cfg.clone(), 1, Arc::clone(&metrics)).unwrap();
    let line = "y".repeat(200);
    let mut acknowledged = Vec::new();
    let refused = loop {
        let rows = encode_rows(&batch(&line)).unwrap();
        match wal.append(&Tenant::default_tenant(), Signal::Logs, &rows) {
            Ok(appended) => {
                acknowledged.push(appended.seq);
                appended.durable().await.unwrap();
            }
            Err(e) => break e,
        }
        assert!(
            acknowledged.len() < 100,
            "the bound never refused an append"
        );
    };
    assert!(
        matches!(refused, Error::Full { used, limit: 4096 } if used >= 4096),
        "{refused}"
    );
    assert!(acknowledged.len() >= 2, "room for more than one record");
    assert_eq!(Metrics::get(&metrics.wal_disk_full_refusals_total), 1);
    // The writer closes each segment after acknowledging its record.
    for _ in 0..200 {
        if lock(&wal.closed).len() == acknowledged.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_counted(&wal, dir.path()).await;
    let used = wal.disk_bytes();
    let next = wal.next_seq();
    assert!(
        wal.append(
            &Tenant::default_tenant(),
            Signal::Logs,
            &encode_rows(&batch("no")).unwrap()
        )
        .is_err()
    );
    assert_eq!(wal.next_seq(), next, "a refusal takes no sequence number");
    assert_eq!(wal.disk_bytes(), used, "nor any byte");

    // Flushed segments go, and the bytes with them.
    assert!(wal.remove_before(next).unwrap() > 0);
    assert!(wal.disk_bytes() < used);
    assert_counted(&wal, dir.path()).await;
    acknowledged.push(write(&wal, "room again").await);
    wal.close();
    let (wal, records, _) = Wal::open(cfg, 1, Arc::clone(&metrics)).unwrap();
    assert_eq!(lines(&records), ["room again"]);
    assert_counted(&wal, dir.path()).await;
}
