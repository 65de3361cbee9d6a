//! Running the server: open the store, serve HTTP, cut chunks in the background, and on
//! shutdown stop taking requests, flush the head to chunks and close the WAL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{AppState, app};
use crate::config::Config;
use crate::db::{self, Db};
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
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::default());
        let db = Db::open(config.db.clone(), metrics).await?;
        let engine = Arc::new(QueryEngine::new(Arc::clone(&db), config.query.clone()));
        let scraper = Arc::new(Scraper::new(&config.scrape, config.max_body_bytes));
        let state = AppState {
            db: Arc::clone(&db),
            engine,
            ingest: Arc::new(config.ingest.clone()),
            max_body_bytes: config.max_body_bytes,
            scraper: Arc::clone(&scraper),
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let (stop, stopped) = watch::channel(false);
        let flusher = tokio::spawn(Arc::clone(&db).run_flusher(stopped.clone()));
        let scrapes = scraper.spawn(Arc::clone(&db), stopped.clone());
        let task_db = Arc::clone(&db);
        let task = tokio::spawn(async move {
            let mut stopped = stopped;
            let served = axum::serve(listener, app(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
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
        info!(%addr, "threadline listening");
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
