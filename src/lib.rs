//! Threadline: a log-structured, index-free correlation store.
//!
//! Data flows one way:
//!
//! 1. `api` accepts a push (OTLP/HTTP), `ingest` decodes and validates it into Arrow
//!    record batches, one row per log record or span, each row tagged with its stream.
//! 2. `db` appends the batches to the write-ahead log (`wal`), waits for the configured
//!    sync, and inserts them into the in-memory head, where queries see them at once.
//! 3. The head is cut by size and age into immutable Parquet chunks (`storage`), one per
//!    tenant, signal, label partition and hour; the WAL is truncated only after the chunk
//!    and its metadata are durable.
//! 4. `index` keeps the only two indexes, labels and trace IDs, rebuilt from chunk
//!    metadata on start; `query` turns SQL, label-matcher queries and trace lookups into
//!    DataFusion plans that read exactly the chunks the indexes allow, plus the head.
//!
//! `profile` holds what is particular to profiles (pprof, deltas, merging); `scrape`
//! pulls metrics and profiles from targets.

pub mod api;
pub mod cli;
pub mod compact;
pub mod config;
pub mod db;
pub mod failpoint;
pub mod generate;
pub mod index;
pub mod ingest;
pub mod limits;
pub mod logql;
pub mod metrics;
pub mod model;
pub mod profile;
pub mod proto;
pub mod query;
pub mod scrape;
pub mod server;
pub mod storage;
pub mod traceql;
pub mod wal;
