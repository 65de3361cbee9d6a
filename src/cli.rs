//! The client side of the CLI: `threadline sql`, `query` and `trace` talk to a running
//! server over HTTP and print aligned tables.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;

use serde_json::Value;

use crate::api::TENANT_HEADER;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach {url}: {}", chain(source))]
    Connect { url: String, source: reqwest::Error },
    #[error("server answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("unexpected response: {0}")]
    Response(String),
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Who the CLI's requests speak for: a tenant (`X-Scope-OrgID`) and, where the
/// server wants one, a bearer token.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub tenant: Option<String>,
    pub token: Option<String>,
}

impl Credentials {
    pub fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(tenant) = &self.tenant {
            request = request.header(TENANT_HEADER, tenant);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }
}

pub struct Client {
    base: String,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, credentials: Credentials) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<bytes::Bytes> {
        let request = self.credentials.apply(request);
        let response = request.send().await.map_err(|source| CliError::Connect {
            url: url.to_owned(),
            source,
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|source| CliError::Connect {
            url: url.to_owned(),
            source,
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(CliError::Server {
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }

    async fn get_json(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let body = self.send(self.http.get(&url).query(query), &url).await?;
        serde_json::from_slice(&body).map_err(|e| CliError::Response(e.to_string()))
    }

    /// Runs SQL and returns the result table, formatted.
    pub async fn sql(&self, sql: &str) -> Result<String> {
        let url = format!("{}/threadline/v1/sql?format=arrow", self.base);
        let body = self
            .send(
                self.http
                    .post(&url)
                    .header("content-type", "application/sql")
                    .body(sql.to_owned()),
                &url,
            )
            .await?;
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .map_err(|e| CliError::Response(e.to_string()))?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Response(e.to_string()))?;
        format_batches(&batches)
    }

    pub async fn query(&self, query: &str, since: Option<String>, limit: usize) -> Result<String> {
        let mut params = vec![("query", query.to_owned()), ("limit", limit.to_string())];
        if let Some(start) = since {
            params.push(("start", start));
        }
        let result = self.get_json("/threadline/v1/query", &params).await?;
        let mut rows = Vec::new();
        for stream in result["streams"].as_array().into_iter().flatten() {
            let labels = labels_text(&stream["labels"]);
            for entry in stream["entries"].as_array().into_iter().flatten() {
                rows.push(vec![
                    text(&entry["timestamp"]),
                    labels.clone(),
                    text(&entry["line"]),
                ]);
            }
        }
        rows.sort_by(|a, b| b[0].cmp(&a[0]));
        table(&["time", "labels", "line"], rows)
    }

    /// Runs a compaction pass on the server, printing its progress as it comes;
    /// returns the summary.
    pub async fn compact(&self, all: bool) -> Result<String> {
        let url = format!("{}/threadline/v1/compact?all={all}", self.base);
        let connect = |source| CliError::Connect {
            url: url.clone(),
            source,
        };
        let request = self.credentials.apply(self.http.post(&url));
        let mut response = request.send().await.map_err(connect)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.map_err(connect)?;
            return Err(CliError::Server {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let mut buffer = Vec::new();
        let mut shown_percent = HashMap::new();
        while let Some(chunk) = response.chunk().await.map_err(connect)? {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value =
                    serde_json::from_slice(&line).map_err(|e| CliError::Response(e.to_string()))?;
                match event["event"].as_str() {
                    Some("done") if event["failed_merges"].as_u64().unwrap_or(0) > 0 => {
                        return Err(CliError::Response(format!(
                            "{}; the server's log says why merges failed",
                            compaction_summary(&event)
                        )));
                    }
                    Some("done") => return Ok(compaction_summary(&event)),
                    Some("error") => return Err(CliError::Response(text(&event["error"]))),
                    _ => {
                        if let Some(line) = progress_line(&event, &mut shown_percent) {
                            println!("{line}");
                        }
                    }
                }
            }
        }
        Err(CliError::Response(
            "the server closed the connection before the pass ended".into(),
        ))
    }

    pub async fn trace(&self, id: &str) -> Result<String> {
        let doc = self
            .get_json(&format!("/threadline/v1/traces/{id}"), &[])
            .await?;
        let mut rows = Vec::new();
        for item in doc["timeline"].as_array().into_iter().flatten() {
            let is_span = item["signal"] == "span";
            let time = if is_span {
                &item["start_time"]
            } else {
                &item["timestamp"]
            };
            let what = if is_span {
                format!(
                    "{} ({} ms)",
                    text(&item["name"]),
                    item["duration_ns"].as_i64().unwrap_or(0) as f64 / 1e6
                )
            } else {
                text(&item["body"])
            };
            rows.push(vec![
                text(time),
                text(&item["signal"]),
                text(&item["service_name"]),
                text(&item["span_id"]),
                what,
            ]);
        }
        let header = format!(
            "trace {} — {} spans, {} log lines, {} ms, services: {}\n",
            text(&doc["trace_id"]),
            doc["span_count"],
            doc["log_count"],
            doc["duration_ns"].as_i64().unwrap_or(0) as f64 / 1e6,
            doc["services"]
                .as_array()
                .map(|s| s.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        );
        Ok(header + &table(&["time", "signal", "service", "span_id", "what"], rows)?)
    }
}

/// An error and its causes, "a: b: c" (reqwest keeps "connection refused" in a source).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn labels_text(labels: &Value) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn format_batches(batches: &[RecordBatch]) -> Result<String> {
    pretty_format_batches(batches)
        .map(|t| t.to_string())
        .map_err(|e| CliError::Response(e.to_string()))
}

/// An aligned text table, drawn by the same printer as SQL results.
/// One line for a progress event; merges report every tenth of their rows.
fn progress_line(event: &Value, shown_percent: &mut HashMap<u64, u64>) -> Option<String> {
    let n = |key: &str| event[key].as_u64().unwrap_or_default();
    let mb = |key: &str| n(key) as f64 / 1e6;
    match event["event"].as_str()? {
        "planned" => Some(format!(
            "{} merges of {} chunks ({:.1} MB)",
            n("merges"),
            n("chunks"),
            mb("bytes")
        )),
        "merging" => {
            let percent = n("rows_done") * 100 / n("rows").max(1);
            let shown = shown_percent.entry(n("merge")).or_insert(0);
            if percent < *shown + 10 && percent < 100 {
                return None;
            }
            *shown = percent;
            Some(format!(
                "merge {}/{}: {percent}% of {} rows",
                n("merge"),
                n("of"),
                n("rows")
            ))
        }
        "merged" => Some(format!(
            "merge {}/{} done: {} chunks, {:.1} MB -> {:.1} MB",
            n("merge"),
            n("of"),
            n("chunks"),
            mb("bytes_read"),
            mb("bytes_written")
        )),
        "merge_failed" => Some(format!(
            "merge {}/{} failed: {}",
            n("merge"),
            n("of"),
            text(&event["error"])
        )),
        "expired" => Some(format!("{} chunks past retention", n("chunks"))),
        "deleted" => Some(format!(
            "{} replaced or expired chunks deleted",
            n("chunks")
        )),
        _ => None,
    }
}

fn compaction_summary(report: &Value) -> String {
    let n = |key: &str| report[key].as_u64().unwrap_or_default();
    format!(
        "compaction done: {} chunks -> {} ({} merged into {}, {} failed merges, {} expired, \
         {} deleted); {:.1} MB read, {:.1} MB written",
        n("chunks_before"),
        n("chunks_after"),
        n("chunks_merged"),
        n("chunks_written"),
        n("failed_merges"),
        n("chunks_expired"),
        n("chunks_deleted"),
        n("bytes_read") as f64 / 1e6,
        n("bytes_written") as f64 / 1e6
    )
}

pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<String> {
    let schema = Arc::new(Schema::new(
        headers
            .iter()
            .map(|h| Field::new(*h, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..headers.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as ArrayRef
        })
        .collect();
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| CliError::Response(e.to_string()))?;
    format_batches(&[batch])
}
