//! Ingest and chunk-write throughput.
//!
//! `otlp_logs_ingest_*`: one OTLP protobuf request at a time through decode, conversion,
//! the WAL with the default fsync policy, and the head — what a push costs, per core.
//! `chunk_write_*`: sorting and encoding a head's rows as a Parquet chunk.

#[path = "data.rs"]
mod data;

/// The allocator the server binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use data::{Rng, T0, logs_request, open_db};
use prost::Message;
use threadline::ingest::IngestRules;
use threadline::ingest::otlp::{self, Encoding};
use threadline::limits::{Limiter, Limits, TenantLimits, streams_of, within_label_limits};
use threadline::model::{Signal, Tenant};
use threadline::storage::{encode_chunk, sort_for_chunk};
use threadline::wal::SyncPolicy;

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rng = Rng::new(7);
    let body = logs_request(&mut rng, 2_000, T0).encode_to_vec();
    let rules = IngestRules::default();
    let tenant = Tenant::default_tenant();

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(30);
    group.bench_function("otlp_logs_decode_only_2k_records", |b| {
        b.iter(|| {
            let request = otlp::decode_logs_request(&body, Encoding::Protobuf).unwrap();
            otlp::logs_to_batch(&request, &rules, T0)
        })
    });
    // What a push pays for its tenant's limits on top of decoding: the label check of
    // each stream, the set of streams it writes to, and the rate and stream admission.
    let limits = Limits {
        ingest_rate_bytes: u64::MAX / 4,
        ingest_burst_bytes: u64::MAX / 4,
        max_active_streams: 500_000,
        max_body_bytes: 32 << 20,
        max_line_bytes: 256 << 10,
        max_labels_per_stream: 64,
        max_label_name_bytes: 128,
        max_label_value_bytes: 2048,
    };
    let limiter = Limiter::new(TenantLimits::uniform(limits.clone()));
    group.bench_function("otlp_logs_decode_and_limits_2k_records", |b| {
        b.iter(|| {
            let request = otlp::decode_logs_request(&body, Encoding::Protobuf).unwrap();
            let decoded = otlp::logs_to_batch(&request, &rules, T0);
            let mut rejected = decoded.rejected;
            let batches = vec![(Signal::Logs, decoded.batch)];
            let batches = within_label_limits(&limits, batches, &mut rejected).unwrap();
            let streams = streams_of(&batches);
            limiter
                .admit(&tenant, body.len() as u64, &streams, Instant::now())
                .unwrap();
            batches
        })
    });
    for (name, sync) in [
        ("fsync", SyncPolicy::Fsync),
        ("buffered", SyncPolicy::Buffered),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&rt, dir.path(), sync);
        group.bench_function(format!("otlp_logs_ingest_2k_records_{name}"), |b| {
            b.iter(|| {
                let request = otlp::decode_logs_request(&body, Encoding::Protobuf).unwrap();
                let decoded = otlp::logs_to_batch(&request, &rules, T0);
                rt.block_on(db.write(&tenant, Signal::Logs, decoded.batch))
                    .unwrap();
            })
        });
        db.close();
    }
    group.finish();
}

fn chunk_write(c: &mut Criterion) {
    let mut rng = Rng::new(11);
    let rules = IngestRules::default();
    let batches: Vec<_> = (0..50)
        .map(|i| {
            let request = logs_request(&mut rng, 2_000, T0 + i * 10_000_000);
            otlp::logs_to_batch(&request, &rules, T0).batch
        })
        .collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut group = c.benchmark_group("chunk_write");
    group.throughput(Throughput::Elements(rows as u64));
    group.sample_size(10);
    group.bench_function("chunk_write_100k_logs_8_services", |b| {
        b.iter(|| {
            let sorted = sort_for_chunk(Signal::Logs, &batches).unwrap();
            encode_chunk(Signal::Logs, &sorted).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, chunk_write);
criterion_main!(benches);
