//! Cumulative profiles made mergeable. Go's allocation, mutex and block profiles count
//! up from process start, so the sum of two such profiles means nothing; what is
//! stored instead is each stack's growth since the previous profile of the same
//! series, as Conprof and Pyroscope do.

use std::collections::{HashMap, HashSet};

use super::{Profile, ValueType, frame_hashes, is_cumulative, stack_id};

/// The cumulative values of one profile, per stack, kept to compute the next delta.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    types: Vec<ValueType>,
    by_stack: HashMap<u64, Vec<i64>>,
}

impl Totals {
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// Replaces every cumulative value of `profile` by its growth since `previous` and
/// returns the totals to pass next time. Without a previous profile (the first of a
/// series, or one whose sample types changed) cumulative values become 0 and are not
/// stored. A total that shrank means the process restarted: the new total is the
/// growth. Non-cumulative values are untouched.
pub fn to_delta(profile: &mut Profile, previous: Option<&Totals>) -> Totals {
    let cumulative: Vec<usize> = (0..profile.sample_types.len())
        .filter(|&i| is_cumulative(&profile.sample_types[i].kind))
        .collect();
    if cumulative.is_empty() {
        return Totals::default();
    }
    let types: Vec<ValueType> = cumulative
        .iter()
        .map(|&i| profile.sample_types[i].clone())
        .collect();
    let hashes = frame_hashes(&profile.frames);
    let ids: Vec<u64> = profile
        .samples
        .iter()
        .map(|s| stack_id(&hashes, &s.stack))
        .collect();
    let mut current: HashMap<u64, Vec<i64>> = HashMap::new();
    for (sample, id) in profile.samples.iter().zip(&ids) {
        let totals = current
            .entry(*id)
            .or_insert_with(|| vec![0; cumulative.len()]);
        for (t, &i) in totals.iter_mut().zip(&cumulative) {
            *t = t.saturating_add(sample.values[i]);
        }
    }
    let previous = previous.filter(|p| p.types == types);
    let restarted: Vec<bool> = (0..cumulative.len())
        .map(|t| match previous {
            Some(p) => sum(&current, t) < sum(&p.by_stack, t),
            None => false,
        })
        .collect();
    // Samples of one stack share its delta: the first carries it, the rest get 0.
    let mut carried = HashSet::with_capacity(current.len());
    for (sample, id) in profile.samples.iter_mut().zip(&ids) {
        if !carried.insert(*id) {
            for &i in &cumulative {
                sample.values[i] = 0;
            }
            continue;
        }
        let values = &current[id];
        for (t, &i) in cumulative.iter().enumerate() {
            sample.values[i] = match previous {
                None => 0,
                Some(_) if restarted[t] => values[t],
                Some(p) => {
                    let before = p.by_stack.get(id).map_or(0, |v| v[t]);
                    values[t].saturating_sub(before).max(0)
                }
            };
        }
    }
    Totals {
        types,
        by_stack: current,
    }
}

fn sum(by_stack: &HashMap<u64, Vec<i64>>, t: usize) -> i64 {
    by_stack
        .values()
        .fold(0i64, |acc, v| acc.saturating_add(v[t]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, Sample};

    fn heap(values: &[(u32, i64, i64)]) -> Profile {
        Profile {
            sample_types: vec![
                ValueType::new("alloc_space", "bytes"),
                ValueType::new("inuse_space", "bytes"),
            ],
            frames: (0..4)
                .map(|i| Frame {
                    function: format!("f{i}"),
                    ..Frame::default()
                })
                .collect(),
            samples: values
                .iter()
                .map(|&(leaf, alloc, inuse)| Sample {
                    stack: vec![0, leaf],
                    values: vec![alloc, inuse],
                    labels: vec![],
                })
                .collect(),
            ..Profile::default()
        }
    }

    fn values(profile: &Profile) -> Vec<(i64, i64)> {
        profile
            .samples
            .iter()
            .map(|s| (s.values[0], s.values[1]))
            .collect()
    }

    #[test]
    fn growth_since_the_previous_profile() {
        let mut first = heap(&[(1, 100, 10), (2, 50, 5)]);
        let totals = to_delta(&mut first, None);
        // Nothing to compare with: cumulative values are dropped, gauges kept.
        assert_eq!(values(&first), [(0, 10), (0, 5)]);

        let mut second = heap(&[(1, 180, 7), (2, 50, 5), (3, 30, 1)]);
        let totals = to_delta(&mut second, Some(&totals));
        assert_eq!(values(&second), [(80, 7), (0, 5), (30, 1)]);

        // The process restarted: totals shrank, so the new totals are the growth.
        let mut third = heap(&[(1, 20, 2)]);
        to_delta(&mut third, Some(&totals));
        assert_eq!(values(&third), [(20, 2)]);
    }

    #[test]
    fn samples_of_one_stack_share_its_delta() {
        let mut first = heap(&[(1, 100, 0)]);
        let totals = to_delta(&mut first, None);
        let mut second = heap(&[(1, 70, 0), (1, 60, 0)]);
        to_delta(&mut second, Some(&totals));
        assert_eq!(values(&second), [(30, 0), (0, 0)]);
    }

    #[test]
    fn profiles_without_cumulative_types_are_untouched() {
        let mut cpu = heap(&[(1, 5, 5)]);
        cpu.sample_types = vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ];
        assert!(to_delta(&mut cpu, None).is_empty());
        assert_eq!(values(&cpu), [(5, 5)]);
    }
}
