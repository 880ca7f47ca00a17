//! Durations as users write them in manifests: Go's `time.ParseDuration` form (`1h`, `30m`,
//! `1h30m`, `90s`, `500ms`), which is what ESO users already have in their GitOps repositories.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {why}; write it like 1h, 30m, 1h30m or 90s")]
pub struct DurationError {
    pub input: String,
    pub why: &'static str,
}

/// Parses `"0"`, `"1h"`, `"1h30m"`, `"2.5s"`, `"500ms"`. Units: ns, us, µs, ms, s, m, h.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number has no unit"))?;
        if num_len == 0 {
            return Err(err("a unit has no number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("a number is malformed"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err("the unit is not one of ns, us, ms, s, m, h")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86400.0 {
        return Err(err("it is longer than ten years"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_manifests_use() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_with_a_message_that_says_how_to_write_it() {
        for bad in ["", "1", "h", "1d", "-5m", "1h 30m", "10x"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("1h30m"), "{e}");
        }
    }
}
