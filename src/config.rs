//! Configuration: a TOML file, environment variables and command-line flags, merged in
//! that order of increasing precedence and validated into one `Config`. Every setting
//! has a flag `--name` and a variable `THREADLINE_NAME`; `config/threadline.toml`
//! documents them all.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::api::auth::{AuthConfig, MIN_TOKEN_LEN};
use crate::compact::{
    CompactionConfig, MAX_TARGET_BYTES, MIN_INTERVAL, MIN_RETENTION, Periods, Retention,
};
use crate::db::DbConfig;
use crate::ingest::{
    DEFAULT_LABEL_ATTRIBUTES, DEFAULT_MAX_LINE_BYTES, DEFAULT_TRACE_ID_PATTERN, IngestRules,
    label_name_for_attribute,
};
use crate::limits::{Limits, TenantLimits};
use crate::model::Tenant;
use crate::model::labels::{MAX_LABELS, MAX_NAME_LEN, MAX_VALUE_LEN, validate_name};
use crate::query::QueryConfig;
use crate::scrape::profiles::{ProfileKind, Profiling};
use crate::scrape::{ScrapeJob, StaticTarget};
use crate::wal::SyncPolicy;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4318";
/// Queries run at once by default: a dashboard's worth.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.to_string(),
    }
}

/// The settings as given, any of them possibly absent. The file and the flags both
/// fill one of these; `merge` lets the flags win.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on (OTLP/HTTP's default port is 4318).
    #[arg(long, env = "THREADLINE_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the WAL and, by default, the chunks.
    #[arg(long, env = "THREADLINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object store URL for chunks (s3://bucket/prefix, gs://…, az://…, file:///path);
    /// empty means {data_dir}/chunks.
    #[arg(long, env = "THREADLINE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// fsync (acknowledge after fdatasync) or buffered (after the write reaches the OS).
    #[arg(long, env = "THREADLINE_WAL_SYNC")]
    pub wal_sync: Option<String>,
    /// A WAL segment is closed when it reaches this size.
    #[arg(long, env = "THREADLINE_WAL_SEGMENT_BYTES")]
    pub wal_segment_bytes: Option<u64>,
    /// Pushes are refused (503) while the WAL's segments hold this many bytes.
    #[arg(long, env = "THREADLINE_WAL_MAX_DISK_BYTES")]
    pub wal_max_disk_bytes: Option<u64>,
    /// Longest one chunk upload may take before it is retried later (e.g. 5m).
    #[arg(long, env = "THREADLINE_UPLOAD_TIMEOUT")]
    pub upload_timeout: Option<String>,
    /// A partition's head is cut into a chunk at this many bytes of memory…
    #[arg(long, env = "THREADLINE_HEAD_MAX_BYTES")]
    pub head_max_bytes: Option<usize>,
    /// …or when its oldest rows are this old (e.g. 5m, 30s).
    #[arg(long, env = "THREADLINE_HEAD_MAX_AGE")]
    pub head_max_age: Option<String>,
    /// Largest request body accepted, after decompression.
    #[arg(long, env = "THREADLINE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest log line accepted; longer records are rejected one by one.
    #[arg(long, env = "THREADLINE_MAX_LINE_BYTES")]
    pub max_line_bytes: Option<usize>,
    /// A tenant's sustained push rate, in request bytes (after decompression) per second.
    #[arg(long, env = "THREADLINE_INGEST_RATE_BYTES")]
    pub ingest_rate_bytes: Option<u64>,
    /// Bytes a tenant may push at once above its rate.
    #[arg(long, env = "THREADLINE_INGEST_BURST_BYTES")]
    pub ingest_burst_bytes: Option<u64>,
    /// Streams a tenant may have active (with rows in the last 30 minutes); 0: no limit.
    #[arg(long, env = "THREADLINE_MAX_ACTIVE_STREAMS")]
    pub max_active_streams: Option<usize>,
    /// Labels a stream may have (at most 64); streams with more are refused.
    #[arg(long, env = "THREADLINE_MAX_LABELS_PER_STREAM")]
    pub max_labels_per_stream: Option<usize>,
    /// Longest label name (at most 128 bytes).
    #[arg(long, env = "THREADLINE_MAX_LABEL_NAME_BYTES")]
    pub max_label_name_bytes: Option<usize>,
    /// Longest label value (at most 2048 bytes).
    #[arg(long, env = "THREADLINE_MAX_LABEL_VALUE_BYTES")]
    pub max_label_value_bytes: Option<usize>,
    /// Refuse requests without X-Scope-OrgID instead of filing them under `default`.
    #[arg(long, env = "THREADLINE_REQUIRE_TENANT")]
    pub require_tenant: Option<bool>,
    /// OTLP resource attributes that become labels (comma-separated).
    #[arg(long, env = "THREADLINE_LABEL_ATTRIBUTES", value_delimiter = ',')]
    pub label_attributes: Option<Vec<String>>,
    /// Regex finding a trace ID in a log line; capture group 1 is the 32 hex digits.
    /// Empty turns extraction off.
    #[arg(long, env = "THREADLINE_TRACE_ID_PATTERN")]
    pub trace_id_pattern: Option<String>,
    /// Longest a query may run (e.g. 30s).
    #[arg(long, env = "THREADLINE_QUERY_TIMEOUT")]
    pub query_timeout: Option<String>,
    /// Memory one query may use for sorts, joins and aggregations.
    #[arg(long, env = "THREADLINE_QUERY_MAX_MEMORY_BYTES")]
    pub query_max_memory_bytes: Option<usize>,
    /// Most rows a SQL query returns.
    #[arg(long, env = "THREADLINE_QUERY_MAX_ROWS")]
    pub query_max_rows: Option<usize>,
    /// Longest time range a query may cover (e.g. 31d).
    #[arg(long, env = "THREADLINE_QUERY_MAX_RANGE")]
    pub query_max_range: Option<String>,
    /// Queries run at once; more wait for a slot, up to the query timeout.
    #[arg(long, env = "THREADLINE_QUERY_MAX_CONCURRENT")]
    pub query_max_concurrent: Option<usize>,
    /// Whether the server compacts chunks and applies retention in the background.
    #[arg(long, env = "THREADLINE_COMPACTION_ENABLED")]
    pub compaction_enabled: Option<bool>,
    /// How often the background compactor runs (e.g. 5m).
    #[arg(long, env = "THREADLINE_COMPACTION_INTERVAL")]
    pub compaction_interval: Option<String>,
    /// The size compaction packs merged chunks up to.
    #[arg(long, env = "THREADLINE_COMPACTION_TARGET_BYTES")]
    pub compaction_target_bytes: Option<u64>,
    /// How long replaced and expired chunks stay readable before they are deleted;
    /// at least the longest query timeout.
    #[arg(long, env = "THREADLINE_COMPACTION_DELETE_DELAY")]
    pub compaction_delete_delay: Option<String>,
    /// How long every signal is kept (e.g. 30d); 0 keeps data for ever.
    #[arg(long, env = "THREADLINE_RETENTION_PERIOD")]
    pub retention_period: Option<String>,
    /// How long logs are kept, instead of retention_period.
    #[arg(long, env = "THREADLINE_RETENTION_LOGS")]
    pub retention_logs: Option<String>,
    /// How long spans are kept, instead of retention_period.
    #[arg(long, env = "THREADLINE_RETENTION_SPANS")]
    pub retention_spans: Option<String>,
    /// How long metric samples are kept, instead of retention_period.
    #[arg(long, env = "THREADLINE_RETENTION_SAMPLES")]
    pub retention_samples: Option<String>,
    /// How long exemplars are kept; by default as long as samples.
    #[arg(long, env = "THREADLINE_RETENTION_EXEMPLARS")]
    pub retention_exemplars: Option<String>,
    /// How long profiles and their samples are kept, instead of retention_period.
    #[arg(long, env = "THREADLINE_RETENTION_PROFILES")]
    pub retention_profiles: Option<String>,
    /// Scrape jobs: only the config file can list them.
    #[arg(skip)]
    #[serde(skip)]
    pub scrape_configs: Vec<FileScrapeJob>,
    /// Bearer tokens and their tenants: only the config file can list them.
    #[arg(skip)]
    #[serde(skip)]
    pub auth_tokens: Vec<FileToken>,
    /// Per-tenant limits: only the config file can set them.
    #[arg(skip)]
    #[serde(skip)]
    pub tenants: BTreeMap<String, FileTenantLimits>,
}

/// An `[[auth.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileToken {
    pub tenant: String,
    pub token: String,
}

/// A `[tenants.<id>]` table: the `[ingest]` and `[query]` limits this tenant has
/// instead of the defaults (query ones prefixed `query_`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTenantLimits {
    pub max_body_bytes: Option<usize>,
    pub max_line_bytes: Option<usize>,
    pub rate_bytes: Option<u64>,
    pub burst_bytes: Option<u64>,
    pub max_active_streams: Option<usize>,
    pub max_labels_per_stream: Option<usize>,
    pub max_label_name_bytes: Option<usize>,
    pub max_label_value_bytes: Option<usize>,
    pub query_timeout: Option<String>,
    pub query_max_memory_bytes: Option<usize>,
    pub query_max_rows: Option<usize>,
    pub query_max_range: Option<String>,
    pub query_max_concurrent: Option<usize>,
    pub retention_period: Option<String>,
    pub retention_logs: Option<String>,
    pub retention_spans: Option<String>,
    pub retention_samples: Option<String>,
    pub retention_exemplars: Option<String>,
    pub retention_profiles: Option<String>,
}

/// The file's layout: the same settings, grouped in sections.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    storage: FileStorage,
    #[serde(default)]
    wal: FileWal,
    #[serde(default)]
    head: FileHead,
    #[serde(default)]
    ingest: FileIngest,
    #[serde(default)]
    query: FileQuery,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    compaction: FileCompaction,
    #[serde(default)]
    retention: FileRetention,
    #[serde(default)]
    tenants: BTreeMap<String, FileTenantLimits>,
    #[serde(default)]
    scrape_configs: Vec<FileScrapeJob>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCompaction {
    enabled: Option<bool>,
    interval: Option<String>,
    target_bytes: Option<u64>,
    delete_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetention {
    period: Option<String>,
    logs: Option<String>,
    spans: Option<String>,
    samples: Option<String>,
    exemplars: Option<String>,
    profiles: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    require_tenant: Option<bool>,
    #[serde(default)]
    tokens: Vec<FileToken>,
}

/// A `[[scrape_configs]]` entry, named as in Prometheus's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileScrapeJob {
    job_name: String,
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    static_configs: Vec<FileStaticConfig>,
    profiling: Option<FileProfiling>,
}

/// A job's `[scrape_configs.profiling]`: which `/debug/pprof` endpoints to scrape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProfiling {
    kinds: Option<Vec<String>>,
    interval: Option<String>,
    cpu_duration: Option<String>,
    path_prefix: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStaticConfig {
    targets: Vec<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    /// Profile kinds for these targets, instead of the job's.
    profiles: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    data_dir: Option<PathBuf>,
    object_store: Option<String>,
    upload_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWal {
    sync: Option<String>,
    segment_bytes: Option<u64>,
    max_disk_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHead {
    max_bytes: Option<usize>,
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIngest {
    max_body_bytes: Option<usize>,
    max_line_bytes: Option<usize>,
    label_attributes: Option<Vec<String>>,
    trace_id_pattern: Option<String>,
    rate_bytes: Option<u64>,
    burst_bytes: Option<u64>,
    max_active_streams: Option<usize>,
    max_labels_per_stream: Option<usize>,
    max_label_name_bytes: Option<usize>,
    max_label_value_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    timeout: Option<String>,
    max_memory_bytes: Option<usize>,
    max_rows: Option<usize>,
    max_range: Option<String>,
    max_concurrent: Option<usize>,
}

impl RawConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            listen: file.server.listen,
            data_dir: file.storage.data_dir,
            object_store: file.storage.object_store,
            wal_sync: file.wal.sync,
            wal_segment_bytes: file.wal.segment_bytes,
            wal_max_disk_bytes: file.wal.max_disk_bytes,
            upload_timeout: file.storage.upload_timeout,
            head_max_bytes: file.head.max_bytes,
            head_max_age: file.head.max_age,
            max_body_bytes: file.ingest.max_body_bytes,
            max_line_bytes: file.ingest.max_line_bytes,
            ingest_rate_bytes: file.ingest.rate_bytes,
            ingest_burst_bytes: file.ingest.burst_bytes,
            max_active_streams: file.ingest.max_active_streams,
            max_labels_per_stream: file.ingest.max_labels_per_stream,
            max_label_name_bytes: file.ingest.max_label_name_bytes,
            max_label_value_bytes: file.ingest.max_label_value_bytes,
            require_tenant: file.auth.require_tenant,
            label_attributes: file.ingest.label_attributes,
            trace_id_pattern: file.ingest.trace_id_pattern,
            query_timeout: file.query.timeout,
            query_max_memory_bytes: file.query.max_memory_bytes,
            query_max_rows: file.query.max_rows,
            query_max_range: file.query.max_range,
            query_max_concurrent: file.query.max_concurrent,
            compaction_enabled: file.compaction.enabled,
            compaction_interval: file.compaction.interval,
            compaction_target_bytes: file.compaction.target_bytes,
            compaction_delete_delay: file.compaction.delete_delay,
            retention_period: file.retention.period,
            retention_logs: file.retention.logs,
            retention_spans: file.retention.spans,
            retention_samples: file.retention.samples,
            retention_exemplars: file.retention.exemplars,
            retention_profiles: file.retention.profiles,
            scrape_configs: file.scrape_configs,
            auth_tokens: file.auth.tokens,
            tenants: file.tenants,
        })
    }

    /// Settings in `over` replace those in `self`.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        RawConfig {
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            object_store: over.object_store.or(self.object_store),
            wal_sync: over.wal_sync.or(self.wal_sync),
            wal_segment_bytes: over.wal_segment_bytes.or(self.wal_segment_bytes),
            wal_max_disk_bytes: over.wal_max_disk_bytes.or(self.wal_max_disk_bytes),
            upload_timeout: over.upload_timeout.or(self.upload_timeout),
            head_max_bytes: over.head_max_bytes.or(self.head_max_bytes),
            head_max_age: over.head_max_age.or(self.head_max_age),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_line_bytes: over.max_line_bytes.or(self.max_line_bytes),
            ingest_rate_bytes: over.ingest_rate_bytes.or(self.ingest_rate_bytes),
            ingest_burst_bytes: over.ingest_burst_bytes.or(self.ingest_burst_bytes),
            max_active_streams: over.max_active_streams.or(self.max_active_streams),
            max_labels_per_stream: over.max_labels_per_stream.or(self.max_labels_per_stream),
            max_label_name_bytes: over.max_label_name_bytes.or(self.max_label_name_bytes),
            max_label_value_bytes: over.max_label_value_bytes.or(self.max_label_value_bytes),
            require_tenant: over.require_tenant.or(self.require_tenant),
            label_attributes: over.label_attributes.or(self.label_attributes),
            trace_id_pattern: over.trace_id_pattern.or(self.trace_id_pattern),
            query_timeout: over.query_timeout.or(self.query_timeout),
            query_max_memory_bytes: over.query_max_memory_bytes.or(self.query_max_memory_bytes),
            query_max_rows: over.query_max_rows.or(self.query_max_rows),
            query_max_range: over.query_max_range.or(self.query_max_range),
            query_max_concurrent: over.query_max_concurrent.or(self.query_max_concurrent),
            compaction_enabled: over.compaction_enabled.or(self.compaction_enabled),
            compaction_interval: over.compaction_interval.or(self.compaction_interval),
            compaction_target_bytes: over
                .compaction_target_bytes
                .or(self.compaction_target_bytes),
            compaction_delete_delay: over
                .compaction_delete_delay
                .or(self.compaction_delete_delay),
            retention_period: over.retention_period.or(self.retention_period),
            retention_logs: over.retention_logs.or(self.retention_logs),
            retention_spans: over.retention_spans.or(self.retention_spans),
            retention_samples: over.retention_samples.or(self.retention_samples),
            retention_exemplars: over.retention_exemplars.or(self.retention_exemplars),
            retention_profiles: over.retention_profiles.or(self.retention_profiles),
            scrape_configs: if over.scrape_configs.is_empty() {
                self.scrape_configs
            } else {
                over.scrape_configs
            },
            auth_tokens: if over.auth_tokens.is_empty() {
                self.auth_tokens
            } else {
                over.auth_tokens
            },
            tenants: if over.tenants.is_empty() {
                self.tenants
            } else {
                over.tenants
            },
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: DbConfig,
    pub ingest: IngestRules,
    pub limits: TenantLimits,
    pub auth: AuthConfig,
    pub query: QueryConfig,
    /// Query limits of the tenants that have their own.
    pub query_overrides: BTreeMap<Tenant, QueryConfig>,
    pub scrape: Vec<ScrapeJob>,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;
pub const DEFAULT_WAL_SEGMENT_BYTES: u64 = 64 << 20;
/// 64 segments of the default size: at 10 MB/s of pushes, some 7 minutes of an object
/// store outage before pushes are refused, on a volume of modest size.
pub const DEFAULT_WAL_MAX_DISK_BYTES: u64 = 4 << 30;
/// A tenant's sustained push rate by default: a guard against one runaway sender, not
/// a quota; bursts may be twice as large.
pub const DEFAULT_INGEST_RATE_BYTES: u64 = 64 << 20;
pub const DEFAULT_INGEST_BURST_BYTES: u64 = 128 << 20;
/// Active streams per tenant by default (every metric series is a stream).
pub const DEFAULT_MAX_ACTIVE_STREAMS: usize = 500_000;

impl Config {
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let retention = retention(&raw)?;
        let mut compaction = compaction(&raw)?;
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen
            .parse()
            .map_err(|e| invalid("listen", format!("{listen:?}: {e}")))?;
        let wal_sync = match raw.wal_sync.as_deref() {
            None => SyncPolicy::Fsync,
            Some(s) => s.parse().map_err(|e| invalid("wal_sync", e))?,
        };
        let label_attributes = raw.label_attributes.unwrap_or_else(|| {
            DEFAULT_LABEL_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        for attribute in &label_attributes {
            validate_name(&label_name_for_attribute(attribute))
                .map_err(|e| invalid("label_attributes", format!("{attribute:?}: {e}")))?;
        }
        let pattern = raw
            .trace_id_pattern
            .unwrap_or_else(|| DEFAULT_TRACE_ID_PATTERN.to_owned());
        let trace_id_pattern = if pattern.is_empty() {
            None
        } else {
            let re = Regex::new(&pattern).map_err(|e| invalid("trace_id_pattern", e))?;
            if re.captures_len() < 2 {
                return Err(invalid(
                    "trace_id_pattern",
                    "needs a capture group for the trace id",
                ));
            }
            Some(re)
        };
        let scrape = scrape_jobs(&raw.scrape_configs)?;
        let wal_segment_bytes = match raw.wal_segment_bytes {
            Some(0) => return Err(invalid("wal_segment_bytes", "must be greater than 0")),
            Some(v) => v,
            None => DEFAULT_WAL_SEGMENT_BYTES,
        };
        let wal_max_disk_bytes = raw.wal_max_disk_bytes.unwrap_or(DEFAULT_WAL_MAX_DISK_BYTES);
        // The active segment is never removed: the bound must leave room beside it for
        // the closed segments that a flush frees.
        if wal_max_disk_bytes < wal_segment_bytes.saturating_mul(2) {
            return Err(invalid(
                "wal_max_disk_bytes",
                format!(
                    "{wal_max_disk_bytes} must be at least twice wal_segment_bytes ({wal_segment_bytes})"
                ),
            ));
        }
        let max_line_bytes =
            positive("max_line_bytes", raw.max_line_bytes, DEFAULT_MAX_LINE_BYTES)?;
        let defaults = Limits {
            ingest_rate_bytes: positive(
                "ingest_rate_bytes",
                raw.ingest_rate_bytes,
                DEFAULT_INGEST_RATE_BYTES,
            )?,
            ingest_burst_bytes: positive(
                "ingest_burst_bytes",
                raw.ingest_burst_bytes,
                DEFAULT_INGEST_BURST_BYTES,
            )?,
            max_active_streams: raw.max_active_streams.unwrap_or(DEFAULT_MAX_ACTIVE_STREAMS),
            max_body_bytes: positive("max_body_bytes", raw.max_body_bytes, DEFAULT_MAX_BODY_BYTES)?,
            max_line_bytes,
            max_labels_per_stream: at_most(
                "max_labels_per_stream",
                raw.max_labels_per_stream,
                MAX_LABELS,
            )?,
            max_label_name_bytes: at_most(
                "max_label_name_bytes",
                raw.max_label_name_bytes,
                MAX_NAME_LEN,
            )?,
            max_label_value_bytes: at_most(
                "max_label_value_bytes",
                raw.max_label_value_bytes,
                MAX_VALUE_LEN,
            )?,
        };
        let query = QueryConfig {
            timeout: parse_duration(raw.query_timeout.as_deref().unwrap_or("30s"))
                .map_err(|e| invalid("query_timeout", e))?,
            max_memory_bytes: positive(
                "query_max_memory_bytes",
                raw.query_max_memory_bytes,
                1 << 30,
            )?,
            max_result_rows: positive("query_max_rows", raw.query_max_rows, 100_000)?,
            max_range: parse_duration(raw.query_max_range.as_deref().unwrap_or("31d"))
                .map_err(|e| invalid("query_max_range", e))?,
            max_concurrent: positive(
                "query_max_concurrent",
                raw.query_max_concurrent,
                DEFAULT_MAX_CONCURRENT_QUERIES,
            )?,
        };
        let (limits, query_overrides) = tenant_limits(defaults, &query, &raw.tenants)?;
        let auth = auth(&raw.auth_tokens, raw.require_tenant.unwrap_or(false))?;
        settle_delete_delay(
            &mut compaction,
            raw.compaction_delete_delay.is_some(),
            &query,
            &query_overrides,
        )?;
        Ok(Config {
            scrape,
            listen,
            db: DbConfig {
                data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
                object_store: raw.object_store.unwrap_or_default(),
                wal_sync,
                wal_segment_bytes,
                wal_max_disk_bytes,
                upload_timeout: match &raw.upload_timeout {
                    Some(text) => parse_duration(text).map_err(|e| invalid("upload_timeout", e))?,
                    None => crate::storage::store::DEFAULT_UPLOAD_TIMEOUT,
                },
                head_max_bytes: positive("head_max_bytes", raw.head_max_bytes, 64 << 20)?,
                head_max_age: parse_duration(raw.head_max_age.as_deref().unwrap_or("5m"))
                    .map_err(|e| invalid("head_max_age", e))?,
                compaction,
                retention,
            },
            ingest: IngestRules {
                label_attributes,
                trace_id_pattern,
                max_line_bytes,
            },
            limits,
            query_overrides,
            auth,
            query,
        })
    }
}

/// `v`, or `default` when absent; 0 is refused.
fn positive<T: Copy + PartialEq + From<u8>>(
    setting: &'static str,
    v: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match v {
        Some(v) if v == T::from(0) => Err(invalid(setting, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `v` between 1 and `ceiling`, or `ceiling` when absent: lowers a bound the store
/// always enforces.
fn at_most(setting: &'static str, v: Option<usize>, ceiling: usize) -> Result<usize, ConfigError> {
    match v {
        Some(v) if v == 0 || v > ceiling => {
            Err(invalid(setting, format!("{v} is outside 1..={ceiling}")))
        }
        Some(v) => Ok(v),
        None => Ok(ceiling),
    }
}

/// The defaults, and each `[tenants.<id>]` table over them.
fn tenant_limits(
    defaults: Limits,
    query: &QueryConfig,
    tenants: &BTreeMap<String, FileTenantLimits>,
) -> Result<(TenantLimits, BTreeMap<Tenant, QueryConfig>), ConfigError> {
    let mut queries = BTreeMap::new();
    let setting = "tenants";
    let mut limits = TenantLimits::uniform(defaults.clone());
    for (id, file) in tenants {
        let tenant = Tenant::new(id).map_err(|e| invalid(setting, format!("{id:?}: {e}")))?;
        let overrides = Limits {
            ingest_rate_bytes: positive(setting, file.rate_bytes, defaults.ingest_rate_bytes)?,
            ingest_burst_bytes: positive(setting, file.burst_bytes, defaults.ingest_burst_bytes)?,
            max_active_streams: file
                .max_active_streams
                .unwrap_or(defaults.max_active_streams),
            max_body_bytes: positive(setting, file.max_body_bytes, defaults.max_body_bytes)?,
            max_line_bytes: positive(setting, file.max_line_bytes, defaults.max_line_bytes)?,
            max_labels_per_stream: at_most(
                setting,
                file.max_labels_per_stream
                    .or(Some(defaults.max_labels_per_stream)),
                MAX_LABELS,
            )?,
            max_label_name_bytes: at_most(
                setting,
                file.max_label_name_bytes
                    .or(Some(defaults.max_label_name_bytes)),
                MAX_NAME_LEN,
            )?,
            max_label_value_bytes: at_most(
                setting,
                file.max_label_value_bytes
                    .or(Some(defaults.max_label_value_bytes)),
                MAX_VALUE_LEN,
            )?,
        };
        let duration = |text: &Option<String>, default: Duration| match text {
            Some(text) => parse_duration(text).map_err(|e| invalid(setting, format!("{id}: {e}"))),
            None => Ok(default),
        };
        let query = QueryConfig {
            timeout: duration(&file.query_timeout, query.timeout)?,
            max_memory_bytes: positive(
                setting,
                file.query_max_memory_bytes,
                query.max_memory_bytes,
            )?,
            max_result_rows: positive(setting, file.query_max_rows, query.max_result_rows)?,
            max_range: duration(&file.query_max_range, query.max_range)?,
            max_concurrent: positive(setting, file.query_max_concurrent, query.max_concurrent)?,
        };
        limits.overrides.insert(tenant.clone(), overrides);
        queries.insert(tenant, query);
    }
    Ok((limits, queries))
}

fn compaction(raw: &RawConfig) -> Result<CompactionConfig, ConfigError> {
    let defaults = CompactionConfig::default();
    let duration = |setting, text: &Option<String>, default| match text {
        Some(text) => parse_duration(text).map_err(|e| invalid(setting, e)),
        None => Ok(default),
    };
    let interval = duration(
        "compaction_interval",
        &raw.compaction_interval,
        defaults.interval,
    )?;
    if interval < MIN_INTERVAL {
        return Err(invalid(
            "compaction_interval",
            format!("{interval:?} is shorter than {MIN_INTERVAL:?}"),
        ));
    }
    let target_bytes = raw.compaction_target_bytes.unwrap_or(defaults.target_bytes);
    if !(1..=MAX_TARGET_BYTES).contains(&target_bytes) {
        return Err(invalid(
            "compaction_target_bytes",
            format!("{target_bytes} is outside 1..={MAX_TARGET_BYTES}"),
        ));
    }
    Ok(CompactionConfig {
        enabled: raw.compaction_enabled.unwrap_or(defaults.enabled),
        interval,
        target_bytes,
        delete_delay: duration(
            "compaction_delete_delay",
            &raw.compaction_delete_delay,
            defaults.delete_delay,
        )?,
    })
}

/// Deletion must wait longer than any query can run: a delay left unset grows to a
/// minute past the longest query timeout, one that is set must already be longer.
fn settle_delete_delay(
    config: &mut CompactionConfig,
    set: bool,
    query: &QueryConfig,
    overrides: &BTreeMap<Tenant, QueryConfig>,
) -> Result<(), ConfigError> {
    let longest_query = overrides
        .values()
        .map(|q| q.timeout)
        .chain([query.timeout])
        .max()
        .unwrap_or_default();
    if !set {
        config.delete_delay = config
            .delete_delay
            .max(longest_query + Duration::from_secs(60));
    }
    if config.delete_delay <= longest_query {
        return Err(invalid(
            "compaction_delete_delay",
            format!(
                "{:?} must be longer than the longest query timeout ({longest_query:?}): a \
                 query may still be reading a chunk that compaction replaced",
                config.delete_delay
            ),
        ));
    }
    Ok(())
}

/// A retention period: `0` keeps data for ever.
fn retention_period(setting: &'static str, text: &str) -> Result<Option<Duration>, ConfigError> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let ns = crate::logql::parse_duration(text).map_err(|e| invalid(setting, e))?;
    match ns {
        0 => Ok(None),
        ns if ns < MIN_RETENTION.as_nanos() as i64 => Err(invalid(
            setting,
            format!("{text:?} is shorter than {MIN_RETENTION:?} (0 keeps data for ever)"),
        )),
        ns => Ok(Some(Duration::from_nanos(ns as u64))),
    }
}

/// The default periods from `[retention]`, and each tenant's over them: a tenant's
/// `retention_period` stands for its signals it does not name, and exemplars follow
/// samples unless named.
fn retention(raw: &RawConfig) -> Result<Retention, ConfigError> {
    type Texts<'a> = [&'a Option<String>; 6];
    fn periods(
        setting: &'static str,
        [period, logs, spans, samples, exemplars, profiles]: Texts,
        base: &Periods,
    ) -> Result<Periods, ConfigError> {
        let parse = |text: &Option<String>| -> Result<Option<Option<Duration>>, ConfigError> {
            text.as_deref()
                .map(|t| retention_period(setting, t))
                .transpose()
        };
        let all = parse(period)?;
        let pick = |text, inherited: Option<Duration>| -> Result<Option<Duration>, ConfigError> {
            Ok(parse(text)?.or(all).unwrap_or(inherited))
        };
        let samples_named = samples.is_some() || all.is_some();
        let samples = pick(samples, base.samples)?;
        Ok(Periods {
            logs: pick(logs, base.logs)?,
            spans: pick(spans, base.spans)?,
            samples,
            exemplars: match parse(exemplars)? {
                Some(p) => p,
                None if samples_named => samples,
                None => base.exemplars,
            },
            profiles: pick(profiles, base.profiles)?,
        })
    }
    let default = periods(
        "retention",
        [
            &raw.retention_period,
            &raw.retention_logs,
            &raw.retention_spans,
            &raw.retention_samples,
            &raw.retention_exemplars,
            &raw.retention_profiles,
        ],
        &Periods::default(),
    )?;
    let mut tenants = BTreeMap::new();
    for (id, file) in &raw.tenants {
        let texts = [
            &file.retention_period,
            &file.retention_logs,
            &file.retention_spans,
            &file.retention_samples,
            &file.retention_exemplars,
            &file.retention_profiles,
        ];
        if texts.iter().all(|t| t.is_none()) {
            continue;
        }
        let tenant = Tenant::new(id).map_err(|e| invalid("tenants", format!("{id:?}: {e}")))?;
        tenants.insert(tenant, periods("tenants", texts, &default)?);
    }
    Ok(Retention { default, tenants })
}

/// Tokens must be long, unique, and name valid tenants.
fn auth(tokens: &[FileToken], require_tenant: bool) -> Result<AuthConfig, ConfigError> {
    let setting = "auth.tokens";
    let mut map = HashMap::new();
    for entry in tokens {
        let tenant = Tenant::new(&entry.tenant)
            .map_err(|e| invalid(setting, format!("tenant {:?}: {e}", entry.tenant)))?;
        if entry.token.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                setting,
                format!("the token of tenant {tenant} is shorter than {MIN_TOKEN_LEN} bytes"),
            ));
        }
        if entry.token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(invalid(
                setting,
                format!("the token of tenant {tenant} must be printable ASCII without spaces"),
            ));
        }
        if map.insert(entry.token.clone(), tenant).is_some() {
            return Err(invalid(setting, "the same token is listed twice"));
        }
    }
    Ok(AuthConfig {
        tokens: map,
        require_tenant,
    })
}

fn scrape_jobs(jobs: &[FileScrapeJob]) -> Result<Vec<ScrapeJob>, ConfigError> {
    let setting = "scrape_configs";
    let mut names = std::collections::HashSet::new();
    jobs.iter()
        .map(|job| {
            let name = job.job_name.trim();
            if name.is_empty() {
                return Err(invalid(setting, "every job needs a job_name"));
            }
            if !names.insert(name) {
                return Err(invalid(setting, format!("job_name {name:?} appears twice")));
            }
            let fail = |message: String| invalid(setting, format!("job {name:?}: {message}"));
            let interval = parse_duration(job.scrape_interval.as_deref().unwrap_or("15s"))
                .map_err(|e| fail(format!("scrape_interval: {e}")))?;
            let timeout = match &job.scrape_timeout {
                Some(t) => parse_duration(t).map_err(|e| fail(format!("scrape_timeout: {e}")))?,
                None => interval.min(Duration::from_secs(10)),
            };
            if timeout > interval {
                return Err(fail(
                    "scrape_timeout must not exceed scrape_interval".into(),
                ));
            }
            let scheme = job.scheme.as_deref().unwrap_or("http");
            if scheme != "http" && scheme != "https" {
                return Err(fail(format!("scheme {scheme:?}: use http or https")));
            }
            let metrics_path = job.metrics_path.as_deref().unwrap_or("/metrics");
            if !metrics_path.starts_with('/') {
                return Err(fail(format!(
                    "metrics_path {metrics_path:?} must start with /"
                )));
            }
            let tenant = match &job.tenant {
                Some(t) => Tenant::new(t).map_err(|e| fail(format!("tenant: {e}")))?,
                None => Tenant::default_tenant(),
            };
            let profiling = job
                .profiling
                .as_ref()
                .map(|p| profiling(p, interval))
                .transpose()
                .map_err(|e| fail(format!("profiling: {e}")))?;
            let mut targets = Vec::new();
            for group in &job.static_configs {
                let profile_kinds = match &group.profiles {
                    None => None,
                    Some(_) if profiling.is_none() => {
                        return Err(fail(
                            "static_configs lists profiles, but the job has no profiling section"
                                .into(),
                        ));
                    }
                    Some(kinds) => {
                        Some(profile_kinds(kinds).map_err(|e| fail(format!("profiles: {e}")))?)
                    }
                };
                for label in group.labels.keys() {
                    validate_name(label).map_err(|e| fail(format!("label {label:?}: {e}")))?;
                    if label.starts_with("__") {
                        return Err(fail(format!(
                            "label {label:?}: names starting with __ are reserved"
                        )));
                    }
                }
                for address in &group.targets {
                    let valid = !address.is_empty()
                        && !address.contains("://")
                        && !address.contains('/')
                        && !address.contains(char::is_whitespace);
                    if !valid {
                        return Err(fail(format!(
                            "target {address:?}: give host:port, without scheme or path"
                        )));
                    }
                    targets.push(StaticTarget {
                        address: address.clone(),
                        labels: group
                            .labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        profile_kinds: profile_kinds.clone(),
                    });
                }
            }
            if let Some(p) = &profiling {
                let cpu = |kinds: &[ProfileKind]| kinds.contains(&ProfileKind::Cpu);
                let scrapes_cpu = cpu(&p.kinds)
                    || targets
                        .iter()
                        .any(|t| t.profile_kinds.as_deref().is_some_and(cpu));
                // A CPU profile records for whole seconds and must end before the next
                // one starts.
                if scrapes_cpu
                    && (p.cpu_duration.subsec_nanos() != 0 || p.cpu_duration >= p.interval)
                {
                    return Err(fail(format!(
                        "profiling: cpu_duration must be whole seconds and shorter than the interval ({:?})",
                        p.interval
                    )));
                }
            }
            Ok(ScrapeJob {
                name: name.to_owned(),
                interval,
                timeout,
                metrics_path: metrics_path.to_owned(),
                scheme: scheme.to_owned(),
                tenant,
                targets,
                profiling,
            })
        })
        .collect()
}

fn profile_kinds(names: &[String]) -> Result<Vec<ProfileKind>, String> {
    let mut kinds = Vec::new();
    for name in names {
        let kind = ProfileKind::parse(name.trim())?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.contains(&ProfileKind::Heap) && kinds.contains(&ProfileKind::Allocs) {
        return Err("heap and allocs serve the same data (Go's memory profile): list one".into());
    }
    Ok(kinds)
}

fn profiling(file: &FileProfiling, job_interval: Duration) -> Result<Profiling, String> {
    let kinds = match &file.kinds {
        Some(names) => profile_kinds(names)?,
        None => ProfileKind::DEFAULT.to_vec(),
    };
    let interval = match &file.interval {
        Some(text) => parse_duration(text).map_err(|e| format!("interval: {e}"))?,
        None => job_interval,
    };
    let cpu_duration = match &file.cpu_duration {
        Some(text) => parse_duration(text).map_err(|e| format!("cpu_duration: {e}"))?,
        None => interval
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1)),
    };
    let path_prefix = file.path_prefix.as_deref().unwrap_or("/debug/pprof");
    if !path_prefix.starts_with('/') {
        return Err(format!("path_prefix {path_prefix:?} must start with /"));
    }
    Ok(Profiling {
        kinds,
        interval,
        cpu_duration,
        path_prefix: path_prefix.trim_end_matches('/').to_owned(),
    })
}

/// `250ms`, `30s`, `5m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let ns = crate::logql::parse_duration(text)?;
    if ns <= 0 {
        return Err(format!("duration {text:?} must be greater than 0"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiling_sections_are_checked() {
        let jobs = |text: &str| {
            let file: FileConfig = toml::from_str(text).unwrap();
            scrape_jobs(&file.scrape_configs).map_err(|e| e.to_string())
        };
        let job = jobs(
            "[[scrape_configs]]\njob_name = \"app\"\nscrape_interval = \"15s\"\n[scrape_configs.profiling]\n[[scrape_configs.static_configs]]\ntargets = [\"a:1\"]\nprofiles = [\"heap\", \"heap\"]\n",
        )
        .unwrap()
        .remove(0);
        let profiling = job.profiling.unwrap();
        assert_eq!(profiling.kinds, ProfileKind::DEFAULT);
        assert_eq!(profiling.cpu_duration, Duration::from_secs(14));
        assert_eq!(profiling.path_prefix, "/debug/pprof");
        assert_eq!(job.targets[0].profile_kinds, Some(vec![ProfileKind::Heap]));

        let bad = |section: &str| {
            jobs(&format!(
                "[[scrape_configs]]\njob_name = \"app\"\n{section}"
            ))
            .unwrap_err()
        };
        assert!(
            bad("[scrape_configs.profiling]\nkinds = [\"threads\"]")
                .contains("unknown profile kind")
        );
        assert!(
            bad("[scrape_configs.profiling]\ninterval = \"10s\"\ncpu_duration = \"10s\"")
                .contains("shorter than the interval")
        );
        assert!(
            bad("[scrape_configs.profiling]\npath_prefix = \"debug\"")
                .contains("must start with /")
        );
        assert!(
            bad("[[scrape_configs.static_configs]]\ntargets = [\"a:1\"]\nprofiles = [\"cpu\"]")
                .contains("no profiling section")
        );
    }

    #[test]
    fn wal_disk_bound_leaves_room_beside_the_active_segment() {
        let raw = |segment: u64, max: u64| RawConfig {
            wal_segment_bytes: Some(segment),
            wal_max_disk_bytes: Some(max),
            ..RawConfig::default()
        };
        assert_eq!(
            Config::from_raw(raw(1024, 2048))
                .unwrap()
                .db
                .wal_max_disk_bytes,
            2048
        );
        let err = Config::from_raw(raw(1024, 2047)).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid setting wal_max_disk_bytes"),
            "{err}"
        );
        let err = Config::from_raw(RawConfig {
            upload_timeout: Some("never".into()),
            ..RawConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("invalid setting upload_timeout"), "{err}");
    }

    #[test]
    fn shipped_config_file_is_valid_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/threadline.toml");
        let from_file = Config::from_raw(RawConfig::from_file(&path).unwrap()).unwrap();
        let defaults = Config::from_raw(RawConfig::default()).unwrap();
        assert_eq!(from_file.listen, defaults.listen);
        assert_eq!(from_file.db.head_max_age, defaults.db.head_max_age);
        assert_eq!(
            from_file.db.wal_segment_bytes,
            defaults.db.wal_segment_bytes
        );
        assert_eq!(
            from_file.db.wal_max_disk_bytes,
            defaults.db.wal_max_disk_bytes
        );
        assert_eq!(from_file.db.upload_timeout, defaults.db.upload_timeout);
        assert_eq!(
            from_file.ingest.label_attributes,
            defaults.ingest.label_attributes
        );
        assert_eq!(
            from_file.ingest.trace_id_pattern.map(|r| r.to_string()),
            defaults.ingest.trace_id_pattern.map(|r| r.to_string())
        );
        assert_eq!(from_file.query.timeout, defaults.query.timeout);
        assert_eq!(from_file.limits.defaults, defaults.limits.defaults);
        assert_eq!(from_file.auth.require_tenant, defaults.auth.require_tenant);
        assert_eq!(from_file.db.compaction, defaults.db.compaction);
        assert_eq!(from_file.db.retention, defaults.db.retention);
    }

    #[test]
    fn retention_periods_fall_back_signal_by_signal() {
        let file = r#"
[retention]
period = "30d"
spans = "7d"
samples = "90d"

[tenants.audit]
retention_logs = "365d"
retention_samples = "0"

[tenants.short]
retention_period = "1d"
"#;
        let file: FileConfig = toml::from_str(file).unwrap();
        let raw = RawConfig {
            retention_period: file.retention.period,
            retention_spans: file.retention.spans,
            retention_samples: file.retention.samples,
            tenants: file.tenants,
            ..RawConfig::default()
        };
        let retention = Config::from_raw(raw).unwrap().db.retention;
        let days = |n: u64| Some(Duration::from_secs(n * 86_400));
        let d = &retention.default;
        assert_eq!((d.logs, d.spans, d.samples), (days(30), days(7), days(90)));
        assert_eq!((d.exemplars, d.profiles), (days(90), days(30)));
        let audit = &retention.tenants[&Tenant::new("audit").unwrap()];
        assert_eq!((audit.logs, audit.spans), (days(365), days(7)));
        // Exemplars follow the tenant's samples: kept for ever too.
        assert_eq!((audit.samples, audit.exemplars), (None, None));
        let short = &retention.tenants[&Tenant::new("short").unwrap()];
        assert_eq!(
            (
                short.logs,
                short.spans,
                short.samples,
                short.exemplars,
                short.profiles
            ),
            (days(1), days(1), days(1), days(1), days(1))
        );
        assert!(!retention.tenants.contains_key(&Tenant::default_tenant()));

        let bad = |raw: RawConfig| Config::from_raw(raw).unwrap_err().to_string();
        let err = bad(RawConfig {
            retention_logs: Some("soon".into()),
            ..RawConfig::default()
        });
        assert!(err.starts_with("invalid setting retention"), "{err}");
        let err = bad(RawConfig {
            compaction_target_bytes: Some(0),
            ..RawConfig::default()
        });
        assert!(
            err.starts_with("invalid setting compaction_target_bytes"),
            "{err}"
        );
        let err = bad(RawConfig {
            compaction_target_bytes: Some(MAX_TARGET_BYTES + 1),
            ..RawConfig::default()
        });
        assert!(
            err.starts_with("invalid setting compaction_target_bytes"),
            "{err}"
        );
        let err = bad(RawConfig {
            compaction_interval: Some("10ms".into()),
            ..RawConfig::default()
        });
        assert!(
            err.starts_with("invalid setting compaction_interval"),
            "{err}"
        );
        let err = bad(RawConfig {
            retention_spans: Some("10m".into()),
            ..RawConfig::default()
        });
        assert!(
            err.contains("shorter than 3600s (0 keeps data for ever)"),
            "{err}"
        );

        // Left unset, the deletion delay outlasts the longest query timeout.
        let config = Config::from_raw(RawConfig {
            query_timeout: Some("20m".into()),
            ..RawConfig::default()
        })
        .unwrap();
        assert_eq!(
            config.db.compaction.delete_delay,
            Duration::from_secs(21 * 60)
        );
    }

    #[test]
    fn tenants_override_limits_and_tokens_are_checked() {
        let config = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("threadline.toml");
            std::fs::write(&path, text).unwrap();
            RawConfig::from_file(&path).and_then(Config::from_raw)
        };
        let ok = config(
            r#"
            [ingest]
            rate_bytes = 1000
            [tenants.team-a]
            rate_bytes = 5000
            max_line_bytes = 10
            query_max_concurrent = 2
            [auth]
            require_tenant = true
            [[auth.tokens]]
            tenant = "team-a"
            token = "0123456789abcdef"
            "#,
        )
        .unwrap();
        let team = Tenant::new("team-a").unwrap();
        assert_eq!(ok.limits.of(&team).ingest_rate_bytes, 5000);
        assert_eq!(ok.limits.of(&team).max_line_bytes, 10);
        assert_eq!(ok.query_overrides[&team].timeout, ok.query.timeout);
        assert_eq!(ok.query_overrides[&team].max_concurrent, 2);
        assert_eq!(
            ok.limits.of(&team).ingest_burst_bytes,
            DEFAULT_INGEST_BURST_BYTES
        );
        assert_eq!(
            ok.limits.of(&Tenant::default_tenant()).ingest_rate_bytes,
            1000
        );
        assert!(ok.auth.require_tenant);
        assert_eq!(ok.auth.tokens["0123456789abcdef"], team);

        let bad = |text: &str| config(text).unwrap_err().to_string();
        assert!(bad("[tenants.\"a/b\"]\nrate_bytes = 1").contains("tenant id"));
        assert!(bad("[tenants.a]\nrate_bytes = 0").contains("greater than 0"));
        assert!(bad("[tenants.a]\nmax_labels_per_stream = 65").contains("outside 1..=64"));
        assert!(bad("[tenants.a]\nquery_timeout = \"soon\"").contains("a: "));
        assert!(
            bad("[[auth.tokens]]\ntenant = \"a\"\ntoken = \"short\"").contains("shorter than 16")
        );
        assert!(bad(
            "[[auth.tokens]]\ntenant = \"a\"\ntoken = \"0123456789abcdef\"\n[[auth.tokens]]\ntenant = \"b\"\ntoken = \"0123456789abcdef\""
        )
        .contains("twice"));
    }

    #[test]
    fn scrape_jobs_read_like_prometheus_and_refuse_mistakes() {
        let file: FileConfig = toml::from_str(
            r#"
            [[scrape_configs]]
            job_name = "node"
            scrape_interval = "30s"
            [[scrape_configs.static_configs]]
            targets = ["localhost:9100", "db:9100"]
            labels = { env = "prod" }
            "#,
        )
        .unwrap();
        let jobs = scrape_jobs(&file.scrape_configs).unwrap();
        assert_eq!(jobs[0].targets.len(), 2);
        assert_eq!(jobs[0].timeout, Duration::from_secs(10));
        assert_eq!(jobs[0].metrics_path, "/metrics");
        assert_eq!(
            jobs[0].targets[0].labels,
            vec![("env".into(), "prod".into())]
        );
        let bad = |toml_text: &str| {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            scrape_jobs(&file.scrape_configs).unwrap_err().to_string()
        };
        assert!(bad("[[scrape_configs]]\njob_name = \"a\"\nscrape_interval = \"5s\"\nscrape_timeout = \"10s\"").contains("must not exceed"));
        assert!(bad("[[scrape_configs]]\njob_name = \"a\"\n[[scrape_configs.static_configs]]\ntargets = [\"http://x:1/metrics\"]").contains("without scheme"));
        assert!(
            bad("[[scrape_configs]]\njob_name = \"a\"\n[[scrape_configs]]\njob_name = \"a\"")
                .contains("twice")
        );
    }

    #[test]
    fn flags_win_over_the_file_and_bad_values_say_which() {
        let file = RawConfig {
            listen: Some("127.0.0.1:1".into()),
            ..RawConfig::default()
        };
        let flags = RawConfig {
            listen: Some("127.0.0.1:2".into()),
            ..RawConfig::default()
        };
        assert_eq!(
            Config::from_raw(file.merge(flags)).unwrap().listen.port(),
            2
        );
        let bad = RawConfig {
            head_max_age: Some("soon".into()),
            ..RawConfig::default()
        };
        let err = Config::from_raw(bad).unwrap_err().to_string();
        assert!(err.starts_with("invalid setting head_max_age"), "{err}");
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }
}
