use std::collections::{HashMap, HashSet};

use super::*;

fn minutes(n: i64, seed: u64) -> Batch {
    let mut generator = Generator::new(Config {
        seed,
        start_ns: 1_800_000_000_000_000_000,
        traces_per_second: 20.0,
        ..Config::default()
    });
    let mut all = Batch::default();
    for _ in 0..n * 6 {
        let batch = generator.step(10_000_000_000);
        all.logs.extend(batch.logs);
        all.spans.extend(batch.spans);
        all.histograms.extend(batch.histograms);
        all.profiles.extend(batch.profiles);
    }
    all
}

#[test]
fn the_same_seed_gives_the_same_telemetry() {
    assert_eq!(minutes(1, 7), minutes(1, 7));
    assert_ne!(minutes(1, 7).spans, minutes(1, 8).spans);
}

#[test]
fn signals_point_at_spans_that_exist() {
    let batch = minutes(2, 1);
    let spans: HashMap<SpanId, &SpanRecord> = batch.spans.iter().map(|s| (s.span_id, s)).collect();
    assert_eq!(spans.len(), batch.spans.len(), "span IDs are unique");
    for span in &batch.spans {
        assert!(span.end_ns > span.start_ns);
        if let Some(parent) = span.parent {
            let parent = spans[&parent];
            assert_eq!(parent.trace_id, span.trace_id);
            assert!(parent.start_ns <= span.start_ns && span.end_ns <= parent.end_ns);
        }
    }
    let traced: Vec<_> = batch.logs.iter().filter_map(|l| l.trace).collect();
    assert!(
        traced.len() * 3 > batch.logs.len(),
        "most lines are a request's"
    );
    for (trace_id, span_id) in traced {
        assert_eq!(spans[&span_id].trace_id, trace_id);
    }
    let exemplars: Vec<&Exemplar> = batch.histograms.iter().flat_map(|h| &h.exemplars).collect();
    assert!(!exemplars.is_empty());
    for e in exemplars {
        let span = spans[&e.span_id];
        assert_eq!(span.trace_id, e.trace_id);
        assert_eq!((span.end_ns - span.start_ns) as f64 / 1e9, e.value);
    }
    let labelled: Vec<_> = batch
        .profiles
        .iter()
        .flat_map(|p| &p.samples)
        .filter_map(|s| s.span)
        .collect();
    assert!(!labelled.is_empty());
    for (span_id, name) in labelled {
        assert_eq!(topology::OPERATIONS[spans[&span_id].operation].name, name);
    }
}

#[test]
fn volumes_are_like_a_shop_s() {
    let batch = minutes(2, 3);
    let traces: HashSet<TraceId> = batch.spans.iter().map(|s| s.trace_id).collect();
    // 20 requests a second for two minutes, about six spans each.
    assert!((2_000..2_800).contains(&traces.len()), "{}", traces.len());
    let per_trace = batch.spans.len() as f64 / traces.len() as f64;
    assert!((5.0..7.5).contains(&per_trace), "{per_trace}");
    let ratio = batch.logs.len() as f64 / batch.spans.len() as f64;
    assert!((0.7..1.5).contains(&ratio), "{ratio} lines per span");
    let failed = batch.spans.iter().filter(|s| s.error.is_some()).count();
    assert!(
        failed > 0 && failed * 20 < batch.spans.len(),
        "{failed} failed"
    );
    let stack_traces = batch
        .logs
        .iter()
        .filter(|l| l.body.contains("\n\tat "))
        .count();
    assert!(stack_traces > 0);
    let sizes: Vec<usize> = batch.logs.iter().map(|l| l.body.len()).collect();
    let mean = sizes.iter().sum::<usize>() / sizes.len();
    assert!((100..400).contains(&mean), "{mean} bytes a line");
    // A histogram point per pod, route and status every 15 s; a profile per pod every 10 s.
    assert_eq!(
        batch.profiles.len() as u64,
        12 * topology::SERVICES.iter().map(|s| s.pods).sum::<u64>()
    );
    assert!(
        batch
            .histograms
            .iter()
            .all(|h| h.count == h.bucket_counts.iter().sum::<u64>())
    );
}

#[test]
fn long_steps_still_cut_points_and_profiles_at_their_intervals() {
    const S: i64 = 1_000_000_000;
    let start = 1_800_000_000 * S;
    let mut generator = Generator::new(Config {
        seed: 2,
        start_ns: start,
        traces_per_second: 50.0,
        ..Config::default()
    });
    let batches: Vec<Batch> = generator.until(start + 120 * S).collect();
    assert_eq!(batches.len(), 3, "40 s steps");
    let mut point_times: Vec<i64> = batches
        .iter()
        .flat_map(|b| &b.histograms)
        .map(|h| h.time_ns)
        .collect();
    point_times.dedup();
    assert_eq!(
        point_times,
        (1..=8).map(|i| start + i * 15 * S).collect::<Vec<_>>()
    );
    let profiles: Vec<&Profile> = batches.iter().flat_map(|b| &b.profiles).collect();
    for interval in 0..12 {
        let of_interval: Vec<&&Profile> = profiles
            .iter()
            .filter(|p| p.start_ns == start + interval * 10 * S)
            .collect();
        assert!(of_interval.iter().all(|p| p.duration_ns == 10 * S));
        let spans = of_interval
            .iter()
            .flat_map(|p| &p.samples)
            .filter(|s| s.span.is_some())
            .count();
        assert!(spans > 20, "interval {interval}: {spans} span samples");
    }
}
