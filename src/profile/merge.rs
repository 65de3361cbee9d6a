//! Many samples of one profile type merged into one profile, and that profile written
//! three ways: pprof (`go tool pprof`), folded stacks (`a;b;c 42`, one line per stack,
//! as flamegraph.pl and Pyroscope read them) and a flame graph in Pyroscope's
//! "flamebearer" level encoding.

use std::collections::HashMap;

use serde::Serialize;

use super::{Frame, Profile, ProfileType, Sample};

/// Stacks (root first) and their summed values.
#[derive(Debug, Clone)]
pub struct Merged {
    pub profile_type: ProfileType,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    frames: Vec<Frame>,
    frame_index: HashMap<Frame, u32>,
    stacks: HashMap<Vec<u32>, i64>,
}

impl Merged {
    pub fn new(profile_type: ProfileType) -> Self {
        Self {
            profile_type,
            time_nanos: 0,
            duration_nanos: 0,
            frames: Vec::new(),
            frame_index: HashMap::new(),
            stacks: HashMap::new(),
        }
    }

    /// The index of a frame, added on first sight.
    pub fn frame(&mut self, function: &str, file: &str, line: i64) -> u32 {
        let frame = Frame {
            function: function.to_owned(),
            file: file.to_owned(),
            line,
        };
        if let Some(&i) = self.frame_index.get(&frame) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_index.insert(frame, i);
        i
    }

    /// Adds `value` to a stack of frame indexes, root first. Values below 0 (which
    /// no stored sample has) count as 0.
    pub fn add(&mut self, stack: Vec<u32>, value: i64) {
        let value = value.max(0);
        let slot = self.stacks.entry(stack).or_insert(0);
        *slot = slot.saturating_add(value);
    }

    pub fn total(&self) -> i64 {
        self.stacks.values().fold(0i64, |a, v| a.saturating_add(*v))
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The merged profile with one sample per distinct stack.
    pub fn to_profile(&self) -> Profile {
        let mut stacks: Vec<(&Vec<u32>, &i64)> = self.stacks.iter().collect();
        stacks.sort();
        Profile {
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            period_type: self.profile_type.period.clone(),
            period: 0,
            sample_types: vec![self.profile_type.sample.clone()],
            frames: self.frames.clone(),
            samples: stacks
                .into_iter()
                .map(|(stack, value)| Sample {
                    stack: stack.clone(),
                    values: vec![*value],
                    labels: Vec::new(),
                })
                .collect(),
        }
    }

    /// Folded stacks of function names, sorted, one `root;…;leaf value` per line.
    pub fn folded(&self) -> String {
        let mut lines: HashMap<String, i64> = HashMap::new();
        for (stack, value) in &self.stacks {
            let names: Vec<&str> = stack
                .iter()
                .map(|&f| self.frames[f as usize].function.as_str())
                .collect();
            let slot = lines.entry(names.join(";")).or_insert(0);
            *slot = slot.saturating_add(*value);
        }
        let mut lines: Vec<(String, i64)> = lines.into_iter().collect();
        lines.sort();
        let mut out = String::new();
        for (stack, value) in lines {
            out.push_str(&stack);
            out.push(' ');
            out.push_str(&value.to_string());
            out.push('\n');
        }
        out
    }

    /// The call tree by function name, as flame-graph levels. With `max_nodes`, the
    /// smallest nodes beyond that many are folded into one `other` node per parent,
    /// as Pyroscope does.
    pub fn flame_graph(&self, max_nodes: Option<usize>) -> FlameGraph {
        FlameGraph::build(self, max_nodes)
    }
}

/// A flame graph in Pyroscope's flamebearer encoding: `levels[d]` holds the nodes at
/// depth `d` left to right, four numbers each — the gap since the previous node's end
/// on that level, the node's total, its self value and its index in `names`. Level 0
/// is the root, named `total`. Siblings are ordered by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlameGraph {
    pub names: Vec<String>,
    pub levels: Vec<Vec<i64>>,
    pub total: i64,
    pub max_self: i64,
}

struct Node {
    name: u32,
    total: i64,
    own: i64,
    children: Vec<u32>,
}

impl FlameGraph {
    fn build(merged: &Merged, max_nodes: Option<usize>) -> Self {
        let mut names = vec!["total".to_owned()];
        let mut name_index: HashMap<&str, u32> = HashMap::new();
        let mut nodes = vec![Node {
            name: 0,
            total: 0,
            own: 0,
            children: Vec::new(),
        }];
        let mut child_of: HashMap<(u32, u32), u32> = HashMap::new();
        for (stack, &value) in &merged.stacks {
            let mut at = 0u32;
            nodes[0].total = nodes[0].total.saturating_add(value);
            for &f in stack {
                let function = merged.frames[f as usize].function.as_str();
                let name = *name_index.entry(function).or_insert_with(|| {
                    names.push(function.to_owned());
                    names.len() as u32 - 1
                });
                at = *child_of.entry((at, name)).or_insert_with(|| {
                    nodes.push(Node {
                        name,
                        total: 0,
                        own: 0,
                        children: Vec::new(),
                    });
                    let child = nodes.len() as u32 - 1;
                    nodes[at as usize].children.push(child);
                    child
                });
                let node = &mut nodes[at as usize];
                node.total = node.total.saturating_add(value);
            }
            let node = &mut nodes[at as usize];
            node.own = node.own.saturating_add(value);
        }
        for i in 0..nodes.len() {
            let mut children = std::mem::take(&mut nodes[i].children);
            children.sort_by(|a, b| {
                names[nodes[*a as usize].name as usize]
                    .cmp(&names[nodes[*b as usize].name as usize])
            });
            nodes[i].children = children;
        }

        if let Some(max) = max_nodes.filter(|m| nodes.len() > *m) {
            fold_small_nodes(&mut nodes, &mut names, max);
        }

        let mut levels: Vec<Vec<i64>> = Vec::new();
        // Where the last node written on each level ends.
        let mut level_end: Vec<i64> = Vec::new();
        let mut max_self = 0;
        // Depth-first, children in order; each entry is (node, depth, x offset).
        let mut pending = vec![(0u32, 0usize, 0i64)];
        while let Some((id, depth, x)) = pending.pop() {
            let node = &nodes[id as usize];
            if levels.len() <= depth {
                levels.push(Vec::new());
                level_end.push(0);
            }
            levels[depth].extend_from_slice(&[
                x.saturating_sub(level_end[depth]),
                node.total,
                node.own,
                i64::from(node.name),
            ]);
            level_end[depth] = x.saturating_add(node.total);
            max_self = max_self.max(node.own);
            let mut child_x = x;
            let mut placed = Vec::with_capacity(node.children.len());
            for &child in &node.children {
                placed.push((child, depth + 1, child_x));
                child_x = child_x.saturating_add(nodes[child as usize].total);
            }
            pending.extend(placed.into_iter().rev());
        }
        Self {
            names,
            total: nodes[0].total,
            max_self,
            levels,
        }
    }
}

/// Keeps the `max` nodes with the largest totals (ties kept) and folds each parent's
/// other children into one `other` child with their total, so totals still add up.
fn fold_small_nodes(nodes: &mut Vec<Node>, names: &mut Vec<String>, max: usize) {
    let mut totals: Vec<i64> = nodes.iter().map(|n| n.total).collect();
    totals.sort_unstable_by(|a, b| b.cmp(a));
    let min_total = totals[max.saturating_sub(1).min(totals.len() - 1)];
    let other = names.len() as u32;
    names.push("other".to_owned());
    for i in 0..nodes.len() {
        let children = std::mem::take(&mut nodes[i].children);
        let (kept, folded): (Vec<u32>, Vec<u32>) = children
            .into_iter()
            .partition(|c| nodes[*c as usize].total >= min_total);
        let folded_total = folded
            .iter()
            .fold(0i64, |sum, c| sum.saturating_add(nodes[*c as usize].total));
        nodes[i].children = kept;
        if folded_total > 0 {
            nodes.push(Node {
                name: other,
                total: folded_total,
                own: folded_total,
                children: Vec::new(),
            });
            let id = nodes.len() as u32 - 1;
            nodes[i].children.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ValueType;

    fn cpu() -> ProfileType {
        ProfileType::new(
            "process_cpu",
            &ValueType::new("cpu", "nanoseconds"),
            &ValueType::new("cpu", "nanoseconds"),
        )
    }

    fn merged(stacks: &[(&[&str], i64)]) -> Merged {
        let mut m = Merged::new(cpu());
        for (names, value) in stacks {
            let stack = names.iter().map(|n| m.frame(n, "", 0)).collect();
            m.add(stack, *value);
        }
        m
    }

    #[test]
    fn folded_sums_identical_stacks() {
        let m = merged(&[
            (&["main", "work", "hash"], 30),
            (&["main", "idle"], 5),
            (&["main", "work", "hash"], 12),
        ]);
        assert_eq!(m.total(), 47);
        assert_eq!(m.folded(), "main;idle 5\nmain;work;hash 42\n");
    }

    #[test]
    fn flame_graph_levels_follow_the_flamebearer_encoding() {
        let m = merged(&[
            (&["main", "work", "hash"], 30),
            (&["main", "idle"], 5),
            (&["main"], 2),
            (&["gc"], 3),
        ]);
        let g = m.flame_graph(None);
        let name = |n: &str| g.names.iter().position(|x| x == n).unwrap() as i64;
        assert_eq!(g.total, 40);
        assert_eq!(g.max_self, 30);
        assert_eq!(g.levels[0], [0, 40, 0, 0]);
        // Siblings by name: gc (3) before main (37).
        assert_eq!(g.levels[1], [0, 3, 3, name("gc"), 0, 37, 2, name("main")]);
        // idle (5) then work (30), both under main, which starts at x = 3.
        assert_eq!(g.levels[2], [3, 5, 5, name("idle"), 0, 30, 0, name("work")]);
        assert_eq!(g.levels[3], [8, 30, 30, name("hash")]);
    }

    #[test]
    fn max_nodes_folds_the_smallest_into_other() {
        let m = merged(&[
            (&["main", "work", "hash"], 30),
            (&["main", "idle"], 5),
            (&["main"], 2),
            (&["gc"], 3),
        ]);
        // Six nodes (total, main, work, hash, idle, gc); keep the four largest.
        let g = m.flame_graph(Some(4));
        let name = |n: &str| g.names.iter().position(|x| x == n).unwrap() as i64;
        assert_eq!(g.total, 40);
        assert_eq!(g.levels[0], [0, 40, 0, 0]);
        // gc folds into the root's other; idle into main's.
        assert_eq!(
            g.levels[1],
            [0, 37, 2, name("main"), 0, 3, 3, name("other")]
        );
        assert_eq!(
            g.levels[2],
            [0, 30, 0, name("work"), 0, 5, 5, name("other")]
        );
        assert_eq!(g.levels[3], [0, 30, 30, name("hash")]);
        assert_eq!(m.flame_graph(Some(100)), m.flame_graph(None));
    }

    #[test]
    fn merged_profile_has_one_sample_per_stack() {
        let m = merged(&[(&["main", "work"], 30), (&["main", "work"], 12)]);
        let p = m.to_profile();
        assert_eq!(p.samples.len(), 1);
        assert_eq!(p.samples[0].values, [42]);
        assert_eq!(p.sample_types, [ValueType::new("cpu", "nanoseconds")]);
    }
}
