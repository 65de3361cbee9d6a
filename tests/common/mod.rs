//! Shared helpers for the end-to-end tests: a real server on 127.0.0.1:0 with a
//! temporary data directory, an HTTP client, and OTLP payload builders.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use threadline::config::{Config, RawConfig};
use threadline::server::Server;

pub struct TestServer {
    pub url: String,
    pub server: Server,
    pub dir: PathBuf,
    pub http: reqwest::Client,
}

pub fn settings(dir: &Path) -> RawConfig {
    RawConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.to_owned()),
        // Keep rows in the head unless a test flushes them.
        head_max_age: Some("1h".into()),
        ..RawConfig::default()
    }
}

impl TestServer {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(settings(dir)).await
    }

    pub async fn start_with(raw: RawConfig) -> Self {
        let dir = raw.data_dir.clone().expect("tests set a data dir");
        let server = Server::start(Config::from_raw(raw).unwrap()).await.unwrap();
        Self {
            url: format!("http://{}", server.addr()),
            server,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// Graceful stop (flushes the head) and start again on the same data.
    pub async fn restart(self) -> Self {
        let dir = self.dir.clone();
        self.server.shutdown().await.unwrap();
        Self::start(&dir).await
    }

    pub async fn flush(&self) {
        self.server.db().flush(true).await.unwrap();
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn push_json(&self, path: &str, body: &Value) -> Value {
        let response = self.post(path, "application/json", body.to_string()).await;
        assert_eq!(
            response.status(),
            200,
            "{path}: {}",
            response.text().await.unwrap()
        );
        json_body(response).await
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn sql(&self, sql: &str) -> (u16, Value) {
        let response = self
            .post("/threadline/v1/sql", "application/sql", sql.to_owned())
            .await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The rows of a query that must succeed.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let (status, body) = self.sql(sql).await;
        assert_eq!(status, 200, "{sql}: {body}");
        body["rows"].as_array().cloned().unwrap_or_default()
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics", &[]).await;
        let text = text.as_str().unwrap_or_default().to_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("threadline_{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn resource(service: &str) -> Value {
    json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": service}},
        {"key": "service.instance.id", "value": {"stringValue": "i-1"}}
    ]})
}

/// One OTLP/JSON logs request: (time ns, severity, body, trace id hex or "").
pub fn logs_json(service: &str, records: &[(i64, &str, &str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(t, severity, body, trace)| {
            let mut r = json!({
                "timeUnixNano": t.to_string(),
                "severityText": severity,
                "body": {"stringValue": body},
                "attributes": [{"key": "user.id", "value": {"stringValue": "u-17"}}],
            });
            if !trace.is_empty() {
                r["traceId"] = json!(trace);
                r["spanId"] = json!("eee19b7ec3c1b174");
            }
            r
        })
        .collect();
    json!({"resourceLogs": [{"resource": resource(service), "scopeLogs": [{"scope": {"name": "test"}, "logRecords": records}]}]})
}

/// One OTLP/JSON traces request: (trace id, span id, parent, name, start ns, duration ns, error).
pub fn spans_json(service: &str, spans: &[(&str, &str, &str, &str, i64, i64, bool)]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(trace, span, parent, name, start, duration, error)| {
            json!({
                "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + duration).to_string(),
                "attributes": [{"key": "http.status_code", "value": {"intValue": if *error { 500 } else { 200 }}}],
                "status": {"code": if *error { 2 } else { 1 }},
            })
        })
        .collect();
    json!({"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]})
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub async fn json_body(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// A Python virtualenv under Cargo's target tmpdir with `packages` installed from PyPI,
/// created on first use; a marker file records a complete install. Returns its root.
pub fn python_venv(name: &str, packages: &[&str]) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let marker = venv.join("installed");
    if marker.exists() {
        return venv;
    }
    let run = |program: &Path, args: &[&str]| {
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{} {args:?} failed", program.display());
    };
    run(
        Path::new("python3"),
        &["-m", "venv", venv.to_str().unwrap()],
    );
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend_from_slice(packages);
    run(&venv.join("bin/python"), &args);
    std::fs::write(&marker, packages.join("\n")).unwrap();
    venv
}

pub const BIN: &str = env!("CARGO_BIN_EXE_threadline");

/// The real binary, serving.
pub struct Running {
    pub child: Child,
    pub url: String,
}

impl Running {
    /// Starts `threadline serve` on a free port and reads its address from its log,
    /// once it says every API is served (its WAL replayed).
    pub fn serve(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("THREADLINE_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before it was ready")
                .unwrap();
            if line.contains("threadline ready")
                && let Some(rest) = line.split("addr=").nth(1)
            {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A Debian package unpacked (not installed, no services started) under Cargo's target
/// tmpdir on first use; returns the root of its files. Refreshes the package lists
/// once if the first download fails. Panics, saying why, if it cannot be had.
pub fn debian_package(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-{name}"));
    let files = root.join("files");
    let marker = root.join("unpacked");
    if marker.exists() {
        return files;
    }
    let downloads = root.join("download");
    std::fs::create_dir_all(&downloads).unwrap();
    let fetched = run("apt-get", &["download", name], &downloads).or_else(|_| {
        run("apt-get", &["update", "-qq"], &downloads)?;
        run("apt-get", &["download", name], &downloads)
    });
    if let Err(e) = fetched {
        panic!("cannot download the Debian package {name} for this test: {e}");
    }
    let deb = std::fs::read_dir(&downloads)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {name} left no .deb"));
    if let Err(e) = run(
        "dpkg",
        &["-x", deb.to_str().unwrap(), files.to_str().unwrap()],
        &root,
    ) {
        panic!("cannot unpack {}: {e}", deb.display());
    }
    std::fs::write(&marker, name).unwrap();
    files
}

/// A copy of a Node client folder from `tests/clients` under Cargo's target tmpdir,
/// with its locked packages installed by `npm ci` on first use; returns the copy.
/// Panics, saying why, if the packages cannot be installed.
pub fn node_client(folder: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(folder);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("node-{folder}"));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    if dir.join("node_modules/.package-lock.json").exists() {
        return dir;
    }
    if let Err(e) = run("npm", &["ci", "--no-audit", "--no-fund"], &dir) {
        panic!("cannot install the npm packages of tests/clients/{folder}: {e}");
    }
    dir
}
