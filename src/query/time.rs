//! Times as the HTTP API and CLI accept them: RFC 3339, or a Unix epoch number whose
//! unit follows from its size (seconds, milliseconds, microseconds or nanoseconds; a
//! fractional number is seconds), as Loki and Prometheus clients send them.

pub const HOUR_NS: i64 = 3_600_000_000_000;

/// Latest and earliest times accepted: 2^62 ns either side of the epoch (the years
/// 1823 to 2116), so that differences of two times never overflow.
pub const MAX_TIME_NS: i64 = 1 << 62;

pub fn parse_time(text: &str) -> Result<i64, String> {
    let ns = parse_unbounded(text)?;
    if ns.unsigned_abs() > MAX_TIME_NS as u64 {
        return Err(format!(
            "time out of range: {:?} (years 1823 to 2116 are accepted)",
            text.trim()
        ));
    }
    Ok(ns)
}

fn parse_unbounded(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("time out of range: {text:?}"));
    }
    if let Ok(n) = text.parse::<i64>() {
        let abs = n.unsigned_abs();
        let scale = if abs < 100_000_000_000 {
            1_000_000_000
        } else if abs < 100_000_000_000_000 {
            1_000_000
        } else if abs < 100_000_000_000_000_000 {
            1_000
        } else {
            1
        };
        return n
            .checked_mul(scale)
            .ok_or_else(|| format!("time out of range: {text:?}"));
    }
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 9.2e9
    {
        return Ok((seconds * 1e9).round() as i64);
    }
    Err(format!(
        "invalid time {text:?}: use RFC 3339 or a Unix epoch in s, ms, us or ns"
    ))
}

/// RFC 3339 in UTC, with as many fraction digits (0, 3, 6 or 9) as the value needs:
/// the same form SQL results use.
pub fn format_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_magnitude() {
        let ns = 1_700_000_000_000_000_000;
        for text in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
            "1700000000.0",
            "2023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_time(text), Ok(ns), "{text}");
        }
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("-9223372036854775808").is_err());
        assert!(parse_time("4000000000").is_ok());
        assert_eq!(format_time(ns), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(ns + 250_000_000), "2023-11-14T22:13:20.250Z");
    }
}
