//! Chunk metadata: an object written beside each chunk, after it. Its presence is
//! what makes a chunk part of the store (a chunk without metadata is an unfinished
//! write and is ignored). The label and trace-ID indexes are rebuilt from these
//! alone, without reading chunk data.
//!
//! The object is one line of JSON (everything but the trace locator, readable with
//! `head -1`), a newline, then the trace locator in binary: it is most of the
//! metadata's size, and as text it would cost a third more.
//!
//! A compacted chunk lists the chunks it `replaces`. Its metadata is the commit point
//! of the compaction: from the moment it exists, the chunks it names are out of force,
//! whether or not they have been deleted yet.

use serde::{Deserialize, Serialize};

use super::chunk::ChunkSummary;
use super::keys::{ChunkId, ChunkKey, PartitionKey};
use crate::index::TraceBlocks;
use crate::model::{LabelSet, Signal, StreamId, Tenant};

pub const FORMAT_VERSION: u32 = 3;

/// How far one ingester's WAL is in a chunk: replay skips the rows of the chunk's
/// partition and window that this WAL sequenced up to `through`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMark {
    pub ingester: String,
    pub through: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub id: StreamId,
    pub labels: LabelSet,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkMeta {
    pub format: u32,
    pub id: ChunkId,
    #[serde(with = "tenant_serde")]
    pub tenant: Tenant,
    #[serde(with = "signal_serde")]
    pub signal: Signal,
    pub partition: PartitionKey,
    pub window_start: i64,
    /// Per ingester whose WAL held these rows, the last sequence number covered: one
    /// mark for a flushed chunk, the highest of each ingester's for a compacted one.
    pub wal: Vec<WalMark>,
    /// The chunks this one was compacted from: out of force once this one exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<ChunkId>,
    pub rows: u64,
    /// Size of the Parquet object in bytes.
    pub size: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub row_groups: usize,
    /// Sorted by stream ID.
    pub streams: Vec<StreamStats>,
    /// Rows in each row group, in file order.
    pub row_group_rows: Vec<u64>,
    /// Where each trace's rows are; stored after the JSON, in binary.
    #[serde(skip)]
    pub traces: TraceBlocks,
}

impl ChunkMeta {
    /// A small chunk of one stream, for tests.
    #[cfg(test)]
    pub fn example() -> ChunkMeta {
        ChunkMeta {
            format: FORMAT_VERSION,
            id: ChunkId::new(0x18bcfe56800, "00ff", 1),
            tenant: Tenant::new("acme").unwrap(),
            signal: Signal::Logs,
            partition: PartitionKey::from_label_value(Some("api")),
            window_start: 0,
            wal: vec![WalMark {
                ingester: "00ff".into(),
                through: 9,
            }],
            replaces: Vec::new(),
            rows: 3000,
            size: 1234,
            min_time: 1,
            max_time: 2,
            row_groups: 1,
            streams: vec![StreamStats {
                id: StreamId(7),
                labels: LabelSet::new(vec![("service_name".into(), "api".into())]).unwrap(),
                rows: 3000,
                min_time: 1,
                max_time: 2,
            }],
            row_group_rows: vec![3000],
            traces: TraceBlocks::from_rows([(1 << 40, 0), (1 << 40, 2999), (5 << 50, 10)]).unwrap(),
        }
    }

    /// The metadata of the chunk at `key`: `size` bytes of Parquet holding `summary`.
    pub fn new(
        key: &ChunkKey,
        wal: Vec<WalMark>,
        replaces: Vec<ChunkId>,
        size: u64,
        summary: ChunkSummary,
    ) -> Self {
        Self {
            format: FORMAT_VERSION,
            id: key.id.clone(),
            tenant: key.tenant.clone(),
            signal: key.signal,
            partition: key.partition.clone(),
            window_start: key.window_start,
            wal,
            replaces,
            rows: summary.rows,
            size,
            min_time: summary.min_time,
            max_time: summary.max_time,
            row_groups: summary.row_groups,
            streams: summary.streams,
            row_group_rows: summary.row_group_rows,
            traces: summary.traces,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        out.push(b'\n');
        self.traces.encode(&mut out);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let newline = bytes.iter().position(|&b| b == b'\n');
        let (json, locator) = bytes.split_at(newline.unwrap_or(bytes.len()));
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format = serde_json::from_slice::<Format>(json)
            .map_err(|e| e.to_string())?
            .format;
        let mut meta: Self = match format {
            FORMAT_VERSION => serde_json::from_slice(json).map_err(|e| e.to_string())?,
            2 => from_format_2(json)?,
            _ => {
                return Err(format!(
                    "metadata format {format} is not readable by this version (it reads formats 2 \
                     and {FORMAT_VERSION}): the chunk was written by another version of Threadline"
                ));
            }
        };
        meta.traces = TraceBlocks::decode(locator.get(1..).unwrap_or_default())?;
        Ok(meta)
    }

    pub fn key(&self) -> ChunkKey {
        ChunkKey {
            tenant: self.tenant.clone(),
            signal: self.signal,
            partition: self.partition.clone(),
            window_start: self.window_start,
            id: self.id.clone(),
        }
    }

    pub fn has_stream(&self, id: StreamId) -> bool {
        self.streams.binary_search_by_key(&id, |s| s.id).is_ok()
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_time <= end && self.max_time >= start
    }
}

/// Format 2 named one ingester and its WAL mark in two fields and knew no compaction.
fn from_format_2(json: &[u8]) -> Result<ChunkMeta, String> {
    let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let object = value
        .as_object_mut()
        .ok_or("metadata is not a JSON object")?;
    let ingester = object
        .remove("ingester")
        .ok_or("metadata has no ingester")?;
    let through = object
        .remove("wal_through")
        .ok_or("metadata has no wal_through")?;
    object.insert(
        "wal".into(),
        serde_json::json!([{ "ingester": ingester, "through": through }]),
    );
    object.insert("format".into(), FORMAT_VERSION.into());
    serde_json::from_value(value).map_err(|e| e.to_string())
}

mod tenant_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &Tenant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Tenant, D::Error> {
        Tenant::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod signal_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(sig.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Signal, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_with_its_locator() {
        let meta = ChunkMeta::example();
        let bytes = meta.encode().unwrap();
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(first_line).is_ok());
        assert_eq!(ChunkMeta::decode(&bytes).unwrap(), meta);
    }

    #[test]
    fn format_2_reads_as_one_wal_mark() {
        let bytes = ChunkMeta::example().encode().unwrap();
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        let (json, locator) = bytes.split_at(newline);
        let json = String::from_utf8(json.to_vec()).unwrap();
        let json = json.replacen("\"format\":3", "\"format\":2", 1).replacen(
            "\"wal\":[{\"ingester\":\"00ff\",\"through\":9}]",
            "\"ingester\":\"00ff\",\"wal_through\":9",
            1,
        );
        assert!(json.contains("wal_through"), "{json}");
        let old = [json.as_bytes(), locator].concat();
        assert_eq!(ChunkMeta::decode(&old).unwrap(), ChunkMeta::example());
    }

    #[test]
    fn replaced_chunks_round_trip() {
        let mut meta = ChunkMeta::example();
        meta.replaces = vec![ChunkId::new(1, "00ff", 1), ChunkId::new(2, "00ee", 7)];
        let bytes = meta.encode().unwrap();
        assert_eq!(ChunkMeta::decode(&bytes).unwrap(), meta);
    }

    #[test]
    fn other_formats_and_damage_are_refused() {
        let bytes = ChunkMeta::example().encode().unwrap();
        let old = String::from_utf8_lossy(&bytes).replacen("\"format\":3", "\"format\":1", 1);
        let err = ChunkMeta::decode(old.as_bytes()).unwrap_err();
        assert!(err.contains("format 1"), "{err}");
        assert!(ChunkMeta::decode(&bytes[..bytes.len() - 1]).is_err());
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        assert!(ChunkMeta::decode(&bytes[..newline]).is_err());
    }
}
