//! The WAL's on-disk record: one pushed request's rows for one tenant and signal.
//!
//! ```text
//! frame   = len:u32le crc:u32le body[len]        crc = crc32c(body)
//! body    = seq:u64le signal:u8 tenant_len:u8 tenant rows
//! rows    = an Arrow IPC stream (schema + one batch)
//! ```
//!
//! Pure encoding and decoding; the segment file handles framing on disk.

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use bytes::{BufMut, Bytes, BytesMut};

use crate::model::{Signal, Tenant};

pub const FRAME_HEADER: usize = 8;
/// The shortest body: sequence number, signal and tenant length.
pub const MIN_BODY: usize = 10;
/// Upper bound on one record; anything larger in a header is corruption.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    pub seq: u64,
    pub tenant: Tenant,
    pub signal: Signal,
    pub batch: RecordBatch,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record body too short")]
    Short,
    #[error("unknown signal code {0}")]
    Signal(u8),
    #[error("bad tenant in record: {0}")]
    Tenant(String),
    #[error("bad rows in record: {0}")]
    Rows(#[from] arrow::error::ArrowError),
    #[error("record holds no batch")]
    NoBatch,
    #[error("record rows do not match the {0} schema")]
    Schema(Signal),
    #[error("record rows cannot be decoded")]
    Undecodable,
}

/// A batch encoded for the WAL, with the checksum of its bytes: both are computed
/// once, before the record is sequenced, so appending costs only the small header.
#[derive(Debug, Clone)]
pub struct EncodedRows {
    pub bytes: Bytes,
    crc: u32,
}

impl EncodedRows {
    pub fn new(bytes: Bytes) -> Self {
        let crc = crc32c::crc32c(&bytes);
        Self { bytes, crc }
    }
}

pub fn encode_rows(batch: &RecordBatch) -> Result<EncodedRows, arrow::error::ArrowError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(EncodedRows::new(buf.into()))
}

/// The frame's head: length, checksum and everything of the body before the rows.
/// The frame on disk is this followed by `rows.bytes`.
pub fn encode_frame_head(seq: u64, tenant: &Tenant, signal: Signal, rows: &EncodedRows) -> Bytes {
    let tenant = tenant.as_str().as_bytes();
    let prefix_len = 8 + 1 + 1 + tenant.len();
    let body_len = prefix_len + rows.bytes.len();
    let mut buf = BytesMut::with_capacity(FRAME_HEADER + prefix_len);
    buf.put_u32_le(body_len as u32);
    buf.put_u32_le(0);
    buf.put_u64_le(seq);
    buf.put_u8(signal.code());
    // Tenant IDs are at most 150 bytes, checked when the tenant was made.
    buf.put_u8(tenant.len() as u8);
    buf.put_slice(tenant);
    let prefix_crc = crc32c::crc32c(&buf[FRAME_HEADER..]);
    let crc = crc32c::crc32c_combine(prefix_crc, rows.crc, rows.bytes.len());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf.freeze()
}

pub fn decode_body(body: &[u8]) -> Result<WalRecord, RecordError> {
    if body.len() < MIN_BODY {
        return Err(RecordError::Short);
    }
    let seq = u64::from_le_bytes(body[..8].try_into().map_err(|_| RecordError::Short)?);
    let signal = Signal::from_code(body[8]).ok_or(RecordError::Signal(body[8]))?;
    let tenant_len = body[9] as usize;
    let tenant_end = 10 + tenant_len;
    let tenant = body.get(10..tenant_end).ok_or(RecordError::Short)?;
    let tenant = std::str::from_utf8(tenant)
        .map_err(|e| RecordError::Tenant(e.to_string()))
        .and_then(|t| Tenant::new(t).map_err(|e| RecordError::Tenant(e.to_string())))?;
    let batch = decode_rows(signal, &body[tenant_end..])?;
    Ok(WalRecord {
        seq,
        tenant,
        signal,
        batch,
    })
}

/// Reads the batch of an Arrow IPC stream written by `encode_rows`, as the signal's
/// schema. The stream's own schema message is only compared by field names: Arrow's
/// reader turns it into types by panicking on ones it does not know, and slices the
/// batch's buffers without checking them, so a record whose checksum holds but whose
/// contents do not (a bug, or a checksum collision) is read here, step by step, and
/// is an error like any other.
fn decode_rows(signal: Signal, mut stream: &[u8]) -> Result<RecordBatch, RecordError> {
    let bad = |what: String| RecordError::Rows(arrow::error::ArrowError::IpcError(what));
    let schema = crate::model::schema::schema(signal);
    let mut take = |n: usize| -> Result<&[u8], RecordError> {
        if stream.len() < n {
            return Err(bad("the stream ends inside a message".into()));
        }
        let (head, rest) = stream.split_at(n);
        stream = rest;
        Ok(head)
    };
    loop {
        let mut len = take(4)?;
        if len == [0xff; 4] {
            len = take(4)?;
        }
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len == 0 {
            return Err(RecordError::NoBatch);
        }
        let message = arrow::ipc::root_as_message(take(len)?)
            .map_err(|e| bad(format!("unreadable message header: {e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| bad("negative message body length".into()))?;
        let body = take(body_len)?;
        if let Some(written) = message.header_as_schema() {
            let names: Vec<&str> = written
                .fields()
                .iter()
                .flatten()
                .map(|f| f.name().unwrap_or_default())
                .collect();
            let expected: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            if names != expected {
                return Err(RecordError::Schema(signal));
            }
            continue;
        }
        let Some(batch) = message.header_as_record_batch() else {
            return Err(bad("a message other than a schema or a record batch".into()));
        };
        for buffer in batch.buffers().iter().flatten() {
            let end = usize::try_from(buffer.offset())
                .ok()
                .zip(usize::try_from(buffer.length()).ok())
                .and_then(|(offset, length)| offset.checked_add(length));
            if end.is_none_or(|end| end > body_len) {
                return Err(bad("a buffer lies outside its message body".into()));
            }
        }
        return Ok(arrow::ipc::reader::read_record_batch(
            &arrow::buffer::Buffer::from(body),
            batch,
            schema,
            &std::collections::HashMap::new(),
            None,
            &message.version(),
        )?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
    use crate::model::{LabelSet, TraceId};
    use proptest::prelude::*;

    fn batch(lines: &[String], ts: i64) -> RecordBatch {
        let stream = Stream::new(LabelSet::new(vec![("service_name".into(), "a".into())]).unwrap());
        let mut b = LogBatchBuilder::default();
        for (i, line) in lines.iter().enumerate() {
            b.append(
                &stream,
                LogFields {
                    timestamp: ts + i as i64,
                    observed_timestamp: None,
                    severity_number: None,
                    body: line,
                    trace_id: TraceId::from_bytes(&[i as u8 | 1; 16]).ok(),
                    span_id: None,
                    attributes: &[],
                    scope_name: None,
                },
            );
        }
        b.finish()
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            seq in any::<u64>(),
            tenant in "[a-zA-Z0-9_-]{1,40}",
            lines in prop::collection::vec("\\PC{0,30}", 0..20),
            ts in any::<i64>(),
        ) {
            let tenant = Tenant::new(&tenant).unwrap();
            let batch = batch(&lines, ts.saturating_sub(100));
            let rows = encode_rows(&batch).unwrap();
            let frame = [encode_frame_head(seq, &tenant, Signal::Logs, &rows), rows.bytes].concat();
            let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
            prop_assert_eq!(len, frame.len() - FRAME_HEADER);
            let crc = u32::from_le_bytes(frame[4..8].try_into().unwrap());
            prop_assert_eq!(crc, crc32c::crc32c(&frame[FRAME_HEADER..]));
            let record = decode_body(&frame[FRAME_HEADER..]).unwrap();
            prop_assert_eq!(record, WalRecord { seq, tenant, signal: Signal::Logs, batch });
        }

        #[test]
        fn decoding_garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_body(&body);
        }
    }
}
