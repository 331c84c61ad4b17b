//! CSV for people's spreadsheets (finance exports): RFC 4180 quoting, and cells that a spreadsheet
//! would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return at the start) prefixed with
//! `'`, since the values come from outside (a resource named `=HYPERLINK(…)` stays text).

use serde_json::Value;

/// One cell as text: strings as they are, numbers and booleans as JSON writes them, nothing for
/// null, lists joined with `;`.
fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(|v| text(Some(v))).collect::<Vec<_>>().join(";"),
        Some(other) => other.to_string(),
    }
}

fn quoted(cell: &str, numeric: bool) -> String {
    let mut cell = cell.to_owned();
    if !numeric && cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.insert(0, '\'');
    }
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// `rows` (JSON objects) as CSV with a header of `columns`, CRLF line ends.
pub fn to_csv(columns: &[&str], rows: &[Value]) -> String {
    let mut out = columns
        .iter()
        .map(|c| quoted(c, false))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for row in rows {
        let line = columns
            .iter()
            .map(|c| {
                let value = row.get(*c);
                quoted(&text(value), value.is_some_and(Value::is_number))
            })
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_stay_text() {
        let rows = [json!({"name": "a,\"b\"", "quantity": -1.5, "note": "=SUM(A1)", "empty": null})];
        let csv = to_csv(&["name", "quantity", "note", "empty"], &rows);
        assert_eq!(
            csv,
            "name,quantity,note,empty\r\n\"a,\"\"b\"\"\",-1.5,'=SUM(A1),\r\n"
        );
    }
}
