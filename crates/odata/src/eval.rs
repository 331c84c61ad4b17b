use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::ast::{BinaryOp, Expr, Function, LambdaKind, Literal};

/// How to evaluate. `Default` compares strings exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalOptions {
    /// Compare strings ignoring case (eq, ne, ordering, `in`, startswith/endswith/contains).
    /// Graph compares most directory string properties this way.
    pub case_insensitive: bool,
}

impl EvalOptions {
    /// Graph's behaviour for directory objects: strings compare case-insensitively.
    pub fn graph() -> Self {
        Self {
            case_insensitive: true,
        }
    }
}

/// Why a filter could not be evaluated against a record. Every variant names what it saw.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("the record is not a JSON object (it is {found})")]
    RecordNotObject { found: &'static str },
    #[error("cannot compare {left} with {right} using '{op}'")]
    TypeMismatch {
        op: &'static str,
        left: &'static str,
        right: &'static str,
    },
    #[error("{function} expects {expected}, but argument {position} is {found}")]
    BadArgument {
        function: String,
        position: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("cannot read '{segment}' of '{path}': the value there is {found}, not an object")]
    NotAnObject {
        path: String,
        segment: String,
        found: &'static str,
    },
    #[error("'{path}' is {found}, not a collection, so {lambda}() cannot be applied")]
    NotACollection {
        path: String,
        lambda: &'static str,
        found: &'static str,
    },
    #[error("'{operator}' needs true, false or null, but got {found}")]
    NotBoolean {
        operator: &'static str,
        found: &'static str,
    },
    #[error("the value {value:?} cannot be read as {expected}")]
    Unparsable { value: String, expected: &'static str },
    #[error("the function {0} is not supported here")]
    UnsupportedFunction(String),
    #[error("{function} needs the parameter {parameter}")]
    MissingParameter {
        function: String,
        parameter: &'static str,
    },
    #[error("a [..] list is only valid as a function parameter")]
    ArrayOutsideCall,
}

/// Decides whether `record` (a JSON object) matches `expr`. A result of null does not match.
///
/// Missing properties read as null. Property names are matched exactly first and then ignoring
/// case (Graph treats `officelocation` and `officeLocation` alike). Strings are compared with
/// GUID, date and date-time literals by parsing the string.
pub fn evaluate(expr: &Expr, record: &Value, opts: &EvalOptions) -> Result<bool, EvalError> {
    let Value::Object(root) = record else {
        return Err(EvalError::RecordNotObject {
            found: json_type(record),
        });
    };
    evaluate_object(expr, root, opts)
}

/// [`evaluate`] over a record's properties, for callers that hold a map rather than a value.
pub fn evaluate_object(
    expr: &Expr,
    root: &Map<String, Value>,
    opts: &EvalOptions,
) -> Result<bool, EvalError> {
    let context = Context { root, opts: *opts };
    let mut scope = Vec::new();
    let value = context.eval(expr, &mut scope)?;
    Ok(tristate(&value, "$filter")? == Some(true))
}

#[derive(Debug, Clone)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Guid(Cow<'a, str>),
    DateTime(jiff::Timestamp),
    Date(jiff::civil::Date),
    Json(&'a Value),
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a decimal",
            Self::Str(_) => "a string",
            Self::Guid(_) => "a GUID",
            Self::DateTime(_) => "a date-time",
            Self::Date(_) => "a date",
            Self::Json(value) => json_type(value),
        }
    }

    /// The text a value would have in a JSON record, for loose Dataverse comparisons.
    fn loose_text(&self) -> Option<String> {
        match self {
            Self::Bool(b) => Some(b.to_string()),
            Self::Int(i) => Some(i.to_string()),
            Self::Float(f) => Some(f.to_string()),
            Self::Str(s) | Self::Guid(s) => Some(s.to_string()),
            Self::DateTime(t) => Some(t.to_string()),
            Self::Date(d) => Some(d.to_string()),
            Self::Null | Self::Json(_) => None,
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn from_json(value: &Value) -> Val<'_> {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Val::Str(Cow::Borrowed(s)),
        Value::Array(_) | Value::Object(_) => Val::Json(value),
    }
}

fn from_literal(literal: &Literal) -> Val<'_> {
    match literal {
        Literal::Null => Val::Null,
        Literal::Bool(b) => Val::Bool(*b),
        Literal::Int(i) => Val::Int(*i),
        Literal::Decimal(f) => Val::Float(*f),
        Literal::String(s) => Val::Str(Cow::Borrowed(s)),
        Literal::Guid(g) => Val::Guid(Cow::Borrowed(g)),
        Literal::DateTimeOffset(t) => Val::DateTime(*t),
        Literal::Date(d) => Val::Date(*d),
    }
}

fn tristate(value: &Val<'_>, operator: &'static str) -> Result<Option<bool>, EvalError> {
    match value {
        Val::Bool(b) => Ok(Some(*b)),
        Val::Null => Ok(None),
        other => Err(EvalError::NotBoolean {
            operator,
            found: other.type_name(),
        }),
    }
}

struct Context<'a> {
    root: &'a Map<String, Value>,
    opts: EvalOptions,
}

type Scope<'a> = Vec<(&'a str, &'a Value)>;

impl<'a> Context<'a> {
    fn eval(&self, expr: &'a Expr, scope: &mut Scope<'a>) -> Result<Val<'a>, EvalError> {
        match expr {
            Expr::Literal(literal) => Ok(from_literal(literal)),
            Expr::Property(path) => self.resolve(path, scope),
            Expr::Not(inner) => {
                let value = self.eval(inner, scope)?;
                Ok(tristate(&value, "not")?.map_or(Val::Null, |b| Val::Bool(!b)))
            }
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                let left = tristate(&self.eval(left, scope)?, "and")?;
                if left == Some(false) {
                    return Ok(Val::Bool(false));
                }
                let right = tristate(&self.eval(right, scope)?, "and")?;
                Ok(match (left, right) {
                    (_, Some(false)) => Val::Bool(false),
                    (Some(true), Some(true)) => Val::Bool(true),
                    _ => Val::Null,
                })
            }
            Expr::Binary {
                op: BinaryOp::Or,
                left,
                right,
            } => {
                let left = tristate(&self.eval(left, scope)?, "or")?;
                if left == Some(true) {
                    return Ok(Val::Bool(true));
                }
                let right = tristate(&self.eval(right, scope)?, "or")?;
                Ok(match (left, right) {
                    (_, Some(true)) => Val::Bool(true),
                    (Some(false), Some(false)) => Val::Bool(false),
                    _ => Val::Null,
                })
            }
            Expr::Binary { op, left, right } => {
                let left = self.eval(left, scope)?;
                let right = self.eval(right, scope)?;
                self.compare(*op, &left, &right)
            }
            Expr::In { left, items } => {
                let left = self.eval(left, scope)?;
                for item in items {
                    let item = self.eval(item, scope)?;
                    if matches!(self.compare(BinaryOp::Eq, &left, &item)?, Val::Bool(true)) {
                        return Ok(Val::Bool(true));
                    }
                }
                Ok(Val::Bool(false))
            }
            Expr::Call { function, args } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(self.eval(arg, scope)?);
                }
                self.call(*function, values)
            }
            Expr::Lambda {
                collection,
                kind,
                body,
            } => self.lambda(collection, *kind, body.as_ref(), scope),
            Expr::QualifiedCall { name, params } => self.qualified_call(name, params, scope),
            Expr::Array(_) => Err(EvalError::ArrayOutsideCall),
        }
    }

    fn resolve(&self, path: &[String], scope: &Scope<'a>) -> Result<Val<'a>, EvalError> {
        let Some(first) = path.first() else {
            return Ok(Val::Null);
        };
        let bound = scope
            .iter()
            .rev()
            .find(|(variable, _)| *variable == first.as_str());
        let (mut current, rest): (&'a Value, &[String]) = match bound {
            Some((_, value)) => (value, &path[1..]),
            None => match lookup(self.root, first) {
                Some(value) => (value, &path[1..]),
                None => return Ok(Val::Null),
            },
        };
        for (index, segment) in rest.iter().enumerate() {
            current = match current {
                Value::Null => return Ok(Val::Null),
                Value::Object(map) => match lookup(map, segment) {
                    Some(value) => value,
                    None => return Ok(Val::Null),
                },
                other => {
                    return Err(EvalError::NotAnObject {
                        path: path[..path.len() - rest.len() + index].join("/"),
                        segment: segment.clone(),
                        found: json_type(other),
                    });
                }
            };
        }
        Ok(from_json(current))
    }

    fn compare(&self, op: BinaryOp, left: &Val<'a>, right: &Val<'a>) -> Result<Val<'a>, EvalError> {
        let null_left = matches!(left, Val::Null);
        let null_right = matches!(right, Val::Null);
        if null_left || null_right {
            return Ok(match op {
                BinaryOp::Eq => Val::Bool(null_left && null_right),
                BinaryOp::Ne => Val::Bool(null_left != null_right),
                _ => Val::Null,
            });
        }
        let ordering = self.order(op, left, right)?;
        let result = match op {
            BinaryOp::Eq => ordering == Ordering::Equal,
            BinaryOp::Ne => ordering != Ordering::Equal,
            BinaryOp::Gt => ordering == Ordering::Greater,
            BinaryOp::Ge => ordering != Ordering::Less,
            BinaryOp::Lt => ordering == Ordering::Less,
            BinaryOp::Le => ordering != Ordering::Greater,
            BinaryOp::And | BinaryOp::Or => return Err(self.mismatch(op, left, right)),
        };
        Ok(Val::Bool(result))
    }

    fn mismatch(&self, op: BinaryOp, left: &Val<'_>, right: &Val<'_>) -> EvalError {
        EvalError::TypeMismatch {
            op: op.keyword(),
            left: left.type_name(),
            right: right.type_name(),
        }
    }

    fn order(&self, op: BinaryOp, left: &Val<'a>, right: &Val<'a>) -> Result<Ordering, EvalError> {
        use Val::*;
        Ok(match (left, right) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Int(_) | Float(_), Int(_) | Float(_)) => as_f64(left)
                .partial_cmp(&as_f64(right))
                .unwrap_or(Ordering::Equal),
            (Str(a), Str(b)) => self.compare_text(a, b),
            (Guid(a) | Str(a), Guid(b) | Str(b)) => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
            (DateTime(a), DateTime(b)) => a.cmp(b),
            (DateTime(a), Str(b)) => a.cmp(&parse_timestamp(b)?),
            (Str(a), DateTime(b)) => parse_timestamp(a)?.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Date(a), Str(b)) => a.cmp(&parse_date(b)?),
            (Str(a), Date(b)) => parse_date(a)?.cmp(b),
            (Date(a), DateTime(b)) => a.cmp(&utc_date(*b)),
            (DateTime(a), Date(b)) => utc_date(*a).cmp(b),
            _ => return Err(self.mismatch(op, left, right)),
        })
    }

    fn compare_text(&self, a: &str, b: &str) -> Ordering {
        if self.opts.case_insensitive {
            a.to_lowercase().cmp(&b.to_lowercase())
        } else {
            a.cmp(b)
        }
    }

    fn fold<'s>(&self, text: &'s str) -> Cow<'s, str> {
        if self.opts.case_insensitive {
            Cow::Owned(text.to_lowercase())
        } else {
            Cow::Borrowed(text)
        }
    }

    fn call(&self, function: Function, args: Vec<Val<'a>>) -> Result<Val<'a>, EvalError> {
        if args.iter().any(|arg| matches!(arg, Val::Null)) {
            return Ok(Val::Null);
        }
        let text = |position: usize| -> Result<&str, EvalError> {
            match args.get(position) {
                Some(Val::Str(s) | Val::Guid(s)) => Ok(s.as_ref()),
                other => Err(EvalError::BadArgument {
                    function: function.name().to_owned(),
                    position: position + 1,
                    expected: "a string",
                    found: other.map_or("nothing", Val::type_name),
                }),
            }
        };
        Ok(match function {
            Function::StartsWith => Val::Bool(self.fold(text(0)?).starts_with(self.fold(text(1)?).as_ref())),
            Function::EndsWith => Val::Bool(self.fold(text(0)?).ends_with(self.fold(text(1)?).as_ref())),
            Function::Contains => Val::Bool(self.fold(text(0)?).contains(self.fold(text(1)?).as_ref())),
            Function::ToLower => Val::Str(Cow::Owned(text(0)?.to_lowercase())),
            Function::ToUpper => Val::Str(Cow::Owned(text(0)?.to_uppercase())),
            Function::Trim => Val::Str(Cow::Owned(text(0)?.trim().to_owned())),
            Function::Concat => Val::Str(Cow::Owned(format!("{}{}", text(0)?, text(1)?))),
            Function::Length => match args.first() {
                Some(Val::Json(Value::Array(items))) => {
                    Val::Int(i64::try_from(items.len()).unwrap_or(i64::MAX))
                }
                _ => Val::Int(i64::try_from(text(0)?.chars().count()).unwrap_or(i64::MAX)),
            },
        })
    }

    fn lambda(
        &self,
        collection: &'a [String],
        kind: LambdaKind,
        body: Option<&'a (String, Box<Expr>)>,
        scope: &mut Scope<'a>,
    ) -> Result<Val<'a>, EvalError> {
        let items = match self.resolve(collection, scope)? {
            Val::Null => return Ok(Val::Bool(kind == LambdaKind::All)),
            Val::Json(Value::Array(items)) => items,
            other => {
                return Err(EvalError::NotACollection {
                    path: collection.join("/"),
                    lambda: kind.keyword(),
                    found: other.type_name(),
                });
            }
        };
        let Some((variable, predicate)) = body else {
            return Ok(Val::Bool(!items.is_empty()));
        };
        for item in items {
            scope.push((variable.as_str(), item));
            let outcome = self
                .eval(predicate, scope)
                .and_then(|value| tristate(&value, kind.keyword()));
            scope.pop();
            let matched = outcome? == Some(true);
            match kind {
                LambdaKind::Any if matched => return Ok(Val::Bool(true)),
                LambdaKind::All if !matched => return Ok(Val::Bool(false)),
                _ => {}
            }
        }
        Ok(Val::Bool(kind == LambdaKind::All))
    }

    /// The Dataverse query functions a desk filter is likely to use. Values compare loosely
    /// (`'1'` matches the option value 1), as Dataverse does for option sets.
    fn qualified_call(
        &self,
        name: &str,
        params: &'a [(String, Expr)],
        scope: &mut Scope<'a>,
    ) -> Result<Val<'a>, EvalError> {
        let short = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
        let param = |wanted: &'static str| {
            params
                .iter()
                .find(|(param, _)| param.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value)
                .ok_or_else(|| EvalError::MissingParameter {
                    function: name.to_owned(),
                    parameter: wanted,
                })
        };
        let property = || -> Result<Val<'a>, EvalError> {
            match param("PropertyName")? {
                Expr::Literal(Literal::String(property)) => {
                    self.resolve(std::slice::from_ref(property), scope)
                }
                _ => Err(EvalError::BadArgument {
                    function: name.to_owned(),
                    position: 1,
                    expected: "a property name string",
                    found: "something else",
                }),
            }
        };
        let values = || -> Result<Vec<Val<'a>>, EvalError> {
            match param("PropertyValues")? {
                Expr::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        Expr::Literal(literal) => Ok(from_literal(literal)),
                        _ => Err(EvalError::UnsupportedFunction(format!(
                            "{name} with non-literal values"
                        ))),
                    })
                    .collect(),
                Expr::Literal(literal) => Ok(vec![from_literal(literal)]),
                _ => Err(EvalError::UnsupportedFunction(format!(
                    "{name} with non-literal values"
                ))),
            }
        };
        let loosely_equal = |a: &Val<'_>, b: &Val<'_>| match (a.loose_text(), b.loose_text()) {
            (Some(a), Some(b)) => self.compare_text(&a, &b) == Ordering::Equal,
            _ => false,
        };
        let holds_any = |value: &Val<'a>, wanted: &[Val<'a>]| -> Vec<bool> {
            let held: Vec<Val<'_>> = match value {
                Val::Json(Value::Array(items)) => items.iter().map(from_json).collect(),
                Val::Str(text) => text
                    .split(',')
                    .map(|part| Val::Str(Cow::Owned(part.trim().to_owned())))
                    .collect(),
                Val::Null => Vec::new(),
                other => vec![other.clone()],
            };
            wanted
                .iter()
                .map(|w| held.iter().any(|h| loosely_equal(h, w)))
                .collect()
        };
        Ok(match short.as_str() {
            "null" => Val::Bool(matches!(property()?, Val::Null)),
            "notnull" => Val::Bool(!matches!(property()?, Val::Null)),
            "in" | "notin" => {
                let value = property()?;
                let found = values()?.iter().any(|v| loosely_equal(&value, v));
                Val::Bool(found == (short == "in"))
            }
            "containvalues" => Val::Bool(holds_any(&property()?, &values()?).into_iter().any(|hit| hit)),
            "doesnotcontainvalues" => {
                Val::Bool(!holds_any(&property()?, &values()?).into_iter().any(|hit| hit))
            }
            "between" | "notbetween" => {
                let value = property()?;
                let bounds = values()?;
                let (Some(low), Some(high)) = (bounds.first(), bounds.get(1)) else {
                    return Err(EvalError::MissingParameter {
                        function: name.to_owned(),
                        parameter: "PropertyValues (two bounds)",
                    });
                };
                if matches!(value, Val::Null) {
                    return Ok(Val::Null);
                }
                let inside = self.order(BinaryOp::Ge, &value, low)? != Ordering::Less
                    && self.order(BinaryOp::Le, &value, high)? != Ordering::Greater;
                Val::Bool(inside == (short == "between"))
            }
            _ => return Err(EvalError::UnsupportedFunction(name.to_owned())),
        })
    }
}

fn lookup<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn as_f64(value: &Val<'_>) -> f64 {
    match value {
        Val::Int(i) => *i as f64,
        Val::Float(f) => *f,
        _ => f64::NAN,
    }
}

fn parse_timestamp(text: &str) -> Result<jiff::Timestamp, EvalError> {
    text.parse().map_err(|_| EvalError::Unparsable {
        value: text.to_owned(),
        expected: "a date-time",
    })
}

fn parse_date(text: &str) -> Result<jiff::civil::Date, EvalError> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return Ok(date);
    }
    parse_timestamp(text)
        .map(utc_date)
        .map_err(|_| EvalError::Unparsable {
            value: text.to_owned(),
            expected: "a date",
        })
}

fn utc_date(timestamp: jiff::Timestamp) -> jiff::civil::Date {
    timestamp.to_zoned(jiff::tz::TimeZone::UTC).date()
}
