use std::collections::BTreeSet;
use std::fmt::{self, Display, Write};

/// A parsed `$filter` expression. Parentheses are not kept: the tree is the meaning, and
/// [`Display`] prints the canonical text with the parentheses precedence requires.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A property path such as `displayName` or `manager/id`. Inside a lambda the first segment
    /// may be the lambda variable (`x/skuId`, or just `p`).
    Property(Vec<String>),
    Not(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `left in (item, …)`.
    In {
        left: Box<Expr>,
        items: Vec<Expr>,
    },
    /// A canonical function such as `startswith(displayName,'A')`.
    Call {
        function: Function,
        args: Vec<Expr>,
    },
    /// `collection/any(variable: predicate)` or `collection/all(…)`; `any()` has no body.
    Lambda {
        collection: Vec<String>,
        kind: LambdaKind,
        body: Option<(String, Box<Expr>)>,
    },
    /// A namespace-qualified function with named parameters, parsed generically, e.g.
    /// `Microsoft.Dynamics.CRM.ContainValues(PropertyName='hobbies',PropertyValues=['1','9'])`.
    QualifiedCall {
        name: String,
        params: Vec<(String, Expr)>,
    },
    /// `[a,b]`: only valid as the value of a qualified call's parameter.
    Array(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    /// Always finite.
    Decimal(f64),
    String(String),
    /// Lower-case, hyphenated (`6fd2c87f-b296-42f0-b197-1e91e994b900`).
    Guid(String),
    DateTimeOffset(jiff::Timestamp),
    Date(jiff::civil::Date),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LambdaKind {
    Any,
    All,
}

/// The canonical functions this crate understands. Names are matched case-insensitively when
/// parsing (`startsWith` is common in Graph documentation) and printed in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    StartsWith,
    EndsWith,
    Contains,
    ToLower,
    ToUpper,
    Trim,
    Length,
    Concat,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
            Self::Contains => "contains",
            Self::ToLower => "tolower",
            Self::ToUpper => "toupper",
            Self::Trim => "trim",
            Self::Length => "length",
            Self::Concat => "concat",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Self::StartsWith | Self::EndsWith | Self::Contains | Self::Concat => 2,
            Self::ToLower | Self::ToUpper | Self::Trim | Self::Length => 1,
        }
    }

    pub const ALL: [Function; 8] = [
        Self::StartsWith,
        Self::EndsWith,
        Self::Contains,
        Self::ToLower,
        Self::ToUpper,
        Self::Trim,
        Self::Length,
        Self::Concat,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl BinaryOp {
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Or => "or",
            Self::And => "and",
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    pub(crate) fn precedence(self) -> u8 {
        match self {
            Self::Or => PREC_OR,
            Self::And => PREC_AND,
            Self::Eq | Self::Ne => PREC_EQUALITY,
            Self::Gt | Self::Ge | Self::Lt | Self::Le => PREC_RELATIONAL,
        }
    }

    pub fn is_comparison(self) -> bool {
        !matches!(self, Self::Or | Self::And)
    }
}

impl LambdaKind {
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::All => "all",
        }
    }
}

pub(crate) const PREC_OR: u8 = 1;
pub(crate) const PREC_AND: u8 = 2;
pub(crate) const PREC_EQUALITY: u8 = 3;
pub(crate) const PREC_RELATIONAL: u8 = 4;
pub(crate) const PREC_NOT: u8 = 5;
pub(crate) const PREC_IN: u8 = 6;
pub(crate) const PREC_PRIMARY: u8 = 7;

impl Expr {
    fn precedence(&self) -> u8 {
        match self {
            Self::Binary { op, .. } => op.precedence(),
            Self::Not(_) => PREC_NOT,
            Self::In { .. } => PREC_IN,
            _ => PREC_PRIMARY,
        }
    }

    /// Calls `visit` on this expression and every sub-expression, parents first.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        match self {
            Self::Literal(_) | Self::Property(_) => {}
            Self::Not(inner) => inner.walk(visit),
            Self::Binary { left, right, .. } => {
                left.walk(visit);
                right.walk(visit);
            }
            Self::In { left, items } => {
                left.walk(visit);
                items.iter().for_each(|item| item.walk(visit));
            }
            Self::Call { args, .. } => args.iter().for_each(|arg| arg.walk(visit)),
            Self::Lambda { body, .. } => {
                if let Some((_, predicate)) = body {
                    predicate.walk(visit);
                }
            }
            Self::QualifiedCall { params, .. } => params.iter().for_each(|(_, value)| value.walk(visit)),
            Self::Array(items) => items.iter().for_each(|item| item.walk(visit)),
        }
    }

    /// The record properties the filter reads, as `/`-joined paths. Paths inside a lambda that
    /// start from its variable are reported under the collection (`assignedLicenses/skuId`);
    /// the collection itself is always reported. Dataverse functions' `PropertyName='x'`
    /// parameters count as properties too.
    pub fn properties(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        collect_properties(self, &mut Vec::new(), &mut found);
        found
    }

    /// The first segment of every property the filter reads: what a `$select` must include.
    pub fn root_properties(&self) -> BTreeSet<String> {
        self.properties()
            .into_iter()
            .map(|path| path.split('/').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The comparison and logical operators used.
    pub fn operators(&self) -> BTreeSet<BinaryOp> {
        let mut found = BTreeSet::new();
        self.walk(&mut |expr| {
            if let Self::Binary { op, .. } = expr {
                found.insert(*op);
            }
        });
        found
    }

    /// The canonical functions used.
    pub fn functions(&self) -> BTreeSet<Function> {
        let mut found = BTreeSet::new();
        self.walk(&mut |expr| {
            if let Self::Call { function, .. } = expr {
                found.insert(*function);
            }
        });
        found
    }

    /// Whether the filter uses `not`, `in`, a lambda or a qualified function — features some
    /// servers accept only with extra headers (Graph's advanced queries).
    pub fn uses(&self, feature: Feature) -> bool {
        let mut hit = false;
        self.walk(&mut |expr| {
            hit |= matches!(
                (feature, expr),
                (Feature::Not, Self::Not(_))
                    | (Feature::In, Self::In { .. })
                    | (Feature::Lambda, Self::Lambda { .. })
                    | (Feature::QualifiedCall, Self::QualifiedCall { .. })
            );
        });
        hit
    }
}

/// Syntax features a caller may want to detect with [`Expr::uses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Not,
    In,
    Lambda,
    QualifiedCall,
}

fn collect_properties<'a>(expr: &'a Expr, scope: &mut Vec<(&'a str, String)>, found: &mut BTreeSet<String>) {
    match expr {
        Expr::Property(path) => {
            let resolved = resolve_in_scope(path, scope);
            if !resolved.is_empty() {
                found.insert(resolved);
            }
        }
        Expr::Lambda { collection, body, .. } => {
            let collection_path = resolve_in_scope(collection, scope);
            found.insert(collection_path.clone());
            if let Some((variable, predicate)) = body {
                scope.push((variable.as_str(), collection_path));
                collect_properties(predicate, scope, found);
                scope.pop();
            }
        }
        Expr::QualifiedCall { params, .. } => {
            for (name, value) in params {
                if name.eq_ignore_ascii_case("PropertyName")
                    && let Expr::Literal(Literal::String(property)) = value
                {
                    found.insert(property.clone());
                }
                collect_properties(value, scope, found);
            }
        }
        Expr::Literal(_) => {}
        Expr::Not(inner) => collect_properties(inner, scope, found),
        Expr::Binary { left, right, .. } => {
            collect_properties(left, scope, found);
            collect_properties(right, scope, found);
        }
        Expr::In { left, items } => {
            collect_properties(left, scope, found);
            items
                .iter()
                .for_each(|item| collect_properties(item, scope, found));
        }
        Expr::Call { args, .. } => args.iter().for_each(|arg| collect_properties(arg, scope, found)),
        Expr::Array(items) => items
            .iter()
            .for_each(|item| collect_properties(item, scope, found)),
    }
}

fn resolve_in_scope(path: &[String], scope: &[(&str, String)]) -> String {
    let Some(first) = path.first() else {
        return String::new();
    };
    match scope.iter().rev().find(|(variable, _)| variable == first) {
        Some((_, collection)) => {
            let mut resolved = collection.clone();
            for segment in &path[1..] {
                resolved.push('/');
                resolved.push_str(segment);
            }
            resolved
        }
        None => path.join("/"),
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(value) => write!(f, "{value}"),
            Self::Int(value) => write!(f, "{value}"),
            // Debug always prints a '.' or an exponent, so the text reads back as a decimal.
            Self::Decimal(value) => write!(f, "{value:?}"),
            Self::String(value) => {
                f.write_char('\'')?;
                for c in value.chars() {
                    if c == '\'' {
                        f.write_str("''")?;
                    } else {
                        f.write_char(c)?;
                    }
                }
                f.write_char('\'')
            }
            Self::Guid(value) => f.write_str(value),
            Self::DateTimeOffset(value) => write!(f, "{value}"),
            Self::Date(value) => write!(f, "{value}"),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(literal) => literal.fmt(f),
            Self::Property(path) => f.write_str(&path.join("/")),
            Self::Not(inner) => {
                f.write_str("not ")?;
                write_operand(f, inner, inner.precedence() < PREC_NOT)
            }
            Self::Binary { op, left, right } => {
                let precedence = op.precedence();
                write_operand(f, left, left.precedence() < precedence)?;
                write!(f, " {} ", op.keyword())?;
                write_operand(f, right, right.precedence() <= precedence)
            }
            Self::In { left, items } => {
                write_operand(f, left, left.precedence() < PREC_IN)?;
                f.write_str(" in (")?;
                write_list(f, items)?;
                f.write_char(')')
            }
            Self::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                write_list(f, args)?;
                f.write_char(')')
            }
            Self::Lambda {
                collection,
                kind,
                body,
            } => {
                write!(f, "{}/{}(", collection.join("/"), kind.keyword())?;
                if let Some((variable, predicate)) = body {
                    write!(f, "{variable}:{predicate}")?;
                }
                f.write_char(')')
            }
            Self::QualifiedCall { name, params } => {
                write!(f, "{name}(")?;
                for (index, (param, value)) in params.iter().enumerate() {
                    if index > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{param}={value}")?;
                }
                f.write_char(')')
            }
            Self::Array(items) => {
                f.write_char('[')?;
                write_list(f, items)?;
                f.write_char(']')
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, expr: &Expr, parenthesise: bool) -> fmt::Result {
    if parenthesise {
        write!(f, "({expr})")
    } else {
        write!(f, "{expr}")
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            f.write_char(',')?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}
