//! Durations and sizes as LogQL writes them: `1h30m`, `250ms`, `1.5s`, `7d`; `20KB`,
//! `1.5MiB`, `512b`.

/// A duration in nanoseconds: one or more `<number><unit>` terms, units `ns`, `us`
/// (or `µs`), `ms`, `s`, `m`, `h`, `d`, `w`, `y`, with an optional leading `-`.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {text:?}: use forms such as 30s, 5m, 1h30m, 250ms");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !total.is_finite() || total >= i64::MAX as f64 {
        return Err(format!("duration {text:?} is out of range"));
    }
    let ns = total.round() as i64;
    Ok(if negative { -ns } else { ns })
}

/// A size in bytes: a number and a unit (`b`, `kb`, `kib`, `mb`, `mib`, … up to `pb`,
/// any case, `k`/`m`/`g` alone too).
pub fn parse_bytes(text: &str) -> Result<f64, String> {
    let invalid = || format!("invalid size {text:?}: use forms such as 512B, 20KB, 1.5MiB");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let number: f64 = text[..split].parse().map_err(|_| invalid())?;
    let unit = text[split..].trim().to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        _ => return Err(invalid()),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        for bad in ["", "5", "m", "5x", "1..2s", "9999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("20KB"), Ok(20_000.0));
        assert_eq!(parse_bytes("1KiB"), Ok(1024.0));
        assert_eq!(parse_bytes("1.5mb"), Ok(1_500_000.0));
        assert_eq!(parse_bytes("512B"), Ok(512.0));
        assert!(parse_bytes("12").is_err());
        assert!(parse_bytes("12xb").is_err());
    }
}
