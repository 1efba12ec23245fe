//! Rendering for people: times, ages, tables and pretty JSON that keeps
//! the body's own key order and number spelling.

use std::fmt::Write as _;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC time as RFC 3339 with milliseconds, e.g.
/// `2026-12-03T10:05:00.123Z`.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    let text = at
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    // `time` drops a zero fraction; keep the width constant so the
    // strings sort and line up.
    if text.ends_with('Z') && !text.contains('.') {
        format!("{}.000Z", &text[..text.len() - 1])
    } else {
        text
    }
}

/// A duration the way an operator reads it: `45s`, `12m 5s`, `3h 12m`,
/// `2d 4h`.
pub(crate) fn age(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// How long ago `at` was, zero for a time in the future.
pub(crate) fn since(at: OffsetDateTime) -> Duration {
    (OffsetDateTime::now_utc() - at)
        .try_into()
        .unwrap_or_default()
}

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A plain-text table: a header row and columns padded to their widest
/// cell, two spaces apart. The last column is never padded.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, one line per row, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|row| cell(row, i).chars().count())
                    .chain([self.columns[i].0.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();

        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let text = cell(row, i);
                let last = i + 1 == self.columns.len();
                let pad = widths[i].saturating_sub(text.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(text);
                    }
                    Align::Left if last => line.push_str(text),
                    Align::Left => {
                        line.push_str(text);
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// `body` indented two spaces per level when it is JSON, keys in the
/// body's order and numbers as written; `None` when it is not JSON.
pub(crate) fn pretty_json(body: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(body).ok()?;

    let mut out = String::with_capacity(body.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = body.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };

    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// Every line of `text` prefixed with `indent`.
pub(crate) fn indented(text: &str, indent: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
    out
}

/// Cell `i` of `row`, blank when the row is short.
fn cell(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_json_keeps_order_numbers_and_strings() {
        let body = r#"{"z":1.50,"a":[1, {"s":"a,b:{c}\"]"}],"e":{},"l":[ ]}"#;
        let expected = "{\n  \"z\": 1.50,\n  \"a\": [\n    1,\n    {\n      \
                        \"s\": \"a,b:{c}\\\"]\"\n    }\n  ],\n  \"e\": {},\n  \"l\": []\n}";
        assert_eq!(pretty_json(body).unwrap(), expected);
        assert_eq!(pretty_json("not json"), None);
        assert_eq!(pretty_json("{\"a\":").as_deref(), None);
        assert_eq!(pretty_json(" 42 ").unwrap(), "42");
    }

    #[test]
    fn ages_read_like_an_operator_writes_them() {
        assert_eq!(age(Duration::from_secs(45)), "45s");
        assert_eq!(age(Duration::from_secs(12 * 60 + 5)), "12m 5s");
        assert_eq!(age(Duration::from_secs(3 * 3600 + 12 * 60 + 9)), "3h 12m");
        assert_eq!(age(Duration::from_secs(2 * 86_400 + 4 * 3600)), "2d 4h");
    }

    #[test]
    fn times_have_a_constant_width() {
        let at = time::macros::datetime!(2026-12-03 10:05:00 UTC);
        assert_eq!(rfc3339(at), "2026-12-03T10:05:00.000Z");
        let at = time::macros::datetime!(2026-12-03 10:05:00.123456 UTC);
        assert_eq!(rfc3339(at), "2026-12-03T10:05:00.123Z");
    }

    #[test]
    fn tables_pad_columns() {
        let mut table = Table::new(&[("QUEUE", Align::Left), ("N", Align::Right)]);
        table.row(vec!["a".into(), "10".into()]);
        table.row(vec!["long-name".into(), "2".into()]);
        assert_eq!(
            table.render(),
            "QUEUE       N\na          10\nlong-name   2\n"
        );
    }
}
