//! Printing results: JSON for scripts, aligned plain-text tables for people. Nothing here writes
//! colour; where colour is written (the logs) it follows [`colour`].

use serde_json::Value;

/// Prints a line on standard output, ignoring a closed pipe: a long-running process (`serve`,
/// `connection authorize`) must not die because whoever started it stopped reading, which is
/// what `println!` would do.
pub fn say(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints a line on standard error, ignoring a closed stream (see [`say`]): errors and their
/// remedies go there, so that standard output stays the result.
pub fn say_err(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// Prints without a line break, ignoring a closed pipe (see [`say`]).
pub fn put(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{text}");
    let _ = out.flush();
}

/// `println!` for this binary: a closed standard output (`deskbridge … | head -1`) ends nothing
/// with a panic; what was not read is dropped.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::say(&format!($($arg)*)) };
}

/// `print!` for this binary (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::put(&format!($($arg)*)) };
}

pub(crate) use {out, outln};

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    say(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `rows` as one JSON array (`json`) or as a table of `columns` for people.
pub fn print_rows(json: bool, columns: &[&str], rows: &[Value]) -> anyhow::Result<()> {
    if json {
        say(&serde_json::to_string(rows)?);
    } else {
        put(&table(columns, rows));
    }
    Ok(())
}

/// Whether to write ANSI colour to a stream: only to a terminal, and never when `NO_COLOR` is
/// set to anything (<https://no-color.org>), so piped or redirected output holds no escape codes.
pub fn colour(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Rows as a table with the given columns (missing values blank).
pub fn table(columns: &[&str], rows: &[Value]) -> String {
    table_cut(columns, rows, None)
}

/// [`table`] with each cell cut to `width` characters (the last one `…`) when given.
pub fn table_cut(columns: &[&str], rows: &[Value], width: Option<usize>) -> String {
    let cell = |row: &Value, col: &str| -> String {
        match row.get(col) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| cut(sanitize(&cell(r, c)), width))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(
        columns
            .iter()
            .map(|c| c.to_uppercase())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        &mut out,
    );
    for row in &cells {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `text` cut to `width` characters, its last one `…` when something was cut.
fn cut(text: String, width: Option<usize>) -> String {
    match width {
        Some(width) if width > 0 && text.chars().count() > width => {
            let mut out: String = text.chars().take(width - 1).collect();
            out.push('…');
            out
        }
        _ => text,
    }
}

/// Control characters from upstream data must not reach a terminal.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn aligns_columns_and_strips_control_characters() {
        let out = super::table(
            &["id", "name"],
            &[json!({"id": 1, "name": "A\u{1b}[31m"}), json!({"id": 22})],
        );
        assert_eq!(out, "ID  NAME\n1   A [31m\n22\n");
    }

    #[test]
    fn cells_are_cut_to_the_width_with_an_ellipsis() {
        let rows = [json!({"id": 1, "email": "a.very.long.address@contoso.example"})];
        let out = super::table_cut(&["id", "email"], &rows, Some(10));
        assert_eq!(out, "ID  EMAIL\n1   a.very.lo…\n");
        // Short cells and a table without a width are left whole.
        let whole = super::table_cut(&["id", "email"], &rows, None);
        assert!(whole.contains("a.very.long.address@contoso.example"), "{whole}");
        assert_eq!(super::cut("Ann".into(), Some(3)), "Ann");
    }
}
