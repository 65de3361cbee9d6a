//! Label sets: the low-cardinality identity of a stream, and the stream ID derived from
//! them. A label set is kept sorted by name with unique names, so equal sets have equal
//! bytes and equal stream IDs regardless of the order they arrived in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bounds that keep one stream's identity small. They apply to every label set the
/// store accepts, whatever the protocol.
pub const MAX_LABELS: usize = 64;
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_VALUE_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("invalid label name {0:?}: use [a-zA-Z_][a-zA-Z0-9_]*")]
    BadName(String),
    #[error("label name too long: {0} > {MAX_NAME_LEN} bytes")]
    NameTooLong(usize),
    #[error("label value too long for {name:?}: {len} > {MAX_VALUE_LEN} bytes")]
    ValueTooLong { name: String, len: usize },
    #[error("too many labels: {0} > {MAX_LABELS}")]
    TooMany(usize),
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
}

/// A stream's identity: a 64-bit hash of its canonical label encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<(String, String)>", into = "Vec<(String, String)>")]
pub struct LabelSet(Vec<(String, String)>);

impl LabelSet {
    /// Validates and sorts. Empty values are dropped, as in Prometheus: a label with an
    /// empty value is the same as no label.
    pub fn new(mut pairs: Vec<(String, String)>) -> Result<Self, LabelError> {
        canonicalize(&mut pairs)?;
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn stream_id(&self) -> StreamId {
        stream_id(&self.0)
    }
}

/// Brings label pairs into the canonical form every label set has: empty values
/// dropped, names valid and unique, sorted by name, within the size bounds.
/// Prometheus clients send labels sorted, so sorting is usually only a check.
pub fn canonicalize<S: AsRef<str>>(pairs: &mut Vec<(S, S)>) -> Result<(), LabelError> {
    if pairs.iter().any(|(_, v)| v.as_ref().is_empty()) {
        pairs.retain(|(_, v)| !v.as_ref().is_empty());
    }
    if pairs.len() > MAX_LABELS {
        return Err(LabelError::TooMany(pairs.len()));
    }
    for (name, value) in pairs.iter() {
        validate_name(name.as_ref())?;
        if value.as_ref().len() > MAX_VALUE_LEN {
            return Err(LabelError::ValueTooLong {
                name: name.as_ref().to_owned(),
                len: value.as_ref().len(),
            });
        }
    }
    if !pairs.is_sorted_by(|a, b| a.0.as_ref() < b.0.as_ref()) {
        pairs.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        if let Some(w) = pairs
            .windows(2)
            .find(|w| w[0].0.as_ref() == w[1].0.as_ref())
        {
            return Err(LabelError::Duplicate(w[0].0.as_ref().to_owned()));
        }
    }
    Ok(())
}

/// The stream ID of canonical label pairs: xxh3 over `name 0xff value 0xff …`; 0xff
/// never occurs in UTF-8, so no two different sets share an encoding.
pub fn stream_id<S: AsRef<str>>(pairs: &[(S, S)]) -> StreamId {
    // One-shot hashing of the whole encoding is several times faster than feeding a
    // streaming hasher two dozen short pieces, and gives the same digest.
    let len = pairs
        .iter()
        .map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut encoded = Vec::with_capacity(len);
    for (name, value) in pairs {
        encoded.extend_from_slice(name.as_ref().as_bytes());
        encoded.push(0xff);
        encoded.extend_from_slice(value.as_ref().as_bytes());
        encoded.push(0xff);
    }
    StreamId(xxhash_rust::xxh3::xxh3_64(&encoded))
}

pub fn validate_name(name: &str) -> Result<(), LabelError> {
    if name.len() > MAX_NAME_LEN {
        return Err(LabelError::NameTooLong(name.len()));
    }
    let ok = match name.as_bytes() {
        [first, rest @ ..] => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
        [] => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LabelError::BadName(name.to_owned()))
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    match name.as_bytes() {
        [first, rest @ ..] => {
            (first.is_ascii_alphabetic() || *first == b'_' || *first == b':')
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        }
        [] => false,
    }
}

impl TryFrom<Vec<(String, String)>> for LabelSet {
    type Error = LabelError;
    fn try_from(pairs: Vec<(String, String)>) -> Result<Self, LabelError> {
        Self::new(pairs)
    }
}

impl From<LabelSet> for Vec<(String, String)> {
    fn from(set: LabelSet) -> Self {
        set.0
    }
}

/// Prints in selector form, `{name="value", …}`, which `Selector::parse` reads back.
impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}=")?;
            super::matcher::write_quoted(f, value)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn label_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{1,12}", 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn stream_id_ignores_order(pairs in label_pairs(), seed in any::<u64>()) {
            let a = LabelSet::new(pairs.clone()).unwrap();
            let mut shuffled = pairs;
            let n = shuffled.len().max(1);
            shuffled.rotate_left((seed as usize) % n);
            let b = LabelSet::new(shuffled).unwrap();
            prop_assert_eq!(a.stream_id(), b.stream_id());
            prop_assert_eq!(a, b);
        }

        #[test]
        fn different_sets_have_different_ids(a in label_pairs(), b in label_pairs()) {
            let (a, b) = (LabelSet::new(a).unwrap(), LabelSet::new(b).unwrap());
            prop_assert_eq!(a == b, a.stream_id() == b.stream_id());
        }

        #[test]
        fn display_parses_back(pairs in label_pairs()) {
            let set = LabelSet::new(pairs).unwrap();
            let parsed = crate::model::Selector::parse(&set.to_string()).unwrap();
            prop_assert_eq!(parsed.as_label_set().unwrap(), set);
        }
    }

    /// Stream IDs are stored in chunks: the hash of a label set must never change.
    #[test]
    fn stream_id_is_stable() {
        let set = LabelSet::new(vec![
            ("service_name".into(), "checkout".into()),
            ("severity".into(), "error".into()),
        ])
        .unwrap();
        let encoded = b"service_name\xffcheckout\xffseverity\xfferror\xff";
        assert_eq!(set.stream_id().0, xxhash_rust::xxh3::xxh3_64(encoded));
        // Pinned: chunks written by earlier versions carry this value.
        assert_eq!(set.stream_id().0, 868_704_561_121_149_821);
    }

    #[test]
    fn limits_are_enforced() {
        let many = (0..65).map(|i| (format!("l{i}"), "v".to_owned())).collect();
        assert_eq!(LabelSet::new(many), Err(LabelError::TooMany(65)));
        let long = vec![("a".to_owned(), "x".repeat(2049))];
        assert!(matches!(
            LabelSet::new(long),
            Err(LabelError::ValueTooLong { len: 2049, .. })
        ));
        assert!(LabelSet::new(vec![("1a".into(), "v".into())]).is_err());
        let dup = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert_eq!(LabelSet::new(dup), Err(LabelError::Duplicate("a".into())));
    }
}
