//! The `$filter` subset Graph accepts on directory objects: `eq`, `ne`, `gt`/`ge`/`lt`/`le`,
//! `and`, `or`, `not`, `in (…)`, `startswith`/`endswith`, and `any` lambdas such as
//! `assignedLicenses/any(x:x/skuId eq 6fd2…)`. Kept behind this one module so it can be
//! swapped for the shared `deskbridge-odata` evaluator.
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare { path: String, op: CmpOp, value: Value },
    In { path: String, values: Vec<Value> },
    Call { func: String, path: String, value: String },
    Any { path: String, var: String, inner: Box<Expr> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn lex(input: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || "_./-@$#+".contains(c) => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_./-@$#+".contains(chars[i])) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == tok => Ok(()),
            other => Err(format!("expected {tok:?}, found {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.or()?;
            self.expect(Tok::Close)?;
            return Ok(e);
        }
        self.primary()
    }

    fn literal(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Word(w)) => Ok(match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => match w.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    // Bare GUIDs and dates are compared as strings.
                    Err(_) => Value::String(w),
                },
            }),
            other => Err(format!("expected a literal, found {other:?}")),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            other => return Err(format!("expected a property or function, found {other:?}")),
        };
        let lower = word.to_ascii_lowercase();
        if (lower == "startswith" || lower == "endswith" || lower == "contains") && self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let path = match self.next() {
                Some(Tok::Word(p)) => p,
                other => return Err(format!("expected a property, found {other:?}")),
            };
            self.expect(Tok::Comma)?;
            let value = match self.next() {
                Some(Tok::Str(s)) => s,
                other => return Err(format!("expected a string, found {other:?}")),
            };
            self.expect(Tok::Close)?;
            return Ok(Expr::Call { func: lower, path, value });
        }
        if let Some(collection) = word.strip_suffix("/any").or_else(|| word.strip_suffix("/all")) {
            self.expect(Tok::Open)?;
            let var = match self.next() {
                Some(Tok::Word(v)) => v,
                other => return Err(format!("expected a lambda variable, found {other:?}")),
            };
            self.expect(Tok::Colon)?;
            let inner = self.or()?;
            self.expect(Tok::Close)?;
            return Ok(Expr::Any { path: collection.to_owned(), var, inner: Box::new(inner) });
        }
        let op = match self.next() {
            Some(Tok::Word(o)) => o.to_ascii_lowercase(),
            other => return Err(format!("expected an operator after '{word}', found {other:?}")),
        };
        let op = match op.as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            "in" => {
                self.expect(Tok::Open)?;
                let mut values = vec![self.literal()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    values.push(self.literal()?);
                }
                self.expect(Tok::Close)?;
                return Ok(Expr::In { path: word, values });
            }
            other => return Err(format!("unsupported operator '{other}'")),
        };
        let value = self.literal()?;
        Ok(Expr::Compare { path: word, op, value })
    }
}

pub(crate) fn parse(input: &str) -> Result<Expr, String> {
    let mut p = Parser { toks: lex(input)?, pos: 0 };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected trailing input at token {}", p.pos));
    }
    Ok(e)
}

impl Expr {
    /// `ne`, `not`, `endswith`, … are "advanced queries": Graph wants `ConsistencyLevel: eventual`.
    pub(crate) fn is_advanced(&self) -> bool {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.is_advanced() || b.is_advanced(),
            Expr::Not(_) => true,
            Expr::Compare { op, value, .. } => *op == CmpOp::Ne || value.is_null(),
            Expr::Call { func, .. } => func != "startswith",
            Expr::In { .. } => false,
            Expr::Any { inner, .. } => inner.is_advanced(),
        }
    }

    /// Top-level property names the filter reads (for validation and permission checks).
    pub(crate) fn properties(&self, out: &mut Vec<String>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.properties(out);
                b.properties(out);
            }
            Expr::Not(a) => a.properties(out),
            Expr::Compare { path, .. } | Expr::In { path, .. } | Expr::Call { path, .. } | Expr::Any { path, .. } => {
                out.push(path.split('/').next().unwrap_or(path).to_owned());
            }
        }
    }

    /// The ids of an `id eq 'a' or id eq 'b'` filter (what delta accepts), if it is one.
    pub(crate) fn id_list(&self) -> Option<Vec<String>> {
        match self {
            Expr::Compare { path, op: CmpOp::Eq, value: Value::String(s) } if path == "id" => Some(vec![s.clone()]),
            Expr::Or(a, b) => {
                let mut ids = a.id_list()?;
                ids.extend(b.id_list()?);
                Some(ids)
            }
            _ => None,
        }
    }

    pub(crate) fn eval(&self, get: &dyn Fn(&str) -> Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(get) && b.eval(get),
            Expr::Or(a, b) => a.eval(get) || b.eval(get),
            Expr::Not(a) => !a.eval(get),
            Expr::Compare { path, op, value } => compare(&get(path), *op, value),
            Expr::In { path, values } => {
                let v = get(path);
                values.iter().any(|x| compare(&v, CmpOp::Eq, x))
            }
            Expr::Call { func, path, value } => {
                let v = get(path);
                let Some(s) = v.as_str() else { return false };
                let (s, value) = (s.to_lowercase(), value.to_lowercase());
                match func.as_str() {
                    "startswith" => s.starts_with(&value),
                    "endswith" => s.ends_with(&value),
                    _ => s.contains(&value),
                }
            }
            Expr::Any { path, var, inner } => {
                let items = match get(path) {
                    Value::Array(items) => items,
                    _ => return false,
                };
                items.iter().any(|item| {
                    let lookup = |p: &str| -> Value {
                        if p == var {
                            return item.clone();
                        }
                        match p.strip_prefix(var.as_str()).and_then(|r| r.strip_prefix('/')) {
                            Some(field) => item.get(field).cloned().unwrap_or(Value::Null),
                            None => get(p),
                        }
                    };
                    inner.eval(&lookup)
                })
            }
        }
    }
}

fn compare(left: &Value, op: CmpOp, right: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Value::String(a), Value::String(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => ordering == Some(Ordering::Equal),
        CmpOp::Ne => ordering != Some(Ordering::Equal),
        CmpOp::Gt => ordering == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Lt => ordering == Some(Ordering::Less),
        CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"userType": "Member", "accountEnabled": true, "displayName": "Zoë Müller",
               "assignedLicenses": [{"skuId": "6fd2c87f-b296-46aa-b1ee-7c38d3f1cd4a", "disabledPlans": []}],
               "mail": null})
    }

    fn eval(f: &str) -> bool {
        let u = user();
        parse(f).unwrap().eval(&|p| u.get(p).cloned().unwrap_or(Value::Null))
    }

    #[test]
    fn evaluates_the_graph_subset() {
        assert!(eval("userType eq 'Member'"));
        assert!(eval("userType eq 'member' and accountEnabled eq true"));
        assert!(!eval("userType eq 'Guest' or accountEnabled eq false"));
        assert!(eval("startswith(displayName,'zoë')"));
        assert!(eval("assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-46aa-b1ee-7c38d3f1cd4a)"));
        assert!(!eval("assignedLicenses/any(x:x/skuId eq 00000000-0000-0000-0000-000000000000)"));
        assert!(eval("userType in ('Guest','Member')"));
        assert!(eval("not (userType eq 'Guest')"));
        assert!(eval("mail eq null"));
    }

    #[test]
    fn reports_advanced_queries_and_id_lists() {
        assert!(parse("userType ne 'Guest'").unwrap().is_advanced());
        assert!(parse("endswith(mail,'@x.com')").unwrap().is_advanced());
        assert!(!parse("startswith(mail,'a')").unwrap().is_advanced());
        let ids = parse("id eq 'a' or id eq 'b'").unwrap().id_list().unwrap();
        assert_eq!(ids, vec!["a", "b"]);
    }

    #[test]
    fn rejects_malformed_filters() {
        assert!(parse("userType eq").is_err());
        assert!(parse("userType frob 'x'").is_err());
        assert!(parse("startswith(displayName,'x'").is_err());
        assert!(parse("displayName eq 'unterminated").is_err());
    }
}
