//! Object keys, built by one function from typed parts:
//!
//! ```text
//! {tenant}/{signal}/{partition}/{yyyy-mm-dd}/{hh}/{chunk-id}.parquet
//! {tenant}/{signal}/{partition}/{yyyy-mm-dd}/{hh}/{chunk-id}.meta
//! ```
//!
//! Every part is restricted to characters that cannot add, remove or escape a path
//! segment, so no label value or tenant ID can change the shape of a key.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike};

use crate::model::{Signal, Tenant};

pub const HOUR_NS: i64 = 3_600_000_000_000;
const MAX_PARTITION_LEN: usize = 100;

/// The label partition: the partition label's value, escaped to `[A-Za-z0-9_.-]`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PartitionKey(String);

impl PartitionKey {
    /// Bytes outside `[A-Za-z0-9_-]` become `.XX` (hex), so `.` and `..` cannot occur
    /// as a whole segment and distinct values stay distinct. Long values are cut and
    /// suffixed with `=` and a hash of the whole value (`=` never comes out of the
    /// escaping, and object keys carry it unencoded).
    pub fn from_label_value(value: Option<&str>) -> Self {
        let value = value.unwrap_or("");
        if value.is_empty() {
            return Self("_".to_owned());
        }
        let mut out = String::with_capacity(value.len());
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
                out.push(byte as char);
            } else {
                out.push_str(&format!(".{byte:02x}"));
            }
        }
        if out.len() > MAX_PARTITION_LEN {
            let hash = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
            out.truncate(MAX_PARTITION_LEN - 17);
            out.push_str(&format!("={hash:016x}"));
        }
        Self(out)
    }

    /// Accepts only what `from_label_value` produces (used when parsing keys).
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_PARTITION_LEN
            && text != "."
            && text != ".."
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.=".contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unique per ingester and sortable by creation time: `{unix ms:012x}-{ingester}-{n:08x}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ChunkId(String);

impl ChunkId {
    pub fn new(unix_ms: u64, ingester: &str, counter: u32) -> Self {
        Self(format!("{unix_ms:012x}-{ingester}-{counter:08x}"))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything that names one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub tenant: Tenant,
    pub signal: Signal,
    pub partition: PartitionKey,
    /// Start of the chunk's hour, in ns since the epoch.
    pub window_start: i64,
    pub id: ChunkId,
}

impl ChunkKey {
    fn prefix(&self) -> String {
        let hour = DateTime::from_timestamp_nanos(self.window_start);
        format!(
            "{}/{}/{}/{:04}-{:02}-{:02}/{:02}/{}",
            self.tenant,
            self.signal,
            self.partition,
            hour.year(),
            hour.month(),
            hour.day(),
            hour.hour(),
            self.id
        )
    }

    pub fn data_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}.parquet", self.prefix()))
    }

    pub fn meta_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}.meta", self.prefix()))
    }
}

/// The start of the hour holding `t` (ns since the epoch).
pub fn window_start(t: i64) -> i64 {
    t.div_euclid(HOUR_NS) * HOUR_NS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(partition: &str) -> ChunkKey {
        ChunkKey {
            tenant: Tenant::new("acme").unwrap(),
            signal: Signal::Logs,
            partition: PartitionKey::from_label_value(Some(partition)),
            window_start: window_start(1_700_000_000_000_000_000),
            id: ChunkId::new(0x18bcfe56800, "00ff", 1),
        }
    }

    #[test]
    fn key_shape() {
        assert_eq!(
            key("checkout").data_path().as_ref(),
            "acme/logs/checkout/2023-11-14/22/018bcfe56800-00ff-00000001.parquet"
        );
        assert_eq!(
            key("a/b").meta_path().as_ref(),
            "acme/logs/a.2fb/2023-11-14/22/018bcfe56800-00ff-00000001.meta"
        );
    }

    /// Escaping triples multibyte values; the hash suffix once used `~`, which object
    /// store paths percent-encode, pushing the segment past its length limit.
    #[test]
    fn long_multibyte_value_stays_within_limit() {
        let path = key("®:A𑼒®￼ ￼ 𐎟: ®a𑚀 ® ").data_path();
        let partition = path.as_ref().split('/').nth(2).unwrap().to_owned();
        assert_eq!(partition.len(), MAX_PARTITION_LEN, "{partition}");
        assert!(PartitionKey::parse(&partition).is_some());
    }

    proptest! {
        #[test]
        fn no_label_value_changes_the_key_shape(value in "\\PC{0,200}") {
            let path = key(&value).data_path();
            let parts: Vec<_> = path.as_ref().split('/').collect();
            prop_assert_eq!(parts.len(), 6);
            let partition = parts[2];
            prop_assert!(partition != "." && partition != ".." && !partition.is_empty());
            prop_assert!(partition.len() <= MAX_PARTITION_LEN);
            prop_assert!(PartitionKey::parse(partition).is_some());
        }

        /// Whatever a client sends as `X-Scope-OrgID` (percent-encodings, dots, slashes,
        /// unicode look-alikes), either it is refused or every key of its chunks lies
        /// inside its own prefix, with the same shape as any other tenant's.
        #[test]
        fn every_key_stays_inside_its_tenant(
            id in prop_oneof![
                "\\PC{0,160}",
                "[a-zA-Z0-9_./%\\\\-]{1,40}",
                Just("..".to_owned()),
                Just("%2e%2e%2f".to_owned()),
                Just("a/../b".to_owned()),
            ],
            value in "\\PC{0,40}",
        ) {
            let Ok(tenant) = Tenant::new(&id) else {
                return Ok(());
            };
            let key = ChunkKey { tenant: tenant.clone(), ..key(&value) };
            for path in [key.data_path(), key.meta_path()] {
                let prefix = format!("{}/", tenant.as_str());
                prop_assert!(path.as_ref().starts_with(&prefix), "{path} outside {prefix}");
                let parts: Vec<_> = path.as_ref().split('/').collect();
                prop_assert_eq!(parts.len(), 6);
                prop_assert_eq!(parts[0], id.as_str());
                prop_assert!(parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".."));
            }
        }

        #[test]
        fn distinct_short_values_get_distinct_partitions(a in "[a-z./%]{1,10}", b in "[a-z./%]{1,10}") {
            let (pa, pb) = (PartitionKey::from_label_value(Some(&a)), PartitionKey::from_label_value(Some(&b)));
            prop_assert_eq!(a == b, pa == pb);
        }
    }
}
