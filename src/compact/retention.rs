//! Retention: how long each tenant keeps each signal. Whole chunks are deleted once
//! their newest row is older than the period, so data lives at least as long as its
//! period and at most a chunk window (an hour) and a compaction interval longer.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::{Signal, Tenant};

/// Periods per signal; `None` keeps the signal for ever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Periods {
    pub logs: Option<Duration>,
    pub spans: Option<Duration>,
    pub samples: Option<Duration>,
    /// Exemplars are kept as long as samples unless set apart.
    pub exemplars: Option<Duration>,
    /// Profiles and their samples.
    pub profiles: Option<Duration>,
}

impl Periods {
    pub fn of(&self, signal: Signal) -> Option<Duration> {
        match signal {
            Signal::Logs => self.logs,
            Signal::Spans => self.spans,
            Signal::Samples => self.samples,
            Signal::Exemplars => self.exemplars,
            Signal::Profiles | Signal::ProfileSamples => self.profiles,
        }
    }
}

/// The default periods and those of the tenants that have their own (complete: the
/// configuration fills what a tenant leaves unset from the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub default: Periods,
    pub tenants: BTreeMap<Tenant, Periods>,
}

impl Retention {
    pub fn periods(&self, tenant: &Tenant) -> &Periods {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    pub fn period(&self, tenant: &Tenant, signal: Signal) -> Option<Duration> {
        self.periods(tenant).of(signal)
    }

    /// Rows older than this instant (ns since the epoch) are past retention at `now`.
    pub fn cutoff(&self, tenant: &Tenant, signal: Signal, now_ns: i64) -> Option<i64> {
        let period = self.period(tenant, signal)?;
        let period = i64::try_from(period.as_nanos()).unwrap_or(i64::MAX);
        Some(now_ns.checked_sub(period).unwrap_or(i64::MIN))
    }

    /// Whether a chunk whose newest row is at `max_time` is past retention at `now`.
    pub fn expired(&self, tenant: &Tenant, signal: Signal, max_time: i64, now_ns: i64) -> bool {
        self.cutoff(tenant, signal, now_ns)
            .is_some_and(|cutoff| max_time < cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);
    const NOW: i64 = 1_700_000_000_000_000_000;

    fn days(n: i64) -> i64 {
        n * DAY.as_nanos() as i64
    }

    #[test]
    fn each_tenant_and_signal_has_its_period() {
        let acme = Tenant::new("acme").unwrap();
        let other = Tenant::new("other").unwrap();
        let retention = Retention {
            default: Periods {
                logs: Some(30 * DAY),
                spans: Some(7 * DAY),
                ..Periods::default()
            },
            tenants: [(
                acme.clone(),
                Periods {
                    logs: Some(90 * DAY),
                    ..Periods::default()
                },
            )]
            .into(),
        };
        assert!(retention.expired(&other, Signal::Logs, NOW - days(31), NOW));
        assert!(!retention.expired(&other, Signal::Logs, NOW - days(29), NOW));
        assert!(!retention.expired(&acme, Signal::Logs, NOW - days(31), NOW));
        assert!(retention.expired(&acme, Signal::Logs, NOW - days(91), NOW));
        assert!(retention.expired(&other, Signal::Spans, NOW - days(8), NOW));
        assert!(!retention.expired(&other, Signal::Samples, i64::MIN, NOW));
        assert_eq!(retention.cutoff(&other, Signal::Profiles, NOW), None);
    }

    #[test]
    fn a_chunk_is_kept_while_any_row_is_within_the_period() {
        let retention = Retention {
            default: Periods {
                logs: Some(DAY),
                ..Periods::default()
            },
            ..Retention::default()
        };
        let tenant = Tenant::default_tenant();
        let cutoff = NOW - days(1);
        assert!(!retention.expired(&tenant, Signal::Logs, cutoff, NOW));
        assert!(retention.expired(&tenant, Signal::Logs, cutoff - 1, NOW));
        let forever = Retention {
            default: Periods {
                logs: Some(Duration::MAX),
                ..Periods::default()
            },
            ..Retention::default()
        };
        assert!(!forever.expired(&tenant, Signal::Logs, 0, NOW));
    }
}
