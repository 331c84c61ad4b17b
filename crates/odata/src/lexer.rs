use crate::parser::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Slash,
    Equals,
    /// A name; may contain dots (`Microsoft.Dynamics.CRM.In`). Keywords are names too: the parser
    /// decides from the position whether `eq` is an operator.
    Name(String),
    String(String),
    Int(i64),
    Decimal(f64),
    Guid(String),
    DateTimeOffset(jiff::Timestamp),
    Date(jiff::civil::Date),
    End,
}

impl Token {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::LParen => "'('".into(),
            Self::RParen => "')'".into(),
            Self::LBracket => "'['".into(),
            Self::RBracket => "']'".into(),
            Self::Comma => "','".into(),
            Self::Colon => "':'".into(),
            Self::Slash => "'/'".into(),
            Self::Equals => "'='".into(),
            Self::Name(name) => format!("'{name}'"),
            Self::String(_) => "a string".into(),
            Self::Int(value) => format!("number {value}"),
            Self::Decimal(value) => format!("number {value:?}"),
            Self::Guid(value) => format!("GUID {value}"),
            Self::DateTimeOffset(value) => format!("date-time {value}"),
            Self::Date(value) => format!("date {value}"),
            Self::End => "end of input".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Spanned {
    pub token: Token,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Spanned>, ParseError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        let start = pos;
        let single = match c {
            b'(' => Some(Token::LParen),
            b')' => Some(Token::RParen),
            b'[' => Some(Token::LBracket),
            b']' => Some(Token::RBracket),
            b',' => Some(Token::Comma),
            b':' => Some(Token::Colon),
            b'/' => Some(Token::Slash),
            b'=' => Some(Token::Equals),
            _ => None,
        };
        if let Some(token) = single {
            tokens.push(Spanned { token, offset: start });
            pos += 1;
            continue;
        }
        let (token, end) = if c == b'\'' {
            lex_string(input, start)?
        } else if let Some(end) = guid_end(bytes, start) {
            (Token::Guid(input[start..end].to_ascii_lowercase()), end)
        } else if is_date_start(bytes, start) {
            lex_date(input, start)?
        } else if c.is_ascii_digit() || (c == b'-' && bytes.get(pos + 1).is_some_and(u8::is_ascii_digit)) {
            lex_number(input, start)?
        } else if is_name_start(c) {
            let mut end = start + 1;
            while end < bytes.len() && is_name_char(bytes[end]) {
                end += 1;
            }
            (Token::Name(input[start..end].to_owned()), end)
        } else {
            let found = input[start..]
                .chars()
                .next()
                .map(|ch| format!("'{ch}'"))
                .unwrap_or_default();
            return Err(ParseError::new(input, start, "an expression or operator", found));
        };
        tokens.push(Spanned { token, offset: start });
        pos = end;
    }
    tokens.push(Spanned {
        token: Token::End,
        offset: input.len(),
    });
    Ok(tokens)
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'$'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'@' || c == b'#'
}

fn lex_string(input: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let mut value = String::new();
    let mut chars = input[start + 1..].char_indices();
    while let Some((index, c)) = chars.next() {
        if c == '\'' {
            let after = start + 1 + index + 1;
            if input[after..].starts_with('\'') {
                value.push('\'');
                chars.next();
            } else {
                return Ok((Token::String(value), after));
            }
        } else {
            value.push(c);
        }
    }
    let expected = format!(
        "a closing quote (') for the string started at column {}",
        column_of(input, start)
    );
    Err(ParseError::new(input, input.len(), expected, "end of input"))
}

/// A GUID is exactly 8-4-4-4-12 hex digits not followed by a name character.
fn guid_end(bytes: &[u8], start: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut pos = start;
    for (index, len) in GROUPS.iter().enumerate() {
        if index > 0 {
            if bytes.get(pos) != Some(&b'-') {
                return None;
            }
            pos += 1;
        }
        for _ in 0..*len {
            if !bytes.get(pos).is_some_and(u8::is_ascii_hexdigit) {
                return None;
            }
            pos += 1;
        }
    }
    if bytes.get(pos).is_some_and(|c| is_name_char(*c) || *c == b'-') {
        return None;
    }
    Some(pos)
}

fn is_date_start(bytes: &[u8], start: usize) -> bool {
    let digits = |from: usize, count: usize| {
        (from..from + count).all(|i| bytes.get(i).is_some_and(u8::is_ascii_digit))
    };
    digits(start, 4)
        && bytes.get(start + 4) == Some(&b'-')
        && digits(start + 5, 2)
        && bytes.get(start + 7) == Some(&b'-')
        && digits(start + 8, 2)
}

fn lex_date(input: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let bytes = input.as_bytes();
    let date_end = start + 10;
    if bytes.get(date_end) != Some(&b'T') {
        let text = &input[start..date_end];
        return match text.parse::<jiff::civil::Date>() {
            Ok(date) => Ok((Token::Date(date), date_end)),
            Err(_) => Err(ParseError::new(
                input,
                start,
                "a valid date (YYYY-MM-DD)",
                format!("'{text}'"),
            )),
        };
    }
    let mut end = date_end + 1;
    while end < bytes.len() && matches!(bytes[end], b'0'..=b'9' | b':' | b'.' | b'Z' | b'z' | b'+' | b'-') {
        end += 1;
    }
    let text = &input[start..end];
    match text.parse::<jiff::Timestamp>() {
        Ok(timestamp) => Ok((Token::DateTimeOffset(timestamp), end)),
        Err(_) => Err(ParseError::new(
            input,
            start,
            "a date-time with an offset (e.g. 2025-01-31T08:00:00Z)",
            format!("'{text}'"),
        )),
    }
}

fn lex_number(input: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let bytes = input.as_bytes();
    let mut end = start;
    if bytes[end] == b'-' {
        end += 1;
    }
    let digits = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    end = digits(end);
    let mut is_decimal = false;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        is_decimal = true;
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        if bytes.get(exponent).is_some_and(u8::is_ascii_digit) {
            is_decimal = true;
            end = digits(exponent);
        }
    }
    if bytes.get(end).is_some_and(|c| is_name_start(*c)) {
        let found: String = input[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        return Err(ParseError::new(
            input,
            start,
            "a number, GUID or date",
            format!("'{found}'"),
        ));
    }
    let text = &input[start..end];
    let token = if is_decimal {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Token::Decimal(value),
            _ => {
                return Err(ParseError::new(
                    input,
                    start,
                    "a finite decimal number",
                    format!("'{text}'"),
                ));
            }
        }
    } else {
        match text.parse::<i64>() {
            Ok(value) => Token::Int(value),
            Err(_) => {
                return Err(ParseError::new(
                    input,
                    start,
                    "an integer within 64 bits",
                    format!("'{text}'"),
                ));
            }
        }
    };
    Ok((token, end))
}

/// 1-based column in characters (not bytes), which is what a person counts.
pub(crate) fn column_of(input: &str, offset: usize) -> usize {
    input
        .get(..offset)
        .map_or(offset, |prefix| prefix.chars().count())
        + 1
}
