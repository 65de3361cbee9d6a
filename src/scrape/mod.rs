//! Scraping: every target in the config file is fetched on its job's interval, its
//! exposition (OpenMetrics or the Prometheus text format, by content negotiation)
//! parsed and written like a push, under the target's `job` and `instance` labels.
//!
//! Each scrape also writes `up`, `scrape_duration_seconds` and
//! `scrape_samples_scraped`. A scrape that fails (connection, HTTP status, timeout,
//! body over the size limit, malformed exposition) writes only those, with `up` 0,
//! and keeps the error for `GET /api/v1/targets`; other targets are unaffected. Each
//! target runs on its own task, first at an offset within the interval derived from
//! its URL, so targets of one job spread out.
//!
//! A job with a `profiling` section adds one more target per pprof endpoint of each
//! address (see `profiles`); they share this engine, its limits and its status
//! reporting, and write `profiles` rows instead of samples (no `up` series).

pub mod profiles;
pub mod rows;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::db::Db;
use crate::ingest::exposition::{self, Format};
use crate::ingest::metrics::MetricRows;
use crate::ingest::profiles::{ProfileRows, Received};
use crate::ingest::{ContentEncoding, decompress, now_ns};
use crate::model::{Signal, Tenant};
use crate::profile::{PROFILE_NAME_LABEL, Totals, pprof, to_delta};
use profiles::{ProfileKind, Profiling};

/// One `[[scrape_configs]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeJob {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub tenant: Tenant,
    pub targets: Vec<StaticTarget>,
    pub profiling: Option<Profiling>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticTarget {
    /// `host:port`.
    pub address: String,
    /// Extra labels from the target's `static_configs` entry.
    pub labels: Vec<(String, String)>,
    /// Profile kinds for this target instead of the job's.
    pub profile_kinds: Option<Vec<ProfileKind>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub health: Health,
    pub last_error: String,
    /// Nanoseconds since the epoch.
    pub last_scrape: Option<i64>,
    pub last_duration: Duration,
    pub samples: usize,
}

impl Status {
    fn up(scrape_time: i64, duration: Duration, samples: usize) -> Self {
        Self {
            health: Health::Up,
            last_error: String::new(),
            last_scrape: Some(scrape_time),
            last_duration: duration,
            samples,
        }
    }

    fn down(scrape_time: i64, duration: Duration, error: String) -> Self {
        Self {
            health: Health::Down,
            last_error: error,
            last_scrape: Some(scrape_time),
            last_duration: duration,
            samples: 0,
        }
    }
}

#[derive(Debug)]
pub struct Target {
    pub job: String,
    pub url: String,
    /// `job`, `instance` and the extra labels, in that order of precedence reversed:
    /// extra labels may override `instance`.
    pub labels: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub tenant: Tenant,
    /// `None` for the metrics endpoint, else the pprof endpoint this target fetches.
    pub profile_kind: Option<ProfileKind>,
    status: Mutex<Status>,
    /// The cumulative totals of the last stored profile, for the next delta.
    totals: Mutex<Option<Totals>>,
}

impl Target {
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    fn set_status(&self, status: Status) {
        *lock(&self.status) = status;
    }
}

pub struct Scraper {
    targets: Vec<Arc<Target>>,
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl Scraper {
    pub fn new(jobs: &[ScrapeJob], max_body_bytes: usize) -> Self {
        let mut targets = Vec::new();
        for job in jobs {
            for target in &job.targets {
                let mut labels = vec![
                    ("job".to_owned(), job.name.clone()),
                    ("instance".to_owned(), target.address.clone()),
                ];
                for (name, value) in &target.labels {
                    labels.retain(|(n, _)| n != name);
                    labels.push((name.clone(), value.clone()));
                }
                let base = format!("{}://{}", job.scheme, target.address);
                let new_target = |url: String, labels, interval, timeout, profile_kind| {
                    Arc::new(Target {
                        job: job.name.clone(),
                        url,
                        labels,
                        interval,
                        timeout,
                        tenant: job.tenant.clone(),
                        profile_kind,
                        status: Mutex::new(Status {
                            health: Health::Unknown,
                            last_error: String::new(),
                            last_scrape: None,
                            last_duration: Duration::ZERO,
                            samples: 0,
                        }),
                        totals: Mutex::new(None),
                    })
                };
                targets.push(new_target(
                    format!("{base}{}", job.metrics_path),
                    labels.clone(),
                    job.interval,
                    job.timeout,
                    None,
                ));
                let Some(profiling) = &job.profiling else {
                    continue;
                };
                let kinds = target.profile_kinds.as_ref().unwrap_or(&profiling.kinds);
                for &kind in kinds {
                    let mut labels = labels.clone();
                    if !labels.iter().any(|(n, _)| n == "service_name") {
                        labels.push(("service_name".to_owned(), job.name.clone()));
                    }
                    labels.push((
                        PROFILE_NAME_LABEL.to_owned(),
                        kind.profile_name().to_owned(),
                    ));
                    let timeout = match kind {
                        ProfileKind::Cpu => job.timeout + profiling.cpu_duration,
                        _ => job.timeout,
                    };
                    targets.push(new_target(
                        format!(
                            "{base}{}/{}",
                            profiling.path_prefix,
                            kind.path(profiling.cpu_duration)
                        ),
                        labels,
                        profiling.interval,
                        timeout,
                        Some(kind),
                    ));
                }
            }
        }
        Self {
            targets,
            client: reqwest::Client::new(),
            max_body_bytes,
        }
    }

    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// Starts one task per target; they end when `stop` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        db: Arc<Db>,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        self.targets
            .iter()
            .map(|target| {
                let scraper = Arc::clone(self);
                let target = Arc::clone(target);
                let db = Arc::clone(&db);
                let stop = stop.clone();
                tokio::spawn(async move { scraper.run(target, db, stop).await })
            })
            .collect()
    }

    async fn run(&self, target: Arc<Target>, db: Arc<Db>, mut stop: watch::Receiver<bool>) {
        let interval = target.interval;
        let offset = Duration::from_nanos(
            xxhash_rust::xxh3::xxh3_64(target.url.as_bytes()) % interval.as_nanos().max(1) as u64,
        );
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (batches, mut status, totals) = match target.profile_kind {
                None => {
                    let (rows, status) = self.scrape(&target).await;
                    (rows.finish().0, status, None)
                }
                Some(_) => self.scrape_profile(&target).await,
            };
            match db.write_all(&target.tenant, batches).await {
                Ok(()) => {
                    if let Some(totals) = totals {
                        *lock(&target.totals) = Some(totals);
                    }
                }
                Err(e) => {
                    warn!(target = %target.url, error = %e, "cannot store a scrape");
                    status.last_error =
                        format!("scraped, but the samples could not be stored: {e}");
                }
            }
            target.set_status(status);
        }
    }

    /// Scrapes once: the rows to write (always including the report series) and the
    /// target's new status.
    pub async fn scrape(&self, target: &Target) -> (MetricRows, Status) {
        let scrape_time = now_ns() / 1_000_000 * 1_000_000;
        let started = Instant::now();
        let outcome = self.fetch_and_parse(target, scrape_time).await;
        let duration = started.elapsed();
        let (mut rows, status) = match outcome {
            Ok(rows) => {
                let status = Status::up(scrape_time, duration, rows.sample_count());
                (rows, status)
            }
            Err(error) => {
                debug!(target = %target.url, %error, "scrape failed");
                (
                    MetricRows::default(),
                    Status::down(scrape_time, duration, error),
                )
            }
        };
        rows::report_rows(
            &mut rows,
            &target.labels,
            scrape_time,
            status.health == Health::Up,
            duration.as_secs_f64(),
            status.samples,
        );
        (rows, status)
    }

    /// Scrapes one pprof endpoint: the rows to write, the target's new status, and
    /// the cumulative totals to keep once the rows are stored.
    pub async fn scrape_profile(
        &self,
        target: &Target,
    ) -> (Vec<(Signal, RecordBatch)>, Status, Option<Totals>) {
        let scrape_time = now_ns() / 1_000_000 * 1_000_000;
        let started = Instant::now();
        let outcome = async {
            let (_, content_encoding, body) =
                self.fetch(target, "application/octet-stream").await?;
            let encoding =
                ContentEncoding::parse(Some(&content_encoding)).map_err(|e| e.to_string())?;
            let previous = lock(&target.totals).clone();
            let limit = self.max_body_bytes;
            let labels = target.labels.clone();
            tokio::task::spawn_blocking(move || {
                let body = decompress(body.into(), encoding, limit).map_err(|e| e.to_string())?;
                let original = pprof::inflate(body, limit).map_err(|e| e.to_string())?;
                let mut profile = pprof::decode(&original).map_err(|e| e.to_string())?;
                let totals = to_delta(&mut profile, previous.as_ref());
                let mut rows = ProfileRows::default();
                rows.add(Received {
                    labels,
                    profile: &profile,
                    original: &original,
                    default_time: scrape_time,
                    default_duration: 0,
                    id: None,
                })
                .map_err(|e| e.to_string())?;
                Ok::<_, String>((rows.finish(), profile.samples.len(), totals))
            })
            .await
            .map_err(|e| format!("decoding the profile failed: {e}"))?
        }
        .await;
        let duration = started.elapsed();
        match outcome {
            Ok((batches, samples, totals)) => (
                batches,
                Status::up(scrape_time, duration, samples),
                Some(totals),
            ),
            Err(error) => {
                debug!(target = %target.url, %error, "profile scrape failed");
                (Vec::new(), Status::down(scrape_time, duration, error), None)
            }
        }
    }

    /// Fetches a target's body within its timeout and the size limit: its content
    /// type, content encoding and bytes.
    async fn fetch(
        &self,
        target: &Target,
        accept: &str,
    ) -> Result<(String, String, Vec<u8>), String> {
        let fetch = async {
            let mut response = self
                .client
                .get(&target.url)
                .header(reqwest::header::ACCEPT, accept)
                .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                .header(
                    "X-Prometheus-Scrape-Timeout-Seconds",
                    format!("{}", target.timeout.as_secs_f64()),
                )
                .send()
                .await
                .map_err(|e| format!("cannot fetch {}: {e}", target.url))?;
            if !response.status().is_success() {
                return Err(format!("server returned HTTP status {}", response.status()));
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let content_type = header(reqwest::header::CONTENT_TYPE);
            let content_encoding = header(reqwest::header::CONTENT_ENCODING);
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("cannot read the body: {e}"))?
            {
                if body.len() + chunk.len() > self.max_body_bytes {
                    return Err(format!(
                        "body exceeds the limit of {} bytes",
                        self.max_body_bytes
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((content_type, content_encoding, body))
        };
        tokio::time::timeout(target.timeout, fetch)
            .await
            .map_err(|_| format!("scrape timed out after {:?}", target.timeout))?
    }

    async fn fetch_and_parse(
        &self,
        target: &Target,
        scrape_time: i64,
    ) -> Result<MetricRows, String> {
        let (content_type, content_encoding, body) = self.fetch(target, Format::ACCEPT).await?;
        let encoding =
            ContentEncoding::parse(Some(&content_encoding)).map_err(|e| e.to_string())?;
        let limit = self.max_body_bytes;
        let labels = target.labels.clone();
        // Parsing a large exposition is CPU work: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let body = decompress(body.into(), encoding, limit).map_err(|e| e.to_string())?;
            let text = std::str::from_utf8(&body).map_err(|e| format!("body is not UTF-8: {e}"))?;
            let format = Format::from_content_type(&content_type);
            let parsed = exposition::parse(text, format).map_err(|e| e.to_string())?;
            rows::exposition_rows(&parsed, &labels, scrape_time)
        })
        .await
        .map_err(|e| format!("parsing the scrape failed: {e}"))?
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
