//! `threadline generate` against a real server: everything it sends is stored exactly
//! once, and a metric's exemplar leads to the request's spans, log lines and profile
//! samples, as the README's quickstart promises.

mod common;

use common::*;
use threadline::cli::Credentials;
use threadline::generate::push::{Run, run};
use threadline::generate::{self, GenerateError};

const S: i64 = 1_000_000_000;

fn two_minutes(start_ns: i64) -> Run {
    Run {
        config: generate::Config {
            seed: 5,
            start_ns,
            traces_per_second: 20.0,
            ..Default::default()
        },
        until_ns: start_ns + 120 * S,
        follow: false,
        concurrency: 4,
    }
}

async fn count(server: &TestServer, table: &str) -> u64 {
    let rows = server
        .rows(&format!("SELECT count(*) AS n FROM {table}"))
        .await;
    rows[0]["n"].as_u64().unwrap()
}

#[tokio::test]
async fn generated_telemetry_is_stored_once_and_correlated() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let start = now_ns() - 150 * S;
    let summary = run(two_minutes(start), &server.url, Default::default())
        .await
        .unwrap();
    let totals = &summary.totals;
    assert!(totals.spans > 10_000 && totals.logs > 10_000, "{totals:?}");
    // The first two minutes in chunks, the next half minute in the head: both are read.
    server.flush().await;
    let again = run(
        Run {
            until_ns: start + 150 * S,
            ..two_minutes(start + 120 * S)
        },
        &server.url,
        Default::default(),
    )
    .await
    .unwrap()
    .totals;
    assert_eq!(count(&server, "logs").await, totals.logs + again.logs);
    assert_eq!(count(&server, "spans").await, totals.spans + again.spans);
    assert_eq!(
        count(&server, "profiles").await,
        totals.profiles + again.profiles
    );

    // The slowest requests' exemplars, as Grafana's exemplar markers show them.
    let (status, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[
                ("query", "http_server_request_duration_seconds_bucket"),
                ("start", &(start / S).to_string()),
                ("end", &(start / S + 150).to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut exemplars: Vec<(f64, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|series| series["exemplars"].as_array().unwrap())
        .map(|e| {
            (
                e["value"].as_str().unwrap().parse().unwrap(),
                e["labels"]["trace_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(exemplars.len() > 50, "{}", exemplars.len());
    exemplars.sort_by(|a, b| b.0.total_cmp(&a.0));

    // Each leads to its whole request; the slow ones spent CPU their profiles show.
    let mut profiled = 0;
    for (_, trace_id) in exemplars.iter().take(20) {
        let (status, trace) = server
            .get(&format!("/threadline/v1/traces/{trace_id}"), &[])
            .await;
        assert_eq!(status, 200, "{trace}");
        assert!(trace["span_count"].as_u64().unwrap() >= 3, "{trace_id}");
        assert!(trace["log_count"].as_u64().unwrap() >= 1, "{trace_id}");
        assert!(trace["exemplar_count"].as_u64().unwrap() >= 1, "{trace_id}");
        profiled += usize::from(trace["profile_sample_count"].as_u64().unwrap() > 0);
    }
    assert!(
        profiled >= 10,
        "{profiled} of 20 slow requests have profile samples"
    );

    // Their log lines answer Loki's queries in each service's own format.
    let (status, body) = server
        .get(
            "/loki/api/v1/query_range",
            &[
                (
                    "query",
                    r#"{service_name="payments"} | logfmt | status >= 400"#,
                ),
                ("start", &start.to_string()),
                ("end", &(start + 150 * S).to_string()),
                ("limit", "5"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let streams = body["data"]["result"].as_array().unwrap();
    assert!(!streams.is_empty(), "payments declines cards: {body}");
    assert!(streams.iter().all(|s| s["stream"]["status"] == "402"));
}

#[tokio::test]
async fn refusals_and_unreachable_servers_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let start = now_ns() - 10 * S;
    let short = Run {
        until_ns: start + 10 * S,
        ..two_minutes(start)
    };
    match run(
        short.clone(),
        &server.url,
        Credentials {
            tenant: Some("../other".into()),
            token: None,
        },
    )
    .await
    {
        Err(GenerateError::Refused {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.contains("tenant"), "{message}");
        }
        other => panic!("{:?}", other.map(|s| s.totals)),
    }
    let gone = server.url.clone();
    server.server.shutdown().await.unwrap();
    match run(short, &gone, Default::default()).await {
        Err(e @ GenerateError::Connect { .. }) => {
            assert!(e.to_string().contains(&gone), "{e}");
        }
        other => panic!("{:?}", other.map(|s| s.totals)),
    }
}

#[tokio::test]
async fn recorded_telemetry_replays_to_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recorded");
    let start = now_ns() - 60 * S;
    let run_spec = Run {
        until_ns: start + 60 * S,
        ..two_minutes(start)
    };
    let recorded = threadline::generate::files::record(&run_spec, &out)
        .unwrap()
        .totals;
    let rows = |name: &str| {
        let file = std::fs::File::open(out.join(name)).unwrap();
        parquet::file::reader::SerializedFileReader::new(file)
            .map(|r| {
                use parquet::file::reader::FileReader;
                r.metadata().file_metadata().num_rows() as u64
            })
            .unwrap()
    };
    assert_eq!(rows("logs.parquet"), recorded.logs);
    assert_eq!(rows("spans.parquet"), recorded.spans);

    let server = TestServer::start(&dir.path().join("data")).await;
    let pusher = threadline::generate::push::Pusher::new(&server.url, Default::default(), 4);
    let replayed = threadline::generate::files::replay(&out, pusher)
        .await
        .unwrap()
        .totals;
    assert_eq!(replayed, recorded);
    assert_eq!(count(&server, "logs").await, recorded.logs);
    assert_eq!(count(&server, "spans").await, recorded.spans);
    // What was recorded is what a live run sends.
    let live_dir = tempfile::tempdir().unwrap();
    let live = TestServer::start(live_dir.path()).await;
    let sent = run(run_spec, &live.url, Default::default())
        .await
        .unwrap()
        .totals;
    assert_eq!(sent, recorded);
    let sql = "SELECT trace_id, span_id, name, duration_ns FROM spans ORDER BY span_id";
    assert_eq!(server.rows(sql).await, live.rows(sql).await);

    std::fs::write(
        out.join("requests/manifest.tsv"),
        "00000000.body\t/v1/logs\n",
    )
    .unwrap();
    let pusher = threadline::generate::push::Pusher::new(&server.url, Default::default(), 4);
    let error = threadline::generate::files::replay(&out, pusher)
        .await
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("line 1 has 2 fields, not 4"),
        "{error}"
    );
}

#[tokio::test]
async fn a_trace_lookup_reads_only_the_pages_of_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // Two minutes inside one hour, so the chunks are the same on every run.
    let hour = 3600 * S;
    let start = (now_ns() / hour - 1) * hour + 600 * S;
    let spec = Run {
        config: generate::Config {
            traces_per_second: 200.0,
            // The generator mixes the start into its seed; cancel it, so every hour
            // generates the same traces and the same highlighted one.
            seed: 5 ^ (start as u64).rotate_left(29),
            ..two_minutes(start).config
        },
        ..two_minutes(start)
    };
    let summary = run(spec, &server.url, Default::default()).await.unwrap();
    server.flush().await;
    let chunk_bytes = parquet_bytes(&dir.path().join("chunks"));
    let trace_id = summary.highlight.unwrap().trace_id;

    // What a second lookup fetches, once the chunks' footers are cached.
    let read = |path: String| {
        let server = &server;
        async move {
            assert_eq!(server.get(&path, &[]).await.0, 200);
            let before = server.metric("object_store_get_bytes_total").await;
            let (status, body) = server.get(&path, &[]).await;
            assert_eq!(status, 200, "{body}");
            server.metric("object_store_get_bytes_total").await - before
        }
    };
    let spans = read(format!("/api/traces/{trace_id}")).await;
    let everything = read(format!("/threadline/v1/traces/{trace_id}")).await;
    // Reading the whole trace_id column of the chunks that hold the trace costs about
    // three times as much as reading the pages of its blocks; re-reading each chunk's
    // page index, or widening the blocks to batches of 8,192 rows, twice as much.
    assert!(
        spans * 100 < chunk_bytes * 5,
        "the spans of one trace read {spans} of {chunk_bytes} chunk bytes"
    );
    assert!(
        everything * 100 < chunk_bytes * 8,
        "the whole trace read {everything} of {chunk_bytes} chunk bytes"
    );
}

/// The size of the chunks' data under `dir`, metadata aside.
fn parquet_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => parquet_bytes(&e.path()),
            false if e.path().extension().is_some_and(|x| x == "parquet") => {
                e.metadata().unwrap().len()
            }
            false => 0,
        })
        .sum()
}
