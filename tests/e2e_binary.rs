//! The real binary: `serve` with flags and a config file, acknowledged rows surviving
//! `kill -9`, and the CLI's client commands.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Running, logs_json, now_ns};

fn serve(data_dir: &Path, extra: &[&str]) -> Running {
    Running::serve(data_dir, extra, &[])
}

fn count_logs(url: &str) -> i64 {
    let output = Command::new(BIN)
        .args(["sql", "--url", url, "SELECT count(*) AS n FROM logs"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    // An aligned table: header, separator, one value row.
    text.lines()
        .filter_map(|l| l.trim_matches(|c| c == '|' || c == ' ').parse::<i64>().ok())
        .next()
        .unwrap_or_else(|| panic!("no count in {text}"))
}

#[tokio::test]
async fn acknowledged_rows_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[]);
    let http = reqwest::Client::new();
    let t = now_ns();
    let mut acknowledged = 0;
    // Concurrent pushers, then a hard kill with nothing flushed to chunks.
    let pushes = (0..40).map(|i| {
        let http = http.clone();
        let url = format!("{}/v1/logs", server.url);
        let body = logs_json("api", &[(t + i, "INFO", &format!("line {i}"), "")]).to_string();
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    });
    for ok in futures::future::join_all(pushes).await {
        acknowledged += ok as i64;
    }
    assert_eq!(acknowledged, 40);
    server.kill();

    let mut server = serve(dir.path(), &[]);
    assert_eq!(count_logs(&server.url), acknowledged);

    // Once more after the rows reached chunks: no row is seen twice.
    server.kill();
    let mut server = serve(dir.path(), &["--head-max-age", "100ms"]);
    for _ in 0..100 {
        if dir.path().join("chunks/default/logs/api").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill();
    let mut server = serve(dir.path(), &[]);
    assert_eq!(count_logs(&server.url), acknowledged);
    server.kill();
}

#[tokio::test]
async fn config_file_and_cli_commands() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(&config, "[ingest]\nmax_line_bytes = 10\n").unwrap();
    let mut server = serve(dir.path(), &["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let t = now_ns();
    let body = logs_json(
        "checkout",
        &[
            (t, "ERROR", "declined", "5b8efff798038103d269b633813fc60c"),
            (t + 1, "INFO", "this line is longer than ten bytes", ""),
        ],
    );
    let answer = common::json_body(
        http.post(format!("{}/v1/logs", server.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );

    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .arg("--url")
            .arg(&server.url)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = run(&["query", r#"{service_name="checkout"} |= "decl""#]);
    assert!(ok, "{out}");
    assert!(
        out.contains("declined") && out.contains("service_name=checkout"),
        "{out}"
    );
    let (ok, out) = run(&["trace", "5b8efff798038103d269b633813fc60c"]);
    assert!(ok && out.contains("0 spans, 1 log lines"), "{out}");
    let (ok, out) = run(&["sql", "SELECT nope FROM logs"]);
    assert!(!ok && out.contains("400"), "{out}");
    server.kill();

    // A bad setting stops the server with a message naming it.
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--head-max-age",
            "soon",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("head_max_age"));
}

#[tokio::test]
async fn settings_come_from_environment_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let push = |url: String| {
        let http = http.clone();
        async move {
            let body = logs_json("api", &[(now_ns(), "INFO", "12345", "")]).to_string();
            let response = http
                .post(format!("{url}/v1/logs"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            common::json_body(response).await
        }
    };
    let env = [("THREADLINE_MAX_LINE_BYTES", "4")];
    let server = Running::serve(dir.path(), &[], &env);
    let answer = push(server.url.clone()).await;
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    drop(server);
    let server = Running::serve(dir.path(), &["--max-line-bytes", "100"], &env);
    assert_eq!(push(server.url.clone()).await, serde_json::json!({}));
}

/// `--log-format json` writes one JSON object per line, with the event's fields at
/// the top level, for log shippers to read as they are.
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["level"], "INFO", "{line}");
        let message = event["message"].as_str().unwrap().to_owned();
        if message == "threadline ready" {
            assert!(event["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
            break;
        }
        seen.push(message);
    }
    assert!(seen.contains(&"store opened".to_owned()), "{seen:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A server with tokens in its config file; the CLI sends `--token` (or
/// `THREADLINE_TOKEN`) as a bearer token, and is refused without it.
#[tokio::test]
async fn cli_authenticates_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(
        &config,
        "[[auth.tokens]]\ntenant = \"team-a\"\ntoken = \"cli-token-0123456789\"\n",
    )
    .unwrap();
    let server = Running::serve(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let sql = |envs: &[(&str, &str)]| {
        Command::new(BIN)
            .args([
                "sql",
                "--url",
                &server.url,
                "SELECT count(*) AS n FROM logs",
            ])
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let refused = sql(&[]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("401"), "{message}");
    let allowed = sql(&[("THREADLINE_TOKEN", "cli-token-0123456789")]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}
