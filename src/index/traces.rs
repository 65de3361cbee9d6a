//! The trace-ID index: each chunk's locator says, for every trace with rows in the
//! chunk, which blocks of `BLOCK_ROWS` rows hold them. A lookup needs no time range:
//! it probes every chunk's locator (a binary search in memory) and reads only the
//! pages of the blocks it finds.
//!
//! Traces are keyed by 32 bits of their fingerprint. A key shared by two traces in
//! one chunk only means a block is read for nothing: the scan filters by the full ID.

/// Rows per block. Chunk pages hold at most this many rows, so a block's rows lie in
/// about one page per column.
pub const BLOCK_ROWS: usize = 1024;

/// The most rows a chunk can have: its blocks are numbered in 16 bits.
pub const MAX_CHUNK_ROWS: usize = (u16::MAX as usize + 1) * BLOCK_ROWS;

/// One chunk's locator: `(key, block)` pairs, sorted and distinct, held as two
/// arrays (6 bytes a pair).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceBlocks {
    keys: Vec<u32>,
    blocks: Vec<u16>,
}

impl TraceBlocks {
    /// The locator of rows given as `(trace fingerprint, row ordinal)`, in any order.
    /// `None` when a row lies past `MAX_CHUNK_ROWS`.
    pub fn from_rows(rows: impl IntoIterator<Item = (u64, u32)>) -> Option<Self> {
        let mut builder = TraceBlocksBuilder::default();
        for (fingerprint, row) in rows {
            builder.add(fingerprint, u64::from(row))?;
        }
        Some(builder.finish())
    }

    /// The blocks that may hold rows of the trace with this fingerprint, ascending.
    pub fn blocks(&self, fingerprint: u64) -> &[u16] {
        let key = key(fingerprint);
        let start = self.keys.partition_point(|&k| k < key);
        let end = start + self.keys[start..].partition_point(|&k| k == key);
        &self.blocks[start..end]
    }

    pub fn contains(&self, fingerprint: u64) -> bool {
        !self.blocks(fingerprint).is_empty()
    }

    /// Distinct `(trace, block)` pairs.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Varints: the pair count, then per pair the key's increase over the previous
    /// pair's and the block (its increase when the key repeats). About 4 bytes a
    /// pair for a chunk of tens of thousands of traces.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.keys.len() as u64);
        let (mut prev_key, mut prev_block) = (0u32, 0u16);
        for (i, (&key, &block)) in self.keys.iter().zip(&self.blocks).enumerate() {
            let same = i > 0 && key == prev_key;
            put_varint(out, u64::from(key - prev_key));
            put_varint(
                out,
                u64::from(if same { block - prev_block } else { block }),
            );
            (prev_key, prev_block) = (key, block);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut input = bytes;
        let count = get_varint(&mut input)?;
        // Each pair takes at least two bytes: a larger count is a lie, not a reason
        // to allocate.
        if count > (input.len() / 2) as u64 {
            return Err(format!(
                "trace locator claims {count} pairs in {} bytes",
                input.len()
            ));
        }
        let mut out = Self {
            keys: Vec::with_capacity(count as usize),
            blocks: Vec::with_capacity(count as usize),
        };
        let (mut key, mut block) = (0u32, 0u16);
        for i in 0..count {
            let key_step = get_varint(&mut input)?;
            let block_value = get_varint(&mut input)?;
            let same = i > 0 && key_step == 0;
            if same && block_value == 0 {
                return Err("trace locator repeats a pair".into());
            }
            key = u32::try_from(key_step)
                .ok()
                .and_then(|step| key.checked_add(step))
                .ok_or("trace locator key out of range")?;
            let base = if same { u64::from(block) } else { 0 };
            block = u16::try_from(base + block_value)
                .map_err(|_| "trace locator block out of range")?;
            out.keys.push(key);
            out.blocks.push(block);
        }
        if !input.is_empty() {
            return Err(format!("{} bytes follow the trace locator", input.len()));
        }
        Ok(out)
    }
}

/// Gathers a locator row by row, for a chunk written in pieces. Rows of one trace in
/// one block collapse as they come, so memory follows the locator's size, not the
/// chunk's rows.
#[derive(Debug, Default)]
pub struct TraceBlocksBuilder {
    pairs: Vec<(u32, u16)>,
    /// Pairs at the front known to be sorted and distinct.
    settled: usize,
}

impl TraceBlocksBuilder {
    /// `None` when the row lies past `MAX_CHUNK_ROWS`.
    pub fn add(&mut self, fingerprint: u64, row: u64) -> Option<()> {
        let block = u16::try_from(row / BLOCK_ROWS as u64).ok()?;
        self.pairs.push((key(fingerprint), block));
        if self.pairs.len() >= 2 * self.settled.max(4096) {
            self.settle();
        }
        Some(())
    }

    fn settle(&mut self) {
        self.pairs.sort_unstable();
        self.pairs.dedup();
        self.settled = self.pairs.len();
    }

    pub fn finish(mut self) -> TraceBlocks {
        self.settle();
        let (keys, blocks) = self.pairs.into_iter().unzip();
        TraceBlocks { keys, blocks }
    }
}

/// The locator key of a fingerprint: its high 32 bits after a multiplicative mix, so
/// IDs that differ only in their low bits (64-bit trace IDs padded with zeros,
/// sequential test IDs) still get distinct keys.
fn key(fingerprint: u64) -> u32 {
    (fingerprint.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or("trace locator ends inside a number")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("trace locator number is longer than 64 bits".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn locator_round_trips_and_finds_every_row(
            rows in prop::collection::vec((any::<u64>(), 0..MAX_CHUNK_ROWS as u32), 0..300),
        ) {
            let locator = TraceBlocks::from_rows(rows.iter().copied()).unwrap();
            let mut bytes = Vec::new();
            locator.encode(&mut bytes);
            let decoded = TraceBlocks::decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &locator);
            for &(fingerprint, row) in &rows {
                let block = (row as usize / BLOCK_ROWS) as u16;
                prop_assert!(decoded.blocks(fingerprint).contains(&block));
            }
            prop_assert!(decoded.blocks(fingerprint_missing(&rows)).is_empty());
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = TraceBlocks::decode(&bytes);
        }
    }

    /// A fingerprint whose key no row has.
    fn fingerprint_missing(rows: &[(u64, u32)]) -> u64 {
        (0..)
            .find(|f| rows.iter().all(|&(r, _)| key(r) != key(*f)))
            .unwrap_or_default()
    }

    #[test]
    fn ids_differing_in_low_bits_get_distinct_keys() {
        let keys: std::collections::HashSet<u32> = (0..10_000u64).map(key).collect();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn repeated_rows_of_a_trace_collapse_to_its_blocks() {
        let t = 7u64 << 32;
        let locator = TraceBlocks::from_rows([(t, 5), (t, 1000), (t, 1024), (t, 3000)]).unwrap();
        assert_eq!(locator.blocks(t), &[0, 1, 2]);
        assert_eq!(locator.len(), 3);
        assert!(TraceBlocks::from_rows([(t, u32::MAX)]).is_none());
    }

    #[test]
    fn corrupt_locators_are_refused() {
        assert!(TraceBlocks::decode(&[]).is_err());
        assert!(TraceBlocks::decode(&[200]).is_err());
        // Two pairs, the second repeating the first.
        assert!(TraceBlocks::decode(&[2, 1, 0, 0, 0]).is_err());
        // A trailing byte.
        assert!(TraceBlocks::decode(&[1, 1, 0, 9]).is_err());
        // A block past 16 bits.
        assert!(TraceBlocks::decode(&[1, 1, 0x80, 0x80, 0x04]).is_err());
    }
}
