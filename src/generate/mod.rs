//! A deterministic generator of correlated telemetry from a simulated shop: requests
//! become multi-service traces; their spans write log lines carrying the trace and span
//! IDs, feed a request-duration histogram whose exemplars point back at them, and spend
//! CPU time that shows up in profiles labelled with their span IDs. Services and nodes
//! add the lines nobody asked for (syslog, GC, pool statistics).
//!
//! The same seed gives the same telemetry. `push` sends it to a server over the
//! ingest APIs (`threadline generate`).

pub mod encode;
pub mod files;
pub mod push;
mod text;
pub mod topology;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use topology::{ENTRIES, Kind, OPERATIONS, SERVICES};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot reach {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// xorshift64*: fast and deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `per_10k` times in 10,000.
    pub fn chance(&mut self, per_10k: u64) -> bool {
        self.below(10_000) < per_10k
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-normal around `median`: most values near it, a long tail above.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * normal).exp()
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn trace_id(&mut self) -> TraceId {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        id
    }

    pub fn span_id(&mut self) -> SpanId {
        self.next_u64().to_be_bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Debug,
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }

    /// OpenTelemetry's severity number.
    pub fn number(self) -> i32 {
        match self {
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }
}

/// Where telemetry comes from: a pod of a service, or a node (`service` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    pub service: Option<usize>,
    pub instance: u64,
}

impl Source {
    pub fn service_name(self) -> &'static str {
        self.service.map_or("kubelet", |s| SERVICES[s].name)
    }

    /// The pod name (`cart-5d8f7c9b6-2`) or the node name (`node-1`).
    pub fn instance_name(self) -> String {
        match self.service {
            Some(s) => format!("{}-5d8f7c9b6-{}", SERVICES[s].name, self.instance),
            None => format!("node-{}", self.instance),
        }
    }

    /// The node a pod runs on, or the node itself.
    pub fn node_number(self) -> u64 {
        match self.service {
            Some(s) => (s as u64 + self.instance) % NODES,
            None => self.instance,
        }
    }

    pub fn node(self) -> String {
        format!("node-{}", self.node_number())
    }
}

const NODES: u64 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time_ns: i64,
    pub source: Source,
    pub severity: Severity,
    pub body: String,
    pub trace: Option<(TraceId, SpanId)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    /// Index into `topology::OPERATIONS`.
    pub operation: usize,
    pub source: Source,
    pub start_ns: i64,
    pub end_ns: i64,
    /// The status message of a failed span.
    pub error: Option<String>,
    pub attributes: Vec<(&'static str, String)>,
}

/// Upper bounds of the request-duration histogram, in seconds (OpenTelemetry's
/// semantic conventions for `http.server.request.duration`).
pub const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub time_ns: i64,
    pub value: f64,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// One cumulative point of `http.server.request.duration` for a pod and route.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub source: Source,
    pub route: &'static str,
    pub method: &'static str,
    pub status_code: u16,
    pub start_ns: i64,
    pub time_ns: i64,
    pub bucket_counts: [u64; DURATION_BOUNDS.len() + 1],
    pub count: u64,
    pub sum: f64,
    /// The last request of the interval observed in each bucket it reached.
    pub exemplars: Vec<Exemplar>,
}

/// CPU time spent in one stack, attributed to a span when one was running.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSample {
    /// Outermost frame first.
    pub stack: Vec<&'static str>,
    pub cpu_ns: i64,
    pub span: Option<(SpanId, &'static str)>,
}

/// A CPU profile of one pod over one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub source: Source,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub samples: Vec<ProfileSample>,
}

/// Everything generated for one step of simulated time.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub logs: Vec<LogRecord>,
    pub spans: Vec<SpanRecord>,
    pub histograms: Vec<HistogramPoint>,
    pub profiles: Vec<Profile>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Simulated time starts here.
    pub start_ns: i64,
    /// Requests entering the shop per simulated second.
    pub traces_per_second: f64,
    /// Lines nobody asked for (syslog, GC, pool statistics) per request.
    pub background_lines_per_trace: f64,
    pub metric_interval_ns: i64,
    pub profile_interval_ns: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 1,
            start_ns: 0,
            traces_per_second: 50.0,
            background_lines_per_trace: 2.5,
            metric_interval_ns: 15_000_000_000,
            profile_interval_ns: 10_000_000_000,
        }
    }
}

/// The CPU sampling period profiles are taken at (100 Hz).
pub const CPU_PERIOD_NS: i64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    source: Source,
    operation: usize,
    status_code: u16,
}

#[derive(Debug, Clone, Default)]
struct Series {
    bucket_counts: [u64; DURATION_BOUNDS.len() + 1],
    count: u64,
    sum: f64,
    /// The last request of the interval observed in each bucket.
    exemplars: [Option<Exemplar>; DURATION_BOUNDS.len() + 1],
}

pub struct Generator {
    config: Config,
    rng: Rng,
    now_ns: i64,
    /// Fractional requests and background lines carried to the next step.
    owed_traces: f64,
    owed_lines: f64,
    /// Ordered, so points come out in the same order for the same seed.
    series: BTreeMap<SeriesKey, Series>,
    next_metrics_ns: i64,
    cpu: HashMap<Source, Vec<ProfileSample>>,
    next_profiles_ns: i64,
    profile_start_ns: i64,
}

impl Generator {
    pub fn new(config: Config) -> Self {
        Self {
            // The start is part of the seed: windows of one run never repeat IDs.
            rng: Rng::new(config.seed ^ (config.start_ns as u64).rotate_left(29)),
            now_ns: config.start_ns,
            owed_traces: 0.0,
            owed_lines: 0.0,
            series: BTreeMap::new(),
            next_metrics_ns: config.start_ns + config.metric_interval_ns,
            cpu: HashMap::new(),
            next_profiles_ns: config.start_ns + config.profile_interval_ns,
            profile_start_ns: config.start_ns,
            config,
        }
    }

    /// Where simulated time has got to.
    pub fn now_ns(&self) -> i64 {
        self.now_ns
    }

    /// Simulates the next `step_ns` of time. Requests start at random instants in it;
    /// their spans and lines may end a little after. Histogram points and profiles
    /// are cut at their intervals' ends.
    pub fn step(&mut self, step_ns: i64) -> Batch {
        let mut batch = Batch::default();
        let end = self.now_ns.saturating_add(step_ns.max(1));
        while self.now_ns < end {
            let until = end.min(self.next_metrics_ns).min(self.next_profiles_ns);
            self.simulate(until, &mut batch);
            if self.next_metrics_ns <= self.now_ns {
                let at = self.next_metrics_ns;
                self.emit_histograms(at, &mut batch);
                self.next_metrics_ns += self.config.metric_interval_ns;
            }
            if self.next_profiles_ns <= self.now_ns {
                let at = self.next_profiles_ns;
                self.emit_profiles(at, &mut batch);
                self.next_profiles_ns += self.config.profile_interval_ns;
            }
        }
        batch.logs.sort_by_key(|l| l.time_ns);
        batch
    }

    /// The requests and background lines from now until `until_ns`.
    fn simulate(&mut self, until_ns: i64, batch: &mut Batch) {
        let from = self.now_ns;
        let length = (until_ns - from).max(1) as u64;
        self.owed_traces += self.config.traces_per_second * length as f64 / 1e9;
        let mut starts: Vec<i64> = (0..self.owed_traces as u64)
            .map(|_| from + self.rng.below(length) as i64)
            .collect();
        self.owed_traces -= starts.len() as f64;
        starts.sort_unstable();
        for start in starts.iter().copied() {
            self.request(start, batch);
        }
        self.owed_lines += self.config.background_lines_per_trace * starts.len() as f64;
        for _ in 0..self.owed_lines as u64 {
            let time = from + self.rng.below(length) as i64;
            batch.logs.push(text::background(&mut self.rng, time));
        }
        self.owed_lines = self.owed_lines.fract();
        self.now_ns = until_ns.max(from + 1);
    }

    /// Batches up to `until_ns` of simulated time, each of about 2,000 requests: big
    /// requests, bounded memory.
    pub fn until(&mut self, until_ns: i64) -> impl Iterator<Item = Batch> + '_ {
        let step_ns =
            ((2_000.0 / self.config.traces_per_second.max(0.001)) * 1e9).clamp(1e8, 60e9) as i64;
        std::iter::from_fn(move || {
            (self.now_ns < until_ns).then(|| self.step(step_ns.min(until_ns - self.now_ns)))
        })
    }

    fn request(&mut self, start_ns: i64, batch: &mut Batch) {
        let roll = self.rng.below(100);
        let mut acc = 0;
        let entry = ENTRIES
            .iter()
            .find(|(_, weight)| {
                acc += weight;
                roll < acc
            })
            .map_or(ENTRIES[0].0, |(op, _)| *op);
        let trace_id = self.rng.trace_id();
        let user = self.rng.below(200_000);
        self.span(entry, trace_id, None, start_ns, user, batch);
    }

    /// Simulates one operation and what it calls; returns when it ended and whether
    /// it failed.
    fn span(
        &mut self,
        operation: usize,
        trace_id: TraceId,
        parent: Option<SpanId>,
        start_ns: i64,
        user: u64,
        batch: &mut Batch,
    ) -> (i64, bool) {
        let op = &OPERATIONS[operation];
        let service = &SERVICES[op.service];
        let source = Source {
            service: Some(op.service),
            instance: self.rng.below(service.pods),
        };
        let span_id = self.rng.span_id();
        let own_ns = (self.rng.lognormal(op.self_ms, 0.6) * 1e6) as i64 + 50_000;
        let mut t = start_ns + own_ns / 2;
        let mut failed_below = false;
        for &call in op.calls {
            let gap = 20_000 + self.rng.below(200_000) as i64;
            let (end, failed) = self.span(call, trace_id, Some(span_id), t + gap, user, batch);
            t = end;
            failed_below |= failed;
            if failed {
                break;
            }
        }
        let end_ns = t + own_ns - own_ns / 2;
        let failed_here = self.rng.chance(op.failures);
        let failed = failed_here || failed_below;
        let context = text::SpanContext {
            operation,
            source,
            trace_id,
            span_id,
            start_ns,
            end_ns,
            user,
            failed_here,
            failed,
        };
        let (attributes, error, status_code) = text::span_attributes(&mut self.rng, &context);
        for line in text::span_lines(&mut self.rng, &context, status_code) {
            batch.logs.push(line);
        }
        if op.kind == Kind::Server {
            self.observe(&context, status_code);
        }
        self.spend_cpu(&context, own_ns);
        batch.spans.push(SpanRecord {
            trace_id,
            span_id,
            parent,
            operation,
            source,
            start_ns,
            end_ns,
            error,
            attributes,
        });
        (end_ns, failed)
    }

    fn observe(&mut self, span: &text::SpanContext, status_code: u16) {
        let seconds = (span.end_ns - span.start_ns) as f64 / 1e9;
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(DURATION_BOUNDS.len());
        let series = self
            .series
            .entry(SeriesKey {
                source: span.source,
                operation: span.operation,
                status_code,
            })
            .or_default();
        series.bucket_counts[bucket] += 1;
        series.count += 1;
        series.sum += seconds;
        series.exemplars[bucket] = Some(Exemplar {
            time_ns: span.end_ns,
            value: seconds,
            trace_id: span.trace_id,
            span_id: span.span_id,
        });
    }

    fn emit_histograms(&mut self, at: i64, batch: &mut Batch) {
        for (key, series) in &mut self.series {
            let op = &OPERATIONS[key.operation];
            let exemplars = series
                .exemplars
                .iter_mut()
                .filter_map(Option::take)
                .collect();
            batch.histograms.push(HistogramPoint {
                source: key.source,
                route: op.target,
                method: text::method(op.name),
                status_code: key.status_code,
                start_ns: self.config.start_ns,
                time_ns: at,
                bucket_counts: series.bucket_counts,
                count: series.count,
                sum: series.sum,
                exemplars,
            });
        }
    }

    /// Samples the CPU time of an operation at 100 Hz: a few milliseconds of work are
    /// one sample or none, as a real profiler sees them.
    fn spend_cpu(&mut self, span: &text::SpanContext, own_ns: i64) {
        let op = &OPERATIONS[span.operation];
        let busy = match op.kind {
            Kind::Server => 0.6,
            Kind::Client => 0.15,
        };
        let cpu_ns = own_ns as f64 * busy;
        let whole = (cpu_ns / CPU_PERIOD_NS as f64) as i64;
        let hits =
            whole + i64::from(self.rng.unit() < cpu_ns / CPU_PERIOD_NS as f64 - whole as f64);
        if hits == 0 {
            return;
        }
        let mut stack = op.frames.to_vec();
        stack.push(text::leaf(&mut self.rng, SERVICES[op.service].language));
        self.cpu
            .entry(span.source)
            .or_default()
            .push(ProfileSample {
                stack,
                cpu_ns: hits * CPU_PERIOD_NS,
                span: Some((span.span_id, op.name)),
            });
    }

    fn emit_profiles(&mut self, at: i64, batch: &mut Batch) {
        let duration_ns = at - self.profile_start_ns;
        for (s, service) in SERVICES.iter().enumerate() {
            for instance in 0..service.pods {
                let source = Source {
                    service: Some(s),
                    instance,
                };
                let mut samples = self.cpu.remove(&source).unwrap_or_default();
                // The runtime's own work: garbage collection, the event loop.
                let runtime_hits = 1 + self.rng.below(1 + duration_ns as u64 / 1_000_000_000);
                let mut stack = service.runtime_frames.to_vec();
                stack.push(text::leaf(&mut self.rng, service.language));
                samples.push(ProfileSample {
                    stack,
                    cpu_ns: runtime_hits as i64 * CPU_PERIOD_NS,
                    span: None,
                });
                batch.profiles.push(Profile {
                    source,
                    start_ns: self.profile_start_ns,
                    duration_ns,
                    samples,
                });
            }
        }
        self.profile_start_ns = at;
    }
}

#[cfg(test)]
mod tests;
