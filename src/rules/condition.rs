//! The `condition` expression of a Sigma detection.
//!
//! Grammar (precedence `not` > `and` > `or`, all left-associative):
//! ```text
//! or    := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | "(" or ")" | quant | IDENT
//! quant := ("1" | "any" | "all") "of" (PATTERN | "them")
//! ```
//! Keywords are case-insensitive. `them` means every selection whose name does not start
//! with `_`. A pattern may use `*` as a wildcard over selection names.

use super::matcher::Cond;

/// A condition error with the character offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CondError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Pipe,
    Word(String),
}

fn lex(text: &str) -> Vec<(Tok, usize)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.chars().enumerate().collect();
    let mut i = 0;
    while i < chars.len() {
        let (off, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Tok::LParen, off));
                i += 1
            }
            ')' => {
                out.push((Tok::RParen, off));
                i += 1
            }
            '|' => {
                out.push((Tok::Pipe, off));
                i += 1
            }
            _ => {
                let start = off;
                let mut w = String::new();
                while i < chars.len() {
                    let c = chars[i].1;
                    if c.is_whitespace() || c == '(' || c == ')' || c == '|' {
                        break;
                    }
                    w.push(c);
                    i += 1;
                }
                out.push((Tok::Word(w), start));
            }
        }
    }
    out
}

struct P<'s> {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
    names: &'s [String],
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

fn glob_names(pattern: &str, name: &str) -> bool {
    // `*` only; selection names are matched case-sensitively, as written.
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (k, part) in parts.iter().enumerate() {
        if k == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if k == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(p) => rest = &rest[p + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn off(&self) -> usize {
        self.toks.get(self.i).map(|(_, o)| *o).unwrap_or(self.end)
    }
    fn err(&self, offset: usize, message: impl Into<String>, hint: Option<String>) -> CondError {
        CondError {
            offset,
            message: message.into(),
            hint,
        }
    }

    fn or(&mut self) -> Result<Cond, CondError> {
        let mut items = vec![self.and()?];
        while self.peek().is_some_and(|t| is_kw(t, "or")) {
            self.i += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, CondError> {
        let mut items = vec![self.unary()?];
        while self.peek().is_some_and(|t| is_kw(t, "and")) {
            self.i += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Cond::And(items)
        })
    }

    fn unary(&mut self) -> Result<Cond, CondError> {
        let off = self.off();
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err(
                off,
                "condition ends where a selection name was expected",
                None,
            ));
        };
        match tok {
            Tok::LParen => {
                self.i += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.err(
                        self.off(),
                        "missing `)`",
                        Some(format!("the `(` at offset {off} is not closed")),
                    ));
                }
                self.i += 1;
                Ok(inner)
            }
            Tok::RParen => Err(self.err(off, "unexpected `)`", None)),
            Tok::Pipe => Err(self.err(off, "unexpected `|`", None)),
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                self.i += 1;
                Ok(Cond::Not(Box::new(self.unary()?)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") => {
                Err(self.err(off, format!("`{w}` needs a selection before it"), None))
            }
            Tok::Word(w)
                if self
                    .toks
                    .get(self.i + 1)
                    .is_some_and(|(t, _)| is_kw(t, "of")) =>
            {
                let all = if w.eq_ignore_ascii_case("all") {
                    true
                } else if w == "1" || w.eq_ignore_ascii_case("any") {
                    false
                } else {
                    return Err(self.err(
                        off,
                        format!("`{w} of` is not a Sigma quantifier"),
                        Some("use `1 of <pattern>` or `all of <pattern>`".into()),
                    ));
                };
                self.i += 2;
                let poff = self.off();
                let Some(Tok::Word(pattern)) = self.peek().cloned() else {
                    return Err(self.err(
                        poff,
                        format!("`{w} of` needs a selection pattern or `them` after it"),
                        None,
                    ));
                };
                self.i += 1;
                let chosen: Vec<usize> = if pattern.eq_ignore_ascii_case("them") {
                    (0..self.names.len())
                        .filter(|&k| !self.names[k].starts_with('_'))
                        .collect()
                } else {
                    (0..self.names.len())
                        .filter(|&k| glob_names(&pattern, &self.names[k]))
                        .collect()
                };
                if chosen.is_empty() {
                    return Err(self.err(
                        poff,
                        format!("`{pattern}` matches no selection"),
                        Some(format!("selections defined: {}", self.names.join(", "))),
                    ));
                }
                let items: Vec<Cond> = chosen.into_iter().map(Cond::Sel).collect();
                Ok(if items.len() == 1 {
                    items.into_iter().next().unwrap_or(Cond::Or(Vec::new()))
                } else if all {
                    Cond::And(items)
                } else {
                    Cond::Or(items)
                })
            }
            Tok::Word(w) => {
                self.i += 1;
                match self.names.iter().position(|n| *n == w) {
                    Some(k) => Ok(Cond::Sel(k)),
                    None => {
                        let hint = match did_you_mean(&w, self.names.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("selections defined: {}", self.names.join(", ")),
                        };
                        Err(self.err(
                            off,
                            format!("condition refers to undefined selection `{w}`"),
                            Some(hint),
                        ))
                    }
                }
            }
        }
    }
}

/// Parses `text` against the selection `names` (in definition order).
pub(crate) fn parse(text: &str, names: &[String]) -> Result<Cond, CondError> {
    let toks = lex(text);
    let end = text.chars().count();
    if let Some(k) = toks.iter().position(|(t, _)| *t == Tok::Pipe) {
        let near =
            matches!(toks.get(k + 1), Some((Tok::Word(w), _)) if w.eq_ignore_ascii_case("near"));
        let (message, hint) = if near {
            (
                "`| near ...` is the deprecated Sigma syntax for events close in time",
                "this version does not evaluate it; the modern form is a Sigma correlation rule of `type: temporal`, not supported yet either",
            )
        } else {
            (
                "`| count() ...` is the deprecated Sigma aggregation syntax",
                "this version does not evaluate aggregations; the modern form is a separate Sigma correlation rule (`correlation: {type: event_count, ...}`), not supported yet either",
            )
        };
        return Err(CondError {
            offset: toks[k].1,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }
    if toks.is_empty() {
        return Err(CondError {
            offset: 0,
            message: "the condition is empty".into(),
            hint: None,
        });
    }
    let mut p = P {
        toks,
        i: 0,
        end,
        names,
    };
    let cond = p.or()?;
    if p.i < p.toks.len() {
        let off = p.off();
        let what = match &p.toks[p.i].0 {
            Tok::Word(w) => format!("`{w}`"),
            Tok::RParen => "`)`".into(),
            Tok::LParen => "`(`".into(),
            Tok::Pipe => "`|`".into(),
        };
        return Err(CondError {
            offset: off,
            message: format!("unexpected {what} after a complete expression"),
            hint: Some("join expressions with `and` or `or`".into()),
        });
    }
    Ok(cond)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_not_and_or() {
        let n = names(&["a", "b", "c"]);
        assert_eq!(
            parse("a or b and not c", &n).unwrap(),
            Cond::Or(vec![
                Cond::Sel(0),
                Cond::And(vec![Cond::Sel(1), Cond::Not(Box::new(Cond::Sel(2)))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c", &n).unwrap(),
            Cond::And(vec![
                Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)]),
                Cond::Sel(2)
            ])
        );
    }

    #[test]
    fn quantifiers() {
        let n = names(&["sel_a", "sel_b", "filter", "_private"]);
        assert_eq!(
            parse("1 of sel_*", &n).unwrap(),
            Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)])
        );
        assert_eq!(
            parse("all of them", &n).unwrap(),
            Cond::And(vec![Cond::Sel(0), Cond::Sel(1), Cond::Sel(2)])
        );
        assert_eq!(
            parse("not 1 of filter*", &n).unwrap(),
            Cond::Not(Box::new(Cond::Sel(2)))
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let n = names(&["selection", "filter"]);
        let e = parse("selection and not filtr", &n).unwrap_err();
        assert_eq!(e.offset, 18);
        assert_eq!(e.hint.as_deref(), Some("did you mean `filter`?"));
        assert!(
            parse("selection | count() > 5", &n)
                .unwrap_err()
                .message
                .contains("aggregation syntax")
        );
        assert!(parse("(selection", &n).is_err());
        assert!(parse("selection filter", &n).is_err());
        assert!(parse("1 of nope*", &n).is_err());
        assert!(parse("", &n).is_err());
        assert!(parse("2 of them", &n).is_err());
    }
}
