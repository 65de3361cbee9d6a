//! One scrape's exposition → metric rows, with the target's labels attached and the
//! per-scrape series Prometheus writes (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`).

use crate::ingest::exposition::Exposition;
use crate::ingest::metrics::{
    MAX_ROWS_PER_REQUEST, MetricRows, RawExemplar, borrow_labels, with_name,
};
use crate::model::schema::{METRIC_NAME_LABEL, MetricMeta, SampleFields};

/// Builds the rows of a successful scrape. Exposed labels that clash with a target
/// label keep their value under `exported_<name>`, as Prometheus does by default.
/// Labels are borrowed from the exposition; only renamed ones are allocated.
/// Any series the store cannot accept fails the whole scrape, like a parse error.
pub fn exposition_rows(
    exposition: &Exposition<'_>,
    target: &[(String, String)],
    scrape_time: i64,
) -> Result<MetricRows, String> {
    let mut rows = MetricRows::default();
    for sample in &exposition.samples {
        let family = &exposition.families[sample.family];
        let meta = MetricMeta {
            metric_type: family.metric_type,
            unit: family.unit,
        };
        let clashes = |name: &str| target.iter().any(|(t, _)| t == name);
        let exported: Vec<String> = (sample.labels.iter())
            .filter(|(name, _)| clashes(name))
            .map(|(name, _)| format!("exported_{name}"))
            .collect();
        let mut exported = exported.iter();
        let exposed = sample.labels.iter().map(|(name, value)| {
            let name = if clashes(name) {
                exported.next().map_or(*name, String::as_str)
            } else {
                *name
            };
            (name, value.as_ref())
        });
        let labels = exposed
            .chain(borrow_labels(target))
            .chain([(METRIC_NAME_LABEL, sample.name)]);
        let Some(series) = rows.series(labels) else {
            break;
        };
        let timestamp = sample.timestamp.unwrap_or(scrape_time);
        rows.sample(
            &series,
            meta,
            SampleFields {
                timestamp,
                start_timestamp: sample.created,
                value: sample.value,
            },
        );
        if let Some(exemplar) = &sample.exemplar {
            let raw = RawExemplar {
                labels: exemplar
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                value: exemplar.value,
                timestamp: exemplar.timestamp,
            };
            rows.exemplar(&series, &raw, timestamp);
        }
    }
    if rows.overflowed() {
        return Err(format!(
            "the exposition has more than {MAX_ROWS_PER_REQUEST} samples and exemplars"
        ));
    }
    if rows.rejected.count > 0 {
        return Err(rows.rejected.reasons.join("; "));
    }
    Ok(rows)
}

/// The series every scrape writes about itself, whether it worked or not.
pub fn report_rows(
    rows: &mut MetricRows,
    target: &[(String, String)],
    scrape_time: i64,
    up: bool,
    duration_seconds: f64,
    samples_scraped: usize,
) {
    let gauge = MetricMeta {
        metric_type: Some("gauge"),
        unit: None,
    };
    for (name, value) in [
        ("up", if up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", duration_seconds),
        ("scrape_samples_scraped", samples_scraped as f64),
    ] {
        let labels = with_name(target, name);
        if let Some(series) = rows.series(borrow_labels(&labels)) {
            rows.sample(
                &series,
                gauge,
                SampleFields {
                    timestamp: scrape_time,
                    start_timestamp: None,
                    value,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::exposition::{Format, parse};
    use crate::model::Signal;

    fn target() -> Vec<(String, String)> {
        vec![
            ("job".into(), "api".into()),
            ("instance".into(), "host:9100".into()),
        ]
    }

    #[test]
    fn target_labels_win_and_exposed_ones_are_kept_as_exported() {
        let text = "up_time{job=\"inner\"} 3\nreq_bucket{le=\"1\"} 2 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 0.5\n# EOF\n";
        let exposition = parse(text, Format::OpenMetrics).unwrap();
        let rows = exposition_rows(&exposition, &target(), 42).unwrap();
        assert_eq!(rows.sample_count(), 2);
        assert_eq!(rows.exemplar_count(), 1);
        let (batches, _) = rows.finish();
        let samples = crate::ingest::metrics::tests::table(&batches, Signal::Samples);
        let labels = samples.column_by_name("labels").unwrap();
        let first =
            crate::storage::chunk::row_labels(arrow::array::AsArray::as_map(labels.as_ref()), 0);
        assert_eq!(first.get("job"), Some("api"));
        assert_eq!(first.get("exported_job"), Some("inner"));
        assert_eq!(first.get("instance"), Some("host:9100"));
    }

    #[test]
    fn a_series_the_store_refuses_fails_the_scrape() {
        let long = "x".repeat(crate::model::labels::MAX_VALUE_LEN + 1);
        let text = format!("m{{a=\"{long}\"}} 1\n");
        let exposition = parse(&text, Format::Text).unwrap();
        assert!(exposition_rows(&exposition, &target(), 0).is_err());
    }

    #[test]
    fn report_series_are_written() {
        let mut rows = MetricRows::default();
        report_rows(&mut rows, &target(), 5, false, 0.25, 0);
        assert_eq!(rows.sample_count(), 3);
    }
}
