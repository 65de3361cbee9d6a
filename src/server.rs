//! Running the server: listen at once, open the store (replaying the WAL), then serve
//! every API, cut chunks in the background, and on shutdown stop taking requests,
//! flush the head to chunks and close the WAL.
//!
//! While the store opens, the listener already answers: `/healthz` says the process is
//! alive, `/ready` says it is not ready yet, `/metrics` shows the replay's progress,
//! and everything else gets 503 with `Retry-After`, so load balancers and senders wait
//! instead of failing.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tracing::{info, warn};

use crate::api::{ApiError, AppState, ErrorCode, app};
use crate::config::Config;
use crate::db::{self, Db};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::query::QueryEngine;
use crate::scrape::Scraper;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the store: {0}")]
    Open(#[from] db::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

pub struct Server {
    addr: SocketAddr,
    db: Arc<Db>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// How long shutdown waits for the final flush before leaving rows to the WAL.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a client may take to send a request's headers; a connection that stalls
/// there is closed (Prometheus and Loki set the same bound). Stalled bodies are cut by
/// the API's own idle timeout.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// Listens, opens the store, and returns once every API is served.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let (stop, stopped) = watch::channel(false);
        let api = Arc::new(OnceLock::new());
        let serving = tokio::spawn(serve(
            listener,
            front(Arc::clone(&api), Arc::clone(&metrics)),
            HEADER_READ_TIMEOUT,
            stopped.clone(),
        ));
        info!(%addr, "threadline listening; opening the store");

        let db = match Db::open(config.db.clone(), metrics).await {
            Ok(db) => db,
            Err(e) => {
                let _ = stop.send(true);
                let _ = serving.await;
                return Err(e.into());
            }
        };
        let engine = Arc::new(
            QueryEngine::new(Arc::clone(&db), config.query.clone())
                .with_overrides(config.query_overrides.clone()),
        );
        let scraper = Arc::new(Scraper::new(
            &config.scrape,
            config.limits.defaults.max_body_bytes,
        ));
        let state = AppState {
            db: Arc::clone(&db),
            engine,
            ingest: Arc::new(config.ingest.clone()),
            limiter: Limiter::new(config.limits.clone()),
            auth: Arc::new(config.auth.clone()),
            scraper: Arc::clone(&scraper),
        };
        let _ = api.set(app(state));
        let flusher = tokio::spawn(Arc::clone(&db).run_flusher(stopped.clone()));
        let compaction = &config.db.compaction;
        let retention = &config.db.retention;
        let keeps_for_ever = |p: &crate::compact::Periods| *p == crate::compact::Periods::default();
        let retains =
            !keeps_for_ever(&retention.default) || !retention.tenants.values().all(keeps_for_ever);
        if retains && !compaction.enabled {
            warn!("compaction is disabled: retention is applied only by `threadline compact`");
        }
        let compactor = compaction
            .enabled
            .then(|| tokio::spawn(Arc::clone(&db).run_compactor(stopped.clone())));
        let scrapes = scraper.spawn(Arc::clone(&db), stopped);
        let task_db = Arc::clone(&db);
        let task = tokio::spawn(async move {
            let served = serving.await.map_err(std::io::Error::other);
            for scrape in scrapes {
                let _ = scrape.await;
            }
            let _ = flusher.await;
            if let Some(compactor) = compactor {
                let _ = compactor.await;
            }
            match tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, task_db.flush(true)).await {
                Ok(Ok(report)) => info!(
                    chunks = report.chunks,
                    rows = report.rows,
                    "head flushed on shutdown"
                ),
                Ok(Err(e)) => warn!(error = %e, "flush on shutdown failed; the wal keeps the rows"),
                Err(_) => warn!("flush on shutdown timed out; the wal keeps the rows"),
            }
            task_db.close();
            served.map_err(ServerError::Serve)
        });
        info!(%addr, "threadline ready");
        Ok(Self {
            addr,
            db,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Graceful stop: finish requests, flush, close the WAL.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Runs until the server stops on its own (or fails).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        }
    }

    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Accepts HTTP/1.1 connections until `stopped`, then lets each finish its current
/// request and waits for them all.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let mut stop = stopped.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// What the listener serves: the APIs once `api` is set, and until then the probes
/// and a 503 for everything else.
fn front(api: Arc<OnceLock<Router>>, metrics: Arc<Metrics>) -> Router {
    let starting_metrics = Arc::clone(&metrics);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(move |request: Request| {
            let api = Arc::clone(&api);
            let metrics = Arc::clone(&starting_metrics);
            async move {
                match api.get() {
                    Some(router) => match router.clone().oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    None => starting(request.uri().path(), &metrics),
                }
            }
        })
}

/// The answer while the store opens.
fn starting(path: &str, metrics: &Metrics) -> Response {
    match path {
        "/metrics" => (
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
            metrics.render(),
        )
            .into_response(),
        _ => ApiError::new(
            ErrorCode::Unavailable,
            "starting: replaying the write-ahead log; retry shortly",
        )
        .retry_after(1)
        .into_text_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;

    async fn call(router: &Router, path: &str) -> (StatusCode, Option<String>) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry_after)
    }

    /// A client that sends part of its headers and stops was once held open forever:
    /// nothing bounded the time to read headers.
    #[tokio::test]
    async fn a_client_stalling_in_its_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let router = Router::new().route("/healthz", get(|| async { "ok\n" }));
        let timeout = Duration::from_millis(500);
        let serving = tokio::spawn(serve(listener, router, timeout, stopped));

        let mut buf = [0; 256];
        let mut prompt = TcpStream::connect(addr).await.unwrap();
        prompt
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let n = prompt.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);

        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /healthz HTTP/1.1\r\nho")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            // Whatever the server sends before closing, the stream ends.
            while let Ok(n) = stalled.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the stalled connection is still open");
        assert!(started.elapsed() >= timeout / 2);

        // Stopping closes the idle connection and ends the accept loop.
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("serving stopped")
            .unwrap();
    }

    #[tokio::test]
    async fn probes_answer_while_the_store_opens_and_the_apis_after() {
        let api = Arc::new(OnceLock::new());
        let router = front(Arc::clone(&api), Arc::new(Metrics::default()));
        assert_eq!(call(&router, "/healthz").await, (StatusCode::OK, None));
        assert_eq!(call(&router, "/metrics").await, (StatusCode::OK, None));
        let unavailable = (StatusCode::SERVICE_UNAVAILABLE, Some("1".to_owned()));
        assert_eq!(call(&router, "/ready").await, unavailable);
        assert_eq!(call(&router, "/v1/logs").await, unavailable);

        let ready = Router::new().route("/ready", get(|| async { "ready\n" }));
        api.set(ready).unwrap();
        assert_eq!(call(&router, "/ready").await, (StatusCode::OK, None));
        assert_eq!(call(&router, "/healthz").await, (StatusCode::OK, None));
        assert_eq!(call(&router, "/v1/logs").await.0, StatusCode::NOT_FOUND);
    }
}
