//! The label index: stream → label set, and label name → value → streams. Which
//! chunks hold which streams (and over what time) is in each chunk's metadata; this
//! index resolves a selector to the stream IDs those lists are checked against.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::model::{LabelSet, MatchOp, Selector, StreamId};

#[derive(Debug, Default)]
pub struct LabelIndex {
    streams: HashMap<StreamId, LabelSet>,
    postings: BTreeMap<String, BTreeMap<String, HashSet<StreamId>>>,
}

impl LabelIndex {
    pub fn contains(&self, id: StreamId) -> bool {
        self.streams.contains_key(&id)
    }

    /// Adds a stream; adding a known stream again does nothing.
    pub fn insert(&mut self, id: StreamId, labels: &LabelSet) {
        if self.streams.contains_key(&id) {
            return;
        }
        for (name, value) in labels.iter() {
            self.postings
                .entry(name.to_owned())
                .or_default()
                .entry(value.to_owned())
                .or_default()
                .insert(id);
        }
        self.streams.insert(id, labels.clone());
    }

    /// The index of only the streams `keep` holds (the others no longer have rows).
    pub fn retain(&self, keep: impl IntoIterator<Item = StreamId>) -> Self {
        let mut kept = Self::default();
        for id in keep {
            if let Some(labels) = self.streams.get(&id) {
                kept.insert(id, labels);
            }
        }
        kept
    }

    pub fn labels(&self, id: StreamId) -> Option<&LabelSet> {
        self.streams.get(&id)
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Every stream the selector matches. Starts from the smallest posting list of an
    /// equality matcher when there is one, then checks each candidate in full.
    pub fn select(&self, selector: &Selector) -> HashSet<StreamId> {
        let smallest = selector
            .matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal && !m.value.is_empty())
            .map(|m| {
                self.postings
                    .get(&m.name)
                    .and_then(|values| values.get(&m.value))
            })
            .min_by_key(|p| p.map_or(0, |s| s.len()));
        let check = |id: &StreamId| {
            self.streams
                .get(id)
                .is_some_and(|labels| selector.matches(labels))
        };
        match smallest {
            Some(None) => HashSet::new(),
            Some(Some(candidates)) => candidates.iter().copied().filter(check).collect(),
            None => self.streams.keys().copied().filter(check).collect(),
        }
    }

    /// Label names, over all streams or only over `within`.
    pub fn names(&self, within: Option<&HashSet<StreamId>>) -> BTreeSet<String> {
        match within {
            None => self.postings.keys().cloned().collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.streams.get(id))
                .flat_map(|labels| labels.iter().map(|(n, _)| n.to_owned()))
                .collect(),
        }
    }

    /// Values of one label, over all streams or only over `within`.
    pub fn values(&self, name: &str, within: Option<&HashSet<StreamId>>) -> BTreeSet<String> {
        let Some(values) = self.postings.get(name) else {
            return BTreeSet::new();
        };
        values
            .iter()
            .filter(|(_, ids)| within.is_none_or(|w| ids.iter().any(|id| w.contains(id))))
            .map(|(v, _)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::new(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn selects_names_and_values() {
        let mut index = LabelIndex::default();
        let a = set(&[("service_name", "api"), ("severity", "error")]);
        let b = set(&[("service_name", "api"), ("severity", "info")]);
        let c = set(&[("service_name", "web")]);
        for s in [&a, &b, &c] {
            index.insert(s.stream_id(), s);
        }
        let pick = |q: &str| {
            let mut ids: Vec<_> = index
                .select(&Selector::parse(q).unwrap())
                .into_iter()
                .collect();
            ids.sort();
            ids
        };
        let mut ab = vec![a.stream_id(), b.stream_id()];
        ab.sort();
        assert_eq!(pick(r#"{service_name="api"}"#), ab);
        assert_eq!(
            pick(r#"{service_name="api", severity=~"warn|error"}"#),
            vec![a.stream_id()]
        );
        assert_eq!(pick(r#"{severity=""}"#), vec![c.stream_id()]);
        assert_eq!(pick(r#"{service_name="nope"}"#), vec![]);
        assert_eq!(pick("{}").len(), 3);
        let within: HashSet<_> = [c.stream_id()].into();
        assert_eq!(
            index.names(Some(&within)),
            BTreeSet::from(["service_name".to_owned()])
        );
        assert_eq!(
            index.values("service_name", None),
            BTreeSet::from(["api".to_owned(), "web".to_owned()])
        );
    }
}
