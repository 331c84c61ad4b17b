//! JSON values in the words of messages people read.

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
