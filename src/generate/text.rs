//! What the simulated services write: span attributes and status, and log lines in
//! each service's own format — nginx access logs, logfmt, Logback with stack traces,
//! JSON — plus the background noise of nodes and runtimes.

use chrono::{DateTime, Utc};

use super::topology::{Kind, LogStyle, OPERATIONS, SERVICES};
use super::{LogRecord, Rng, Severity, Source, SpanId, TraceId};
use crate::model::to_hex;

/// What the log lines and attributes of one span are written from.
pub struct SpanContext {
    pub operation: usize,
    pub source: Source,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub start_ns: i64,
    pub end_ns: i64,
    pub user: u64,
    /// The operation itself failed.
    pub failed_here: bool,
    /// It or something it called failed.
    pub failed: bool,
}

impl SpanContext {
    fn millis(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e6
    }

    fn line(&self, severity: Severity, body: String) -> LogRecord {
        LogRecord {
            time_ns: self.end_ns,
            source: self.source,
            severity,
            body,
            trace: Some((self.trace_id, self.span_id)),
        }
    }
}

/// The HTTP method of an operation named `METHOD /path`.
pub fn method(name: &str) -> &'static str {
    ["GET", "POST", "PUT", "DELETE"]
        .into_iter()
        .find(|m| name.starts_with(m))
        .unwrap_or("GET")
}

fn clock(time_ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(time_ns)
}

/// `2026-11-21T10:00:00.123456Z`, as Go's logfmt loggers write it.
fn go_time(time_ns: i64) -> impl std::fmt::Display {
    clock(time_ns).format("%Y-%m-%dT%H:%M:%S%.6fZ")
}

/// `2026-11-21 10:00:00.123`, as Logback writes it.
fn java_time(time_ns: i64) -> impl std::fmt::Display {
    clock(time_ns).format("%Y-%m-%d %H:%M:%S%.3f")
}

/// `2026-11-21T10:00:00.123Z`, as JSON loggers write it.
fn json_time(time_ns: i64) -> impl std::fmt::Display {
    clock(time_ns).format("%Y-%m-%dT%H:%M:%S%.3fZ")
}

/// The request path of a route, its `{id}` filled in.
fn path(rng: &mut Rng, route: &str) -> String {
    match route {
        "/cart/{id}" => format!("/cart/c-{}", rng.below(500_000)),
        "/search" => format!("/search?q={}", rng.pick(QUERIES)),
        other => other.to_owned(),
    }
}

const QUERIES: &[&str] = &[
    "running+shoes",
    "espresso+machine",
    "usb-c+cable",
    "rain+jacket",
    "standing+desk",
    "noise+cancelling+headphones",
    "cast+iron+pan",
    "yoga+mat",
    "mechanical+keyboard",
    "trail+backpack",
];

/// Span attributes, the status message of a failed span, and the HTTP status a
/// server span answered with (0 for client spans).
pub fn span_attributes(
    rng: &mut Rng,
    span: &SpanContext,
) -> (Vec<(&'static str, String)>, Option<String>, u16) {
    let op = &OPERATIONS[span.operation];
    match op.kind {
        Kind::Server => {
            let status: u16 = match (span.failed_here, span.failed) {
                (true, _) if op.target == "/charge" => 402,
                (true, _) => 500,
                (false, true) => 502,
                _ if method(op.name) == "POST" => 201,
                _ => 200,
            };
            let mut attributes = vec![
                ("http.request.method", method(op.name).to_owned()),
                ("http.route", op.target.to_owned()),
                ("url.path", path(rng, op.target)),
                ("http.response.status_code", status.to_string()),
            ];
            if op.service == 0 {
                attributes.push(("user.id", format!("u-{}", span.user)));
                attributes.push((
                    "client.address",
                    format!("10.{}.{}.{}", rng.below(4), rng.below(256), rng.below(256)),
                ));
            }
            let error = span.failed.then(|| {
                if span.failed_here {
                    failure(op.target).to_owned()
                } else {
                    format!("upstream call failed with {status}")
                }
            });
            (attributes, error, status)
        }
        Kind::Client => {
            let attributes = vec![
                ("db.system", op.target.to_owned()),
                (
                    "db.operation.name",
                    op.name.split(' ').next().unwrap_or("").to_owned(),
                ),
                ("server.address", format!("{}.shop.svc", op.target)),
            ];
            let error = span.failed_here.then(|| failure(op.target).to_owned());
            (attributes, error, 0)
        }
    }
}

fn failure(target: &str) -> &'static str {
    match target {
        "/charge" => "card declined by issuer: insufficient funds",
        "/quote" => "rate service timed out after 2000ms",
        "/send" => "SMTP 421 4.7.0 try again later",
        "redis" => "dial tcp 10.3.0.12:6379: connect: connection refused",
        "postgresql" => "pq: deadlock detected",
        "elasticsearch" => "search_phase_execution_exception: all shards failed",
        _ => "internal error",
    }
}

/// The lines a span writes: one per served request in the service's format, and for
/// failures, slow calls and business events a little more.
pub fn span_lines(rng: &mut Rng, span: &SpanContext, status: u16) -> Vec<LogRecord> {
    let op = &OPERATIONS[span.operation];
    let service = &SERVICES[op.service];
    let mut lines = Vec::with_capacity(2);
    if op.kind == Kind::Client {
        if span.failed_here {
            lines.push(span.line(Severity::Error, client_error(span, service.style)));
        } else if span.millis() > op.self_ms * 3.0 {
            lines.push(span.line(Severity::Warn, slow_call(span, service.style)));
        }
        return lines;
    }
    let severity = match status {
        500.. => Severity::Error,
        400.. => Severity::Warn,
        _ => Severity::Info,
    };
    let body = match service.style {
        LogStyle::Edge => access_line(rng, span, status),
        LogStyle::Logfmt => format!(
            "ts={} level={} caller=handler.go:{} msg=\"request served\" method={} route={} status={status} duration={:.2}ms user=u-{}",
            go_time(span.end_ns),
            severity.as_str().to_lowercase(),
            60 + span.operation * 7,
            method(op.name),
            op.target,
            span.millis(),
            span.user,
        ),
        LogStyle::Java => format!(
            "{} {:>5} 1 --- [nio-8080-exec-{}] c.s.{}.{}Controller : {} {} completed in {}ms status={status}",
            java_time(span.end_ns),
            severity.as_str(),
            1 + rng.below(200),
            service.name,
            capitalized(service.name),
            method(op.name),
            op.target,
            span.millis() as u64,
        ),
        LogStyle::Json => format!(
            r#"{{"timestamp":"{}","level":"{}","logger":"{}.views","message":"request served","method":"{}","path":"{}","status":{status},"took_ms":{:.1},"hits":{}}}"#,
            json_time(span.end_ns),
            severity.as_str(),
            service.name,
            method(op.name),
            path(rng, op.target),
            span.millis(),
            rng.below(120),
        ),
    };
    lines.push(span.line(severity, body));
    if span.failed_here {
        lines.push(span.line(Severity::Error, failure_line(rng, span)));
    } else if !span.failed {
        match op.target {
            "/orders" => lines.push(span.line(
                Severity::Info,
                format!(
                    "{}  INFO 1 --- [nio-8080-exec-{}] c.s.checkout.OrderService : order o-{} placed for u-{} items={} total={}.{:02} currency=USD",
                    java_time(span.end_ns),
                    1 + rng.below(200),
                    rng.below(10_000_000),
                    span.user,
                    1 + rng.below(6),
                    5 + rng.below(400),
                    rng.below(100),
                ),
            )),
            "/charge" => lines.push(span.line(
                Severity::Info,
                format!(
                    "ts={} level=info caller=gateway.go:212 msg=\"charge authorized\" amount={}.{:02} currency=USD card={} auth_code={:06}",
                    go_time(span.end_ns),
                    5 + rng.below(400),
                    rng.below(100),
                    rng.pick(&["visa", "mastercard", "amex"]),
                    rng.below(1_000_000),
                ),
            )),
            _ => {}
        }
    }
    lines
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "okhttp/4.12.0",
];

fn access_line(rng: &mut Rng, span: &SpanContext, status: u16) -> String {
    let op = &OPERATIONS[span.operation];
    format!(
        "10.{}.{}.{} - - [{}] \"{} {} HTTP/1.1\" {status} {} \"https://shop.example.com{}\" \"{}\" {:.3} trace_id={}",
        rng.below(4),
        rng.below(256),
        rng.below(256),
        clock(span.end_ns).format("%d/%b/%Y:%H:%M:%S +0000"),
        method(op.name),
        path(rng, op.target),
        200 + rng.below(40_000),
        rng.pick(&["/", "/cart", "/search?q=shoes", "/product/4711"]),
        rng.pick(USER_AGENTS),
        span.millis() / 1000.0,
        to_hex(&span.trace_id),
    )
}

fn failure_line(rng: &mut Rng, span: &SpanContext) -> String {
    let op = &OPERATIONS[span.operation];
    let service = &SERVICES[op.service];
    let message = failure(op.target);
    match service.style {
        LogStyle::Java => {
            let class = capitalized(service.name);
            format!(
                "{} ERROR 1 --- [nio-8080-exec-{}] c.s.{}.{class}Controller : request failed: {message}\n\
                 com.shop.{}.{class}Exception: {message}\n\
                 \tat com.shop.{}.{class}Service.call({class}Service.java:{})\n\
                 \tat com.shop.{}.{class}Controller.handle({class}Controller.java:{})\n\
                 \tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\n\
                 \tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)\n\
                 \tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)\n\
                 \tat org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:1791)\n\
                 \tat java.base/java.lang.Thread.run(Thread.java:1583)",
                java_time(span.end_ns),
                1 + rng.below(200),
                service.name,
                service.name,
                service.name,
                40 + rng.below(400),
                service.name,
                20 + rng.below(200),
            )
        }
        LogStyle::Logfmt => format!(
            "ts={} level=error caller={}.go:{} msg=\"request failed\" err=\"{message}\" route={} user=u-{}",
            go_time(span.end_ns),
            service.name,
            100 + rng.below(300),
            op.target,
            span.user,
        ),
        LogStyle::Json | LogStyle::Edge => format!(
            r#"{{"timestamp":"{}","level":"ERROR","logger":"{}","message":"request failed","error":"{message}","path":"{}","user_id":"u-{}"}}"#,
            json_time(span.end_ns),
            service.name,
            op.target,
            span.user,
        ),
    }
}

fn client_error(span: &SpanContext, style: LogStyle) -> String {
    let op = &OPERATIONS[span.operation];
    let message = failure(op.target);
    match style {
        LogStyle::Logfmt => format!(
            "ts={} level=error msg=\"{} call failed\" db={} op=\"{}\" err=\"{message}\"",
            go_time(span.end_ns),
            op.target,
            op.target,
            op.name,
        ),
        LogStyle::Json | LogStyle::Edge => format!(
            r#"{{"timestamp":"{}","level":"ERROR","logger":"{}","message":"{} call failed","error":"{message}"}}"#,
            json_time(span.end_ns),
            op.target,
            op.name,
        ),
        LogStyle::Java => format!(
            "{} ERROR 1 --- [HikariPool-1 housekeeper] o.p.jdbc.PgConnection : {} failed: {message}",
            java_time(span.end_ns),
            op.name,
        ),
    }
}

fn slow_call(span: &SpanContext, style: LogStyle) -> String {
    let op = &OPERATIONS[span.operation];
    match style {
        LogStyle::Logfmt => format!(
            "ts={} level=warn msg=\"slow {} call\" op=\"{}\" duration={:.1}ms threshold={}ms",
            go_time(span.end_ns),
            op.target,
            op.name,
            span.millis(),
            (op.self_ms * 3.0) as u64,
        ),
        LogStyle::Json | LogStyle::Edge => format!(
            r#"{{"timestamp":"{}","level":"WARNING","logger":"elasticsearch","message":"slow query","took_ms":{:.1},"index":"products"}}"#,
            json_time(span.end_ns),
            span.millis(),
        ),
        LogStyle::Java => format!(
            "{}  WARN 1 --- [nio-8080-exec-1] o.h.engine.jdbc.spi.SqlStatementLogger : Slow query took {}ms: {}",
            java_time(span.end_ns),
            span.millis() as u64,
            op.name,
        ),
    }
}

/// A line nobody asked for: kubelet and kernel messages on a node, a runtime's
/// garbage collection, a connection pool's statistics.
pub fn background(rng: &mut Rng, time_ns: i64) -> LogRecord {
    let at = clock(time_ns);
    let roll = rng.below(10);
    let (service, severity, body) = if roll < 4 {
        let service = rng.below(SERVICES.len() as u64) as usize;
        let pod = rng.below(SERVICES[service].pods);
        let node = Source {
            service: Some(service),
            instance: pod,
        }
        .node_number();
        let body = match rng.below(4) {
            0 => format!(
                "<30>{} node-{node} kubelet[{}]: I{} {:>7} prober.go:107] \"Probe succeeded\" probeType=\"Readiness\" pod=\"shop/{}-5d8f7c9b6-{pod}\" containerName=\"{}\"",
                at.format("%b %e %H:%M:%S"),
                900 + node,
                at.format("%m%d %H:%M:%S%.6f"),
                1000 + rng.below(9000),
                SERVICES[service].name,
                SERVICES[service].name,
            ),
            1 => format!(
                "<30>{} node-{node} containerd[{}]: time=\"{}\" level=info msg=\"ImageCreate event name:\\\"registry.shop.example.com/{}:v1.{}.{}\\\"\"",
                at.format("%b %e %H:%M:%S"),
                600 + node,
                at.format("%Y-%m-%dT%H:%M:%S%.9fZ"),
                SERVICES[service].name,
                rng.below(40),
                rng.below(10),
            ),
            2 => format!(
                "<4>{} node-{node} kernel: [{}.{:06}] TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.",
                at.format("%b %e %H:%M:%S"),
                rng.below(2_000_000),
                rng.below(1_000_000),
            ),
            _ => format!(
                "<29>{} node-{node} systemd[1]: Started cri-containerd-{:016x}.scope - libcontainer container {:016x}.",
                at.format("%b %e %H:%M:%S"),
                rng.next_u64(),
                rng.next_u64(),
            ),
        };
        let severity = if body.starts_with("<4>") {
            Severity::Warn
        } else {
            Severity::Info
        };
        (
            Source {
                service: None,
                instance: node,
            },
            severity,
            body,
        )
    } else {
        let s = rng.below(SERVICES.len() as u64) as usize;
        let service = &SERVICES[s];
        let source = Source {
            service: Some(s),
            instance: rng.below(service.pods),
        };
        let body = match service.style {
            LogStyle::Java => format!(
                "[{}][info][gc] GC({}) Pause Young (Normal) (G1 Evacuation Pause) {}M->{}M({}M) {}.{:03}ms",
                at.format("%Y-%m-%dT%H:%M:%S%.3f+0000"),
                rng.below(100_000),
                200 + rng.below(300),
                80 + rng.below(100),
                1024,
                rng.below(40),
                rng.below(1000),
            ),
            LogStyle::Logfmt => format!(
                "ts={} level=debug msg=\"pool stats\" open={} idle={} in_use={} wait_count={} wait_duration={}ms max_open=64",
                go_time(time_ns),
                rng.below(64),
                rng.below(32),
                rng.below(32),
                rng.below(100_000),
                rng.below(5_000),
            ),
            LogStyle::Json => format!(
                r#"{{"timestamp":"{}","level":"DEBUG","logger":"gunicorn.error","message":"worker heartbeat","worker_pid":{},"requests":{},"rss_mb":{}}}"#,
                json_time(time_ns),
                100 + rng.below(60_000),
                rng.below(1_000_000),
                90 + rng.below(200),
            ),
            LogStyle::Edge => format!(
                r#"{{"level":"debug","time":{},"pid":{},"hostname":"{}","msg":"event loop lag","lag_ms":{}.{}}}"#,
                time_ns / 1_000_000,
                1 + rng.below(100),
                source.instance_name(),
                rng.below(30),
                rng.below(10),
            ),
        };
        (source, Severity::Debug, body)
    };
    LogRecord {
        time_ns,
        source: service,
        severity,
        body,
        trace: None,
    }
}

/// A function a sample ends in, in the runtime of `language`.
pub fn leaf(rng: &mut Rng, language: &str) -> &'static str {
    match language {
        "go" => rng.pick(&[
            "runtime.memmove",
            "runtime.mallocgc",
            "runtime.mapaccess2_faststr",
            "syscall.Syscall",
            "runtime.futex",
        ]),
        "java" => rng.pick(&[
            "java.lang.String.hashCode",
            "java.util.Arrays.copyOf",
            "jdk.internal.misc.Unsafe.park",
            "java.lang.StringLatin1.indexOf",
        ]),
        "python" => rng.pick(&[
            "PyDict_GetItem",
            "_PyEval_EvalFrameDefault",
            "PyObject_Malloc",
            "list_append",
        ]),
        _ => rng.pick(&[
            "v8::internal::Heap::Scavenge",
            "Builtins_StringPrototypeReplace",
            "node::fs::Read",
            "uv__io_poll",
        ]),
    }
}
