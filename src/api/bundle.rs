//! A trace bundle: everything stored about one trace, for export. `parquet` is a tar
//! archive with one Parquet file per signal (`spans.parquet`, `logs.parquet`,
//! `exemplars.parquet`, `profile_samples.parquet`), in the tables' own schemas, for
//! DuckDB, pandas or another Threadline; `otlp` is OTLP/JSON, `{"traces": TracesData,
//! "logs": LogsData}`.

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use crate::model::Signal;
use crate::model::schema::schema;
use crate::query::otlp::{logs_data, traces_data};
use crate::query::{QueryError, Result};

pub fn parquet_tar(rows: &[(Signal, Vec<RecordBatch>)], mtime: i64) -> Result<Vec<u8>> {
    let mut archive = Vec::new();
    for (signal, batches) in rows {
        let file = parquet_file(*signal, batches)?;
        append_tar_entry(
            &mut archive,
            &format!("{}.parquet", signal.as_str()),
            &file,
            mtime,
        )?;
    }
    // Two zero blocks end the archive.
    archive.resize(archive.len() + 1024, 0);
    Ok(archive)
}

fn parquet_file(signal: Signal, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let err = |e: parquet::errors::ParquetError| QueryError::Execution(e.to_string());
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| schema(signal));
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).map_err(err)?;
    for batch in batches {
        writer.write(batch).map_err(err)?;
    }
    writer.close().map_err(err)?;
    Ok(out)
}

/// One file in POSIX ustar format: a 512-byte header, the data, padding to 512.
fn append_tar_entry(archive: &mut Vec<u8>, name: &str, data: &[u8], mtime: i64) -> Result<()> {
    if name.len() > 100 {
        return Err(QueryError::Execution(format!(
            "tar entry name too long: {name}"
        )));
    }
    let mut header = [0u8; 512];
    let mut put = |offset: usize, bytes: &[u8]| {
        header[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    put(136, format!("{:011o}\0", mtime.max(0)).as_bytes());
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    archive.extend_from_slice(&header);
    archive.extend_from_slice(data);
    let padding = (512 - data.len() % 512) % 512;
    archive.resize(archive.len() + padding, 0);
    Ok(())
}

pub fn otlp_json(
    rows: &[(Signal, Vec<RecordBatch>)],
    label_attributes: &[String],
) -> Result<Value> {
    let batches = |wanted: Signal| {
        rows.iter()
            .find(|(s, _)| *s == wanted)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_default()
    };
    let traces = traces_data(batches(Signal::Spans), label_attributes)?;
    let logs = logs_data(batches(Signal::Logs), label_attributes)?;
    let to_json =
        |v: serde_json::Result<Value>| v.map_err(|e| QueryError::Execution(e.to_string()));
    Ok(json!({
        "traces": to_json(serde_json::to_value(&traces))?,
        "logs": to_json(serde_json::to_value(&logs))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entries_are_ustar() {
        let mut archive = Vec::new();
        append_tar_entry(&mut archive, "a.parquet", b"hello", 1_700_000_000).unwrap();
        assert_eq!(archive.len(), 1024);
        assert_eq!(&archive[0..9], b"a.parquet");
        assert_eq!(&archive[257..262], b"ustar");
        assert_eq!(&archive[124..135], b"00000000005");
        assert_eq!(&archive[512..517], b"hello");
        // The checksum counts its own field as spaces.
        let mut copy = archive[..512].to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|b| u32::from(*b)).sum();
        let stored = std::str::from_utf8(&archive[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
    }
}
