//! What to compact: a pure function from the chunks in force to a list of merges.
//!
//! Chunks merge only with chunks of the same tenant, signal, label partition and hour
//! window, so a merged chunk keeps its key and the WAL marks stay meaningful. A chunk
//! of at least half the target size is left as it is; the others are taken oldest
//! first and packed into merges of at most the target size, `MAX_MERGE_INPUTS`
//! inputs and `MAX_CHUNK_ROWS` rows; a chunk more than eight times the size of the
//! rest of its merge waits for more beside it. A window is compacted only once it is settled
//! (its hour ended before `settled_before`), so chunks still being cut into it are
//! not rewritten again and again.

use std::collections::BTreeMap;

use crate::index::traces::MAX_CHUNK_ROWS;
use crate::model::{Signal, Tenant};
use crate::storage::keys::HOUR_NS;
use crate::storage::{ChunkId, ChunkMeta, PartitionKey};

/// Most chunks one merge reads at once: each open input holds a batch of decoded rows
/// and a row group's worth of fetched pages, so this bounds the compactor's memory.
pub const MAX_MERGE_INPUTS: usize = 32;

/// What the planner knows of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tenant: Tenant,
    pub signal: Signal,
    pub partition: PartitionKey,
    pub window_start: i64,
    pub id: ChunkId,
    pub size: u64,
    pub rows: u64,
}

impl Candidate {
    pub fn of(meta: &ChunkMeta) -> Self {
        Self {
            tenant: meta.tenant.clone(),
            signal: meta.signal,
            partition: meta.partition.clone(),
            window_start: meta.window_start,
            id: meta.id.clone(),
            size: meta.size,
            rows: meta.rows,
        }
    }

    fn group(&self) -> (&Tenant, Signal, &PartitionKey, i64) {
        (
            &self.tenant,
            self.signal,
            &self.partition,
            self.window_start,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// The size merged chunks are packed up to.
    pub target_bytes: u64,
    /// Windows whose hour ends after this instant (ns) are left alone.
    pub settled_before: i64,
}

/// Chunks of one group to be merged into one, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub inputs: Vec<Candidate>,
}

impl Merge {
    pub fn size(&self) -> u64 {
        self.inputs.iter().map(|c| c.size).sum()
    }

    pub fn rows(&self) -> u64 {
        self.inputs.iter().map(|c| c.rows).sum()
    }
}

/// The merges to run, in a fixed order that does not depend on the order of `chunks`.
pub fn plan(chunks: &[Candidate], config: &PlanConfig) -> Vec<Merge> {
    let mut groups: BTreeMap<_, Vec<&Candidate>> = BTreeMap::new();
    for chunk in chunks {
        let settled = chunk.window_start.saturating_add(HOUR_NS) <= config.settled_before;
        if settled && chunk.size < config.target_bytes / 2 {
            groups.entry(chunk.group()).or_default().push(chunk);
        }
    }
    let mut merges = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let mut current: Vec<Candidate> = Vec::new();
        let (mut size, mut rows) = (0u64, 0u64);
        for chunk in members {
            let fits = current.len() < MAX_MERGE_INPUTS
                && size + chunk.size <= config.target_bytes
                && rows + chunk.rows <= MAX_CHUNK_ROWS as u64;
            if !fits {
                merges.extend(worth_rewriting(std::mem::take(&mut current)));
                (size, rows) = (0, 0);
            }
            size += chunk.size;
            rows += chunk.rows;
            current.push(chunk.clone());
        }
        merges.extend(worth_rewriting(current));
    }
    merges
}

/// A chunk more than `MAX_REWRITE_RATIO` times the size of the rest of its merge is
/// left out of it: rows arriving late to a compacted hour would otherwise rewrite its
/// large chunk at every pass. It joins a merge once enough has gathered beside it.
const MAX_REWRITE_RATIO: u64 = 8;

/// The merge of `inputs` without the chunks not worth rewriting; `None` if fewer than
/// two remain.
fn worth_rewriting(mut inputs: Vec<Candidate>) -> Option<Merge> {
    while inputs.len() >= 2 {
        let total: u64 = inputs.iter().map(|c| c.size).sum();
        let (largest, size) = inputs
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.size))
            .max_by_key(|&(i, size)| (size, std::cmp::Reverse(i)))?;
        if size <= MAX_REWRITE_RATIO * (total - size) {
            return Some(Merge { inputs });
        }
        inputs.remove(largest);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const T0: i64 = 1_700_000_000_000_000_000 / HOUR_NS * HOUR_NS;

    fn candidate(
        (tenant, signal, partition, hour, n, size, rows): (u8, u8, u8, i64, u32, u64, u64),
    ) -> Candidate {
        Candidate {
            tenant: Tenant::new(&format!("t{tenant}")).unwrap(),
            signal: Signal::ALL[signal as usize % Signal::ALL.len()],
            partition: PartitionKey::from_label_value(Some(&format!("p{partition}"))),
            window_start: T0 + hour * HOUR_NS,
            id: ChunkId::new(1000 + u64::from(n), "00ff", n),
            size,
            rows,
        }
    }

    fn chunks() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            (
                0..2u8,
                0..2u8,
                0..3u8,
                0..3i64,
                0..200u32,
                1..400u64,
                1..100_000u64,
            ),
            0..120,
        )
        .prop_map(|raw| {
            // Chunk IDs are unique.
            let mut seen = HashSet::new();
            raw.into_iter()
                .filter(|c| seen.insert(c.4))
                .map(candidate)
                .collect()
        })
    }

    fn config(target_bytes: u64, settled_hours: i64) -> PlanConfig {
        PlanConfig {
            target_bytes,
            settled_before: T0 + settled_hours * HOUR_NS,
        }
    }

    proptest! {
        #[test]
        fn every_chunk_is_in_at_most_one_merge_of_its_own_group(
            chunks in chunks(),
            target in 2..2000u64,
            settled in 0..4i64,
        ) {
            let config = config(target, settled);
            let merges = plan(&chunks, &config);
            let mut used = HashSet::new();
            for merge in &merges {
                prop_assert!(merge.inputs.len() >= 2);
                prop_assert!(merge.inputs.len() <= MAX_MERGE_INPUTS);
                prop_assert!(merge.size() <= target);
                prop_assert!(merge.rows() <= MAX_CHUNK_ROWS as u64);
                let group = merge.inputs[0].group();
                for input in &merge.inputs {
                    prop_assert_eq!(input.group(), group);
                    prop_assert!(input.size < target / 2);
                    prop_assert!(input.window_start + HOUR_NS <= config.settled_before);
                    prop_assert!(used.insert(input.id.clone()), "{} twice", input.id);
                    prop_assert!(chunks.contains(input));
                }
                prop_assert!(merge.inputs.windows(2).all(|w| w[0].id < w[1].id));
                let largest = merge.inputs.iter().map(|c| c.size).max().unwrap();
                prop_assert!(largest <= MAX_REWRITE_RATIO * (merge.size() - largest));
            }
        }

        #[test]
        fn the_plan_does_not_depend_on_listing_order(
            chunks in chunks(),
            target in 2..2000u64,
            seed in any::<u64>(),
        ) {
            let config = config(target, 3);
            let mut shuffled = chunks.clone();
            // A Fisher-Yates shuffle driven by the seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(plan(&chunks, &config), plan(&shuffled, &config));
        }

        /// A settled group of small chunks that fits one merge becomes exactly one.
        #[test]
        fn a_group_that_fits_is_merged_whole(
            sizes in prop::collection::vec(10..50u64, 2..=MAX_MERGE_INPUTS),
        ) {
            let chunks: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(n, size)| candidate((0, 0, 0, 0, n as u32, *size, 10)))
                .collect();
            let merges = plan(&chunks, &config(10_000, 1));
            prop_assert_eq!(merges.len(), 1);
            prop_assert_eq!(&merges[0].inputs, &chunks);
        }
    }

    #[test]
    fn large_chunks_and_open_windows_are_left_alone() {
        let chunks = vec![
            candidate((0, 0, 0, 0, 1, 600, 10)),
            candidate((0, 0, 0, 0, 2, 10, 10)),
            candidate((0, 0, 0, 0, 3, 10, 10)),
            candidate((0, 0, 0, 1, 4, 10, 10)),
            candidate((0, 0, 0, 1, 5, 10, 10)),
        ];
        let merges = plan(&chunks, &config(1000, 1));
        assert_eq!(merges.len(), 1);
        let ids: Vec<_> = merges[0].inputs.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, vec![chunks[1].id.clone(), chunks[2].id.clone()]);
        // Once the second hour has ended, its chunks merge too.
        assert_eq!(plan(&chunks, &config(1000, 2)).len(), 2);
    }

    /// Late rows in a compacted hour do not rewrite its large chunk until enough of
    /// them have gathered.
    #[test]
    fn a_large_chunk_waits_for_enough_beside_it() {
        let merged = candidate((0, 0, 0, 0, 1, 400, 10));
        let late = |n: u32, size: u64| candidate((0, 0, 0, 0, n, size, 10));
        let ids = |merges: &[Merge]| -> Vec<Vec<u32>> {
            merges
                .iter()
                .map(|m| m.inputs.iter().map(|c| id_counter(&c.id)).collect())
                .collect()
        };
        let config = config(1000, 1);
        // 20 bytes beside 400: only the late chunks merge.
        let plan_a = plan(&[merged.clone(), late(2, 10), late(3, 10)], &config);
        assert_eq!(ids(&plan_a), vec![vec![2, 3]]);
        // 60 bytes beside 400: worth it.
        let plan_b = plan(&[merged, late(2, 30), late(3, 30)], &config);
        assert_eq!(ids(&plan_b), vec![vec![1, 2, 3]]);
    }

    fn id_counter(id: &ChunkId) -> u32 {
        u32::from_str_radix(id.as_str().rsplit('-').next().unwrap(), 16).unwrap()
    }

    #[test]
    fn merges_stop_at_the_input_bound() {
        let chunks: Vec<_> = (0..MAX_MERGE_INPUTS as u32 * 2 + 1)
            .map(|n| candidate((0, 0, 0, 0, n, 1, 1)))
            .collect();
        let merges = plan(&chunks, &config(1 << 30, 1));
        let sizes: Vec<_> = merges.iter().map(|m| m.inputs.len()).collect();
        // The last chunk alone is not a merge.
        assert_eq!(sizes, vec![MAX_MERGE_INPUTS, MAX_MERGE_INPUTS]);
    }
}
