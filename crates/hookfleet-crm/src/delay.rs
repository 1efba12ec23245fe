//! The welcome delay: parsing `HOOKFLEET_WELCOME_DELAY`, and how long a
//! follow-up still has to wait.
//!
//! The delay is an SQS message timer (`DelaySeconds`), so it is whole
//! seconds from 0 to 900: [`parse_delay`] refuses what SQS cannot express
//! instead of rounding it silently.

use std::time::{Duration, SystemTime};

/// SQS's longest message timer (`DelaySeconds` 900): 15 minutes.
pub const MAX_WELCOME_DELAY: Duration = Duration::from_secs(15 * 60);

/// Parses a delay written as one or more `<number><unit>` parts, units
/// `h`, `m`, `s` and `ms` (`5m`, `90s`, `1m30s`, `2000ms`), or `0`. The
/// total must be whole seconds.
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let unreadable = || format!("{text:?} is not a duration like 5m, 90s or 1m30s");
    if text.is_empty() {
        return Err(unreadable());
    }

    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(unreadable());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| unreadable())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "s" => Some(Duration::from_secs(number)),
            "ms" => Some(Duration::from_millis(number)),
            _ => None,
        }
        .ok_or_else(unreadable)?;
        total = total.checked_add(part).ok_or_else(unreadable)?;
        rest = &rest[unit_len..];
    }

    if total.subsec_nanos() != 0 {
        return Err(format!(
            "{text:?} is not whole seconds (SQS message timers count seconds)"
        ));
    }
    Ok(total)
}

/// How long a follow-up for a message that entered the queue at `sent_at`
/// must still wait so that it runs `delay` after that: zero when that time
/// has passed (a backlog, a redelivery), rounded up to whole seconds so it
/// never runs early. An unknown `sent_at` counts as now.
pub fn remaining_delay(delay: Duration, sent_at: Option<SystemTime>, now: SystemTime) -> Duration {
    let waited = sent_at
        .and_then(|sent| now.duration_since(sent).ok())
        .unwrap_or_default();
    let remaining = delay.saturating_sub(waited);
    let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    Duration::from_secs(seconds).min(MAX_WELCOME_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_read_in_common_units() {
        let cases = [
            ("5m", 300),
            ("90s", 90),
            ("1m30s", 90),
            ("2000ms", 2),
            ("0", 0),
            ("0s", 0),
            (" 15m ", 900),
            ("1h", 3600),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_delay(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn unreadable_or_fractional_delays_are_refused() {
        for text in [
            "",
            "5",
            "m5",
            "5 m",
            "5min",
            "soon",
            "-5s",
            "1.5s",
            "99999999999999999999s",
        ] {
            assert!(parse_delay(text).is_err(), "{text:?} should be refused");
        }
        let fractional = parse_delay("300ms").unwrap_err();
        assert!(fractional.contains("whole seconds"), "{fractional}");
        assert!(parse_delay("1500ms").is_err());
    }

    #[test]
    fn the_remaining_delay_counts_from_the_first_arrival() {
        let delay = Duration::from_secs(300);
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |secs: f64| sent + Duration::from_secs_f64(secs);

        assert_eq!(remaining_delay(delay, Some(sent), at(0.0)), delay);
        // Rounded up: never early.
        assert_eq!(
            remaining_delay(delay, Some(sent), at(0.4)),
            Duration::from_secs(300)
        );
        assert_eq!(
            remaining_delay(delay, Some(sent), at(120.0)),
            Duration::from_secs(180)
        );
        assert_eq!(
            remaining_delay(delay, Some(sent), at(300.0)),
            Duration::ZERO
        );
        assert_eq!(
            remaining_delay(delay, Some(sent), at(4_000.0)),
            Duration::ZERO
        );
        // Unknown or future send times: the whole delay.
        assert_eq!(remaining_delay(delay, None, at(50.0)), delay);
        assert_eq!(
            remaining_delay(delay, Some(at(10.0)), at(0.0)),
            Duration::from_secs(300)
        );
        assert_eq!(
            remaining_delay(Duration::ZERO, Some(sent), at(0.0)),
            Duration::ZERO
        );
    }
}
