//! Sigma correlation rules (specification v2) and the translation of the deprecated
//! aggregation syntax (`selection | count() by x > N` with `timeframe`, `| near`).
//!
//! ```yaml
//! title: Many failed GetPasswordData calls
//! id: 2b8c…
//! correlation:
//!   type: event_count          # event_count | value_count | temporal | temporal_ordered
//!   rules: [get_password_data_failed]   # base rules (or correlations) by name or id
//!   group-by: [userIdentity.arn]
//!   timespan: 5m
//!   condition: {gte: 30}       # gt/gte/lt/lte/eq, two keys for a range; value_count adds field
//! level: high
//! ```

use super::diag::{Diagnostic, Severity};
use super::parse::Ctx;
use super::testcase::{self, TestCase};
use super::yaml::{Node, NodeKind, Pos, ScalarType};
use super::{Rule, RuleMeta, RuleSource};
use crate::util::time::{Millis, parse_duration};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrKind {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
}

impl CorrKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CorrKind::EventCount => "event_count",
            CorrKind::ValueCount => "value_count",
            CorrKind::Temporal => "temporal",
            CorrKind::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// A count condition: every bound present must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CountCond {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eq: Option<u64>,
}

impl CountCond {
    pub fn holds(&self, n: u64) -> bool {
        self.gt.is_none_or(|v| n > v)
            && self.gte.is_none_or(|v| n >= v)
            && self.lt.is_none_or(|v| n < v)
            && self.lte.is_none_or(|v| n <= v)
            && self.eq.is_none_or(|v| n == v)
    }

    /// With an upper bound, a count can only be judged when its window closes.
    pub fn has_upper_bound(&self) -> bool {
        self.lt.is_some() || self.lte.is_some() || self.eq.is_some()
    }

    /// The smallest count that can satisfy the lower bounds (what a sliding window must hold).
    pub fn min_count(&self) -> u64 {
        let a = self.gt.map_or(0, |v| v + 1);
        let b = self.gte.unwrap_or(0);
        let c = self.eq.unwrap_or(0);
        a.max(b).max(c).max(1)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (op, v) in [
            (">", self.gt),
            ("≥", self.gte),
            ("<", self.lt),
            ("≤", self.lte),
            ("=", self.eq),
        ] {
            if let Some(v) = v {
                parts.push(format!("{op} {v}"));
            }
        }
        parts.join(" and ")
    }
}

/// `suppress: {by: [paths], for: 1h}` on a rule or correlation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppress {
    pub by: Vec<String>,
    pub period: Millis,
}

/// A rule's suppression setting: inherit the default, turned off, or its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SuppressSetting {
    #[default]
    Default,
    Off,
    On(Suppress),
}

/// A correlation rule as written, with references still by name or id.
#[derive(Debug, Clone)]
pub struct CorrelationDef {
    pub meta: RuleMeta,
    pub source: RuleSource,
    pub kind: CorrKind,
    /// Referenced rules (names or ids) and where each was written.
    pub rules: Vec<(String, Pos)>,
    /// Group-by names: field paths, or aliases.
    pub group_by: Vec<String>,
    pub timespan: Millis,
    pub condition: CountCond,
    /// `value_count`: the field whose distinct values are counted.
    pub field: Option<String>,
    /// alias → (rule name or id → field path).
    pub aliases: BTreeMap<String, BTreeMap<String, String>>,
    pub generate: bool,
    pub suppress: SuppressSetting,
    pub tests: Vec<TestCase>,
    /// Set when produced by translating the deprecated aggregation syntax.
    pub translated_from: Option<String>,
}

impl CorrelationDef {
    /// The field path that group-by name `name` means for events of rule `rule_key`
    /// (a name or id of the referenced rule).
    pub fn group_path(&self, name: &str, rule_keys: &[&str]) -> String {
        if let Some(map) = self.aliases.get(name) {
            for k in rule_keys {
                if let Some(p) = map.get(*k) {
                    return p.clone();
                }
            }
        }
        name.to_string()
    }
}

fn count_value(ctx: &mut Ctx<'_>, n: &Node, key: &str) -> Option<u64> {
    match n.scalar_type() {
        Some(ScalarType::Int) => n.scalar_text().and_then(|t| t.parse::<u64>().ok()),
        _ => None,
    }
    .or_else(|| {
        ctx.error(
            n.pos,
            format!(
                "`{key}` must be a whole number ≥ 0, found {}",
                n.kind_name()
            ),
            None,
        );
        None
    })
}

/// Reads `suppress:` (absent, `false`, or `{by: [...], for: <duration>}`).
pub(crate) fn read_suppress(ctx: &mut Ctx<'_>, root: &Node) -> SuppressSetting {
    let Some(n) = root.get("suppress") else {
        return SuppressSetting::Default;
    };
    match n.scalar_type() {
        Some(ScalarType::Bool(false)) => return SuppressSetting::Off,
        Some(ScalarType::Bool(true)) => {
            ctx.error(
                n.pos,
                "`suppress: true` needs a key and a period",
                Some("write `suppress: {by: [userIdentity.arn], for: 1h}`, or `false`".into()),
            );
            return SuppressSetting::Default;
        }
        _ => {}
    }
    if n.as_map().is_none() {
        ctx.error(
            n.pos,
            format!(
                "`suppress` must be `false` or a mapping, found {}",
                n.kind_name()
            ),
            Some("e.g. `suppress: {by: [userIdentity.arn], for: 1h}`".into()),
        );
        return SuppressSetting::Default;
    }
    for (k, _) in n.as_map().unwrap_or_default() {
        if !matches!(k.scalar_text(), Some("by" | "for")) {
            ctx.error(
                k.pos,
                format!(
                    "unknown key `{}` in `suppress`",
                    k.scalar_text().unwrap_or("?")
                ),
                Some("`suppress` has `by` (field paths) and `for` (a duration)".into()),
            );
        }
    }
    let by: Vec<String> = match n.get("by") {
        Some(b) => match &b.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            NodeKind::Scalar { .. } => b.as_str().map(str::to_string).into_iter().collect(),
            NodeKind::Map(_) => {
                ctx.error(b.pos, "`suppress.by` must be a list of field paths", None);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let period = match n.get("for") {
        Some(f) => match f.as_str().map(parse_duration) {
            Some(Ok(d)) if d > 0 => d,
            Some(Err(e)) => {
                ctx.error(f.pos, format!("`suppress.for`: {e}"), None);
                return SuppressSetting::Default;
            }
            _ => {
                ctx.error(f.pos, "`suppress.for` must be a duration like 1h", None);
                return SuppressSetting::Default;
            }
        },
        None => {
            ctx.error(n.pos, "`suppress` needs `for: <duration>`", None);
            return SuppressSetting::Default;
        }
    };
    SuppressSetting::On(Suppress { by, period })
}

fn string_seq(ctx: &mut Ctx<'_>, n: &Node, what: &str) -> Vec<(String, Pos)> {
    match &n.kind {
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|i| match i.as_str() {
                Some(s) => Some((s.to_string(), i.pos)),
                None => {
                    ctx.error(i.pos, format!("entries of `{what}` must be strings"), None);
                    None
                }
            })
            .collect(),
        NodeKind::Scalar { .. } => n
            .as_str()
            .map(|s| vec![(s.to_string(), n.pos)])
            .unwrap_or_default(),
        NodeKind::Map(_) => {
            ctx.error(n.pos, format!("`{what}` must be a list"), None);
            Vec::new()
        }
    }
}

/// Compiles the `correlation` block of a correlation rule document.
pub(crate) fn compile_correlation(
    ctx: &mut Ctx<'_>,
    root: &Node,
    meta: RuleMeta,
    source: RuleSource,
) -> Option<CorrelationDef> {
    let before = ctx.errors();
    let c = root.get("correlation")?;
    if c.as_map().is_none() {
        ctx.error(c.pos, "`correlation` must be a mapping", None);
        return None;
    }
    const KEYS: &[&str] = &[
        "type",
        "rules",
        "group-by",
        "timespan",
        "condition",
        "aliases",
        "generate",
    ];
    for (k, _) in c.as_map().unwrap_or_default() {
        let key = k.scalar_text().unwrap_or("?");
        if !KEYS.contains(&key) {
            let hint = super::condition::did_you_mean(key, KEYS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"));
            ctx.error(k.pos, format!("unknown key `{key}` in `correlation`"), hint);
        }
    }
    let kind = match c.get("type").and_then(Node::as_str) {
        Some("event_count") => CorrKind::EventCount,
        Some("value_count") => CorrKind::ValueCount,
        Some("temporal") => CorrKind::Temporal,
        Some("temporal_ordered") => CorrKind::TemporalOrdered,
        other => {
            let pos = c.get("type").map_or(c.pos, |n| n.pos);
            ctx.error(
                pos,
                match other {
                    Some(t) => format!("unknown correlation type `{t}`"),
                    None => "the correlation has no `type`".into(),
                },
                Some("use event_count, value_count, temporal or temporal_ordered".into()),
            );
            CorrKind::EventCount
        }
    };
    let rules = match c.get("rules") {
        Some(n) => string_seq(ctx, n, "rules"),
        None => {
            ctx.error(
                c.pos,
                "the correlation has no `rules`",
                Some("list the names or ids of the rules it correlates".into()),
            );
            Vec::new()
        }
    };
    if rules.is_empty() && c.get("rules").is_some() {
        ctx.error(c.pos, "`rules` is empty", None);
    }
    let group_by: Vec<String> = c
        .get("group-by")
        .map(|n| {
            string_seq(ctx, n, "group-by")
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
        .unwrap_or_default();
    let timespan = match c.get("timespan") {
        Some(n) => match n.scalar_text().map(parse_duration) {
            Some(Ok(d)) if d > 0 => d,
            Some(Err(e)) => {
                ctx.error(n.pos, format!("`timespan`: {e}"), None);
                0
            }
            _ => {
                ctx.error(n.pos, "`timespan` must be a duration like 5m", None);
                0
            }
        },
        None => {
            ctx.error(
                c.pos,
                "the correlation has no `timespan`",
                Some("e.g. `timespan: 5m`".into()),
            );
            0
        }
    };
    let mut condition = CountCond::default();
    let mut field = None;
    match c.get("condition") {
        Some(n) if n.as_map().is_some() => {
            for (k, v) in n.as_map().unwrap_or_default() {
                let key = k.scalar_text().unwrap_or("?");
                match key {
                    "gt" => condition.gt = count_value(ctx, v, key),
                    "gte" => condition.gte = count_value(ctx, v, key),
                    "lt" => condition.lt = count_value(ctx, v, key),
                    "lte" => condition.lte = count_value(ctx, v, key),
                    "eq" => condition.eq = count_value(ctx, v, key),
                    "field" => field = v.as_str().map(str::to_string),
                    _ => ctx.error(
                        k.pos,
                        format!("unknown condition key `{key}`"),
                        Some("use gt, gte, lt, lte, eq (two for a range) and, for value_count, field".into()),
                    ),
                }
            }
            if condition == CountCond::default()
                && matches!(kind, CorrKind::EventCount | CorrKind::ValueCount)
            {
                ctx.error(
                    n.pos,
                    "the condition has no bound",
                    Some("e.g. `condition: {gte: 30}`".into()),
                );
            }
        }
        Some(n) => ctx.error(
            n.pos,
            "`condition` must be a mapping like `{gte: 30}`",
            None,
        ),
        None if matches!(kind, CorrKind::EventCount | CorrKind::ValueCount) => ctx.error(
            c.pos,
            "the correlation has no `condition`",
            Some("e.g. `condition: {gte: 30}`".into()),
        ),
        None => {}
    }
    if kind == CorrKind::ValueCount && field.is_none() {
        ctx.error(
            c.get("condition").map_or(c.pos, |n| n.pos),
            "a value_count correlation needs `condition.field` (the field whose distinct values are counted)",
            None,
        );
    }
    if matches!(kind, CorrKind::Temporal | CorrKind::TemporalOrdered) && rules.len() < 2 {
        ctx.error(
            c.pos,
            format!("a {} correlation needs at least two rules", kind.as_str()),
            None,
        );
    }
    let mut aliases = BTreeMap::new();
    if let Some(a) = c.get("aliases") {
        match a.as_map() {
            Some(m) => {
                for (k, v) in m {
                    let Some(alias) = k.as_str() else { continue };
                    let mut per_rule = BTreeMap::new();
                    match v.as_map() {
                        Some(vm) => {
                            for (rk, rv) in vm {
                                if let (Some(r), Some(f)) = (rk.as_str(), rv.as_str()) {
                                    per_rule.insert(r.to_string(), f.to_string());
                                }
                            }
                        }
                        None => ctx.error(
                            v.pos,
                            format!("alias `{alias}` must map rule names to fields"),
                            None,
                        ),
                    }
                    aliases.insert(alias.to_string(), per_rule);
                }
            }
            None => ctx.error(a.pos, "`aliases` must be a mapping", None),
        }
    }
    let generate = match c.get("generate").or_else(|| root.get("generate")) {
        None => false,
        Some(n) => match n.scalar_type() {
            Some(ScalarType::Bool(b)) => b,
            _ => {
                ctx.error(n.pos, "`generate` must be true or false", None);
                false
            }
        },
    };
    let suppress = read_suppress(ctx, root);
    let tests = match root.get("tests") {
        Some(t) => testcase::parse_cases(ctx, t),
        None => Vec::new(),
    };
    if ctx.errors() > before {
        return None;
    }
    Some(CorrelationDef {
        meta,
        source,
        kind,
        rules,
        group_by,
        timespan,
        condition,
        field,
        aliases,
        generate,
        suppress,
        tests,
        translated_from: None,
    })
}

/// The deprecated aggregation after `|` in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregation {
    /// `count([field]) [by group] op N`
    Count {
        field: Option<String>,
        by: Option<String>,
        op: String,
        n: u64,
    },
    /// `near sel1 [and sel2 …]`
    Near { selections: Vec<String> },
}

/// Why a deprecated aggregation cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AggregationError {
    #[error("`near {0}` can only list selections joined by `and`")]
    NearNeedsSelections(String),
    #[error(
        "the aggregation function `{0}` has no correlation equivalent; only count() and near can be translated"
    )]
    NoEquivalent(String),
    #[error("expected `(` after count")]
    ExpectedParen,
    #[error("missing `)` after count(")]
    MissingParen,
    #[error("`by` needs a field")]
    ByNeedsField,
    #[error("expected a comparison like `> 5` after count()")]
    ExpectedComparison,
    #[error("unknown comparison `{0}`")]
    UnknownComparison(String),
    #[error("expected a whole number after the comparison")]
    ExpectedNumber,
    #[error("unexpected `{0}` after the aggregation")]
    Unexpected(String),
}

/// Parses the text after `|` (e.g. `count() by sourceIPAddress > 5`, `near selection2`).
pub(crate) fn parse_aggregation(text: &str) -> Result<Aggregation, AggregationError> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("near") {
        let selections: Vec<String> = rest
            .split_whitespace()
            .filter(|w| !w.eq_ignore_ascii_case("and"))
            .map(str::to_string)
            .collect();
        if selections.is_empty()
            || rest
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("not"))
        {
            return Err(AggregationError::NearNeedsSelections(
                rest.trim().to_string(),
            ));
        }
        return Ok(Aggregation::Near { selections });
    }
    let Some(rest) = t.strip_prefix("count") else {
        let func = t.split(['(', ' ']).next().unwrap_or(t);
        return Err(AggregationError::NoEquivalent(func.to_string()));
    };
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('(') else {
        return Err(AggregationError::ExpectedParen);
    };
    let Some(close) = rest.find(')') else {
        return Err(AggregationError::MissingParen);
    };
    let field = Some(rest[..close].trim())
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    let mut words = rest[close + 1..].split_whitespace().peekable();
    let mut by = None;
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("by")) {
        words.next();
        by = Some(
            words
                .next()
                .ok_or(AggregationError::ByNeedsField)?
                .to_string(),
        );
    }
    let op = words
        .next()
        .ok_or(AggregationError::ExpectedComparison)?
        .to_string();
    if !matches!(op.as_str(), ">" | ">=" | "<" | "<=" | "=" | "==") {
        return Err(AggregationError::UnknownComparison(op));
    }
    let n: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or(AggregationError::ExpectedNumber)?;
    if let Some(extra) = words.next() {
        return Err(AggregationError::Unexpected(extra.to_string()));
    }
    Ok(Aggregation::Count { field, by, op, n })
}

impl Aggregation {
    /// The equivalent count condition.
    pub fn condition(op: &str, n: u64) -> CountCond {
        let mut c = CountCond::default();
        match op {
            ">" => c.gt = Some(n),
            ">=" => c.gte = Some(n),
            "<" => c.lt = Some(n),
            "<=" => c.lte = Some(n),
            _ => c.eq = Some(n),
        }
        c
    }
}

/// A correlation with its references resolved to rule and correlation ids.
#[derive(Debug, Clone)]
pub struct Correlation {
    pub def: CorrelationDef,
    /// For each referenced rule, in order: the id of a base rule or of another correlation.
    pub refs: Vec<RefId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefId {
    Rule(String),
    Correlation(String),
}

/// Resolves every correlation's `rules` against the loaded rules and correlations (by
/// `name` or `id`), reporting unknown references and cycles.
pub fn resolve(
    rules: &[Rule],
    defs: Vec<CorrelationDef>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Correlation> {
    let mut by_key: HashMap<&str, RefId> = HashMap::new();
    for r in rules {
        by_key.insert(&r.meta.id, RefId::Rule(r.meta.id.clone()));
        if let Some(n) = &r.meta.name {
            by_key.insert(n, RefId::Rule(r.meta.id.clone()));
        }
    }
    for d in &defs {
        by_key.insert(&d.meta.id, RefId::Correlation(d.meta.id.clone()));
        if let Some(n) = &d.meta.name {
            by_key.insert(n, RefId::Correlation(d.meta.id.clone()));
        }
    }
    let mut out = Vec::new();
    let mut bad: Vec<bool> = Vec::new();
    for d in &defs {
        let mut refs = Vec::new();
        let mut ok = true;
        for (key, pos) in &d.rules {
            match by_key.get(key.as_str()) {
                Some(r) if *r == RefId::Correlation(d.meta.id.clone()) => {
                    diags.push(Diagnostic::new(
                        Severity::Error,
                        &d.source.file,
                        Some(*pos),
                        format!("correlation `{key}` refers to itself"),
                    ));
                    ok = false;
                }
                Some(r) => refs.push(r.clone()),
                None => {
                    let names = by_key.keys().copied();
                    let hint = super::condition::did_you_mean(key, names).map(|s| format!("did you mean `{s}`?")).or_else(|| {
                        Some("a correlation refers to rules by their `name` or `id`, usually in the same file (separate YAML documents)".into())
                    });
                    diags.push(
                        Diagnostic::new(
                            Severity::Error,
                            &d.source.file,
                            Some(*pos),
                            format!("correlation refers to unknown rule `{key}`"),
                        )
                        .with_hint(hint),
                    );
                    ok = false;
                }
            }
        }
        bad.push(!ok);
        out.push(Correlation {
            def: d.clone(),
            refs,
        });
    }
    // Cycles through chained correlations.
    let index: HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, c)| (c.def.meta.id.clone(), i))
        .collect();
    for start in 0..out.len() {
        let mut stack = vec![(start, 0usize)];
        let mut seen = vec![false; out.len()];
        while let Some((i, depth)) = stack.pop() {
            if depth > out.len() {
                break;
            }
            for r in &out[i].refs {
                if let RefId::Correlation(id) = r
                    && let Some(&j) = index.get(id)
                {
                    if j == start {
                        let d = &out[start].def;
                        diags.push(Diagnostic::new(
                            Severity::Error,
                            &d.source.file,
                            Some(d.source.pos),
                            format!("correlation `{}` is part of a reference cycle", d.meta.id),
                        ));
                        bad[start] = true;
                        stack.clear();
                        break;
                    }
                    if !seen[j] {
                        seen[j] = true;
                        stack.push((j, depth + 1));
                    }
                }
            }
        }
    }
    out.into_iter()
        .zip(bad)
        .filter(|(_, b)| !b)
        .map(|(c, _)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_aggregations() {
        assert_eq!(
            parse_aggregation(" count() by sourceIPAddress > 5").unwrap(),
            Aggregation::Count {
                field: None,
                by: Some("sourceIPAddress".into()),
                op: ">".into(),
                n: 5
            }
        );
        assert_eq!(
            parse_aggregation("count(eventName) by userIdentity.arn >= 10").unwrap(),
            Aggregation::Count {
                field: Some("eventName".into()),
                by: Some("userIdentity.arn".into()),
                op: ">=".into(),
                n: 10
            }
        );
        assert_eq!(
            parse_aggregation("near selection2 and selection3").unwrap(),
            Aggregation::Near {
                selections: vec!["selection2".into(), "selection3".into()]
            }
        );
        assert!(
            parse_aggregation("sum(x) > 5")
                .unwrap_err()
                .to_string()
                .contains("sum")
        );
        assert!(parse_aggregation("count() >").is_err());
    }

    #[test]
    fn count_conditions() {
        let c = CountCond {
            gte: Some(30),
            ..Default::default()
        };
        assert!(c.holds(30) && !c.holds(29) && !c.has_upper_bound());
        assert_eq!(c.min_count(), 30);
        let r = CountCond {
            gt: Some(2),
            lte: Some(5),
            ..Default::default()
        };
        assert!(r.holds(3) && r.holds(5) && !r.holds(6) && !r.holds(2) && r.has_upper_bound());
        assert_eq!(r.min_count(), 3);
    }
}
