//! Chunk metadata: a small JSON object written beside each chunk, after it. Its
//! presence is what makes a chunk part of the store (a chunk without metadata is an
//! unfinished write and is ignored). The label and trace-ID indexes are rebuilt from
//! these alone, without reading chunk data.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::keys::{ChunkId, ChunkKey, PartitionKey};
use crate::model::{LabelSet, Signal, StreamId, Tenant};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub id: StreamId,
    pub labels: LabelSet,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// Where one trace appears in a chunk: its fingerprint and its time range there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSpan {
    pub fingerprint: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// Traces with more rows than this in one chunk have none listed: a lookup reads
/// their row groups whole.
pub const MAX_LISTED_TRACE_ROWS: usize = 64;

/// Where each listed trace's rows lie in a chunk: row ordinals per trace, in the
/// order of the chunk's `traces`. A lookup reads only the pages holding them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceRows {
    /// `rows[ends[i - 1]..ends[i]]` are the rows of trace `i`.
    ends: Vec<u32>,
    rows: Vec<u32>,
}

impl TraceRows {
    /// Appends the next trace's rows (none when not listed).
    pub fn push(&mut self, rows: &[u32]) {
        self.rows.extend_from_slice(rows);
        self.ends.push(self.rows.len() as u32);
    }

    pub fn get(&self, trace: usize) -> &[u32] {
        let start = trace
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .copied()
            .unwrap_or(0) as usize;
        let end = self.ends.get(trace).copied().unwrap_or(0) as usize;
        self.rows.get(start..end).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Per trace, little-endian: a u32 count, then that many u32 row ordinals.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.ends.len() + self.rows.len()) * 4);
        for i in 0..self.len() {
            let rows = self.get(i);
            out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
            for row in rows {
                out.extend_from_slice(&row.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| <[u8; 4]>::try_from(c).map(u32::from_le_bytes))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("trace rows length {} is not a multiple of 4", bytes.len()))?;
        let mut out = Self::default();
        let mut rest = words.as_slice();
        while let Some((&count, tail)) = rest.split_first() {
            let rows = tail
                .get(..count as usize)
                .ok_or_else(|| format!("trace rows list {count} rows past the end"))?;
            out.push(rows);
            rest = &tail[count as usize..];
        }
        Ok(out)
    }
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
    /// The ingester whose WAL held these rows, and the last WAL sequence number
    /// covered: replay skips this partition's rows in this window up to that number.
    pub ingester: String,
    pub wal_through: u64,
    pub rows: u64,
    /// Size of the Parquet object in bytes.
    pub size: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub row_groups: usize,
    /// Sorted by stream ID.
    pub streams: Vec<StreamStats>,
    /// Sorted trace locator, packed: see `encode_traces`.
    #[serde(with = "traces_serde")]
    pub traces: Vec<TraceSpan>,
    /// The rows of each trace in `traces`, packed: see `TraceRows::encode`. Absent in
    /// chunks written before it was kept; their lookups read whole row groups.
    #[serde(
        default,
        with = "trace_rows_serde",
        skip_serializing_if = "TraceRows::is_empty"
    )]
    pub trace_rows: TraceRows,
    /// Rows in each row group, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_group_rows: Vec<u64>,
}

impl ChunkMeta {
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

    /// The time range of a trace in this chunk, if the locator lists it.
    pub fn trace(&self, fingerprint: u64) -> Option<TraceSpan> {
        self.traces
            .binary_search_by_key(&fingerprint, |t| t.fingerprint)
            .ok()
            .map(|i| self.traces[i])
    }

    /// The row ordinals of a trace in this chunk, when they are listed.
    pub fn trace_rows(&self, fingerprint: u64) -> Option<&[u32]> {
        if self.trace_rows.len() != self.traces.len() {
            return None;
        }
        let i = self
            .traces
            .binary_search_by_key(&fingerprint, |t| t.fingerprint)
            .ok()?;
        Some(self.trace_rows.get(i)).filter(|rows| !rows.is_empty())
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_time <= end && self.max_time >= start
    }
}

/// 24 bytes per trace, little-endian: fingerprint, min time, max time.
pub fn encode_traces(traces: &[TraceSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(traces.len() * 24);
    for t in traces {
        out.extend_from_slice(&t.fingerprint.to_le_bytes());
        out.extend_from_slice(&t.min_time.to_le_bytes());
        out.extend_from_slice(&t.max_time.to_le_bytes());
    }
    out
}

pub fn decode_traces(bytes: &[u8]) -> Result<Vec<TraceSpan>, String> {
    if !bytes.len().is_multiple_of(24) {
        return Err(format!(
            "trace locator length {} is not a multiple of 24",
            bytes.len()
        ));
    }
    let word = |b: &[u8]| <[u8; 8]>::try_from(b).unwrap_or_default();
    Ok(bytes
        .chunks_exact(24)
        .map(|c| TraceSpan {
            fingerprint: u64::from_le_bytes(word(&c[..8])),
            min_time: i64::from_le_bytes(word(&c[8..16])),
            max_time: i64::from_le_bytes(word(&c[16..])),
        })
        .collect())
}

mod traces_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(traces: &[TraceSpan], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(encode_traces(traces)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TraceSpan>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        decode_traces(&bytes).map_err(serde::de::Error::custom)
    }
}

mod trace_rows_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(rows: &TraceRows, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(rows.encode()))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TraceRows, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        TraceRows::decode(&bytes).map_err(serde::de::Error::custom)
    }
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trace_locator_round_trip(raw in prop::collection::vec(any::<(u64, i64, i64)>(), 0..50)) {
            let traces: Vec<_> = raw.into_iter().map(|(fingerprint, min_time, max_time)| TraceSpan { fingerprint, min_time, max_time }).collect();
            prop_assert_eq!(decode_traces(&encode_traces(&traces)).unwrap(), traces);
        }

        #[test]
        fn trace_rows_round_trip(lists in prop::collection::vec(prop::collection::vec(any::<u32>(), 0..8), 0..50)) {
            let mut rows = TraceRows::default();
            for list in &lists {
                rows.push(list);
            }
            let decoded = TraceRows::decode(&rows.encode()).unwrap();
            prop_assert_eq!(&decoded, &rows);
            for (i, list) in lists.iter().enumerate() {
                prop_assert_eq!(decoded.get(i), list.as_slice());
            }
        }

        #[test]
        fn trace_rows_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = TraceRows::decode(&bytes);
        }
    }
}
