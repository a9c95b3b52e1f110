//! Splits `$filter` / `$orderby` text into tokens, tracking 0-based character positions for errors.

use crate::datetime::{looks_like_datetime, parse_datetime_prefix};
use crate::error::ODataError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A property, keyword, function or lambda variable; the parser decides which.
    Name(String),
    /// A single-quoted literal with `''` already turned into `'`.
    Str(String),
    Int(i64),
    /// An unquoted datetime, already converted to ticks.
    DateTime(i64),
    LParen,
    RParen,
    /// `[` and `]`: only around the values of `in`, a form ASP.NET OData accepts.
    LBracket,
    RBracket,
    Comma,
    Slash,
    Colon,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// Character offset of the token's first character.
    pub pos: usize,
    /// The token as written, for "found …" in messages.
    pub text: String,
}

impl Token {
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.kind, TokenKind::Name(n) if n.eq_ignore_ascii_case(keyword))
    }

    /// How the token reads in an error message ("found …").
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::End => "end of input".to_string(),
            TokenKind::Str(_) => format!("string literal {}", self.text),
            TokenKind::Int(_) => format!("number {}", self.text),
            TokenKind::DateTime(_) => format!("datetime {}", self.text),
            _ => format!("'{}'", self.text),
        }
    }
}

pub(crate) struct Lexer {
    option: &'static str,
    chars: Vec<char>,
    at: usize,
}

impl Lexer {
    pub fn new(option: &'static str, text: &str) -> Self {
        Lexer {
            option,
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn error(&self, position: usize, detail: impl std::fmt::Display) -> ODataError {
        ODataError::at(self.option, position, detail)
    }

    fn text_from(&self, start: usize) -> String {
        self.chars[start..self.at].iter().collect()
    }

    pub fn next_token(&mut self) -> Result<Token, ODataError> {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
        let start = self.at;
        let Some(&c) = self.chars.get(start) else {
            return Ok(Token {
                kind: TokenKind::End,
                pos: start,
                text: String::new(),
            });
        };
        let kind = match c {
            '(' | ')' | '[' | ']' | ',' | '/' | ':' => {
                self.at += 1;
                match c {
                    '(' => TokenKind::LParen,
                    ')' => TokenKind::RParen,
                    '[' => TokenKind::LBracket,
                    ']' => TokenKind::RBracket,
                    ',' => TokenKind::Comma,
                    '/' => TokenKind::Slash,
                    _ => TokenKind::Colon,
                }
            }
            '\'' => self.string_literal()?,
            c if c.is_ascii_digit()
                || (c == '-' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number_or_datetime()?
            }
            c if c.is_alphabetic() || c == '_' => {
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    self.at += 1;
                }
                TokenKind::Name(self.text_from(start))
            }
            other => {
                let hint = if other == '"' {
                    " (string literals use single quotes)"
                } else {
                    ""
                };
                return Err(self.error(start, format!("unexpected character '{other}'{hint}")));
            }
        };
        Ok(Token {
            kind,
            pos: start,
            text: self.text_from(start),
        })
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn string_literal(&mut self) -> Result<TokenKind, ODataError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            match self.chars.get(self.at) {
                None => {
                    return Err(self.error(
                        start,
                        "unterminated string literal (a quote inside a value is written as '', \
                         and '&' or '#' inside a value must be percent-encoded)",
                    ))
                }
                Some('\'') if self.peek_at(1) == Some('\'') => {
                    value.push('\'');
                    self.at += 2;
                }
                Some('\'') => {
                    self.at += 1;
                    return Ok(TokenKind::Str(value));
                }
                Some(&c) => {
                    value.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn number_or_datetime(&mut self) -> Result<TokenKind, ODataError> {
        let start = self.at;
        let kind = if looks_like_datetime(&self.chars[start..]) {
            let (ticks, used) = parse_datetime_prefix(&self.chars[start..]).map_err(|reason| {
                self.error(start, format!("invalid datetime literal: {reason}"))
            })?;
            self.at += used;
            TokenKind::DateTime(ticks)
        } else {
            if self.chars[start] == '-' {
                self.at += 1;
            }
            while self.chars.get(self.at).is_some_and(char::is_ascii_digit) {
                self.at += 1;
            }
            let text = self.text_from(start);
            let value = text
                .parse::<i64>()
                .map_err(|_| self.error(start, format!("integer {text} is out of range")))?;
            TokenKind::Int(value)
        };
        // "17abc", "1.5" or "…Zfoo" is not something we silently split into two tokens.
        if let Some(&c) = self.chars.get(self.at) {
            if c.is_alphanumeric() || c == '_' || c == '.' || c == '\'' {
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | ']' | ','))
                {
                    self.at += 1;
                }
                return Err(self.error(
                    start,
                    format!("invalid literal '{}'", self.text_from(start)),
                ));
            }
        }
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut lexer = Lexer::new("$filter", text);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().unwrap();
            if token.kind == TokenKind::End {
                return out;
            }
            out.push(token.kind);
        }
    }

    #[test]
    fn doubled_quotes_are_one_quote() {
        assert_eq!(
            kinds("title eq 'it''s'"),
            vec![
                TokenKind::Name("title".into()),
                TokenKind::Name("eq".into()),
                TokenKind::Str("it's".into())
            ]
        );
    }

    #[test]
    fn positions_are_character_offsets() {
        let mut lexer = Lexer::new("$filter", "'é' eq x");
        lexer.next_token().unwrap();
        assert_eq!(lexer.next_token().unwrap().pos, 4);
    }

    #[test]
    fn numbers_and_datetimes() {
        assert_eq!(
            kinds("-17 42"),
            vec![TokenKind::Int(-17), TokenKind::Int(42)]
        );
        assert_eq!(
            kinds("1970-01-01T00:00:01Z)"),
            vec![TokenKind::DateTime(10_000_000), TokenKind::RParen]
        );
        let error = Lexer::new("$filter", "17abc").next_token().unwrap_err();
        assert_eq!(
            error.message,
            "$filter: position 0: invalid literal '17abc'"
        );
    }
}
