//! Per-tenant ingest limits: how fast a tenant may push, how many streams it may keep
//! active, how large its requests and lines may be.
//!
//! Every tenant gets the defaults unless the config names it with overrides (as Loki's
//! per-tenant overrides do). Rates are token buckets over the request bytes after
//! decompression, refilled continuously and refused with a wait the client can honour
//! (`Retry-After`). Active streams are those that received rows within the last
//! `stream_idle` period; the count starts afresh on restart, as Loki's does.
//!
//! Labels past a tenant's bounds refuse the records of their stream, checked once per
//! stream of a request.
//!
//! Pure bookkeeping: no I/O, an injected clock (`Instant`) in every call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};

use crate::ingest::Rejected;
use crate::model::{Signal, StreamId, Tenant};

/// One tenant's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Request bytes (after decompression) per second, sustained.
    pub ingest_rate_bytes: u64,
    /// Request bytes that may arrive at once above the sustained rate; also the
    /// largest single request the rate limit can ever admit.
    pub ingest_burst_bytes: u64,
    /// Streams that received rows within `stream_idle`; 0 for no limit.
    pub max_active_streams: usize,
    /// Largest request body, after decompression.
    pub max_body_bytes: usize,
    /// Longest log line; longer records are refused one by one.
    pub max_line_bytes: usize,
    /// Labels a stream may have (at most `labels::MAX_LABELS`).
    pub max_labels_per_stream: usize,
    /// Longest label name (at most `labels::MAX_NAME_LEN`).
    pub max_label_name_bytes: usize,
    /// Longest label value (at most `labels::MAX_VALUE_LEN`).
    pub max_label_value_bytes: usize,
}

impl Limits {
    /// Why a stream's labels pass this tenant's limits, if they do not.
    pub fn check_labels<'a>(
        &self,
        labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), String> {
        if labels.len() > self.max_labels_per_stream {
            return Err(format!(
                "stream has {} labels, more than the {} allowed (max_labels_per_stream)",
                labels.len(),
                self.max_labels_per_stream
            ));
        }
        for (name, value) in labels {
            if name.len() > self.max_label_name_bytes {
                return Err(format!(
                    "label name {:?}… is {} bytes, longer than the {} allowed (max_label_name_bytes)",
                    &name[..name.floor_char_boundary(32)],
                    name.len(),
                    self.max_label_name_bytes
                ));
            }
            if value.len() > self.max_label_value_bytes {
                return Err(format!(
                    "value of label {name:?} is {} bytes, longer than the {} allowed (max_label_value_bytes)",
                    value.len(),
                    self.max_label_value_bytes
                ));
            }
        }
        Ok(())
    }
}

/// How long a stream stays active after its last row.
pub const STREAM_IDLE: Duration = Duration::from_secs(30 * 60);

/// The defaults and the overrides of the tenants the config names.
#[derive(Debug, Clone)]
pub struct TenantLimits {
    pub defaults: Limits,
    pub overrides: BTreeMap<Tenant, Limits>,
}

impl TenantLimits {
    pub fn uniform(defaults: Limits) -> Self {
        Self {
            defaults,
            overrides: BTreeMap::new(),
        }
    }

    pub fn of(&self, tenant: &Tenant) -> &Limits {
        self.overrides.get(tenant).unwrap_or(&self.defaults)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "ingestion rate limit exceeded for tenant {tenant}: {rate} bytes/s with bursts of {burst} bytes; retry after {retry_after:?}"
    )]
    Rate {
        tenant: Tenant,
        rate: u64,
        burst: u64,
        retry_after: Duration,
    },
    #[error(
        "request of {bytes} bytes is larger than tenant {tenant}'s ingestion burst of {burst} bytes: send smaller batches"
    )]
    LargerThanBurst {
        tenant: Tenant,
        bytes: u64,
        burst: u64,
    },
    #[error(
        "tenant {tenant} has reached its limit of {limit} active streams: this request would add {new} more; reduce label cardinality or ask for a higher limit"
    )]
    Streams {
        tenant: Tenant,
        limit: usize,
        new: usize,
    },
}

impl LimitError {
    /// How long the client should wait before sending the same request again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LimitError::Rate { retry_after, .. } => Some(*retry_after),
            LimitError::Streams { .. } => Some(STREAM_IDLE / 30),
            LimitError::LargerThanBurst { .. } => None,
        }
    }
}

/// A token bucket: `tokens` bytes may be sent now; it refills at `rate` per second up
/// to `burst`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, limits: &Limits, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limits.ingest_rate_bytes as f64)
            .min(limits.ingest_burst_bytes as f64);
        self.updated = now;
    }
}

#[derive(Debug, Default)]
struct TenantState {
    bucket: Option<Bucket>,
    /// Active streams and when each last received rows.
    streams: HashMap<StreamId, Instant>,
    last_expiry: Option<Instant>,
}

/// The limits in force and what each tenant has used of them.
#[derive(Debug)]
pub struct Limiter {
    limits: TenantLimits,
    tenants: Mutex<HashMap<Tenant, TenantState>>,
}

impl Limiter {
    pub fn new(limits: TenantLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self, tenant: &Tenant) -> &Limits {
        self.limits.of(tenant)
    }

    /// Admits a request of `bytes` with rows in `streams`, or says which limit it
    /// passes. Either both the rate and the stream limit take it, or neither records
    /// anything.
    pub fn admit(
        &self,
        tenant: &Tenant,
        bytes: u64,
        streams: &HashSet<StreamId>,
        now: Instant,
    ) -> Result<(), LimitError> {
        let limits = self.limits.of(tenant);
        if bytes > limits.ingest_burst_bytes {
            return Err(LimitError::LargerThanBurst {
                tenant: tenant.clone(),
                bytes,
                burst: limits.ingest_burst_bytes,
            });
        }
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let state = tenants.entry(tenant.clone()).or_default();
        let bucket = state.bucket.get_or_insert(Bucket {
            tokens: limits.ingest_burst_bytes as f64,
            updated: now,
        });
        bucket.refill(limits, now);
        if bucket.tokens < bytes as f64 {
            let missing = bytes as f64 - bucket.tokens;
            let wait = missing / limits.ingest_rate_bytes.max(1) as f64;
            return Err(LimitError::Rate {
                tenant: tenant.clone(),
                rate: limits.ingest_rate_bytes,
                burst: limits.ingest_burst_bytes,
                retry_after: Duration::from_secs_f64(wait.ceil().max(1.0)),
            });
        }
        if limits.max_active_streams > 0 {
            state.expire_streams(now);
            let new = streams
                .iter()
                .filter(|id| !state.streams.contains_key(id))
                .count();
            if new > 0 && state.streams.len() + new > limits.max_active_streams {
                return Err(LimitError::Streams {
                    tenant: tenant.clone(),
                    limit: limits.max_active_streams,
                    new,
                });
            }
        }
        if let Some(bucket) = &mut state.bucket {
            bucket.tokens -= bytes as f64;
        }
        if limits.max_active_streams > 0 {
            for id in streams {
                state.streams.insert(*id, now);
            }
        }
        Ok(())
    }

    /// Active streams of a tenant, as of its last admitted request.
    pub fn active_streams(&self, tenant: &Tenant) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.get(tenant).map_or(0, |s| s.streams.len())
    }
}

impl TenantState {
    /// Drops streams idle for `STREAM_IDLE`; at most once a minute, since it walks
    /// them all.
    fn expire_streams(&mut self, now: Instant) {
        if self
            .last_expiry
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_expiry = Some(now);
        self.streams
            .retain(|_, seen| now.saturating_duration_since(*seen) < STREAM_IDLE);
    }
}

/// The batches without the rows of streams whose labels exceed `limits`; each such
/// row is a refused record.
pub fn within_label_limits(
    limits: &Limits,
    batches: Vec<(Signal, RecordBatch)>,
    rejected: &mut Rejected,
) -> Result<Vec<(Signal, RecordBatch)>, arrow::error::ArrowError> {
    let mut out = Vec::with_capacity(batches.len());
    for (signal, batch) in batches {
        let (Some(ids), Some(labels)) = (
            batch
                .column_by_name("stream_id")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>()),
            batch.column_by_name("labels").and_then(|c| c.as_map_opt()),
        ) else {
            out.push((signal, batch));
            continue;
        };
        let names = labels.keys().as_string::<i32>();
        let values = labels.values().as_string::<i32>();
        // One verdict per stream, from its first row: rows of a stream share labels.
        let mut verdicts: HashMap<u64, Option<String>> = HashMap::new();
        let mut keep = Vec::with_capacity(batch.num_rows());
        for (row, id) in ids.values().iter().enumerate() {
            let verdict = verdicts.entry(*id).or_insert_with(|| {
                let range =
                    labels.value_offsets()[row] as usize..labels.value_offsets()[row + 1] as usize;
                let pairs = range.map(|i| (names.value(i), values.value(i)));
                limits.check_labels(pairs).err()
            });
            match verdict {
                None => keep.push(true),
                Some(reason) => {
                    rejected.add(reason.clone());
                    keep.push(false);
                }
            }
        }
        if keep.iter().all(|k| *k) {
            out.push((signal, batch));
        } else {
            let kept = arrow::compute::filter_record_batch(&batch, &keep.into())?;
            out.push((signal, kept));
        }
    }
    Ok(out)
}

/// The streams a request writes to.
pub fn streams_of(batches: &[(Signal, RecordBatch)]) -> HashSet<StreamId> {
    let mut streams = HashSet::new();
    for (_, batch) in batches {
        if let Some(ids) = batch
            .column_by_name("stream_id")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>())
        {
            streams.extend(ids.values().iter().map(|id| StreamId(*id)));
        }
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u64, burst: u64, streams: usize) -> Limits {
        Limits {
            ingest_rate_bytes: rate,
            ingest_burst_bytes: burst,
            max_active_streams: streams,
            max_body_bytes: 1 << 20,
            max_line_bytes: 1 << 10,
            max_labels_per_stream: 4,
            max_label_name_bytes: 8,
            max_label_value_bytes: 16,
        }
    }

    #[test]
    fn labels_are_checked_against_the_tenant_limits() {
        let limits = limits(1, 1, 0);
        let ok = [("job", "api"), ("env", "prod")];
        assert_eq!(limits.check_labels(ok.into_iter()), Ok(()));
        let many = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")];
        let err = limits.check_labels(many.into_iter()).unwrap_err();
        assert!(err.contains("5 labels, more than the 4"), "{err}");
        let err = limits
            .check_labels([("a_long_name", "1")].into_iter())
            .unwrap_err();
        assert!(err.contains("max_label_name_bytes"), "{err}");
        let err = limits
            .check_labels([("job", "a value of twenty bytes")].into_iter())
            .unwrap_err();
        assert!(err.contains("\"job\" is 23 bytes"), "{err}");
    }

    fn ids(range: std::ops::Range<u64>) -> HashSet<StreamId> {
        range.map(StreamId).collect()
    }

    #[test]
    fn rate_admits_the_burst_then_the_refill() {
        let limiter = Limiter::new(TenantLimits::uniform(limits(1000, 3000, 0)));
        let tenant = Tenant::default_tenant();
        let t0 = Instant::now();
        let none = HashSet::new();
        for _ in 0..3 {
            limiter.admit(&tenant, 1000, &none, t0).unwrap();
        }
        let err = limiter.admit(&tenant, 1500, &none, t0).unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(err.to_string().contains("1000 bytes/s"), "{err}");
        // Half a second refills 500 bytes: not enough for 1,500, enough for 500.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.admit(&tenant, 1500, &none, t1).is_err());
        limiter.admit(&tenant, 500, &none, t1).unwrap();
        // The bucket never holds more than the burst, however long it rests.
        let t2 = t1 + Duration::from_secs(3600);
        limiter.admit(&tenant, 3000, &none, t2).unwrap();
        assert!(limiter.admit(&tenant, 1, &none, t2).is_err());
    }

    #[test]
    fn a_request_larger_than_the_burst_is_never_admitted() {
        let limiter = Limiter::new(TenantLimits::uniform(limits(1000, 3000, 0)));
        let err = limiter
            .admit(
                &Tenant::default_tenant(),
                3001,
                &HashSet::new(),
                Instant::now(),
            )
            .unwrap_err();
        assert!(matches!(err, LimitError::LargerThanBurst { .. }));
        assert_eq!(err.retry_after(), None);
    }

    #[test]
    fn streams_are_counted_until_idle_and_a_refusal_records_nothing() {
        let limiter = Limiter::new(TenantLimits::uniform(limits(1 << 30, 1 << 30, 10)));
        let tenant = Tenant::new("team-a").unwrap();
        let t0 = Instant::now();
        limiter.admit(&tenant, 100, &ids(0..8), t0).unwrap();
        // Known streams never count twice.
        limiter.admit(&tenant, 100, &ids(0..8), t0).unwrap();
        let err = limiter.admit(&tenant, 100, &ids(5..12), t0).unwrap_err();
        assert_eq!(
            err,
            LimitError::Streams {
                tenant: tenant.clone(),
                limit: 10,
                new: 4
            }
        );
        assert_eq!(limiter.active_streams(&tenant), 8);
        limiter.admit(&tenant, 100, &ids(6..10), t0).unwrap();
        assert_eq!(limiter.active_streams(&tenant), 10);
        // Other tenants have their own count.
        limiter
            .admit(&Tenant::default_tenant(), 100, &ids(100..110), t0)
            .unwrap();
        // Streams idle for the idle period leave the count.
        let later = t0 + STREAM_IDLE + Duration::from_secs(1);
        limiter.admit(&tenant, 100, &ids(20..30), later).unwrap();
        assert_eq!(limiter.active_streams(&tenant), 10);
    }

    #[test]
    fn overrides_apply_to_their_tenant_only() {
        let team = Tenant::new("big-team").unwrap();
        let mut all = TenantLimits::uniform(limits(10, 10, 0));
        all.overrides.insert(team.clone(), limits(1000, 1000, 0));
        let limiter = Limiter::new(all);
        let now = Instant::now();
        limiter.admit(&team, 1000, &HashSet::new(), now).unwrap();
        assert!(
            limiter
                .admit(&Tenant::default_tenant(), 11, &HashSet::new(), now)
                .is_err()
        );
    }
}
