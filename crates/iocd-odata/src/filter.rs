//! The `$filter` syntax tree and its hand-written recursive-descent parser.
//!
//! Grammar (keywords case-insensitive, property names case-sensitive):
//! ```text
//! or_expr    = and_expr { "or" and_expr }
//! and_expr   = unary { "and" unary }
//! unary      = "not" unary | primary
//! primary    = "(" or_expr ")"
//!            | function "(" name "," string ")" [ ("eq" | "ne") ("true" | "false") ]
//!            | list_property "/" ("any" | "all") "(" [ variable ":" or_expr ] ")"
//!            | name operator literal
//!            | name "in" ( "(" literal { "," literal } ")" | "[" literal { "," literal } "]" )
//! ```
//! `not` applies to the whole comparison that follows (`not title eq 'x'`), which is what people mean
//! even though strict OData would bind it to `title` alone.

use crate::catalogue::{
    find_property, find_property_ignoring_case, property_names, Kind, Property,
};
use crate::datetime::parse_datetime;
use crate::error::ODataError;
use crate::lexer::{Lexer, Token, TokenKind};

const OPTION: &str = "$filter";

/// A type-checked `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `target op value`; `value` already has the type the target's column needs.
    Comparison {
        target: Target,
        op: ComparisonOp,
        value: Value,
    },
    /// `target in (v1, v2, …)`: equal to one of the values, each already typed like an `eq`'s.
    /// Never empty and never holding `Null`.
    In {
        target: Target,
        values: Vec<Value>,
    },
    /// `contains/startswith/endswith(target, needle)`, case-insensitive.
    TextMatch {
        target: Target,
        function: TextFunction,
        needle: String,
    },
    /// `list/any(v: predicate)` or `list/all(v: predicate)`; `any()` without a predicate means "not empty".
    Lambda {
        property: &'static Property,
        quantifier: Quantifier,
        predicate: Option<Box<Expr>>,
    },
}

/// What a comparison or text function looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Property(&'static Property),
    /// The lambda variable: one element of the list a `Lambda` ranges over.
    ListElement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl ComparisonOp {
    fn from_keyword(word: &str) -> Option<ComparisonOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => ComparisonOp::Eq,
            "ne" => ComparisonOp::Ne,
            "gt" => ComparisonOp::Gt,
            "ge" => ComparisonOp::Ge,
            "lt" => ComparisonOp::Lt,
            "le" => ComparisonOp::Le,
            _ => return None,
        })
    }

    fn is_equality(self) -> bool {
        matches!(self, ComparisonOp::Eq | ComparisonOp::Ne)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    /// 100 ns ticks since the Unix epoch, UTC.
    DateTime(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFunction {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

/// Bounds that keep hostile input from exhausting the stack (the parser, the SQL writer and `Drop`
/// all recurse over the tree) and stay inside SQLite's expression depth limit of 1000.
pub const MAX_NESTING: usize = 50;
pub const MAX_CONDITIONS: usize = 500;

/// Words that can never be a property or lambda variable, so finding one where a name is
/// expected gets a "expected …" message rather than "unknown property 'and'".
const RESERVED: &[&str] = &[
    "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "true", "false", "null",
];

/// Parses and type-checks a `$filter` value against the indicator catalogue.
pub fn parse_filter(text: &str) -> Result<Expr, ODataError> {
    let mut parser = Parser {
        lexer: Lexer::new(OPTION, text),
        lookahead: None,
        lambda: None,
        nesting: 0,
        conditions: 0,
    };
    let expr = parser.or_expr("")?;
    let rest = parser.advance()?;
    if rest.kind != TokenKind::End {
        return Err(expected("'and', 'or' or end of input", &rest));
    }
    Ok(expr)
}

struct LambdaScope {
    variable: String,
    property: &'static Property,
}

struct Parser {
    lexer: Lexer,
    lookahead: Option<Token>,
    lambda: Option<LambdaScope>,
    /// Current depth of parentheses, `not` and lambdas.
    nesting: usize,
    /// Comparisons, function calls and lambdas seen so far.
    conditions: usize,
}

fn error_at(position: usize, detail: impl std::fmt::Display) -> ODataError {
    ODataError::at(OPTION, position, detail)
}

fn expected(what: impl std::fmt::Display, found: &Token) -> ODataError {
    error_at(
        found.pos,
        format!("expected {what}, found {}", found.describe()),
    )
}

fn is_reserved(name: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

impl Parser {
    fn peek(&mut self) -> Result<&Token, ODataError> {
        if self.lookahead.is_none() {
            self.lookahead = Some(self.lexer.next_token()?);
        }
        Ok(self.lookahead.as_ref().expect("lookahead was just filled"))
    }

    fn advance(&mut self) -> Result<Token, ODataError> {
        match self.lookahead.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn peek_is_keyword(&mut self, keyword: &str) -> Result<bool, ODataError> {
        Ok(self.peek()?.is_keyword(keyword))
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Result<Token, ODataError> {
        let token = self.advance()?;
        if token.kind == kind {
            Ok(token)
        } else {
            Err(expected(what, &token))
        }
    }

    /// `context` completes "expected a condition…" messages, e.g. " after 'and'".
    fn or_expr(&mut self, context: &str) -> Result<Expr, ODataError> {
        let mut left = self.and_expr(context)?;
        while self.peek_is_keyword("or")? {
            self.advance()?;
            let right = self.and_expr(" after 'or'")?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, context: &str) -> Result<Expr, ODataError> {
        let mut left = self.unary(context)?;
        while self.peek_is_keyword("and")? {
            self.advance()?;
            let right = self.unary(" after 'and'")?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Runs `parse` one nesting level deeper, refusing input nested beyond `MAX_NESTING`.
    fn nested<T>(
        &mut self,
        position: usize,
        parse: impl FnOnce(&mut Self) -> Result<T, ODataError>,
    ) -> Result<T, ODataError> {
        if self.nesting >= MAX_NESTING {
            return Err(error_at(
                position,
                format!("expression is nested too deeply (at most {MAX_NESTING} levels)"),
            ));
        }
        self.nesting += 1;
        let result = parse(self);
        self.nesting -= 1;
        result
    }

    fn count_condition(&mut self, position: usize) -> Result<(), ODataError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(error_at(
                position,
                format!("too many conditions (at most {MAX_CONDITIONS})"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self, context: &str) -> Result<Expr, ODataError> {
        if self.peek_is_keyword("not")? {
            let not = self.advance()?;
            let operand = self.nested(not.pos, |p| p.unary(" after 'not'"))?;
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.primary(context)
    }

    fn primary(&mut self, context: &str) -> Result<Expr, ODataError> {
        let token = self.advance()?;
        match &token.kind {
            TokenKind::LParen => {
                let inner = self.nested(token.pos, |p| p.or_expr(" after '('"))?;
                self.expect(
                    TokenKind::RParen,
                    &format!("')' to close the '(' at position {}", token.pos),
                )?;
                Ok(inner)
            }
            TokenKind::Name(name) if !is_reserved(name) => {
                self.count_condition(token.pos)?;
                if self.peek()?.kind == TokenKind::LParen {
                    return self.text_function(&token);
                }
                let target = self.resolve_target(&token)?;
                if self.peek()?.kind == TokenKind::Slash {
                    return self.nested(token.pos, |p| p.lambda(&token, target));
                }
                self.comparison(&token, target)
            }
            TokenKind::Str(_) | TokenKind::Int(_) | TokenKind::DateTime(_) => Err(error_at(
                token.pos,
                format!(
                    "expected a property name{context}, found {} (the property goes on the left: title eq 'x')",
                    token.describe()
                ),
            )),
            _ => Err(expected(format_args!("a condition{context}"), &token)),
        }
    }

    /// Resolves a name to a property, or to the lambda variable inside `any`/`all`.
    fn resolve_target(&self, token: &Token) -> Result<Target, ODataError> {
        let TokenKind::Name(name) = &token.kind else {
            return Err(expected("a property name", token));
        };
        if let Some(scope) = &self.lambda {
            if *name == scope.variable {
                return Ok(Target::ListElement);
            }
            return Err(error_at(
                token.pos,
                format!(
                    "inside {}/any(…) only the lambda variable '{}' can be used, found '{name}'",
                    scope.property.name, scope.variable
                ),
            ));
        }
        if let Some(property) = find_property(name) {
            return Ok(Target::Property(property));
        }
        if let Some(property) = find_property_ignoring_case(name) {
            return Err(error_at(
                token.pos,
                format!(
                    "unknown property '{name}'; did you mean '{}'? (property names are case-sensitive)",
                    property.name
                ),
            ));
        }
        Err(error_at(
            token.pos,
            format!(
                "unknown property '{name}'; filterable properties are: {}",
                property_names(|_| true)
            ),
        ))
    }

    fn comparison(&mut self, target_token: &Token, target: Target) -> Result<Expr, ODataError> {
        if let Target::Property(property) = target {
            if property.kind == Kind::TextList {
                return Err(error_at(
                    target_token.pos,
                    format!(
                        "{0} is a collection; filter it with {0}/any(g: g eq 'value')",
                        property.name
                    ),
                ));
            }
        }
        let op_token = self.advance()?;
        let op = match &op_token.kind {
            TokenKind::Name(word) => ComparisonOp::from_keyword(word),
            _ => None,
        };
        if op_token.is_keyword("in") {
            return self.in_list(target, &op_token);
        }
        let Some(op) = op else {
            if op_token.is_keyword("has") {
                return Err(error_at(
                    op_token.pos,
                    format!(
                        "operator '{}' is not supported; combine eq comparisons with 'or'",
                        op_token.text
                    ),
                ));
            }
            return Err(expected(
                format_args!(
                    "a comparison operator (eq, ne, gt, ge, lt, le) after '{}'",
                    target_token.text
                ),
                &op_token,
            ));
        };
        let literal = self.advance()?;
        self.check_literal(&op_token, &literal)?;
        let (kind, display_name) = self.describe_target(target);
        let value = typed_value(kind, &display_name, op, &op_token, &literal)?;
        Ok(Expr::Comparison { target, op, value })
    }

    /// Refuses anything but a literal where a comparison needs one, with a hint at the mistake.
    fn check_literal(&self, op_token: &Token, literal: &Token) -> Result<(), ODataError> {
        let is_literal = match &literal.kind {
            TokenKind::Str(_) | TokenKind::Int(_) | TokenKind::DateTime(_) => true,
            TokenKind::Name(_) => {
                literal.is_keyword("true")
                    || literal.is_keyword("false")
                    || literal.is_keyword("null")
            }
            _ => false,
        };
        if !is_literal {
            let hint = if find_property(&literal.text).is_some() {
                " (comparing two properties is not supported)".to_string()
            } else if matches!(literal.kind, TokenKind::Name(_)) {
                format!(" (string values need single quotes: '{}')", literal.text)
            } else {
                String::new()
            };
            return Err(error_at(
                literal.pos,
                format!(
                    "expected a literal after '{}', found {}{hint}",
                    op_token.text,
                    literal.describe()
                ),
            ));
        }
        Ok(())
    }

    /// The values after `in`: `('a','b')` or, as ASP.NET OData also accepts, `['a','b']`. Each
    /// is typed as an `eq` would type it; every value after the first counts as a condition.
    fn in_list(&mut self, target: Target, in_token: &Token) -> Result<Expr, ODataError> {
        let open = self.advance()?;
        let close = match open.kind {
            TokenKind::LParen => TokenKind::RParen,
            TokenKind::LBracket => TokenKind::RBracket,
            _ => {
                return Err(expected(
                    format_args!(
                        "'(' or '[' after '{}' (a list such as ('a','b'))",
                        in_token.text
                    ),
                    &open,
                ))
            }
        };
        let closer = if close == TokenKind::RParen { ')' } else { ']' };
        let (kind, display_name) = self.describe_target(target);
        let mut values = Vec::new();
        loop {
            let literal = self.advance()?;
            if literal.kind == close && values.is_empty() {
                return Err(error_at(
                    literal.pos,
                    format!("'{}' needs at least one value", in_token.text),
                ));
            }
            self.check_literal(in_token, &literal)?;
            if literal.is_keyword("null") {
                return Err(error_at(
                    literal.pos,
                    format!(
                        "null cannot be in an '{}' list; write {display_name} eq null as a condition of its own",
                        in_token.text
                    ),
                ));
            }
            if !values.is_empty() {
                self.count_condition(literal.pos)?;
            }
            values.push(typed_value(
                kind,
                &display_name,
                ComparisonOp::Eq,
                in_token,
                &literal,
            )?);
            let separator = self.advance()?;
            if separator.kind == close {
                return Ok(Expr::In { target, values });
            }
            if separator.kind != TokenKind::Comma {
                return Err(expected(
                    format_args!(
                        "',' or '{closer}' to close the list at position {}",
                        open.pos
                    ),
                    &separator,
                ));
            }
        }
    }

    /// The kind that governs literals for `target` and the name to use in messages.
    fn describe_target(&self, target: Target) -> (Kind, String) {
        match (target, &self.lambda) {
            (Target::Property(p), _) => (p.kind, p.name.to_string()),
            (Target::ListElement, Some(scope)) => (
                Kind::Text,
                format!(
                    "'{}' (an element of {})",
                    scope.variable, scope.property.name
                ),
            ),
            (Target::ListElement, None) => (Kind::Text, "the lambda variable".to_string()),
        }
    }

    fn text_function(&mut self, name_token: &Token) -> Result<Expr, ODataError> {
        let function = match name_token.text.to_ascii_lowercase().as_str() {
            "contains" => TextFunction::Contains,
            "startswith" => TextFunction::StartsWith,
            "endswith" => TextFunction::EndsWith,
            _ => {
                return Err(error_at(
                    name_token.pos,
                    format!(
                        "unknown function '{}'; supported functions are contains, startswith and endswith",
                        name_token.text
                    ),
                ))
            }
        };
        let function_name = name_token.text.as_str();
        self.expect(TokenKind::LParen, "'('")?;
        let target_token = self.advance()?;
        if !matches!(&target_token.kind, TokenKind::Name(n) if !is_reserved(n)) {
            return Err(expected(
                format_args!("a property name as the first argument of {function_name}()"),
                &target_token,
            ));
        }
        let target = self.resolve_target(&target_token)?;
        let (kind, display_name) = self.describe_target(target);
        if !matches!(kind, Kind::Text | Kind::Enum(_)) {
            return Err(error_at(
                target_token.pos,
                format!(
                    "{function_name}() needs a text property, but {display_name} is {}",
                    kind_description(kind)
                ),
            ));
        }
        self.expect(
            TokenKind::Comma,
            &format!("',' after the first argument of {function_name}()"),
        )?;
        let needle_token = self.advance()?;
        let TokenKind::Str(needle) = needle_token.kind.clone() else {
            return Err(expected(
                format_args!(
                    "a string literal in single quotes as the second argument of {function_name}()"
                ),
                &needle_token,
            ));
        };
        self.expect(
            TokenKind::RParen,
            &format!(
                "')' to close {function_name}( at position {}",
                name_token.pos
            ),
        )?;
        let mut expr = Expr::TextMatch {
            target,
            function,
            needle,
        };
        // Some clients write `contains(title,'x') eq true`; accept a comparison with a boolean.
        if self.peek_is_keyword("eq")? || self.peek_is_keyword("ne")? {
            let op_token = self.advance()?;
            let literal = self.advance()?;
            let wanted = if literal.is_keyword("true") {
                true
            } else if literal.is_keyword("false") {
                false
            } else {
                return Err(expected(
                    format_args!(
                        "true or false after '{}' ({function_name}() is boolean)",
                        op_token.text
                    ),
                    &literal,
                ));
            };
            if wanted != op_token.is_keyword("eq") {
                expr = Expr::Not(Box::new(expr));
            }
        }
        Ok(expr)
    }

    fn lambda(&mut self, list_token: &Token, target: Target) -> Result<Expr, ODataError> {
        let slash = self.advance()?;
        let property = match target {
            Target::Property(p) if p.kind == Kind::TextList => p,
            _ => {
                return Err(error_at(
                    slash.pos,
                    format!(
                        "'/' is only supported after {} (any/all lambdas)",
                        property_names(|p| p.kind == Kind::TextList).replace(", ", " or ")
                    ),
                ))
            }
        };
        let quantifier_token = self.advance()?;
        let quantifier = if quantifier_token.is_keyword("any") {
            Quantifier::Any
        } else if quantifier_token.is_keyword("all") {
            Quantifier::All
        } else {
            return Err(expected(
                format_args!("any or all after '{}/'", list_token.text),
                &quantifier_token,
            ));
        };
        let open = self.expect(
            TokenKind::LParen,
            &format!("'(' after '{}'", quantifier_token.text),
        )?;
        if self.peek()?.kind == TokenKind::RParen {
            let close = self.advance()?;
            if quantifier == Quantifier::All {
                return Err(error_at(
                    close.pos,
                    "all() needs a condition, e.g. all(g: g ne 'x')",
                ));
            }
            return Ok(Expr::Lambda {
                property,
                quantifier,
                predicate: None,
            });
        }
        let variable_token = self.advance()?;
        let variable = match &variable_token.kind {
            TokenKind::Name(name) if !is_reserved(name) => name.clone(),
            _ => {
                return Err(expected(
                    "a lambda variable (e.g. g in any(g: g eq 'x'))",
                    &variable_token,
                ))
            }
        };
        self.expect(
            TokenKind::Colon,
            &format!("':' after the lambda variable '{variable}'"),
        )?;
        let outer = self.lambda.replace(LambdaScope { variable, property });
        let predicate = self.or_expr(" after ':'");
        self.lambda = outer;
        let predicate = predicate?;
        self.expect(
            TokenKind::RParen,
            &format!("')' to close the '(' at position {}", open.pos),
        )?;
        Ok(Expr::Lambda {
            property,
            quantifier,
            predicate: Some(Box::new(predicate)),
        })
    }
}

fn kind_description(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a text property",
        Kind::Enum(_) => "an enumeration",
        Kind::DateTime => "a datetime property",
        Kind::Bool => "a boolean property",
        Kind::Int => "an integer property",
        Kind::TextList => "a collection",
    }
}

/// Checks the literal against the target's kind and converts it to the value the column holds.
fn typed_value(
    kind: Kind,
    name: &str,
    op: ComparisonOp,
    op_token: &Token,
    literal: &Token,
) -> Result<Value, ODataError> {
    if literal.is_keyword("null") {
        if !op.is_equality() {
            return Err(error_at(
                op_token.pos,
                format!(
                    "null can only be compared with eq or ne, not '{}'",
                    op_token.text
                ),
            ));
        }
        return Ok(Value::Null);
    }
    // Ordering on text is left out on purpose: SQLite and PostgreSQL collate differently, so the
    // two backends would disagree, and no known client sends it.
    if !op.is_equality() && !matches!(kind, Kind::DateTime | Kind::Int) {
        let alternatives = match kind {
            Kind::Text | Kind::Enum(_) => "eq, ne, contains(), startswith() or endswith()",
            _ => "eq or ne",
        };
        return Err(error_at(
            op_token.pos,
            format!(
                "operator '{}' is not supported for {name} ({}); use {alternatives}",
                op_token.text,
                kind_description(kind)
            ),
        ));
    }
    let mismatch = |wanted: String| {
        error_at(
            literal.pos,
            format!(
                "{name} is {}: expected {wanted}, found {}",
                kind_description(kind),
                literal.describe()
            ),
        )
    };
    match (kind, &literal.kind) {
        (Kind::Text, TokenKind::Str(s)) => Ok(Value::Text(s.clone())),
        (Kind::Text, _) => Err(mismatch("a string literal in single quotes".to_string())),
        (Kind::Enum(allowed), TokenKind::Str(s)) => {
            if allowed.contains(&s.as_str()) {
                return Ok(Value::Text(s.clone()));
            }
            let hint = allowed
                .iter()
                .find(|v| v.eq_ignore_ascii_case(s))
                .map(|v| format!(" (values are case-sensitive; did you mean '{v}'?)"))
                .unwrap_or_default();
            Err(error_at(
                literal.pos,
                format!(
                    "'{s}' is not a valid value for {name}{hint}; allowed values: {}",
                    allowed.join(", ")
                ),
            ))
        }
        (Kind::Enum(allowed), _) => Err(mismatch(format!(
            "one of {} in single quotes",
            allowed.join(", ")
        ))),
        (Kind::DateTime, TokenKind::DateTime(ticks)) => Ok(Value::DateTime(*ticks)),
        (Kind::DateTime, TokenKind::Str(s)) => {
            parse_datetime(s).map(Value::DateTime).map_err(|reason| {
                error_at(
                    literal.pos,
                    format!(
                        "{name} is a datetime property: invalid datetime {}: {reason}",
                        literal.text
                    ),
                )
            })
        }
        (Kind::DateTime, _) => Err(mismatch(
            "a datetime such as 2024-01-01T00:00:00Z".to_string(),
        )),
        (Kind::Bool, TokenKind::Name(_)) if literal.is_keyword("true") => Ok(Value::Bool(true)),
        (Kind::Bool, TokenKind::Name(_)) if literal.is_keyword("false") => Ok(Value::Bool(false)),
        (Kind::Bool, _) => Err(mismatch("true or false".to_string())),
        (Kind::Int, TokenKind::Int(i)) => Ok(Value::Int(*i)),
        // Ids are strings on the wire, so clients quote them.
        (Kind::Int, TokenKind::Str(s)) if s.parse::<i64>().is_ok() => {
            Ok(Value::Int(s.parse().expect("checked by the guard")))
        }
        (Kind::Int, _) => Err(mismatch("an integer such as 17 or '17'".to_string())),
        (Kind::TextList, _) => Err(mismatch("a lambda such as any(g: g eq 'x')".to_string())),
    }
}
