use crate::ast::{BinaryOp, Expr, Function, LambdaKind, Literal};
use crate::lexer::{Spanned, Token, column_of, tokenize};

/// Deeper trees are refused so that evaluating, printing or dropping one can never exhaust the
/// stack, whatever a caller sends.
const MAX_DEPTH: usize = 200;

/// Why a filter did not parse, and exactly where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} at column {column}, found {found}")]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub expected: String,
    pub found: String,
}

impl ParseError {
    pub(crate) fn new(
        input: &str,
        offset: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self {
            offset,
            column: column_of(input, offset),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Parses an OData v4 `$filter` expression.
///
/// ```
/// let expr = deskbridge_odata::parse("startsWith(displayName,'A') and accountEnabled eq true").unwrap();
/// assert_eq!(expr.to_string(), "startswith(displayName,'A') and accountEnabled eq true");
/// ```
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        input,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.parse_or()?;
    match parser.peek() {
        Token::End => Ok(expr),
        other => {
            let found = other.describe();
            Err(parser.error("an operator (and, or, eq, …) or the end of the filter", found))
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let index = (self.pos + ahead).min(self.tokens.len().saturating_sub(1));
        self.tokens
            .get(index)
            .map_or(&Token::End, |spanned| &spanned.token)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.input.len(), |spanned| spanned.offset)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn error(&self, expected: impl Into<String>, found: impl Into<String>) -> ParseError {
        ParseError::new(self.input, self.offset(), expected, found)
    }

    fn expect(&mut self, token: &Token) -> Result<(), ParseError> {
        if self.peek() == token {
            self.advance();
            Ok(())
        } else {
            Err(self.error(token.describe(), self.peek().describe()))
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Token::Name(name) if name.eq_ignore_ascii_case(keyword))
    }

    fn enter(&mut self, levels: usize) -> Result<(), ParseError> {
        self.depth += levels;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                format!("at most {MAX_DEPTH} levels of nesting"),
                "a deeper expression",
            ));
        }
        Ok(())
    }

    fn parse_binary_level(
        &mut self,
        operators: &[BinaryOp],
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut left = next(self)?;
        let mut chained = 0;
        let result = loop {
            let Some(op) = operators
                .iter()
                .copied()
                .find(|op| self.peek_keyword(op.keyword()))
            else {
                break Ok(left);
            };
            self.advance();
            chained += 1;
            if let Err(error) = self.enter(1) {
                break Err(error);
            }
            match next(self) {
                Ok(right) => {
                    left = Expr::Binary {
                        op,
                        left: Box::new(left),
                        right: Box::new(right),
                    }
                }
                Err(error) => break Err(error),
            }
        };
        self.depth -= chained;
        result
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.parse_binary_level(&[BinaryOp::Or], Self::parse_and)
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        self.parse_binary_level(&[BinaryOp::And], Self::parse_equality)
    }

    fn parse_equality(&mut self) -> Result<Expr, ParseError> {
        self.parse_binary_level(&[BinaryOp::Eq, BinaryOp::Ne], Self::parse_relational)
    }

    fn parse_relational(&mut self) -> Result<Expr, ParseError> {
        self.parse_binary_level(
            &[BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Lt, BinaryOp::Le],
            Self::parse_unary,
        )
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek_keyword("not") {
            self.advance();
            self.enter(1)?;
            let operand = self.parse_unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(operand?)));
        }
        self.parse_in()
    }

    fn parse_in(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_primary()?;
        let mut chained = 0;
        let result = loop {
            if !self.peek_keyword("in") {
                break Ok(left);
            }
            self.advance();
            chained += 1;
            if let Err(error) = self.enter(1) {
                break Err(error);
            }
            match self.parse_in_list() {
                Ok(items) => {
                    left = Expr::In {
                        left: Box::new(left),
                        items,
                    }
                }
                Err(error) => break Err(error),
            }
        };
        self.depth -= chained;
        result
    }

    fn parse_in_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(&Token::LParen)?;
        let items = self.parse_comma_list(&Token::RParen, Self::parse_nested_or)?;
        if items.is_empty() {
            return Err(self.error("at least one value in the 'in' list", "')'"));
        }
        self.expect(&Token::RParen)?;
        Ok(items)
    }

    fn parse_comma_list(
        &mut self,
        close: &Token,
        item: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.peek() == close {
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            if self.peek() == &Token::Comma {
                self.advance();
            } else if self.peek() == close {
                return Ok(items);
            } else {
                return Err(self.error(format!("',' or {}", close.describe()), self.peek().describe()));
            }
        }
    }

    fn parse_primary_nested(&mut self) -> Result<Expr, ParseError> {
        self.enter(1)?;
        let result = self.parse_primary();
        self.depth -= 1;
        result
    }

    fn parse_nested_or(&mut self) -> Result<Expr, ParseError> {
        self.enter(1)?;
        let result = self.parse_or();
        self.depth -= 1;
        result
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let literal = match self.peek() {
            Token::String(value) => Some(Literal::String(value.clone())),
            Token::Int(value) => Some(Literal::Int(*value)),
            Token::Decimal(value) => Some(Literal::Decimal(*value)),
            Token::Guid(value) => Some(Literal::Guid(value.clone())),
            Token::DateTimeOffset(value) => Some(Literal::DateTimeOffset(*value)),
            Token::Date(value) => Some(Literal::Date(*value)),
            Token::Name(name) if !matches!(self.peek_at(1), Token::Slash | Token::LParen) => {
                match name.to_ascii_lowercase().as_str() {
                    "null" => Some(Literal::Null),
                    "true" => Some(Literal::Bool(true)),
                    "false" => Some(Literal::Bool(false)),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(literal) = literal {
            self.advance();
            return Ok(Expr::Literal(literal));
        }
        match self.peek().clone() {
            Token::LParen => {
                self.advance();
                let inner = self.parse_nested_or()?;
                self.expect(&Token::RParen)?;
                Ok(inner)
            }
            Token::Name(name) => {
                if is_reserved(&name) {
                    return Err(self.error("a property, literal or function", format!("keyword '{name}'")));
                }
                self.advance();
                if self.peek() == &Token::LParen {
                    self.parse_call(name)
                } else {
                    self.parse_path(name)
                }
            }
            other => Err(self.error("a property, literal or function", other.describe())),
        }
    }

    fn parse_call(&mut self, name: String) -> Result<Expr, ParseError> {
        let name_offset = self
            .tokens
            .get(self.pos.saturating_sub(1))
            .map_or(0, |spanned| spanned.offset);
        if name.contains('.') {
            return self.parse_qualified_call(name);
        }
        let Some(function) = Function::from_name(&name) else {
            let known: Vec<&str> = Function::ALL.iter().map(|f| f.name()).collect();
            return Err(ParseError::new(
                self.input,
                name_offset,
                format!("a known function ({})", known.join(", ")),
                format!("'{name}'"),
            ));
        };
        self.advance();
        let args = self.parse_comma_list(&Token::RParen, Self::parse_nested_or)?;
        if args.len() != function.arity() {
            return Err(self.error(
                format!("{} argument(s) for {}", function.arity(), function.name()),
                format!("{} argument(s)", args.len()),
            ));
        }
        self.expect(&Token::RParen)?;
        Ok(Expr::Call { function, args })
    }

    fn parse_qualified_call(&mut self, name: String) -> Result<Expr, ParseError> {
        self.advance();
        let mut params = Vec::new();
        if self.peek() != &Token::RParen {
            loop {
                let param = match self.advance() {
                    Token::Name(param) if !param.contains('.') => param,
                    other => {
                        self.pos -= 1;
                        return Err(self.error("a parameter name", other.describe()));
                    }
                };
                self.expect(&Token::Equals)?;
                let value = if self.peek() == &Token::LBracket {
                    self.advance();
                    let items = self.parse_comma_list(&Token::RBracket, Self::parse_primary_nested)?;
                    self.expect(&Token::RBracket)?;
                    Expr::Array(items)
                } else {
                    self.parse_primary_nested()?
                };
                params.push((param, value));
                match self.peek() {
                    Token::Comma => {
                        self.advance();
                    }
                    Token::RParen => break,
                    other => return Err(self.error("',' or ')'", other.describe())),
                }
            }
        }
        self.expect(&Token::RParen)?;
        Ok(Expr::QualifiedCall { name, params })
    }

    fn parse_path(&mut self, first: String) -> Result<Expr, ParseError> {
        let mut path = vec![first];
        while self.peek() == &Token::Slash {
            self.advance();
            let segment = match self.peek() {
                Token::Name(segment) => segment.clone(),
                other => return Err(self.error("a property name after '/'", other.describe())),
            };
            self.advance();
            let lambda = match segment.to_ascii_lowercase().as_str() {
                "any" if self.peek() == &Token::LParen => Some(LambdaKind::Any),
                "all" if self.peek() == &Token::LParen => Some(LambdaKind::All),
                _ => None,
            };
            if let Some(kind) = lambda {
                return self.parse_lambda(path, kind);
            }
            path.push(segment);
        }
        Ok(Expr::Property(path))
    }

    fn parse_lambda(&mut self, collection: Vec<String>, kind: LambdaKind) -> Result<Expr, ParseError> {
        self.expect(&Token::LParen)?;
        if self.peek() == &Token::RParen {
            if kind == LambdaKind::All {
                return Err(self.error("a lambda variable and predicate (all(x:…))", "')'"));
            }
            self.advance();
            return Ok(Expr::Lambda {
                collection,
                kind,
                body: None,
            });
        }
        let variable = match self.peek() {
            Token::Name(name) if !name.contains('.') && !is_reserved(name) => name.clone(),
            other => return Err(self.error("a lambda variable name", other.describe())),
        };
        self.advance();
        self.expect(&Token::Colon)?;
        let predicate = self.parse_nested_or()?;
        self.expect(&Token::RParen)?;
        Ok(Expr::Lambda {
            collection,
            kind,
            body: Some((variable, Box::new(predicate))),
        })
    }
}

/// Names that are operators wherever they appear, so they cannot start an operand.
fn is_reserved(name: &str) -> bool {
    ["and", "or", "eq", "ne", "gt", "ge", "lt", "le", "in", "not"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(name))
}
