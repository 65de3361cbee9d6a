//! Sends generated telemetry to a server over its ingest APIs — OTLP/HTTP protobuf for
//! logs, traces and metrics, pprof for profiles — a bounded number of requests at a
//! time. A 429 or 503 is retried after the server's `Retry-After`; any other refusal
//! stops the run with the server's message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::encode::Request;
use super::{Batch, Config, GenerateError, Generator, SpanRecord, encode, topology};
use crate::cli::Credentials;
use crate::model::to_hex;

/// Retries of one request the server asked to slow down for.
const MAX_RETRIES: u32 = 20;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub logs: u64,
    pub spans: u64,
    pub histogram_points: u64,
    pub profiles: u64,
    pub requests: u64,
    /// Request body bytes.
    pub bytes: u64,
}

impl Totals {
    pub fn count(&mut self, request: &Request) {
        let records = match request.endpoint() {
            "/v1/logs" => &mut self.logs,
            "/v1/traces" => &mut self.spans,
            "/v1/metrics" => &mut self.histogram_points,
            _ => &mut self.profiles,
        };
        *records += request.records;
        self.requests += 1;
        self.bytes += request.body.len() as u64;
    }
}

pub struct Pusher {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    slots: Arc<Semaphore>,
    in_flight: JoinSet<Result<(), GenerateError>>,
    totals: Totals,
}

impl Pusher {
    pub fn new(base: &str, credentials: Credentials, concurrency: usize) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: JoinSet::new(),
            totals: Totals::default(),
        }
    }

    /// Encodes a batch and starts its requests; waits while all slots are busy.
    pub async fn send(&mut self, batch: &Batch) -> Result<(), GenerateError> {
        for request in encode::requests(batch) {
            self.post(request).await?;
        }
        Ok(())
    }

    /// Starts one request; waits while all slots are busy.
    pub async fn post(&mut self, request: Request) -> Result<(), GenerateError> {
        self.reap()?;
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        self.totals.count(&request);
        let url = format!("{}{}", self.base, request.endpoint());
        let builder = self.credentials.apply(
            self.http
                .post(format!("{}{}", self.base, request.path))
                .header("content-type", request.content_type),
        );
        let body = Bytes::from(request.body);
        self.in_flight.spawn(async move {
            let result = deliver(builder, url, body).await;
            drop(permit);
            result
        });
        Ok(())
    }

    /// Surfaces the first failure among finished requests.
    fn reap(&mut self) -> Result<(), GenerateError> {
        while let Some(done) = self.in_flight.try_join_next() {
            done.expect("push tasks do not panic")?;
        }
        Ok(())
    }

    /// Waits for every request to be answered.
    pub async fn finish(mut self) -> Result<Totals, GenerateError> {
        while let Some(done) = self.in_flight.join_next().await {
            done.expect("push tasks do not panic")?;
        }
        Ok(self.totals)
    }
}

async fn deliver(
    request: reqwest::RequestBuilder,
    url: String,
    body: Bytes,
) -> Result<(), GenerateError> {
    let mut retries = 0;
    loop {
        let attempt = request
            .try_clone()
            .expect("requests without a body clone")
            .body(body.clone());
        let response = attempt
            .send()
            .await
            .map_err(|source| GenerateError::Connect {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let busy = status.as_u16() == 429 || status.as_u16() == 503;
        if busy && retries < MAX_RETRIES {
            retries += 1;
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 30))).await;
            continue;
        }
        let message = response.text().await.unwrap_or_default();
        return Err(GenerateError::Refused {
            url,
            status: status.as_u16(),
            message: message.trim().to_owned(),
        });
    }
}

/// What `threadline generate` does.
#[derive(Debug, Clone)]
pub struct Run {
    pub config: Config,
    /// Simulate until here as fast as the server takes it.
    pub until_ns: i64,
    /// Then go on in real time until stopped.
    pub follow: bool,
    pub concurrency: usize,
}

/// A trace worth looking at: the slowest failed request, or else the slowest one.
#[derive(Debug, Clone, PartialEq)]
pub struct Highlight {
    pub trace_id: String,
    pub name: &'static str,
    pub duration_ms: f64,
    pub failed: bool,
}

pub struct Summary {
    pub totals: Totals,
    pub elapsed: Duration,
    pub highlight: Option<Highlight>,
}

impl Summary {
    /// What was sent, how fast, and where to start exploring.
    pub fn report(&self) -> String {
        let t = &self.totals;
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "{} log lines, {} spans, {} histogram points and {} profiles in {} requests \
             ({:.1} MB) in {:.1} s: {:.1} MB/s, {:.0} lines and spans/s",
            t.logs,
            t.spans,
            t.histogram_points,
            t.profiles,
            t.requests,
            t.bytes as f64 / 1e6,
            seconds,
            t.bytes as f64 / 1e6 / seconds,
            (t.logs + t.spans) as f64 / seconds,
        );
        if let Some(h) = &self.highlight {
            out.push_str(&format!(
                "\n{} request to explore: {} took {:.0} ms — threadline trace {}",
                if h.failed { "a failed" } else { "a slow" },
                h.name,
                h.duration_ms,
                h.trace_id
            ));
        }
        out
    }
}

pub async fn run(run: Run, url: &str, credentials: Credentials) -> Result<Summary, GenerateError> {
    let started = Instant::now();
    let mut pusher = Pusher::new(url, credentials, run.concurrency);
    let mut generator = Generator::new(run.config.clone());
    let mut highlight = None;
    for batch in generator.until(run.until_ns) {
        notice(&batch.spans, &mut highlight);
        pusher.send(&batch).await?;
    }
    if run.follow {
        let so_far = Summary {
            totals: pusher.totals.clone(),
            elapsed: started.elapsed(),
            highlight: highlight.clone(),
        };
        println!(
            "{}\nfollowing in real time; stop with Ctrl-C",
            so_far.report()
        );
        loop {
            let batch = generator.step(1_000_000_000);
            notice(&batch.spans, &mut highlight);
            pusher.send(&batch).await?;
            let ahead = generator.now_ns() - crate::ingest::now_ns();
            if ahead > 0 {
                tokio::time::sleep(Duration::from_nanos(ahead as u64)).await;
            }
        }
    }
    let totals = pusher.finish().await?;
    Ok(Summary {
        totals,
        elapsed: started.elapsed(),
        highlight,
    })
}

/// Keeps the slowest failed request seen so far, or the slowest request.
pub(super) fn notice(spans: &[SpanRecord], best: &mut Option<Highlight>) {
    for span in spans.iter().filter(|s| s.parent.is_none()) {
        let candidate = Highlight {
            trace_id: to_hex(&span.trace_id),
            name: topology::OPERATIONS[span.operation].name,
            duration_ms: (span.end_ns - span.start_ns) as f64 / 1e6,
            failed: span.error.is_some(),
        };
        let better = best
            .as_ref()
            .is_none_or(|b| (candidate.failed, candidate.duration_ms) > (b.failed, b.duration_ms));
        if better {
            *best = Some(candidate);
        }
    }
}
