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

pub mod rows;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::db::Db;
use crate::ingest::exposition::{self, Format};
use crate::ingest::metrics::MetricRows;
use crate::ingest::{ContentEncoding, decompress, now_ns};
use crate::model::Tenant;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticTarget {
    /// `host:port`.
    pub address: String,
    /// Extra labels from the target's `static_configs` entry.
    pub labels: Vec<(String, String)>,
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
    status: Mutex<Status>,
}

impl Target {
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_status(&self, status: Status) {
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
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
                targets.push(Arc::new(Target {
                    job: job.name.clone(),
                    url: format!("{}://{}{}", job.scheme, target.address, job.metrics_path),
                    labels,
                    interval: job.interval,
                    timeout: job.timeout,
                    tenant: job.tenant.clone(),
                    status: Mutex::new(Status {
                        health: Health::Unknown,
                        last_error: String::new(),
                        last_scrape: None,
                        last_duration: Duration::ZERO,
                        samples: 0,
                    }),
                }));
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
            let (rows, mut status) = self.scrape(&target).await;
            let (batches, _) = rows.finish();
            if let Err(e) = db.write_all(&target.tenant, batches).await {
                warn!(target = %target.url, error = %e, "cannot store a scrape");
                status.last_error = format!("scraped, but the samples could not be stored: {e}");
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
                let samples = rows.sample_count();
                let status = Status {
                    health: Health::Up,
                    last_error: String::new(),
                    last_scrape: Some(scrape_time),
                    last_duration: duration,
                    samples,
                };
                (rows, status)
            }
            Err(error) => {
                debug!(target = %target.url, %error, "scrape failed");
                let status = Status {
                    health: Health::Down,
                    last_error: error,
                    last_scrape: Some(scrape_time),
                    last_duration: duration,
                    samples: 0,
                };
                (MetricRows::default(), status)
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

    async fn fetch_and_parse(
        &self,
        target: &Target,
        scrape_time: i64,
    ) -> Result<MetricRows, String> {
        let fetch = async {
            let mut response = self
                .client
                .get(&target.url)
                .header(reqwest::header::ACCEPT, Format::ACCEPT)
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
        let (content_type, content_encoding, body) = tokio::time::timeout(target.timeout, fetch)
            .await
            .map_err(|_| format!("scrape timed out after {:?}", target.timeout))??;
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
