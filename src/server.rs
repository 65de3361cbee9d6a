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
        let mut serve_stopped = stopped.clone();
        let serving = tokio::spawn(
            axum::serve(listener, front(Arc::clone(&api), Arc::clone(&metrics)))
                .with_graceful_shutdown(async move {
                    let _ = serve_stopped.wait_for(|s| *s).await;
                })
                .into_future(),
        );
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
        let scrapes = scraper.spawn(Arc::clone(&db), stopped);
        let task_db = Arc::clone(&db);
        let task = tokio::spawn(async move {
            let served = match serving.await {
                Ok(served) => served,
                Err(e) => Err(std::io::Error::other(e)),
            };
            for scrape in scrapes {
                let _ = scrape.await;
            }
            let _ = flusher.await;
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
