//! Request bodies for the bad-input catalogue: a hand-rolled protobuf writer for what the
//! generated types cannot express (invalid UTF-8 in string fields, nesting deeper than
//! prost encodes on one stack), snappy blocks whose length header lies, and
//! decompression bombs.

use std::io::Write;

use crate::common::now_ns;

/// Protobuf's base-128 varint.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2): a string, bytes or a message.
pub fn field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    varint(u64::from(tag) << 3 | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A varint field (wire type 0).
pub fn varint_field(tag: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(tag) << 3, &mut out);
    varint(value, &mut out);
    out
}

/// A 64-bit field (wire type 1): fixed64 or double.
pub fn fixed64_field(tag: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(tag) << 3 | 1, &mut out);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

/// How an `AnyValue` holds the next level: in a key-value list or in an array.
#[derive(Clone, Copy)]
pub enum Nesting {
    KvList,
    Array,
}

/// An OTLP `AnyValue` nested `depth` levels deep.
pub fn nested_any_value(depth: usize, nesting: Nesting) -> Vec<u8> {
    let mut value = field(1, b"leaf");
    for _ in 0..depth {
        value = match nesting {
            Nesting::KvList => {
                let kv = [field(1, b"k"), field(2, &value)].concat();
                field(6, &field(1, &kv))
            }
            Nesting::Array => field(5, &field(1, &value)),
        };
    }
    value
}

/// An `ExportLogsServiceRequest` of one record: `body` is the record's body string
/// (raw bytes, so possibly not UTF-8) and `attribute` an `AnyValue`.
pub fn otlp_log_protobuf(body: &[u8], attribute: &[u8]) -> Vec<u8> {
    let service = [field(1, b"service.name"), field(2, &field(1, b"bad_input"))].concat();
    let record = [
        fixed64_field(1, now_ns() as u64),
        field(5, &field(1, body)),
        field(6, &[field(1, b"deep"), field(2, attribute)].concat()),
    ]
    .concat();
    let resource_logs = [field(1, &field(1, &service)), field(2, &field(2, &record))].concat();
    field(1, &resource_logs)
}

/// A Loki `PushRequest` of one stream and one entry, with raw label and line bytes.
pub fn loki_protobuf(labels: &[u8], seconds: i64, line: &[u8]) -> Vec<u8> {
    let timestamp = varint_field(1, seconds as u64);
    let entry = [field(1, &timestamp), field(2, line)].concat();
    field(1, &[field(1, labels), field(2, &entry)].concat())
}

/// A remote write 1.0 `WriteRequest` of one series and one sample, with raw labels.
pub fn remote_write_protobuf(labels: &[(&[u8], &[u8])], timestamp_ms: i64) -> Vec<u8> {
    let mut series = Vec::new();
    for (name, value) in labels {
        series.extend(field(1, &[field(1, name), field(2, value)].concat()));
    }
    let sample = [
        fixed64_field(1, 1.0f64.to_bits()),
        varint_field(2, timestamp_ms as u64),
    ]
    .concat();
    series.extend(field(2, &sample));
    field(1, &series)
}

/// One snappy block (the raw format remote write and Loki push send).
pub fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

/// A snappy block whose length header says `declared` while its data is `data`'s.
pub fn snappy_declaring(declared: u64, data: &[u8]) -> Vec<u8> {
    let packed = snappy(data);
    let header = packed.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut out = Vec::new();
    varint(declared, &mut out);
    out.extend_from_slice(&packed[header..]);
    out
}

/// `bytes` zeros, gzipped quickly, without holding them all.
pub fn gzip_zeros(bytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![0u8; 1 << 20];
    for _ in 0..bytes / block.len() {
        encoder.write_all(&block).unwrap();
    }
    encoder.finish().unwrap()
}

/// The same bomb with a trailer claiming it inflates to 1,000 bytes.
pub fn lying_gzip(mut gz: Vec<u8>) -> Vec<u8> {
    let at = gz.len() - 4;
    gz[at..].copy_from_slice(&1000u32.to_le_bytes());
    gz
}

/// `bytes` zeros as one snappy block (snappy expands at most about 21-fold, so this is
/// a large body).
pub fn zeros_snappy(bytes: usize) -> Vec<u8> {
    snappy(&vec![0u8; bytes])
}

/// An OTLP/JSON `AnyValue` nested `depth` key-value lists deep.
pub fn json_nested(depth: usize) -> String {
    let mut text = String::with_capacity(depth * 48);
    for _ in 0..depth {
        text.push_str(r#"{"kvlistValue":{"values":[{"key":"k","value":"#);
    }
    text.push_str(r#"{"stringValue":"leaf"}"#);
    for _ in 0..depth {
        text.push_str("}]}}");
    }
    text
}

/// A real pprof profile, gzipped.
pub fn go_heap_profile() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/go_heap.pb.gz"
    ))
    .unwrap()
}
