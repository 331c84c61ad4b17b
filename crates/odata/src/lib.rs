//! deskbridge-odata: the OData v4 `$filter` language — parser, AST, canonical printer and evaluator.
//!
//! It owns one thing: turning filter text into an [`Expr`] and back, and deciding whether a JSON
//! record matches it. It is used to answer Graph and Dataverse `$filter`s in the emulator, to build
//! outbound filters, and to evaluate the attribute filters of site mappings.
//!
//! Invariants:
//! - `parse(&expr.to_string()) == Ok(expr)` for every expression (the printer adds exactly the
//!   parentheses precedence needs, and nothing the parser would read differently).
//! - Parsing never panics; every failure is a [`ParseError`] with the byte offset, the 1-based
//!   column, what was expected and what was found.
//! - Evaluation never panics on odd records: type mismatches are [`EvalError`]s naming both types.
//! - Operator precedence follows OData 4.01 (lowest first): `or`, `and`, `eq`/`ne`,
//!   `gt`/`ge`/`lt`/`le`, `not`, `in`, then primaries. So `not a eq b` is `(not a) eq b`, as in
//!   Graph; write `not (a eq b)`.
//! - Null follows OData: `eq null`/`ne null` test for null; other comparisons and canonical
//!   functions with a null operand yield null; `and`/`or`/`not` use three-valued logic; a filter
//!   whose result is null does not match.

mod ast;
mod eval;
mod lexer;
mod parser;

pub use ast::{BinaryOp, Expr, Feature, Function, LambdaKind, Literal};
pub use eval::{EvalError, EvalOptions, evaluate, evaluate_object};
pub use parser::{ParseError, parse};
