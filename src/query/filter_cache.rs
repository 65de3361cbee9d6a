//! What finished scans learned about their row filters, per chunk and stream.
//!
//! A grep usually matches a few streams of each chunk. Once a scan has read a chunk
//! with some filters (`line_contains(body, 'deadlock')`, a regex, a label condition),
//! the cache remembers which of the chunk's streams held no row that passed. Chunks
//! never change, so the facts never go stale; a later query with the same filters
//! reads only the rows of the streams that may match, or skips the chunk. This is
//! ClickHouse's query condition cache, kept per stream (a run of rows in a chunk
//! sorted by stream) rather than per granule.
//!
//! Learning is conservative. A scan over chunks (`FilterScan`) lists, per chunk, the
//! streams whose every row it was allowed to read (all of them selected, their whole
//! time span inside the query's range); the code that consumed all of the scan's
//! output reports each stream's passing rows as a time span. A stream is recorded as
//! empty only when no passing row of it falls in its span in that chunk, so a row from
//! another chunk, or the head, can only make a stream look matching, never the
//! reverse.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use crate::model::StreamId;
use crate::storage::ChunkMeta;
use crate::storage::keys::ChunkId;

/// Memory for the cache's entries.
pub const FILTER_CACHE_BYTES: u64 = 32 << 20;

/// Per stream of one chunk that scans read in full: whether any row passed.
type Verdicts = HashMap<StreamId, bool>;

pub struct FilterCache {
    entries: moka::sync::Cache<(ChunkId, Arc<str>), Arc<Verdicts>>,
}

/// One scan whose output may teach the cache: its filters, and the streams of each
/// chunk whose rows it read in full.
#[derive(Debug)]
pub struct FilterScan {
    pub filters: Arc<str>,
    pub chunks: Vec<(Arc<ChunkMeta>, Vec<StreamId>)>,
}

/// The rows of a chunk a scan must read.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkRows {
    All,
    None,
    /// Increasing, disjoint row ranges.
    Ranges(Vec<Range<u64>>),
}

impl FilterCache {
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(
                |(_, filters): &(ChunkId, Arc<str>), verdicts: &Arc<Verdicts>| {
                    let bytes = 64 + filters.len() + 16 * verdicts.len();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                },
            )
            .build();
        Self { entries }
    }

    /// The rows of `chunk` that may pass `filters`, among those of the streams
    /// `wanted` accepts: streams known to hold no passing row are left out.
    pub fn rows(
        &self,
        chunk: &ChunkMeta,
        filters: &Arc<str>,
        wanted: impl Fn(StreamId) -> bool,
    ) -> ChunkRows {
        let Some(verdicts) = self.entries.get(&(chunk.id.clone(), Arc::clone(filters))) else {
            return ChunkRows::All;
        };
        if chunk.streams.iter().map(|s| s.rows).sum::<u64>() != chunk.rows {
            return ChunkRows::All;
        }
        let mut ranges: Vec<Range<u64>> = Vec::new();
        let mut dropped = false;
        let mut start = 0;
        for stream in &chunk.streams {
            let rows = start..start + stream.rows;
            start = rows.end;
            if !wanted(stream.id) {
                continue;
            }
            if verdicts.get(&stream.id) == Some(&false) {
                dropped = true;
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.end == rows.start => last.end = rows.end,
                _ => ranges.push(rows),
            }
        }
        match (dropped, ranges.is_empty()) {
            (false, _) => ChunkRows::All,
            (true, true) => ChunkRows::None,
            (true, false) => ChunkRows::Ranges(ranges),
        }
    }

    /// Records what `scan` showed, given the time span of the rows that passed its
    /// filters in each stream (over everything the scan returned).
    pub fn learn(&self, scan: &FilterScan, passed: &HashMap<StreamId, (i64, i64)>) {
        for (chunk, covered) in &scan.chunks {
            let key = (chunk.id.clone(), Arc::clone(&scan.filters));
            let mut verdicts = self
                .entries
                .get(&key)
                .map(|v| Verdicts::clone(&v))
                .unwrap_or_default();
            for stream in chunk.streams.iter().filter(|s| covered.contains(&s.id)) {
                let matched = passed
                    .get(&stream.id)
                    .is_some_and(|&(lo, hi)| lo <= stream.max_time && hi >= stream.min_time);
                let verdict = verdicts.entry(stream.id).or_insert(matched);
                *verdict |= matched;
            }
            self.entries.insert(key, Arc::new(verdicts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LabelSet;
    use crate::storage::meta::StreamStats;

    fn chunk(streams: &[(u64, u64, i64, i64)]) -> Arc<ChunkMeta> {
        let mut meta = ChunkMeta::example();
        meta.streams = streams
            .iter()
            .map(|&(id, rows, min_time, max_time)| StreamStats {
                id: StreamId(id),
                labels: LabelSet::default(),
                rows,
                min_time,
                max_time,
            })
            .collect();
        meta.rows = streams.iter().map(|s| s.1).sum();
        Arc::new(meta)
    }

    #[test]
    #[expect(
        clippy::single_range_in_vec_init,
        reason = "lists of one range are meant"
    )]
    fn a_scan_teaches_which_streams_to_skip() {
        let cache = FilterCache::new(1 << 20);
        let filters: Arc<str> = "line_contains(body, 'x')".into();
        // Streams 1, 2, 3 of 10, 20 and 30 rows, each over its own second.
        let chunk = chunk(&[(1, 10, 0, 9), (2, 20, 10, 19), (3, 30, 20, 29)]);
        assert_eq!(cache.rows(&chunk, &filters, |_| true), ChunkRows::All);

        // Stream 2 had a passing row; stream 3's passing rows lie outside its span in
        // this chunk; stream 1 was not read in full.
        let scan = FilterScan {
            filters: Arc::clone(&filters),
            chunks: vec![(Arc::clone(&chunk), vec![StreamId(2), StreamId(3)])],
        };
        let passed = HashMap::from([(StreamId(2), (15, 15)), (StreamId(3), (40, 50))]);
        cache.learn(&scan, &passed);
        assert_eq!(
            cache.rows(&chunk, &filters, |_| true),
            ChunkRows::Ranges(vec![0..30])
        );
        assert_eq!(
            cache.rows(&chunk, &filters, |id| id == StreamId(3)),
            ChunkRows::None
        );
        assert_eq!(
            cache.rows(&chunk, &filters, |id| id != StreamId(2)),
            ChunkRows::Ranges(vec![0..10])
        );
        // Other filters know nothing yet.
        assert_eq!(
            cache.rows(&chunk, &"other".into(), |_| true),
            ChunkRows::All
        );

        // A later scan never turns a matching stream back into an empty one.
        cache.learn(&scan, &HashMap::new());
        assert_eq!(
            cache.rows(&chunk, &filters, |id| id == StreamId(2)),
            ChunkRows::All
        );
    }

    #[test]
    fn streams_that_do_not_add_up_to_the_chunk_are_read_in_full() {
        let cache = FilterCache::new(1 << 20);
        let filters: Arc<str> = "f".into();
        let chunk = chunk(&[(1, 10, 0, 9), (2, 20, 10, 19)]);
        let scan = FilterScan {
            filters: Arc::clone(&filters),
            chunks: vec![(Arc::clone(&chunk), vec![StreamId(1), StreamId(2)])],
        };
        cache.learn(&scan, &HashMap::new());
        assert_eq!(cache.rows(&chunk, &filters, |_| true), ChunkRows::None);
        let mut wrong = ChunkMeta::clone(&chunk);
        wrong.rows += 1;
        assert_eq!(cache.rows(&wrong, &filters, |_| true), ChunkRows::All);
    }
}
