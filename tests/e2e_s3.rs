//! Chunks on S3: the real binary against an S3-compatible server (moto, installed from
//! PyPI on first use), configured only by `--object-store s3://…` and the usual AWS
//! environment variables. After a `kill -9` the store is found again from the bucket.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Running, logs_json, now_ns, python_venv};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn count(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http
        .post(format!("{url}/threadline/v1/sql"))
        .body("SELECT count(*) AS n FROM logs")
        .send()
        .await
        .unwrap();
    common::json_body(response).await["rows"][0]["n"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_live_in_s3_and_are_found_again_after_kill_9() {
    let venv = tokio::task::spawn_blocking(|| python_venv("moto-5", &["moto[server]==5.*"]))
        .await
        .unwrap();
    let port = free_port();
    let _moto = Moto(
        Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until("moto", async || {
        http.put(format!("{endpoint}/telemetry"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let args = [
        "--object-store",
        "s3://telemetry/threadline",
        "--head-max-age",
        "200ms",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut server = Running::serve(dir.path(), &args, &env);
    let t = now_ns();
    let body = logs_json("api", &[(t, "INFO", "one", ""), (t + 1, "INFO", "two", "")]).to_string();
    let response = http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The head is cut within a moment; its chunk and metadata land in the bucket.
    let listing = format!("{endpoint}/telemetry?list-type=2&prefix=threadline/");
    let list = async || {
        http.get(&listing)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    wait_until("a chunk in the bucket", async || {
        let text = list().await;
        text.contains(".parquet") && text.contains(".meta")
    })
    .await;
    let text = list().await;
    assert!(text.contains("<Key>threadline/default/logs/api/"), "{text}");
    assert!(
        !dir.path().join("chunks").exists(),
        "nothing is written locally"
    );

    server.kill();
    // A new WAL directory: only the bucket knows the rows now.
    let fresh = tempfile::tempdir().unwrap();
    let server = Running::serve(fresh.path(), &args, &env);
    assert_eq!(count(&http, &server.url).await, 2);
}
