//! Compiled matchers: what a rule's selections become after loading.
//!
//! Everything that can be prepared is prepared at load time: needles are lower-cased once,
//! wildcard patterns become anchored regexes, many case-insensitive substrings become one
//! Aho-Corasick automaton. Matching an event allocates nothing on the common path (ASCII
//! text); only non-ASCII text against a case-insensitive needle is lower-cased on the heap.

use crate::event::{Event, FieldPath, Scalar, Value};
use aho_corasick::AhoCorasick;
use regex::Regex;
use std::collections::HashSet;
use std::net::IpAddr;

/// Regex programs may not grow beyond this (a hostile rule must not exhaust memory).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache per regex.
pub(crate) const REGEX_DFA_LIMIT: usize = 2 << 20;

/// How a plain string needle is compared with a value.
#[derive(Debug, Clone)]
pub enum StrPattern {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    /// A pattern made only of `*`: any non-empty value.
    AnyNonEmpty,
    /// A pattern with inner wildcards, as an anchored regex.
    Glob(Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// How `|fieldref` compares the two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefHow {
    Equal,
    Contains,
    StartsWith,
    EndsWith,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

/// Why a CIDR text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CidrError {
    #[error("bad prefix length `{0}`")]
    BadPrefix(String),
    #[error("`{0}` is not an IP address")]
    NotAnAddress(String),
    #[error("prefix length {len} is more than {max}")]
    PrefixTooLong { len: u8, max: u8 },
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    pub(crate) fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse::<u8>()
                        .map_err(|_| CidrError::BadPrefix(l.to_string()))?,
                ),
            ),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| CidrError::NotAnAddress(addr.to_string()))?;
        match ip {
            IpAddr::V4(v4) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(CidrError::PrefixTooLong { len, max: 32 });
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Ok(Cidr::V4 {
                    net: u32::from(v4) & mask,
                    mask,
                })
            }
            IpAddr::V6(v6) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(CidrError::PrefixTooLong { len, max: 128 });
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Ok(Cidr::V6 {
                    net: u128::from(v6) & mask,
                    mask,
                })
            }
        }
    }

    pub fn contains(&self, text: &str) -> bool {
        let Ok(ip) = text.trim().parse::<IpAddr>() else {
            return false;
        };
        match (self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Cidr::V4 { net, mask }, IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| u32::from(a) & mask == *net),
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *net,
            // An IPv4 address is not inside an IPv6 network (even `::/0`), as in Python's
            // `ipaddress` and the SQL backends of pySigma.
            (Cidr::V6 { .. }, IpAddr::V4(_)) => false,
        }
    }
}

/// One value a field is compared with.
#[derive(Debug, Clone)]
pub enum Needle {
    /// Matches when the field is missing or null (handled by [`FieldMatch`]).
    Null,
    /// `cased == false`: the needle text is already lower-case.
    Str {
        pat: StrPattern,
        cased: bool,
    },
    Re(Regex),
    Cidr(Cidr),
    Cmp(CmpOp, f64),
    FieldRef {
        path: FieldPath,
        how: RefHow,
        cased: bool,
    },
    /// Alternatives produced from one written value (`base64offset`, `expand`).
    Any(Vec<Needle>),
}

/// Lower-cases `s` only when it holds non-ASCII text (ASCII is compared without copying).
fn lower_if_needed(s: &str) -> Option<String> {
    (!s.is_ascii()).then(|| s.to_lowercase())
}

fn eq_ci(hay: &str, needle: &str) -> bool {
    match lower_if_needed(hay) {
        None => hay.eq_ignore_ascii_case(needle),
        Some(l) => l == needle,
    }
}

fn starts_ci(hay: &str, needle: &str) -> bool {
    match lower_if_needed(hay) {
        None => {
            hay.len() >= needle.len()
                && hay.as_bytes()[..needle.len()].eq_ignore_ascii_case(needle.as_bytes())
        }
        Some(l) => l.starts_with(needle),
    }
}

fn ends_ci(hay: &str, needle: &str) -> bool {
    match lower_if_needed(hay) {
        None => {
            hay.len() >= needle.len()
                && hay.as_bytes()[hay.len() - needle.len()..]
                    .eq_ignore_ascii_case(needle.as_bytes())
        }
        Some(l) => l.ends_with(needle),
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    match lower_if_needed(hay) {
        None => {
            let n = needle.as_bytes();
            n.is_empty()
                || hay
                    .as_bytes()
                    .windows(n.len())
                    .any(|w| w.eq_ignore_ascii_case(n))
        }
        Some(l) => l.contains(needle),
    }
}

impl StrPattern {
    pub fn matches(&self, hay: &str, cased: bool) -> bool {
        match (self, cased) {
            (StrPattern::Exact(n), true) => hay == &**n,
            (StrPattern::Exact(n), false) => eq_ci(hay, n),
            (StrPattern::Prefix(n), true) => hay.starts_with(&**n),
            (StrPattern::Prefix(n), false) => starts_ci(hay, n),
            (StrPattern::Suffix(n), true) => hay.ends_with(&**n),
            (StrPattern::Suffix(n), false) => ends_ci(hay, n),
            (StrPattern::Contains(n), true) => hay.contains(&**n),
            (StrPattern::Contains(n), false) => contains_ci(hay, n),
            (StrPattern::AnyNonEmpty, _) => !hay.is_empty(),
            // Case handling is compiled into the regex.
            (StrPattern::Glob(re), _) => re.is_match(hay),
        }
    }
}

fn ref_compare(a: &str, b: &str, how: RefHow, cased: bool) -> bool {
    if cased {
        return match how {
            RefHow::Equal => a == b,
            RefHow::Contains => a.contains(b),
            RefHow::StartsWith => a.starts_with(b),
            RefHow::EndsWith => a.ends_with(b),
        };
    }
    let b = b.to_lowercase();
    match how {
        RefHow::Equal => eq_ci(a, &b),
        RefHow::Contains => contains_ci(a, &b),
        RefHow::StartsWith => starts_ci(a, &b),
        RefHow::EndsWith => ends_ci(a, &b),
    }
}

impl Needle {
    /// Does this needle match one leaf value? `Null` never matches a leaf (see [`FieldMatch`]).
    pub fn matches_leaf(&self, leaf: Scalar<'_>, ev: &Event<'_>) -> bool {
        match self {
            Needle::Null => false,
            Needle::Str { pat, cased } => leaf.with_text(|t| pat.matches(t, *cased)) == Some(true),
            Needle::Re(re) => leaf.with_text(|t| re.is_match(t)) == Some(true),
            Needle::Cidr(c) => leaf.as_str().is_some_and(|t| c.contains(t)),
            Needle::Cmp(op, n) => leaf.as_f64().is_some_and(|v| match op {
                CmpOp::Lt => v < *n,
                CmpOp::Lte => v <= *n,
                CmpOp::Gt => v > *n,
                CmpOp::Gte => v >= *n,
            }),
            Needle::FieldRef { path, how, cased } => leaf
                .with_text(|a| {
                    ev.any_at(path, &mut |other| {
                        other
                            .scalar()
                            .and_then(|s| s.with_text(|b| ref_compare(a, b, *how, *cased)))
                            == Some(true)
                    })
                })
                .unwrap_or(false),
            Needle::Any(alts) => alts.iter().any(|n| n.matches_leaf(leaf, ev)),
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Needle::Null)
    }
}

/// Many needles of one field merged for speed (only for OR lists).
#[derive(Debug, Clone)]
struct Merged {
    /// Case-insensitive exact values (lower-case ASCII).
    exact: HashSet<Box<str>>,
    /// Case-insensitive substrings (ASCII), as one automaton.
    contains: Option<AhoCorasick>,
}

/// Up to this length, a value is lower-cased on the stack for the exact-set lookup.
const STACK_LOWER: usize = 256;

impl Merged {
    fn matches(&self, hay: &str) -> bool {
        if !self.exact.is_empty() && hay.is_ascii() && hay.len() <= STACK_LOWER {
            let mut buf = [0u8; STACK_LOWER];
            let lower = &mut buf[..hay.len()];
            lower.copy_from_slice(hay.as_bytes());
            lower.make_ascii_lowercase();
            // ASCII in, ASCII out: still valid UTF-8.
            if let Ok(l) = std::str::from_utf8(lower)
                && self.exact.contains(l)
            {
                return true;
            }
        } else if !self.exact.is_empty() {
            let l = hay.to_lowercase();
            if self.exact.contains(l.as_str()) {
                return true;
            }
        }
        self.contains.as_ref().is_some_and(|ac| ac.is_match(hay))
    }
}

/// What a field must satisfy.
#[derive(Debug, Clone)]
pub enum FieldTest {
    /// Compare the field's values with needles: any needle (OR), or every needle with `|all`.
    Values {
        needles: Vec<Needle>,
        all: bool,
        merged: Option<Box<MergedNeedles>>,
    },
    /// `|exists: true/false`.
    Exists(bool),
}

/// Opaque wrapper so the merge optimisation stays private.
#[derive(Debug, Clone)]
pub struct MergedNeedles(Merged);

/// One `field|modifiers: values` entry of a selection.
#[derive(Debug, Clone)]
pub struct FieldMatch {
    pub path: FieldPath,
    /// The key as written, e.g. `eventName|startswith`, for explanations.
    pub key: String,
    pub test: FieldTest,
}

/// Needle count from which exact and substring needles are merged.
const MERGE_FROM: usize = 4;

impl FieldMatch {
    pub fn new(path: FieldPath, key: String, test: FieldTest) -> Self {
        let mut fm = FieldMatch { path, key, test };
        fm.optimise();
        fm
    }

    /// Moves case-insensitive exact and ASCII substring needles of an OR list into a hash
    /// set and one Aho-Corasick automaton when there are enough of them.
    fn optimise(&mut self) {
        let FieldTest::Values {
            needles,
            all: false,
            merged,
        } = &mut self.test
        else {
            return;
        };
        let mergeable = |n: &Needle| match n {
            Needle::Str {
                pat: StrPattern::Exact(_),
                cased: false,
            } => true,
            Needle::Str {
                pat: StrPattern::Contains(s),
                cased: false,
            } => s.is_ascii() && !s.is_empty(),
            _ => false,
        };
        if needles.iter().filter(|n| mergeable(n)).count() < MERGE_FROM {
            return;
        }
        let mut exact = HashSet::new();
        let mut subs: Vec<Box<str>> = Vec::new();
        let mut rest = Vec::new();
        for n in needles.drain(..) {
            match n {
                Needle::Str {
                    pat: StrPattern::Exact(s),
                    cased: false,
                } => {
                    exact.insert(s);
                }
                Needle::Str {
                    pat: StrPattern::Contains(s),
                    cased: false,
                } if s.is_ascii() && !s.is_empty() => subs.push(s),
                other => rest.push(other),
            }
        }
        let contains = if subs.is_empty() {
            None
        } else {
            match AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(subs.iter().map(|s| s.as_bytes()))
            {
                Ok(ac) => Some(ac),
                Err(_) => {
                    // Could not build (size limits): keep them as plain needles.
                    rest.extend(subs.into_iter().map(|s| Needle::Str {
                        pat: StrPattern::Contains(s),
                        cased: false,
                    }));
                    None
                }
            }
        };
        *needles = rest;
        *merged = Some(Box::new(MergedNeedles(Merged { exact, contains })));
    }

    pub fn matches(&self, ev: &Event<'_>) -> bool {
        match &self.test {
            FieldTest::Exists(want) => self.present(ev) == *want,
            FieldTest::Values {
                needles, all: true, ..
            } => needles.iter().all(|n| {
                if n.is_null() {
                    !self.present(ev)
                } else {
                    ev.any_at(&self.path, &mut |v| {
                        v.any_leaf(&mut |leaf| n.matches_leaf(leaf, ev))
                    })
                }
            }),
            FieldTest::Values {
                needles,
                all: false,
                merged,
            } => {
                let mut present = false;
                let has_null = needles.iter().any(Needle::is_null);
                let hit = ev.any_at(&self.path, &mut |v| {
                    if !matches!(v, Value::Null) {
                        present = true;
                    }
                    v.any_leaf(&mut |leaf| {
                        if let Some(m) = merged
                            && leaf.with_text(|t| m.0.matches(t)) == Some(true)
                        {
                            return true;
                        }
                        needles.iter().any(|n| n.matches_leaf(leaf, ev))
                    })
                });
                hit || (has_null && !present)
            }
        }
    }

    /// Does the path reach any non-null value?
    pub fn present(&self, ev: &Event<'_>) -> bool {
        ev.any_at(&self.path, &mut |v| !matches!(v, Value::Null))
    }

    /// Exact case-insensitive values this matcher requires, if it requires one of a known
    /// set (used by the candidate index). `None`: it does not constrain the field that way.
    pub fn required_values(&self) -> Option<Vec<String>> {
        let FieldTest::Values {
            needles,
            all: false,
            merged,
        } = &self.test
        else {
            return None;
        };
        let mut out = Vec::new();
        if let Some(m) = merged {
            if m.0.contains.is_some() {
                return None;
            }
            out.extend(m.0.exact.iter().map(|s| s.to_string()));
        }
        for n in needles {
            match n {
                Needle::Str {
                    pat: StrPattern::Exact(s),
                    cased,
                } => out.push(if *cased {
                    s.to_lowercase()
                } else {
                    s.to_string()
                }),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A named selection of the `detection` block.
#[derive(Debug, Clone)]
pub enum Selection {
    /// OR of AND-groups: a mapping is one group, a list of mappings several.
    Groups(Vec<Vec<FieldMatch>>),
    /// Plain values searched in every value of the event (OR).
    Keywords(Vec<Needle>),
}

impl Selection {
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        match self {
            Selection::Groups(groups) => groups.iter().any(|g| g.iter().all(|f| f.matches(ev))),
            Selection::Keywords(needles) => {
                ev.any_leaf(&mut |leaf| needles.iter().any(|n| n.matches_leaf(leaf, ev)))
            }
        }
    }
}

/// A compiled condition over selections (indices into the rule's selection list).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Sel(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn eval(&self, sels: &[(String, Selection)], ev: &Event<'_>) -> bool {
        match self {
            Cond::Sel(i) => sels.get(*i).is_some_and(|(_, s)| s.matches(ev)),
            Cond::Not(c) => !c.eval(sels, ev),
            Cond::And(cs) => cs.iter().all(|c| c.eval(sels, ev)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(sels, ev)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_v4_v6_and_mapped() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3"));
        assert!(!c.contains("11.1.2.3"));
        assert!(c.contains("::ffff:10.0.0.1"));
        assert!(!c.contains("AWS Internal"));
        let c6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c6.contains("2001:db8::1"));
        assert!(!c6.contains("2001:db9::1"));
        assert!(!Cidr::parse("::/0").unwrap().contains("1.2.3.4"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense/8").is_err());
    }

    #[test]
    fn case_insensitive_helpers() {
        assert!(eq_ci("No", "no"));
        assert!(starts_ci("DescribeInstances", "describe"));
        assert!(ends_ci("x.AMAZONAWS.com", ".amazonaws.com"));
        assert!(contains_ci("aBcDe", "cd"));
        assert!(eq_ci("ÄBC", "äbc"));
        assert!(!contains_ci("ab", "abc"));
    }
}
