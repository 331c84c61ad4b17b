//! JSON values in the words of messages people read, and JSON documents read with an error that
//! says where and what in plain words ([`parse_json`]): an administrator who typed `"ten"` where
//! a number goes reads "at circuit_breaker.floor (line 164): expected a whole number (0 or more),
//! found text "ten"", not a parser's type names.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The kind of a JSON value as a message names it: "text", "a number", "a boolean", "a list",
/// "an object" or "null" — so an error can say what came where something else was expected.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON document that is not well-formed, or does not fit the shape expected of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct JsonProblem {
    /// Where in the document, as a path (`site_mappings[0].target.kind`); `None` at its top or
    /// when the document is not well-formed.
    pub path: Option<String>,
    /// The line of the document the reader stopped at (1-based), when the text had lines.
    pub line: Option<usize>,
    /// What is wrong, in plain words.
    pub message: String,
    /// Whether the text is not JSON at all (as opposed to JSON of the wrong shape).
    pub malformed: bool,
}

impl JsonProblem {
    fn sentence(&self) -> String {
        if self.malformed {
            let line = self.line.map(|l| format!(" at line {l}")).unwrap_or_default();
            return format!("the JSON is not well-formed{line}: {}", self.message);
        }
        match (&self.path, self.line) {
            (Some(path), Some(line)) => format!("at {path} (line {line}): {}", self.message),
            (Some(path), None) => format!("at {path}: {}", self.message),
            (None, Some(line)) => format!("at line {line}: {}", self.message),
            (None, None) => self.message.clone(),
        }
    }

    /// A shape error of a document already known to be well-formed.
    fn from_path_error(e: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = e.inner();
        let path = e.path().to_string();
        let raw = inner.to_string();
        let location = format!(" at line {} column {}", inner.line(), inner.column());
        let bare = raw.strip_suffix(&location).unwrap_or(&raw);
        Self {
            path: (path != "." && path != "?").then_some(path),
            line: None,
            message: plain_words(bare),
            malformed: false,
        }
    }
}

/// Reads `text` as a `T`; the error names the path and the line, in plain words.
pub fn parse_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, JsonProblem> {
    // Well-formedness first: serde_json reports some shape errors (a number where an enum goes)
    // as syntax errors when it reads straight into `T`, so only a failed read into a `Value`
    // says the text is not JSON.
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        let raw = e.to_string();
        let location = format!(" at line {} column {}", e.line(), e.column());
        JsonProblem {
            path: None,
            line: (e.line() > 0).then_some(e.line()),
            message: plain_words(raw.strip_suffix(&location).unwrap_or(&raw)),
            malformed: true,
        }
    })?;
    match serde_path_to_error::deserialize(&value) {
        Ok(parsed) => Ok(parsed),
        Err(from_value) => {
            let mut problem = JsonProblem::from_path_error(&from_value);
            // Read again from the text for the line; the path and words stay the value's.
            let mut de = serde_json::Deserializer::from_slice(text);
            if let Err(e) = serde_path_to_error::deserialize::<_, T>(&mut de)
                && e.path().to_string() == from_value.path().to_string()
                && e.inner().line() > 0
            {
                problem.line = Some(e.inner().line());
            }
            Err(problem)
        }
    }
}

/// Converts an already parsed `value` into a `T`; the error names the path, in plain words.
pub fn json_from_value<T: DeserializeOwned>(value: Value) -> Result<T, JsonProblem> {
    serde_path_to_error::deserialize(value).map_err(|e| JsonProblem::from_path_error(&e))
}

/// A parser's message in plain words: `invalid type: string "ten", expected u32` becomes
/// `expected a whole number (0 or more), found text "ten"`. Messages of other shapes (a
/// validator's own words) are kept as they are.
pub fn plain_words(message: &str) -> String {
    let message = message.trim();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            return format!(
                "expected {}, found {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((n, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, found {n} item(s)", expected_words(expected));
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("the field {} is missing", quoted(field));
    }
    if let Some(field) = message.strip_prefix("duplicate field ") {
        return format!("the field {} is given twice", quoted(field));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, known) = rest.split_once(", ").unwrap_or((rest, ""));
        return match known_names(known) {
            Some(names) => format!(
                "there is no field {} here; the fields are: {names}",
                quoted(field)
            ),
            None => format!("there is no field {} here", quoted(field)),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (variant, known) = rest.split_once(", ").unwrap_or((rest, ""));
        return match known_names(known) {
            Some(names) => format!("{} is not one of: {names}", quoted(variant)),
            None => format!("{} is not an allowed value", quoted(variant)),
        };
    }
    syntax_words(message).map_or_else(|| message.to_owned(), str::to_owned)
}

/// The names of `expected one of `a`, `b`` or `expected `a` or `b``, comma separated.
fn known_names(text: &str) -> Option<String> {
    let list = text
        .strip_prefix("expected one of ")
        .or_else(|| text.strip_prefix("expected "))?;
    let names: Vec<&str> = list
        .split(['`', ','])
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "or")
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// `` `name` `` as `"name"`.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.trim().trim_matches('`'))
}

/// What a parser expected, named as a person would.
fn expected_words(expected: &str) -> String {
    let expected = expected.trim();
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "string" => "text",
        "a sequence" | "sequence" => "a list",
        "a map" | "map" => "an object",
        "unit" => "null",
        // An enum's forms: a bare name, or an object whose one key names the form.
        "string or map" => "a form's name in quotes, or an object whose one key names the form",
        "a character" | "char" => "a single character",
        _ if expected.starts_with("struct ") || expected.starts_with("internally tagged enum") => "an object",
        _ if expected.starts_with("enum ") || expected.starts_with("variant identifier") => {
            "one of the allowed forms (see the documentation of this setting)"
        }
        _ if expected.starts_with("tuple of ") || expected.starts_with("an array of length") => "a list",
        _ => return expected.to_owned(),
    };
    words.to_owned()
}

/// What a parser found, named as a person would.
fn found_words(found: &str) -> String {
    let found = found.trim();
    let literal = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|rest| rest.trim_matches('`').to_owned())
    };
    if let Some(text) = found.strip_prefix("string ") {
        return format!("text {text}");
    }
    if let Some(n) = literal("integer ").or_else(|| literal("floating point ")) {
        return format!("the number {n}");
    }
    if let Some(b) = literal("boolean ") {
        return b;
    }
    if let Some(c) = literal("character ") {
        return format!("\"{c}\"");
    }
    match found {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "null" | "unit" => "null".to_owned(),
        other => other.to_owned(),
    }
}

/// A syntax error in plain words, when it is one serde_json writes.
fn syntax_words(message: &str) -> Option<&'static str> {
    Some(match message {
        "expected value" => {
            "a value is missing here (a number, text in quotes, true, false, null, a list or an object)"
        }
        "key must be a string" => "an object's key must be text in quotes",
        "trailing comma" => "there is a comma after the last item",
        "trailing characters" => "there is more after the end of the JSON",
        "expected `,` or `}`" => "a comma or a closing } is missing",
        "expected `,` or `]`" => "a comma or a closing ] is missing",
        "expected `:`" => "a colon is missing after an object's key",
        "expected ident" => "a word is misspelled (true, false and null are the words JSON knows)",
        "invalid number" | "number out of range" => "a number is not valid",
        "EOF while parsing a value" => "the JSON ends where a value should be",
        "EOF while parsing an object" => "the JSON ends before an object is closed with }",
        "EOF while parsing a list" => "the JSON ends before a list is closed with ]",
        "EOF while parsing a string" => "the JSON ends inside text in quotes",
        "control character (\\u0000-\\u001F) found while parsing a string" => {
            "text in quotes holds a line break or another control character; write it as \\n"
        }
        "invalid escape" => "text in quotes holds a backslash that starts no valid escape",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Breaker {
        floor: u32,
        share: f64,
        #[serde(default)]
        on: bool,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        ExistingSite,
        Agent,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        breakers: Vec<Breaker>,
    }

    fn problem(text: &str) -> String {
        parse_json::<Config>(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn a_wrong_type_names_the_path_and_the_kinds_in_plain_words() {
        let text = "{\"breakers\": [\n {\"floor\": \"ten\", \"share\": 1}\n]}";
        assert_eq!(
            problem(text),
            "at breakers[0].floor (line 2): expected a whole number (0 or more), found text \"ten\""
        );
        assert_eq!(
            problem("{\"breakers\": [{\"floor\": -3, \"share\": 1}]}"),
            "at breakers[0].floor (line 1): expected a whole number (0 or more), found the number -3"
        );
        assert_eq!(
            problem("{\"breakers\": [{\"floor\": 1, \"share\": 1, \"on\": \"false\"}]}"),
            "at breakers[0].on (line 1): expected true or false, found text \"false\""
        );
        assert_eq!(
            problem("{\"breakers\": {}}"),
            "at breakers (line 1): expected a list, found an object"
        );
    }

    #[test]
    fn unknown_and_missing_names_say_what_there_is() {
        assert_eq!(
            problem("{\"breakers\": [{\"floor\": 1, \"share\": 1, \"bogus\": 2}]}"),
            "at breakers[0].bogus (line 1): there is no field \"bogus\" here; the fields are: floor, share, on, kind"
        );
        assert_eq!(
            problem("{\"breakers\": [{\"floor\": 1}]}"),
            "at breakers[0] (line 1): the field \"share\" is missing"
        );
        assert_eq!(
            problem("{\"breakers\": [{\"floor\": 1, \"share\": 1, \"kind\": \"nope\"}]}"),
            "at breakers[0].kind (line 1): \"nope\" is not one of: existing_site, agent"
        );
    }

    #[test]
    fn a_number_where_a_form_goes_is_a_shape_error_not_malformed_json() {
        assert_eq!(
            problem("{\"breakers\": [\n{\"floor\": 1, \"share\": 1, \"kind\": 5}]}"),
            "at breakers[0].kind (line 2): expected a form's name in quotes, or an object whose one key names the form, found the number 5"
        );
    }

    #[test]
    fn text_that_is_not_json_says_where_and_what() {
        assert_eq!(
            problem("{\"breakers\": [],,}"),
            "the JSON is not well-formed at line 1: an object's key must be text in quotes"
        );
        assert_eq!(
            problem("{\"breakers\": ["),
            "the JSON is not well-formed at line 1: the JSON ends before a list is closed with ]"
        );
        assert_eq!(
            problem("{\"breakers\": []} x"),
            "the JSON is not well-formed at line 1: there is more after the end of the JSON"
        );
    }

    #[test]
    fn a_value_converted_names_the_path_without_a_line() {
        let value = serde_json::json!({"breakers": [{"floor": 1.5, "share": 1}]});
        let e = json_from_value::<Config>(value).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at breakers[0].floor: expected a whole number (0 or more), found the number 1.5"
        );
    }

    #[test]
    fn words_of_other_shapes_are_kept() {
        assert_eq!(
            plain_words("the floor must be below 100"),
            "the floor must be below 100"
        );
    }
}
