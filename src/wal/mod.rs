//! The write-ahead log: every pushed request is appended here, and synced per the
//! configured policy, before it is acknowledged.
//!
//! Appends from many requests are gathered by one writer thread and written and synced
//! together (group commit): each request waits for the sync that covers its record, so
//! an fsync is shared by every request that arrived while the previous one ran.
//!
//! Segments are files named by the first sequence number they hold. A new segment is
//! started on open and when the current one passes the size limit; whole segments are
//! removed once every row in them is in a durable chunk.
//!
//! On open, every segment is replayed. A bad record in the newest segment with no intact
//! record anywhere after it is a torn write from a crash: the file is cut there and the
//! cut is logged and counted. Any other bad record is corruption: it and the rest of its
//! segment are skipped, the damage is logged and counted, and later segments are still
//! replayed; a segment left without one readable record is renamed `*.corrupt` and kept
//! as evidence. Replay never resynchronises inside a damaged segment: what follows a bad
//! length cannot be trusted to be a record boundary.
//!
//! The segments' size on disk is bounded: once they hold `max_disk_bytes` (counting
//! records queued for them), appends are refused before anything is written, until
//! flushed segments are removed. The bound is soft by one request, so that a request
//! larger than the bound is not refused forever.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

pub use record::EncodedRows;
pub use record::WalRecord;
use record::{FRAME_HEADER, MAX_RECORD_BYTES, MIN_BODY, decode_body, encode_frame_head};

use crate::metrics::Metrics;
use crate::model::{Signal, Tenant};

const MAGIC: &[u8; 8] = b"TLWAL001";
const SUFFIX: &str = ".wal";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// `fdatasync` before acknowledging: survives power loss.
    Fsync,
    /// Written to the OS before acknowledging, synced only when a segment closes:
    /// survives a crash or `kill -9` of the process, not a power loss.
    Buffered,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fsync" => Ok(Self::Fsync),
            "buffered" => Ok(Self::Buffered),
            other => Err(format!(
                "unknown wal sync policy {other:?}: use fsync or buffered"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub sync: SyncPolicy,
    pub segment_bytes: u64,
    /// Appends are refused while the segments hold this many bytes or more.
    pub max_disk_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("wal i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wal write failed: {0}")]
    Write(Arc<std::io::Error>),
    #[error("wal is closed")]
    Closed,
    #[error("wal is full: its segments hold {used} bytes, the limit is {limit}")]
    Full { used: u64, limit: u64 },
    #[error("cannot encode rows for the wal: {0}")]
    Encode(#[from] arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What replay found, for the log and the metrics.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: usize,
    /// Newest segment cut at this offset (a torn write).
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Segments with a bad record at this offset, and why; the rest of each was skipped.
    pub corrupt: Vec<(PathBuf, u64, String)>,
    /// Corrupt segments without one readable record, renamed to these paths.
    pub set_aside: Vec<PathBuf>,
}

struct Pending {
    head: Bytes,
    rows: Bytes,
    seq: u64,
    done: oneshot::Sender<Result<(), Arc<std::io::Error>>>,
}

#[derive(Default)]
struct Queue {
    next_seq: u64,
    pending: Vec<Pending>,
    closed: bool,
}

#[derive(Debug, Clone)]
struct SegmentInfo {
    path: PathBuf,
    first_seq: u64,
    last_seq: Option<u64>,
    /// The file's length.
    bytes: u64,
}

pub struct Wal {
    config: WalConfig,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Closed segments, oldest first; only these are ever removed.
    closed: Mutex<Vec<SegmentInfo>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Bytes of every segment file, plus the frames queued for the writer: what the
    /// disk bound is checked against.
    disk_bytes: AtomicU64,
    metrics: Arc<Metrics>,
    /// A write error the writer reports instead of finishing its next writes.
    #[cfg(test)]
    injected_write_error: Mutex<Option<std::io::ErrorKind>>,
}

/// A record appended but not yet known to be durable.
pub struct Appended {
    pub seq: u64,
    done: oneshot::Receiver<Result<(), Arc<std::io::Error>>>,
}

impl Appended {
    /// Resolves once the record is written and synced per the policy.
    pub async fn durable(self) -> Result<()> {
        match self.done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Write(e)),
            Err(_) => Err(Error::Closed),
        }
    }
}

impl Wal {
    /// Opens the log in `config.dir`, replaying every record it holds. The returned
    /// records are in sequence order.
    ///
    /// `min_next_seq` is a floor for new sequence numbers: the caller passes one past
    /// the highest sequence number its chunks say they cover, so numbers are never
    /// reused even when every segment that held them is gone.
    pub fn open(
        config: WalConfig,
        min_next_seq: u64,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Self>, Vec<WalRecord>, ReplayReport)> {
        fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let mut segments = list_segments(&config.dir)?;
        let mut report = ReplayReport::default();
        let mut records = Vec::new();
        let last_index = segments.len().checked_sub(1);
        for (i, segment) in segments.iter_mut().enumerate() {
            let found = replay_segment(segment, Some(i) == last_index, &mut report)?;
            report.segments += 1;
            records.extend(found);
        }
        report.records = records.len();
        Metrics::add(&metrics.wal_replayed_records_total, records.len() as u64);
        Metrics::add(
            &metrics.wal_corruptions_total,
            (report.corrupt.len() + report.torn_tail.is_some() as usize) as u64,
        );
        // Every segment's name counts towards the next sequence number, even one about
        // to be dropped or set aside: segment names, and the numbers of readable
        // records, are never reused. (Numbers in the skipped rest of a corrupt segment
        // may be: those records are never replayed.)
        let next_seq = records
            .iter()
            .map(|r| r.seq + 1)
            .chain(segments.iter().map(|s| s.first_seq + 1))
            .chain([min_next_seq, 1])
            .max()
            .unwrap_or(1);
        // Segments without a single good record: empty ones go, damaged ones are set
        // aside (renamed `.corrupt`) as evidence and never replayed again.
        let mut kept = Vec::new();
        for segment in segments {
            if segment.last_seq.is_some() {
                kept.push(segment);
            } else if report.corrupt.iter().any(|(p, _, _)| p == &segment.path) {
                let aside = segment.path.with_extension("corrupt");
                fs::rename(&segment.path, &aside).map_err(io_err(&segment.path))?;
                warn!(path = %aside.display(), "wal: set aside a segment with no readable record");
                report.set_aside.push(aside);
            } else {
                fs::remove_file(&segment.path).map_err(io_err(&segment.path))?;
            }
        }
        let disk_bytes = kept.iter().map(|s| s.bytes).sum();

        let wal = Arc::new(Self {
            config,
            queue: Mutex::new(Queue {
                next_seq,
                ..Queue::default()
            }),
            wake: Condvar::new(),
            closed: Mutex::new(kept),
            writer: Mutex::new(None),
            disk_bytes: AtomicU64::new(disk_bytes),
            metrics,
            #[cfg(test)]
            injected_write_error: Mutex::new(None),
        });
        wal.grow(0);
        let active = wal.create_segment(next_seq)?;
        let thread_wal = Arc::clone(&wal);
        let handle = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || thread_wal.run_writer(active))
            .map_err(io_err(&wal.config.dir))?;
        *lock(&wal.writer) = Some(handle);
        Ok((wal, records, report))
    }

    /// Assigns the next sequence number and queues the record. Callers that need
    /// sequence order to match some other order (the head's) hold their own lock
    /// around this call; it never blocks on I/O.
    pub fn append(&self, tenant: &Tenant, signal: Signal, rows: &EncodedRows) -> Result<Appended> {
        let mut appended = self.append_all(tenant, &[(signal, rows)])?;
        appended.pop().ok_or(Error::Closed)
    }

    /// Queues several records at once, with consecutive sequence numbers. They reach
    /// the writer together, so one group commit writes and syncs them all, or fails
    /// them all.
    pub fn append_all(
        &self,
        tenant: &Tenant,
        records: &[(Signal, &EncodedRows)],
    ) -> Result<Vec<Appended>> {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return Err(Error::Closed);
        }
        // Checked and reserved under the queue lock, so concurrent appends cannot all
        // pass the check on the same reading.
        let used = self.disk_bytes();
        let limit = self.config.max_disk_bytes;
        if used >= limit {
            Metrics::add(&self.metrics.wal_disk_full_refusals_total, 1);
            return Err(Error::Full { used, limit });
        }
        let mut appended = Vec::with_capacity(records.len());
        for (signal, rows) in records {
            let (tx, rx) = oneshot::channel();
            let seq = queue.next_seq;
            queue.next_seq += 1;
            let head = encode_frame_head(seq, tenant, *signal, rows);
            self.grow((head.len() + rows.bytes.len()) as u64);
            queue.pending.push(Pending {
                head,
                rows: rows.bytes.clone(),
                seq,
                done: tx,
            });
            appended.push(Appended { seq, done: rx });
        }
        drop(queue);
        self.wake.notify_one();
        Ok(appended)
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        lock(&self.queue).next_seq
    }

    /// Bytes the segments hold on disk, counting records queued for them.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Whether the segments hold half their bound or more: time to write every head
    /// out, due or not, so that a healthy store never makes pushes wait for disk.
    pub fn disk_pressure(&self) -> bool {
        self.disk_bytes() >= self.config.max_disk_bytes / 2
    }

    fn grow(&self, bytes: u64) {
        let now = self.disk_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.metrics.wal_disk_bytes.store(now, Ordering::Relaxed);
    }

    fn shrink(&self, bytes: u64) {
        let before = self
            .disk_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(bytes))
            })
            .unwrap_or_default();
        let now = before.saturating_sub(bytes);
        self.metrics.wal_disk_bytes.store(now, Ordering::Relaxed);
    }

    /// Makes the writer fail its next writes with `kind` (after writing half of what
    /// it was given, as a full disk does), or work again with `None`.
    #[cfg(test)]
    pub(crate) fn inject_write_error(&self, kind: Option<std::io::ErrorKind>) {
        *lock(&self.injected_write_error) = kind;
    }

    /// Removes closed segments whose every record has a sequence number below `seq`.
    pub fn remove_before(&self, seq: u64) -> Result<usize> {
        let mut closed = lock(&self.closed);
        let mut removed = 0;
        while let Some(first) = closed.first() {
            let done = match first.last_seq {
                Some(last) => last < seq,
                None => true,
            };
            if !done {
                break;
            }
            fs::remove_file(&first.path).map_err(io_err(&first.path))?;
            self.shrink(first.bytes);
            closed.remove(0);
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.config.dir)?;
            Metrics::add(&self.metrics.wal_segments_removed_total, removed as u64);
        }
        Ok(removed)
    }

    /// Stops the writer after it has written everything queued.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_all();
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }

    fn create_segment(&self, first_seq: u64) -> Result<ActiveSegment> {
        let path = self.config.dir.join(format!("{first_seq:020}{SUFFIX}"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        crate::failpoint::pause(crate::failpoint::WAL_ROTATE);
        file.write_all(MAGIC).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        sync_dir(&self.config.dir)?;
        self.grow(MAGIC.len() as u64);
        Ok(ActiveSegment {
            info: SegmentInfo {
                path,
                first_seq,
                last_seq: None,
                bytes: MAGIC.len() as u64,
            },
            file,
            len: MAGIC.len() as u64,
        })
    }

    fn run_writer(self: Arc<Self>, mut active: ActiveSegment) {
        loop {
            let batch = {
                let mut queue = lock(&self.queue);
                while queue.pending.is_empty() && !queue.closed {
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if queue.pending.is_empty() && queue.closed {
                    break;
                }
                std::mem::take(&mut queue.pending)
            };
            let result = self.write_group(&mut active, &batch);
            let failed = result.is_err();
            if let Err(e) = &result {
                Metrics::add(&self.metrics.wal_write_errors_total, 1);
                error!(error = %e, records = batch.len(), "wal write failed");
            }
            let result = result.map_err(Arc::new);
            for pending in batch {
                let _ = pending.done.send(result.clone());
            }
            // After a failed write or sync the file's state is unknown (a failed fsync
            // may have dropped dirty pages): continue in a fresh segment.
            if failed || active.len >= self.config.segment_bytes {
                match self.rotate(&mut active) {
                    Ok(()) => {}
                    Err(e) => error!(error = %e, "wal segment rotation failed"),
                }
            }
        }
        if let Err(e) = active.file.sync_all() {
            error!(error = %e, "wal sync on close failed");
        }
    }

    fn write_group(&self, active: &mut ActiveSegment, batch: &[Pending]) -> std::io::Result<()> {
        let start_len = active.len;
        let mut buf = Vec::with_capacity(batch.iter().map(|p| p.head.len() + p.rows.len()).sum());
        for p in batch {
            buf.extend_from_slice(&p.head);
            buf.extend_from_slice(&p.rows);
        }
        let written =
            self.write_segment(&mut active.file, &buf)
                .and_then(|()| match self.config.sync {
                    SyncPolicy::Fsync => {
                        Metrics::add(&self.metrics.wal_syncs_total, 1);
                        active.file.sync_data()
                    }
                    SyncPolicy::Buffered => Ok(()),
                });
        if let Err(e) = written {
            // Leave no partial frame, and no hole, before whatever is written next.
            let _ = active.file.set_len(start_len);
            let _ = active.file.seek(SeekFrom::Start(start_len));
            self.shrink(buf.len() as u64);
            return Err(e);
        }
        active.len += buf.len() as u64;
        active.info.bytes = active.len;
        if let Some(last) = batch.last() {
            active.info.last_seq = Some(last.seq);
        }
        Metrics::add(&self.metrics.wal_records_total, batch.len() as u64);
        Metrics::add(&self.metrics.wal_bytes_total, buf.len() as u64);
        Ok(())
    }

    fn write_segment(&self, file: &mut File, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(kind) = *lock(&self.injected_write_error) {
            file.write_all(&buf[..buf.len() / 2])?;
            return Err(kind.into());
        }
        file.write_all(buf)
    }

    fn rotate(&self, active: &mut ActiveSegment) -> Result<()> {
        active.file.sync_all().map_err(io_err(&active.info.path))?;
        let next_first = active
            .info
            .last_seq
            .map_or(active.info.first_seq, |s| s + 1);
        let next = self.create_segment(next_first)?;
        let old = std::mem::replace(active, next);
        lock(&self.closed).push(old.info);
        Ok(())
    }
}

struct ActiveSegment {
    info: SegmentInfo,
    file: File,
    len: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(SegmentInfo {
            path: entry.path(),
            first_seq,
            last_seq: None,
            bytes: 0,
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Reads one segment's records, applying the torn-tail and corruption policies.
fn replay_segment(
    segment: &mut SegmentInfo,
    newest: bool,
    report: &mut ReplayReport,
) -> Result<Vec<WalRecord>> {
    let data = fs::read(&segment.path).map_err(io_err(&segment.path))?;
    segment.bytes = data.len() as u64;
    let mut records = Vec::new();
    let mut offset = MAGIC.len();
    // Why reading stopped, and whether it looks like a write a crash cut short.
    let fault: Option<(String, bool)> = if data.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        offset = 0;
        // A crash while creating the segment leaves a short or zeroed header.
        let cut_short = data.len() < MAGIC.len() || data.iter().all(|b| *b == 0);
        Some(("bad segment header".to_owned(), cut_short))
    } else {
        loop {
            if offset == data.len() {
                break None;
            }
            match read_frame(&data[offset..]) {
                Ok((record, len)) => {
                    segment.last_seq = Some(record.seq);
                    records.push(record);
                    offset += len;
                }
                Err(fault) => {
                    // A write cut short leaves nothing whole after it; an intact frame
                    // further on means the bad one was damaged after it was written.
                    let min_seq = segment.last_seq.map_or(segment.first_seq, |s| s + 1);
                    let cut_short =
                        fault.framing && newest && !intact_frame_after(&data, offset, min_seq);
                    break Some((fault.reason, cut_short));
                }
            }
        }
    };
    if let Some((reason, cut_short)) = fault {
        let path = segment.path.clone();
        if newest && cut_short {
            warn!(path = %path.display(), offset, reason, "wal: cutting torn tail of newest segment");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            file.set_len(offset as u64).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
            segment.bytes = offset as u64;
            report.torn_tail = Some((path, offset as u64));
        } else {
            error!(
                path = %path.display(),
                offset,
                reason,
                newest,
                "wal: corrupt record; skipping the rest of its segment"
            );
            report.corrupt.push((path, offset as u64, reason));
        }
    }
    if segment.last_seq.is_none() && offset == MAGIC.len() && newest {
        info!(path = %segment.path.display(), "wal: newest segment is empty");
    }
    Ok(records)
}

/// Why replay stopped reading a segment.
struct Fault {
    reason: String,
    /// The bytes are not a complete frame with a matching checksum, as after a write
    /// cut short; otherwise the checksum held and the content itself is bad.
    framing: bool,
}

fn read_frame(data: &[u8]) -> Result<(WalRecord, usize), Fault> {
    let framing = |reason: String| Fault {
        reason,
        framing: true,
    };
    if data.len() < FRAME_HEADER {
        return Err(framing(format!(
            "truncated frame header ({} bytes)",
            data.len()
        )));
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    // A zeroed frame would pass its checksum (the CRC of nothing is 0) without this.
    if len < MIN_BODY {
        return Err(framing(format!(
            "record length {len} is below the minimum of {MIN_BODY}"
        )));
    }
    if len > MAX_RECORD_BYTES {
        return Err(framing(format!(
            "record length {len} exceeds {MAX_RECORD_BYTES}"
        )));
    }
    // Checked against the bytes present before anything is allocated or read.
    let Some(body) = data.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(framing(format!(
            "record of {len} bytes runs past the end of the segment"
        )));
    };
    if crc32c::crc32c(body) != crc {
        return Err(framing("checksum mismatch".to_owned()));
    }
    // The checksum held, so these bytes are what was written; decoding them must still
    // never take the process down.
    let decoded = std::panic::catch_unwind(|| decode_body(body))
        .unwrap_or_else(|_| Err(record::RecordError::Undecodable));
    let record = decoded.map_err(|e| Fault {
        reason: e.to_string(),
        framing: false,
    })?;
    Ok((record, FRAME_HEADER + len))
}

/// Whether an intact frame starts anywhere after `offset`: a length that fits, a
/// sequence number at or above `min_seq` (and not absurdly far above it), and a
/// matching checksum. The cheap tests come first, so arbitrary bytes are almost never
/// checksummed.
fn intact_frame_after(data: &[u8], offset: usize, min_seq: u64) -> bool {
    const SEQ_SPAN: u64 = 1 << 32;
    let last_start = data.len().saturating_sub(FRAME_HEADER + MIN_BODY);
    (offset + 1..=last_start).any(|p| {
        let at = &data[p..];
        let word = |i: usize| u32::from_le_bytes([at[i], at[i + 1], at[i + 2], at[i + 3]]);
        let len = word(0) as usize;
        if !(MIN_BODY..=MAX_RECORD_BYTES).contains(&len) || at.len() < FRAME_HEADER + len {
            return false;
        }
        let seq = u64::from(word(8)) | (u64::from(word(12)) << 32);
        seq.wrapping_sub(min_seq) < SEQ_SPAN
            && crc32c::crc32c(&at[FRAME_HEADER..FRAME_HEADER + len]) == word(4)
    })
}

/// Encodes rows for `Wal::append`, outside any lock.
pub fn encode_rows(batch: &RecordBatch) -> Result<EncodedRows> {
    Ok(record::encode_rows(batch)?)
}

#[cfg(test)]
mod tests;
