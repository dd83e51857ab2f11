//! Sigma wildcard values: splitting into literals and wildcards, and compiling to the cheapest matcher.

use crate::rules::matcher::{REGEX_DFA_LIMIT, REGEX_SIZE_LIMIT, StrPattern};

/// A piece of a Sigma string value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Lit(String),
    Star,
    One,
}

/// Splits a Sigma value into literals and wildcards: `*` and `?` are wildcards, `\*`, `\?`
/// and `\\` are literal, and a backslash before anything else is itself literal.
pub(crate) fn parse_wildcards(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    lit.push(n);
                    chars.next();
                }
                _ => lit.push('\\'),
            },
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

/// Compiles wildcard pieces into the cheapest matcher that has the same meaning.
/// A wildcard pattern the regex engine refuses (too large once compiled).
#[derive(Debug, thiserror::Error)]
#[error("wildcard pattern is too complex: {0}")]
pub(crate) struct PatternError(#[from] regex::Error);

pub(crate) fn compile_pattern(toks: Vec<Tok>, cased: bool) -> Result<StrPattern, PatternError> {
    let norm = |s: &str| -> Box<str> {
        if cased {
            s.into()
        } else {
            s.to_lowercase().into()
        }
    };
    // Collapse runs of `*` and drop empty literals.
    let mut t: Vec<Tok> = Vec::new();
    for tok in toks {
        match tok {
            Tok::Lit(s) if s.is_empty() => {}
            Tok::Star if t.last() == Some(&Tok::Star) => {}
            other => t.push(other),
        }
    }
    let lead = t.first() == Some(&Tok::Star);
    let trail = t.len() > 1 && t.last() == Some(&Tok::Star);
    let inner: &[Tok] = &t[usize::from(lead)..t.len() - usize::from(trail)];
    match inner {
        [] if lead => Ok(StrPattern::AnyNonEmpty),
        [] => Ok(StrPattern::Exact("".into())),
        [Tok::Lit(s)] => Ok(match (lead, trail) {
            (false, false) => StrPattern::Exact(norm(s)),
            (false, true) => StrPattern::Prefix(norm(s)),
            (true, false) => StrPattern::Suffix(norm(s)),
            (true, true) => StrPattern::Contains(norm(s)),
        }),
        _ => {
            let mut re = String::from(if cased { "(?s)^" } else { "(?si)^" });
            for tok in &t {
                match tok {
                    Tok::Lit(s) => re.push_str(&regex::escape(s)),
                    Tok::Star => re.push_str(".*"),
                    Tok::One => re.push('.'),
                }
            }
            re.push('$');
            regex::RegexBuilder::new(&re)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_LIMIT)
                .build()
                .map(StrPattern::Glob)
                .map_err(PatternError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_escapes() {
        assert_eq!(parse_wildcards(r"a\*b"), vec![Tok::Lit("a*b".into())]);
        assert_eq!(
            parse_wildcards(r"a\\*"),
            vec![Tok::Lit("a\\".into()), Tok::Star]
        );
        assert_eq!(
            parse_wildcards(r"C:\Windows"),
            vec![Tok::Lit(r"C:\Windows".into())]
        );
        assert_eq!(
            parse_wildcards("a?c"),
            vec![Tok::Lit("a".into()), Tok::One, Tok::Lit("c".into())]
        );
    }

    #[test]
    fn cheapest_pattern() {
        assert!(
            matches!(compile_pattern(parse_wildcards("Stop*"), false), Ok(StrPattern::Prefix(s)) if &*s == "stop")
        );
        assert!(matches!(
            compile_pattern(parse_wildcards("*Stop"), false),
            Ok(StrPattern::Suffix(_))
        ));
        assert!(matches!(
            compile_pattern(parse_wildcards("*"), false),
            Ok(StrPattern::AnyNonEmpty)
        ));
        assert!(matches!(
            compile_pattern(parse_wildcards("a*b"), false),
            Ok(StrPattern::Glob(_))
        ));
        let Ok(StrPattern::Glob(re)) = compile_pattern(parse_wildcards("a?c*"), false) else {
            panic!()
        };
        assert!(re.is_match("ABCdef"));
        assert!(!re.is_match("ac"));
    }
}
