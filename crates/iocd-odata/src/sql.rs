//! Compiles a `$filter` expression to a parameterised SQL condition.
//!
//! Every user-supplied value becomes a bind parameter; only column names from the catalogue and
//! fixed keywords are written into the SQL text.
//!
//! NULL handling: OData comparisons are two-valued (`application ne 'x'` is true for a row whose
//! application is null; `not (expirationTime lt X)` is true for a row that never expires), while SQL
//! comparisons with NULL are unknown. Negations are therefore pushed down to the leaves, and a
//! negated comparison on a nullable column adds `OR column IS NULL`. Positive comparisons stay in
//! their plain, index-friendly form (`indicator_value = ?`).

use crate::catalogue::Property;
use crate::filter::{ComparisonOp, Expr, Quantifier, Target, TextFunction, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value to bind, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A SQL condition and its bind values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFragment {
    pub sql: String,
    pub binds: Vec<SqlValue>,
}

impl Expr {
    /// Compiles to a condition for a `WHERE` clause on the indicators table (columns unqualified).
    ///
    /// Placeholders are `?` for SQLite and `$first_placeholder`, `$first_placeholder + 1`, … for
    /// PostgreSQL. Top-level `OR`s are parenthesised, so the fragment can be joined to other
    /// conditions with `AND` as it is.
    pub fn to_sql(&self, dialect: Dialect, first_placeholder: usize) -> SqlFragment {
        let mut writer = SqlWriter {
            dialect,
            next_placeholder: first_placeholder,
            sql: String::new(),
            binds: Vec::new(),
        };
        writer.expr(self, false);
        SqlFragment {
            sql: writer.sql,
            binds: writer.binds,
        }
    }
}

struct SqlWriter {
    dialect: Dialect,
    next_placeholder: usize,
    sql: String,
    binds: Vec<SqlValue>,
}

/// Collects the operands of a chain of ANDs (or of ORs), looking through `not` with De Morgan,
/// so `a or b or c` becomes one flat `(a OR b OR c)`.
fn flatten<'e>(expr: &'e Expr, negated: bool, want_or: bool, out: &mut Vec<(&'e Expr, bool)>) {
    match expr {
        Expr::Not(inner) => flatten(inner, !negated, want_or, out),
        Expr::And(a, b) | Expr::Or(a, b) if is_or(expr, negated) == Some(want_or) => {
            flatten(a, negated, want_or, out);
            flatten(b, negated, want_or, out);
        }
        _ => out.push((expr, negated)),
    }
}

/// Whether the node acts as an OR once negation is applied; `None` for non-logical nodes.
fn is_or(expr: &Expr, negated: bool) -> Option<bool> {
    match expr {
        Expr::And(..) => Some(negated),
        Expr::Or(..) => Some(!negated),
        _ => None,
    }
}

fn like_pattern(function: TextFunction, needle: &str) -> String {
    let mut escaped = String::with_capacity(needle.len() + 2);
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match function {
        TextFunction::Contains => format!("%{escaped}%"),
        TextFunction::StartsWith => format!("{escaped}%"),
        TextFunction::EndsWith => format!("%{escaped}"),
    }
}

/// The operator that is true exactly when `op` is false (for non-null operands).
fn complement(op: ComparisonOp) -> ComparisonOp {
    match op {
        ComparisonOp::Eq => ComparisonOp::Ne,
        ComparisonOp::Ne => ComparisonOp::Eq,
        ComparisonOp::Gt => ComparisonOp::Le,
        ComparisonOp::Ge => ComparisonOp::Lt,
        ComparisonOp::Lt => ComparisonOp::Ge,
        ComparisonOp::Le => ComparisonOp::Gt,
    }
}

fn sql_operator(op: ComparisonOp) -> &'static str {
    match op {
        ComparisonOp::Eq => "=",
        ComparisonOp::Ne => "<>",
        ComparisonOp::Gt => ">",
        ComparisonOp::Ge => ">=",
        ComparisonOp::Lt => "<",
        ComparisonOp::Le => "<=",
    }
}

/// The bind value of a literal; `None` for `null`, which SQL tests with `IS NULL` instead.
fn sql_value(value: &Value) -> Option<SqlValue> {
    match value {
        Value::Null => None,
        Value::Text(s) => Some(SqlValue::Text(s.clone())),
        Value::Int(i) | Value::DateTime(i) => Some(SqlValue::Int(*i)),
        Value::Bool(b) => Some(SqlValue::Bool(*b)),
    }
}

impl SqlWriter {
    fn bind(&mut self, value: SqlValue) {
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                self.sql.push_str(&format!("${}", self.next_placeholder));
                self.next_placeholder += 1;
            }
        }
        self.binds.push(value);
    }

    fn column(&self, target: Target) -> &'static str {
        match (target, self.dialect) {
            (Target::Property(p), _) => p.column,
            (Target::ListElement, Dialect::Sqlite) => "value",
            (Target::ListElement, Dialect::Postgres) => "e.value",
        }
    }

    fn expr(&mut self, expr: &Expr, negated: bool) {
        match expr {
            Expr::Not(inner) => self.expr(inner, !negated),
            Expr::And(..) | Expr::Or(..) => {
                let as_or = is_or(expr, negated) == Some(true);
                let mut operands = Vec::new();
                flatten(expr, negated, as_or, &mut operands);
                if as_or {
                    self.sql.push('(');
                }
                for (i, (operand, operand_negated)) in operands.into_iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(if as_or { " OR " } else { " AND " });
                    }
                    self.expr(operand, operand_negated);
                }
                if as_or {
                    self.sql.push(')');
                }
            }
            Expr::Comparison { target, op, value } => self.comparison(*target, *op, value, negated),
            Expr::In { target, values } => self.in_list(*target, values, negated),
            Expr::TextMatch {
                target,
                function,
                needle,
            } => self.text_match(*target, *function, needle, negated),
            Expr::Lambda {
                property,
                quantifier,
                predicate,
            } => self.lambda(property, *quantifier, predicate.as_deref(), negated),
        }
    }

    /// Writes `positive` for the leaf; when negated on a nullable column, also matches NULL.
    fn with_null_fallback(&mut self, target: Target, negated: bool, write: impl FnOnce(&mut Self)) {
        let nullable = matches!(target, Target::Property(Property { nullable: true, .. }));
        if negated && nullable {
            self.sql.push('(');
            write(self);
            let column = self.column(target);
            self.sql.push_str(&format!(" OR {column} IS NULL)"));
        } else {
            write(self);
        }
    }

    fn comparison(&mut self, target: Target, op: ComparisonOp, value: &Value, negated: bool) {
        let column = self.column(target);
        let Some(bind) = sql_value(value) else {
            let is_null = (op == ComparisonOp::Eq) != negated;
            let test = if is_null { "IS NULL" } else { "IS NOT NULL" };
            self.sql.push_str(&format!("{column} {test}"));
            return;
        };
        // `ne` is a negated `eq`, so that it picks up the NULL rule below.
        let (op, negated) = if op == ComparisonOp::Ne {
            (ComparisonOp::Eq, !negated)
        } else {
            (op, negated)
        };
        let effective = if negated { complement(op) } else { op };
        self.with_null_fallback(target, negated, |w| {
            w.sql
                .push_str(&format!("{column} {} ", sql_operator(effective)));
            w.bind(bind);
        });
    }

    /// `column IN (…)`, which both databases serve from the column's index like an `=`.
    fn in_list(&mut self, target: Target, values: &[Value], negated: bool) {
        let column = self.column(target);
        let not = if negated { "NOT " } else { "" };
        self.with_null_fallback(target, negated, |w| {
            w.sql.push_str(&format!("{column} {not}IN ("));
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    w.sql.push_str(", ");
                }
                w.bind(sql_value(value).expect("the parser keeps null out of 'in' lists"));
            }
            w.sql.push(')');
        });
    }

    fn text_match(&mut self, target: Target, function: TextFunction, needle: &str, negated: bool) {
        let column = self.column(target);
        // SQLite's LIKE is already case-insensitive (for ASCII); PostgreSQL needs ILIKE.
        let like = match self.dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        let not = if negated { "NOT " } else { "" };
        let pattern = like_pattern(function, needle);
        self.with_null_fallback(target, negated, |w| {
            w.sql.push_str(&format!("{column} {not}{like} "));
            w.bind(SqlValue::Text(pattern));
            w.sql.push_str(" ESCAPE '\\'");
        });
    }

    fn lambda(
        &mut self,
        property: &Property,
        quantifier: Quantifier,
        predicate: Option<&Expr>,
        negated: bool,
    ) {
        // all(p) is "no element where not p"; fold that negation into the EXISTS polarity.
        let (exists, element_negated) = match quantifier {
            Quantifier::Any => (!negated, false),
            Quantifier::All => (negated, true),
        };
        let column = property.column;
        let source = match self.dialect {
            Dialect::Sqlite => format!("json_each({column})"),
            Dialect::Postgres => {
                format!("jsonb_array_elements_text({column}::jsonb) AS e(value)")
            }
        };
        let not = if exists { "" } else { "NOT " };
        self.sql
            .push_str(&format!("{not}EXISTS (SELECT 1 FROM {source}"));
        if let Some(predicate) = predicate {
            self.sql.push_str(" WHERE ");
            self.expr(predicate, element_negated);
        }
        self.sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(
            like_pattern(TextFunction::Contains, r"50%_a\b"),
            r"%50\%\_a\\b%"
        );
        assert_eq!(like_pattern(TextFunction::StartsWith, "x"), "x%");
        assert_eq!(like_pattern(TextFunction::EndsWith, "x"), "%x");
    }
}
