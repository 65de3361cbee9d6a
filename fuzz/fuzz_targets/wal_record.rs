//! A WAL record body, as replay decodes it after its frame's length and checksum held
//! (`wal::read_frame`): sequence number, signal code, tenant, then one Arrow IPC stream.
//!
//! The body is refused as short, an unknown signal, a bad tenant, undecodable rows, no
//! batch or rows of another schema — nothing else, and no panic, although replay
//! guards the decoder with `catch_unwind`. What decodes is written back as the WAL
//! writes a record (rows encoded once, then the frame head with the combined
//! checksum): the frame's length and checksum describe its body, and the body decodes
//! to the same record.

#![no_main]

use libfuzzer_sys::fuzz_target;
use threadline::wal::record::{
    FRAME_HEADER, RecordError, decode_body, encode_frame_head, encode_rows,
};

fuzz_target!(|body: &[u8]| {
    let record = match decode_body(body) {
        Ok(record) => record,
        Err(
            RecordError::Short
            | RecordError::Signal(_)
            | RecordError::Tenant(_)
            | RecordError::Rows(_)
            | RecordError::NoBatch
            | RecordError::Schema(_),
        ) => return,
        Err(e @ RecordError::Undecodable) => panic!("only replay's panic guard says {e}"),
    };
    let rows = encode_rows(&record.batch).unwrap_or_else(|e| {
        panic!(
            "a decoded {} batch does not encode: {e}",
            record.signal.as_str()
        )
    });
    let head = encode_frame_head(record.seq, &record.tenant, record.signal, &rows);
    let frame = [head, rows.bytes].concat();
    let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - FRAME_HEADER, "frame length");
    let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    assert_eq!(
        crc,
        crc32c::crc32c(&frame[FRAME_HEADER..]),
        "frame checksum"
    );
    let again = decode_body(&frame[FRAME_HEADER..])
        .unwrap_or_else(|e| panic!("a record written back does not decode: {e}"));
    assert_eq!(again, record, "a record written back decodes to another");
});
