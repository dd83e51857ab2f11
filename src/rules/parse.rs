//! From YAML nodes to compiled rules, collecting every problem with its position.

use super::condition;
use super::correlation::{self, CorrKind, CorrelationDef};
use super::diag::{Diagnostic, Severity};
use super::matcher::{
    Cidr, CmpOp, Cond, FieldMatch, FieldTest, Needle, REGEX_DFA_LIMIT, REGEX_SIZE_LIMIT, RefHow,
    Selection, StrPattern,
};
use super::testcase::{self, TestCase};
use super::yaml::{Node, NodeKind, Pos, ScalarType, Style};
use super::{Level, Logsource, Placeholders, Rule, RuleMeta, RuleSource};
use crate::event::FieldPath;
use crate::util::time::Millis;
use base64::Engine as _;
use std::path::Path;

/// Modifiers this engine implements.
const KNOWN_MODIFIERS: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "all",
    "re",
    "i",
    "m",
    "s",
    "ignorecase",
    "multiline",
    "dotall",
    "cidr",
    "exists",
    "fieldref",
    "base64",
    "base64offset",
    "lt",
    "lte",
    "gt",
    "gte",
    "cased",
    "expand",
];

/// Modifiers the Sigma specification defines that are rejected here, with the reason.
const UNSUPPORTED_MODIFIERS: &[(&str, &str)] = &[
    (
        "wide",
        "UTF-16 encoding is for Windows logs; CloudTrail is UTF-8 JSON",
    ),
    (
        "utf16",
        "UTF-16 encoding is for Windows logs; CloudTrail is UTF-8 JSON",
    ),
    (
        "utf16le",
        "UTF-16 encoding is for Windows logs; CloudTrail is UTF-8 JSON",
    ),
    (
        "utf16be",
        "UTF-16 encoding is for Windows logs; CloudTrail is UTF-8 JSON",
    ),
    (
        "windash",
        "dash variants of Windows command-line flags do not occur in CloudTrail",
    ),
    (
        "minute",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
    (
        "hour",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
    (
        "day",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
    (
        "week",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
    (
        "month",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
    (
        "year",
        "time-part modifiers are not implemented; compare eventTime with `|startswith` or `|re`",
    ),
];

/// Keys of a rule that trailwatch reads itself; everything else is kept in `extra`.
const RULE_KEYS: &[&str] = &[
    "title",
    "name",
    "correlation",
    "baseline",
    "generate",
    "suppress",
    "id",
    "status",
    "description",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "logsource",
    "detection",
    "falsepositives",
    "level",
    "fields",
    "tests",
];

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub diags: &'a mut Vec<Diagnostic>,
    pub placeholders: Option<&'a Placeholders>,
    pub extra_services: &'a [String],
    /// Directory that `event_file` paths are relative to; `None` for built-in rules.
    pub base_dir: Option<&'a Path>,
    errors: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(
        file: &'a str,
        diags: &'a mut Vec<Diagnostic>,
        placeholders: Option<&'a Placeholders>,
        extra_services: &'a [String],
        base_dir: Option<&'a Path>,
    ) -> Self {
        Ctx {
            file,
            diags,
            placeholders,
            extra_services,
            base_dir,
            errors: 0,
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.errors += 1;
        self.diags
            .push(Diagnostic::new(Severity::Error, self.file, Some(pos), message).with_hint(hint));
    }

    pub fn note(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(
            Severity::Note,
            self.file,
            Some(pos),
            message,
        ));
    }

    pub fn errors(&self) -> usize {
        self.errors
    }
}

/// The position of character `offset` inside a single-line scalar.
fn pos_in_scalar(node: &Node, offset: usize) -> Pos {
    match &node.kind {
        NodeKind::Scalar { style, .. } => {
            let extra = usize::from(*style == Style::Quoted);
            Pos {
                line: node.pos.line,
                col: node.pos.col + extra + offset,
            }
        }
        _ => node.pos,
    }
}

/// What one YAML document produced.
pub(crate) enum Item {
    Rule(Box<Rule>),
    Correlation(Box<CorrelationDef>),
    /// A `baseline` document (settings of the per-principal rate models).
    Baseline(Box<super::baseline::BaselineDoc>),
}

/// What happened to one YAML document.
pub(crate) enum DocOutcome {
    /// A rule, a correlation, or (translated deprecated syntax) base rules and a correlation.
    Items(Vec<Item>),
    /// Not a CloudTrail rule: skipped with a note.
    Skipped,
    /// Errors were reported.
    Invalid,
}

pub(crate) fn compile_document(ctx: &mut Ctx<'_>, root: &Node, doc: usize) -> DocOutcome {
    let before = ctx.errors();
    // An empty document (a file ending in `---`, or `---` twice): nothing to load.
    if matches!(&root.kind, NodeKind::Scalar { text, style: Style::Plain } if text.is_empty()) {
        return DocOutcome::Items(Vec::new());
    }
    let Some(map) = root.as_map() else {
        ctx.error(
            root.pos,
            format!("a rule must be a YAML mapping, found {}", root.kind_name()),
            None,
        );
        return DocOutcome::Invalid;
    };
    for (k, _) in map {
        if k.scalar_text().is_none() {
            ctx.error(k.pos, "rule keys must be plain strings", None);
        }
    }
    if let Some(a) = root.get("action") {
        ctx.error(
            a.pos,
            "Sigma rule collections (`action: global/reset/repeat`) are not supported",
            Some("write each rule as its own complete YAML document".into()),
        );
        return DocOutcome::Invalid;
    }

    let logsource = read_logsource(ctx, root);
    if let Some(ls) = &logsource
        && !ls.is_cloudtrail(ctx.extra_services)
    {
        let pos = root.get("logsource").map_or(root.pos, |n| n.pos);
        ctx.note(
            pos,
            format!(
                "skipped: logsource is not AWS CloudTrail (product: {}, service: {}){}",
                ls.product.as_deref().unwrap_or("-"),
                ls.service.as_deref().unwrap_or("-"),
                match (&ls.product, &ls.service) {
                    (Some(p), Some(s)) if p.eq_ignore_ascii_case("aws") => format!(
                        "; if its events are CloudTrail records, pass --logsource-service {s}"
                    ),
                    _ => String::new(),
                }
            ),
        );
        return DocOutcome::Skipped;
    }

    let mut meta = read_meta(ctx, root, logsource.unwrap_or_default());
    let id_node = root.get("id");
    let source = RuleSource {
        file: ctx.file.to_string(),
        doc,
        pos: root.pos,
        id_pos: id_node.map(|n| n.pos),
    };

    if let Some(b) = root.get("baseline") {
        return crate::rules::baseline::compile_document(ctx, root, b, doc, meta, source);
    }

    if root.get("correlation").is_some() {
        if let Some(d) = root.get("detection") {
            ctx.error(
                d.pos,
                "a correlation rule has no `detection`; it refers to other rules in `correlation.rules`",
                None,
            );
        }
        if ctx.errors() > before {
            return DocOutcome::Invalid;
        }
        fill_missing_id(ctx, root, doc, &mut meta);
        return match correlation::compile_correlation(ctx, root, meta, source) {
            Some(c) => DocOutcome::Items(vec![Item::Correlation(Box::new(c))]),
            None => DocOutcome::Invalid,
        };
    }

    let detection = match root.get("detection") {
        Some(d) => compile_detection(ctx, d),
        None => {
            ctx.error(
                root.pos,
                "the rule has no `detection`",
                Some("add `detection:` with at least one selection and a `condition`".into()),
            );
            None
        }
    };
    let suppress = correlation::read_suppress(ctx, root);
    let tests: Vec<TestCase> = match root.get("tests") {
        Some(t) => testcase::parse_cases(ctx, t),
        None => Vec::new(),
    };
    if ctx.errors() > before {
        return DocOutcome::Invalid;
    }
    let Some(det) = detection else {
        return DocOutcome::Invalid;
    };
    fill_missing_id(ctx, root, doc, &mut meta);
    match det.legacy {
        None => DocOutcome::Items(vec![Item::Rule(Box::new(Rule {
            meta,
            source,
            selections: det.selections,
            condition: det.condition,
            condition_text: det.text,
            tests,
            suppress,
        }))]),
        Some(legacy) => translate_legacy(
            ctx,
            meta,
            source,
            det.selections,
            det.condition,
            det.text,
            legacy,
            tests,
            suppress,
        ),
    }
}

/// Reads the descriptive keys shared by detection and correlation rules.
fn read_meta(ctx: &mut Ctx<'_>, root: &Node, logsource: super::Logsource) -> RuleMeta {
    let title = match root.get("title") {
        Some(n) => string_of(ctx, n, "title").unwrap_or_default(),
        None => {
            ctx.error(
                root.pos,
                "the rule has no `title`",
                Some("add `title: <what this rule detects>`".into()),
            );
            String::new()
        }
    };
    let id = root.get("id").and_then(|n| string_of(ctx, n, "id"));
    let level = match root.get("level") {
        None => Level::Medium,
        Some(n) => match n.as_str().and_then(Level::parse) {
            Some(l) => l,
            None => {
                ctx.error(
                    n.pos,
                    format!("unknown level `{}`", n.scalar_text().unwrap_or("")),
                    Some("use informational, low, medium, high or critical".into()),
                );
                Level::Medium
            }
        },
    };
    let mut meta = RuleMeta {
        id: id.unwrap_or_default(),
        name: opt_string(ctx, root, "name"),
        title,
        status: opt_string(ctx, root, "status"),
        description: opt_string(ctx, root, "description"),
        references: string_list(ctx, root, "references"),
        author: opt_string(ctx, root, "author"),
        date: opt_string(ctx, root, "date"),
        modified: opt_string(ctx, root, "modified"),
        tags: string_list(ctx, root, "tags"),
        logsource,
        falsepositives: string_list(ctx, root, "falsepositives"),
        level,
        fields: string_list(ctx, root, "fields"),
        extra: Vec::new(),
    };
    for (k, v) in root.as_map().unwrap_or_default() {
        if let Some(k) = k.scalar_text()
            && !RULE_KEYS.contains(&k)
        {
            meta.extra.push((k.to_string(), v.to_json()));
        }
    }
    meta
}

pub(crate) fn fill_missing_id(ctx: &mut Ctx<'_>, root: &Node, doc: usize, meta: &mut RuleMeta) {
    if !meta.id.is_empty() {
        return;
    }
    let stem = Path::new(ctx.file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("rule")
        .to_string();
    meta.id = if doc == 0 {
        stem
    } else {
        format!("{stem}#{doc}")
    };
    ctx.diags.push(
        Diagnostic::new(
            Severity::Warning,
            ctx.file,
            Some(root.pos),
            format!(
                "the rule has no `id`; using `{}` (findings' ids depend on it)",
                meta.id
            ),
        )
        .with_hint(Some("give every rule a stable UUID: `id: <uuid>`".into())),
    );
}

/// The deprecated syntax found in a detection, to translate.
struct Legacy {
    /// `| count()…` or `| near …`, and where it was written.
    aggregation: Option<(correlation::Aggregation, Pos)>,
    /// `timeframe:` and where.
    timeframe: Option<(Millis, Pos)>,
    /// Selection names when the condition is only `a and b [and …]` (for a bare timeframe).
    and_names: Option<Vec<String>>,
    condition_pos: Pos,
    aggregation_pos: Option<Pos>,
}

/// Turns a rule written with the deprecated aggregation syntax into base rules and a
/// correlation that keeps the original rule's id, title and level.
#[allow(clippy::too_many_arguments)]
fn translate_legacy(
    ctx: &mut Ctx<'_>,
    meta: RuleMeta,
    source: RuleSource,
    selections: Vec<(String, Selection)>,
    condition: Cond,
    condition_text: String,
    legacy: Legacy,
    tests: Vec<TestCase>,
    suppress: correlation::SuppressSetting,
) -> DocOutcome {
    let Some((timespan, _)) = legacy.timeframe else {
        let what = match &legacy.aggregation {
            Some((correlation::Aggregation::Near { .. }, _)) => "`| near`",
            _ => "`| count()`",
        };
        ctx.error(
            legacy.aggregation_pos.unwrap_or(legacy.condition_pos),
            format!("{what} without a `timeframe` has no time window and cannot be translated into a correlation"),
            Some("add `timeframe: 10m` (or write a Sigma correlation rule with `timespan`)".into()),
        );
        return DocOutcome::Invalid;
    };
    let base_rule =
        |suffix: &str, title: String, sels: Vec<(String, Selection)>, cond: Cond, text: String| {
            Rule {
                meta: RuleMeta {
                    id: format!("{}/{suffix}", meta.id),
                    name: None,
                    title,
                    ..meta.clone()
                },
                source: source.clone(),
                selections: sels,
                condition: cond,
                condition_text: text,
                tests: Vec::new(),
                suppress: correlation::SuppressSetting::Off,
            }
        };
    let mut items = Vec::new();
    let (kind, refs, group_by, cond, field, how) = match legacy.aggregation {
        Some((correlation::Aggregation::Count { field, by, op, n }, _)) => {
            let base = base_rule(
                "base",
                format!("{} (matching event)", meta.title),
                selections,
                condition,
                condition_text,
            );
            let refs = vec![(base.meta.id.clone(), source.pos)];
            items.push(Item::Rule(Box::new(base)));
            let kind = if field.is_some() {
                CorrKind::ValueCount
            } else {
                CorrKind::EventCount
            };
            let how = format!(
                "`| count({}){}{} {n}`",
                field.clone().unwrap_or_default(),
                by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
                format_args!(" {op}")
            );
            (
                kind,
                refs,
                by.into_iter().collect(),
                correlation::Aggregation::condition(&op, n),
                field,
                how,
            )
        }
        Some((correlation::Aggregation::Near { selections: near }, pos)) => {
            // The rule's own condition, then each selection named after `near`.
            let mut refs = Vec::new();
            let first = base_rule(
                "base",
                format!("{} (first event)", meta.title),
                selections.clone(),
                condition,
                condition_text,
            );
            refs.push((first.meta.id.clone(), source.pos));
            items.push(Item::Rule(Box::new(first)));
            for name in &near {
                let Some(i) = selections.iter().position(|(n, _)| n == name) else {
                    ctx.error(
                        pos,
                        format!("`near` refers to undefined selection `{name}`"),
                        None,
                    );
                    return DocOutcome::Invalid;
                };
                let r = base_rule(
                    name,
                    format!("{} ({name})", meta.title),
                    selections.clone(),
                    Cond::Sel(i),
                    name.clone(),
                );
                refs.push((r.meta.id.clone(), source.pos));
                items.push(Item::Rule(Box::new(r)));
            }
            (
                CorrKind::Temporal,
                refs,
                Vec::new(),
                correlation::CountCond::default(),
                None,
                format!("`| near {}`", near.join(" and ")),
            )
        }
        None => match legacy.and_names {
            Some(names) if names.len() >= 2 => {
                let mut refs = Vec::new();
                for name in &names {
                    let Some(i) = selections.iter().position(|(n, _)| n == name) else {
                        return DocOutcome::Invalid;
                    };
                    let r = base_rule(
                        name,
                        format!("{} ({name})", meta.title),
                        selections.clone(),
                        Cond::Sel(i),
                        name.clone(),
                    );
                    refs.push((r.meta.id.clone(), source.pos));
                    items.push(Item::Rule(Box::new(r)));
                }
                (
                    CorrKind::Temporal,
                    refs,
                    Vec::new(),
                    correlation::CountCond::default(),
                    None,
                    format!("`{}` with `timeframe`", names.join(" and ")),
                )
            }
            _ => {
                let pos = legacy.timeframe.map_or(legacy.condition_pos, |(_, p)| p);
                ctx.error(
                    pos,
                    "`timeframe` beside a plain condition has no faithful translation unless the condition is `a and b [and …]` of selections (events close in time)",
                    Some("remove `timeframe`, or write a Sigma correlation rule".into()),
                );
                return DocOutcome::Invalid;
            }
        },
    };
    let note_pos = legacy.aggregation_pos.unwrap_or(legacy.condition_pos);
    ctx.note(
        note_pos,
        format!(
            "deprecated {how} translated into a {} correlation (timespan {}) that keeps id `{}`",
            kind.as_str(),
            crate::util::time::format_duration(timespan),
            meta.id
        ),
    );
    items.push(Item::Correlation(Box::new(CorrelationDef {
        meta,
        source,
        kind,
        rules: refs,
        group_by,
        timespan,
        condition: cond,
        field,
        aliases: Default::default(),
        generate: false,
        suppress,
        tests,
        translated_from: Some(how),
    })));
    DocOutcome::Items(items)
}

fn read_logsource(ctx: &mut Ctx<'_>, root: &Node) -> Option<Logsource> {
    let node = root.get("logsource")?;
    if node.as_map().is_none() {
        ctx.error(
            node.pos,
            format!("`logsource` must be a mapping, found {}", node.kind_name()),
            Some("e.g. `logsource: {product: aws, service: cloudtrail}`".into()),
        );
        return None;
    }
    Some(Logsource {
        product: opt_string(ctx, node, "product"),
        service: opt_string(ctx, node, "service"),
        category: opt_string(ctx, node, "category"),
    })
}

fn string_of(ctx: &mut Ctx<'_>, node: &Node, what: &str) -> Option<String> {
    match node.scalar_type() {
        Some(ScalarType::Null) | None => {
            ctx.error(
                node.pos,
                format!("`{what}` must be a string, found {}", node.kind_name()),
                None,
            );
            None
        }
        // Numbers and dates written plainly are kept as written.
        Some(_) => node.scalar_text().map(str::to_string),
    }
}

fn opt_string(ctx: &mut Ctx<'_>, parent: &Node, key: &str) -> Option<String> {
    let n = parent.get(key)?;
    if n.is_null() {
        return None;
    }
    string_of(ctx, n, key)
}

/// A list of strings; a single string is accepted as a list of one.
fn string_list(ctx: &mut Ctx<'_>, parent: &Node, key: &str) -> Vec<String> {
    let Some(n) = parent.get(key) else {
        return Vec::new();
    };
    match &n.kind {
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|i| string_of(ctx, i, key))
            .collect(),
        NodeKind::Scalar { .. } if n.is_null() => Vec::new(),
        NodeKind::Scalar { .. } => string_of(ctx, n, key).into_iter().collect(),
        NodeKind::Map(_) => {
            ctx.error(
                n.pos,
                format!("`{key}` must be a list of strings, found a mapping"),
                None,
            );
            Vec::new()
        }
    }
}

/// A compiled `detection` block.
struct Detection {
    selections: Vec<(String, Selection)>,
    condition: Cond,
    text: String,
    legacy: Option<Legacy>,
}

fn compile_detection(ctx: &mut Ctx<'_>, det: &Node) -> Option<Detection> {
    let Some(map) = det.as_map() else {
        ctx.error(
            det.pos,
            format!("`detection` must be a mapping, found {}", det.kind_name()),
            None,
        );
        return None;
    };
    let mut names = Vec::new();
    let mut selections = Vec::new();
    let mut condition_node = None;
    let mut timeframe = None;
    for (k, v) in map {
        let Some(name) = k.scalar_text() else {
            continue;
        };
        match name {
            "condition" => condition_node = Some(v),
            "timeframe" => match v.scalar_text().map(crate::util::time::parse_duration) {
                Some(Ok(d)) if d > 0 => timeframe = Some((d, k.pos)),
                _ => ctx.error(v.pos, "`timeframe` must be a duration like 10m", None),
            },
            _ => {
                if names.iter().any(|n| n == name) {
                    ctx.error(k.pos, format!("selection `{name}` is defined twice"), None);
                    continue;
                }
                names.push(name.to_string());
                match compile_selection(ctx, name, v) {
                    Some(s) => selections.push((name.to_string(), s)),
                    // Keep indices aligned with `names`; the rule is invalid anyway.
                    None => selections.push((name.to_string(), Selection::Keywords(Vec::new()))),
                }
            }
        }
    }
    let Some(cnode) = condition_node else {
        ctx.error(
            det.pos,
            "`detection` has no `condition`",
            Some(match names.first() {
                Some(n) => format!("e.g. `condition: {n}`"),
                None => "add selections and a `condition`".into(),
            }),
        );
        return None;
    };
    if names.is_empty() {
        ctx.error(det.pos, "`detection` defines no selection", None);
        return None;
    }
    // A list of conditions means any of them.
    let cond_nodes: Vec<&Node> = match &cnode.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![cnode],
    };
    let mut conds = Vec::new();
    let mut texts = Vec::new();
    let mut aggregation = None;
    for cn in &cond_nodes {
        let Some(text) = cn.as_str() else {
            ctx.error(
                cn.pos,
                format!("`condition` must be a string, found {}", cn.kind_name()),
                None,
            );
            continue;
        };
        // The deprecated aggregation syntax: `<condition> | count() … ` or `| near …`.
        let (text, agg) = match text.split_once('|') {
            Some((base, agg)) if cond_nodes.len() == 1 => {
                let offset = base.chars().count();
                match correlation::parse_aggregation(agg) {
                    Ok(a) => aggregation = Some((a, pos_in_scalar(cn, offset))),
                    Err(e) => ctx.error(
                        pos_in_scalar(cn, offset),
                        format!("deprecated aggregation `|{agg}` cannot be translated: {e}"),
                        Some("write a Sigma correlation rule instead".into()),
                    ),
                }
                (base.trim_end(), true)
            }
            _ => (text, false),
        };
        let _ = agg;
        texts.push(text.to_string());
        match condition::parse(text, &names) {
            Ok(c) => conds.push(c),
            Err(e) => ctx.error(pos_in_scalar(cn, e.offset), e.message, e.hint),
        }
    }
    if conds.is_empty() {
        return None;
    }
    let cond = if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::Or(conds)
    };
    let legacy = if aggregation.is_some() || timeframe.is_some() {
        // `a and b [and …]` of plain selection names, for a bare timeframe.
        let words: Vec<&str> = texts
            .first()
            .map(|t| t.split_whitespace().collect())
            .unwrap_or_default();
        let and_names = (words.len() >= 3
            && words
                .iter()
                .skip(1)
                .step_by(2)
                .all(|w| w.eq_ignore_ascii_case("and"))
            && words
                .iter()
                .step_by(2)
                .all(|w| names.iter().any(|n| n == w)))
        .then(|| words.iter().step_by(2).map(|w| w.to_string()).collect());
        Some(Legacy {
            aggregation_pos: aggregation.as_ref().map(|(_, p)| *p),
            aggregation,
            timeframe,
            and_names,
            condition_pos: cnode.pos,
        })
    } else {
        None
    };
    Some(Detection {
        selections,
        condition: cond,
        text: texts.join(" | "),
        legacy,
    })
}

fn compile_selection(ctx: &mut Ctx<'_>, name: &str, node: &Node) -> Option<Selection> {
    match &node.kind {
        NodeKind::Map(_) => Some(Selection::Groups(vec![compile_group(ctx, node)?])),
        NodeKind::Seq(items) if items.is_empty() => {
            ctx.error(
                node.pos,
                format!("selection `{name}` is an empty list"),
                None,
            );
            None
        }
        NodeKind::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {
            let groups: Vec<_> = items.iter().filter_map(|i| compile_group(ctx, i)).collect();
            (groups.len() == items.len()).then_some(Selection::Groups(groups))
        }
        NodeKind::Seq(items) if items.iter().all(|i| i.scalar_text().is_some()) => {
            let mut needles = Vec::new();
            for i in items {
                needles.push(keyword_needle(ctx, i)?);
            }
            Some(Selection::Keywords(needles))
        }
        NodeKind::Seq(_) => {
            ctx.error(
                node.pos,
                format!("selection `{name}` mixes mappings and plain values"),
                Some("a selection is a mapping (AND), a list of mappings (OR), or a list of keywords".into()),
            );
            None
        }
        NodeKind::Scalar { .. } if node.is_null() => {
            ctx.error(node.pos, format!("selection `{name}` is empty"), None);
            None
        }
        NodeKind::Scalar { .. } => Some(Selection::Keywords(vec![keyword_needle(ctx, node)?])),
    }
}

/// A keyword: searched (as a substring, case-insensitively) in every value of the event.
fn keyword_needle(ctx: &mut Ctx<'_>, node: &Node) -> Option<Needle> {
    let text = node.scalar_text()?;
    let mut toks = parse_wildcards(text);
    toks.insert(0, Tok::Star);
    toks.push(Tok::Star);
    match compile_pattern(toks, false) {
        Ok(pat) => Some(Needle::Str { pat, cased: false }),
        Err(e) => {
            ctx.error(node.pos, e, None);
            None
        }
    }
}

fn compile_group(ctx: &mut Ctx<'_>, node: &Node) -> Option<Vec<FieldMatch>> {
    let map = node.as_map()?;
    if map.is_empty() {
        ctx.error(node.pos, "empty mapping in a selection", None);
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in map {
        match compile_field(ctx, k, v) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrap {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Default)]
struct Mods {
    wrap: Option<Wrap>,
    all: bool,
    re: bool,
    re_flags: (bool, bool, bool),
    cidr: bool,
    exists: bool,
    fieldref: bool,
    base64: bool,
    base64offset: bool,
    cmp: Option<CmpOp>,
    cased: bool,
    expand: bool,
}

fn parse_mods(ctx: &mut Ctx<'_>, key: &Node, text: &str) -> Option<(String, Mods)> {
    let mut parts = text.split('|');
    let field = parts.next().unwrap_or("").trim().to_string();
    let mut mods = Mods::default();
    let mut offset = field.chars().count();
    let mut ok = true;
    let mut exclusive: Vec<&str> = Vec::new();
    for m in parts {
        offset += 1;
        let pos = pos_in_scalar(key, offset);
        offset += m.chars().count();
        let lower = m.to_ascii_lowercase();
        match lower.as_str() {
            "contains" | "startswith" | "endswith" => {
                if let Some(prev) = mods.wrap {
                    ctx.error(
                        pos,
                        format!(
                            "`{m}` conflicts with `{}` on the same field",
                            wrap_name(prev)
                        ),
                        None,
                    );
                    ok = false;
                }
                mods.wrap = Some(match lower.as_str() {
                    "contains" => Wrap::Contains,
                    "startswith" => Wrap::StartsWith,
                    _ => Wrap::EndsWith,
                });
            }
            "all" => mods.all = true,
            "re" => {
                mods.re = true;
                exclusive.push("re");
            }
            "i" | "ignorecase" => mods.re_flags.0 = true,
            "m" | "multiline" => mods.re_flags.1 = true,
            "s" | "dotall" => mods.re_flags.2 = true,
            "cidr" => {
                mods.cidr = true;
                exclusive.push("cidr");
            }
            "exists" => {
                mods.exists = true;
                exclusive.push("exists");
            }
            "fieldref" => {
                mods.fieldref = true;
                exclusive.push("fieldref");
            }
            "base64" => {
                mods.base64 = true;
                exclusive.push("base64");
            }
            "base64offset" => {
                mods.base64offset = true;
                exclusive.push("base64offset");
            }
            "lt" | "lte" | "gt" | "gte" => {
                mods.cmp = Some(match lower.as_str() {
                    "lt" => CmpOp::Lt,
                    "lte" => CmpOp::Lte,
                    "gt" => CmpOp::Gt,
                    _ => CmpOp::Gte,
                });
                exclusive.push("lt/lte/gt/gte");
            }
            "cased" => mods.cased = true,
            "expand" => mods.expand = true,
            _ => {
                ok = false;
                if let Some((_, why)) = UNSUPPORTED_MODIFIERS.iter().find(|(n, _)| *n == lower) {
                    ctx.error(
                        pos,
                        format!("unsupported modifier `{m}`"),
                        Some((*why).to_string()),
                    );
                } else {
                    let hint = condition::did_you_mean(&lower, KNOWN_MODIFIERS.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            Some(format!("known modifiers: {}", KNOWN_MODIFIERS.join(", ")))
                        });
                    ctx.error(pos, format!("unknown modifier `{m}`"), hint);
                }
            }
        }
    }
    let key_pos = pos_in_scalar(key, 0);
    if field.is_empty() {
        ctx.error(
            key_pos,
            "a field name is missing before the modifiers",
            Some("keyword searches with modifiers are not supported; name the field".into()),
        );
        return None;
    }
    exclusive.sort_unstable();
    exclusive.dedup();
    // `base64offset` is used together with `contains`; fieldref may take contains/startswith/endswith.
    if exclusive.len() > 1 {
        ctx.error(
            key_pos,
            format!("modifiers `{}` cannot be combined", exclusive.join("`, `")),
            None,
        );
        ok = false;
    }
    if (mods.re_flags.0 || mods.re_flags.1 || mods.re_flags.2) && !mods.re {
        ctx.error(
            key_pos,
            "regex flags `i`, `m`, `s` need the `re` modifier",
            None,
        );
        ok = false;
    }
    if mods.wrap.is_some() && (mods.re || mods.cidr || mods.exists || mods.cmp.is_some()) {
        ctx.error(
            key_pos,
            "contains/startswith/endswith cannot be combined with re, cidr, exists or comparisons",
            None,
        );
        ok = false;
    }
    if mods.base64offset && mods.wrap != Some(Wrap::Contains) {
        ctx.error(
            key_pos,
            "`base64offset` must be followed by `contains`",
            Some(format!("write `{field}|base64offset|contains`")),
        );
        ok = false;
    }
    ok.then_some((field, mods))
}

fn wrap_name(w: Wrap) -> &'static str {
    match w {
        Wrap::Contains => "contains",
        Wrap::StartsWith => "startswith",
        Wrap::EndsWith => "endswith",
    }
}

fn compile_field(ctx: &mut Ctx<'_>, key: &Node, value: &Node) -> Option<FieldMatch> {
    let Some(key_text) = key.scalar_text() else {
        ctx.error(key.pos, "a selection key must be a field name", None);
        return None;
    };
    let (field, mods) = parse_mods(ctx, key, key_text)?;
    let path = FieldPath::new(&field);
    let values: Vec<&Node> = match &value.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![value],
    };
    if values.is_empty() {
        ctx.error(
            value.pos,
            format!("`{key_text}` has an empty list of values, which can never match"),
            None,
        );
        return None;
    }
    for v in &values {
        if v.scalar_text().is_none() {
            ctx.error(
                v.pos,
                format!("values of `{key_text}` must be strings, numbers, booleans or null, found {}", v.kind_name()),
                Some("nested mappings as values are a TrailAlerts extension, not Sigma; use dotted field names (`a.b.c: value`)".into()),
            );
            return None;
        }
    }
    if mods.exists {
        let [v] = values.as_slice() else {
            ctx.error(value.pos, "`exists` takes one value: true or false", None);
            return None;
        };
        let b = match v.scalar_type() {
            Some(ScalarType::Bool(b)) => Some(b),
            _ => match v.scalar_text().map(str::to_ascii_lowercase).as_deref() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            },
        };
        return match b {
            Some(b) => Some(FieldMatch::new(
                path,
                key_text.to_string(),
                FieldTest::Exists(b),
            )),
            None => {
                ctx.error(v.pos, "`exists` takes true or false", None);
                None
            }
        };
    }
    let mut needles = Vec::new();
    for v in values {
        needles.push(compile_value(ctx, &mods, v, key_text)?);
    }
    Some(FieldMatch::new(
        path,
        key_text.to_string(),
        FieldTest::Values {
            needles,
            all: mods.all,
            merged: None,
        },
    ))
}

fn compile_value(ctx: &mut Ctx<'_>, mods: &Mods, v: &Node, key_text: &str) -> Option<Needle> {
    if v.is_null() {
        if mods.re
            || mods.cidr
            || mods.cmp.is_some()
            || mods.fieldref
            || mods.wrap.is_some()
            || mods.base64
            || mods.base64offset
            || mods.expand
        {
            ctx.error(
                v.pos,
                format!("null cannot be used with the modifiers of `{key_text}`"),
                Some("a plain `null` matches a missing or null field".into()),
            );
            return None;
        }
        return Some(Needle::Null);
    }
    let text = v.scalar_text().unwrap_or_default();
    let texts: Vec<String> = if mods.expand {
        expand_placeholders(ctx, v, text)?
    } else {
        vec![text.to_string()]
    };
    let mut alts = Vec::new();
    for t in &texts {
        alts.push(compile_text(ctx, mods, v, t)?);
    }
    Some(if alts.len() == 1 {
        alts.remove(0)
    } else {
        Needle::Any(alts)
    })
}

fn compile_text(ctx: &mut Ctx<'_>, mods: &Mods, v: &Node, t: &str) -> Option<Needle> {
    if mods.re {
        let (i, m, s) = mods.re_flags;
        return match regex::RegexBuilder::new(t)
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_DFA_LIMIT)
            .nest_limit(100)
            .build()
        {
            Ok(re) => Some(Needle::Re(re)),
            Err(e) => {
                let (msg, hint) = match &e {
                    regex::Error::CompiledTooBig(limit) => (
                        format!("regex is too large: it compiles to more than {limit} bytes"),
                        Some("simplify the pattern (large counted repetitions multiply its size)".to_string()),
                    ),
                    _ => (
                        format!(
                            "invalid regex: {}",
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("")
                                .trim_start_matches("error: ")
                        ),
                        Some("trailwatch uses Rust regex syntax: no look-around and no back-references".to_string()),
                    ),
                };
                ctx.error(v.pos, msg, hint);
                None
            }
        };
    }
    if mods.cidr {
        return match Cidr::parse(t) {
            Ok(c) => Some(Needle::Cidr(c)),
            Err(e) => {
                ctx.error(
                    v.pos,
                    format!("invalid CIDR `{t}`: {e}"),
                    Some("e.g. `10.0.0.0/8` or `2001:db8::/32`".into()),
                );
                None
            }
        };
    }
    if let Some(op) = mods.cmp {
        return match t.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Some(Needle::Cmp(op, n)),
            _ => {
                ctx.error(
                    v.pos,
                    format!("`{t}` is not a number; lt/lte/gt/gte compare numbers"),
                    None,
                );
                None
            }
        };
    }
    if mods.fieldref {
        if t.trim().is_empty() {
            ctx.error(v.pos, "`fieldref` needs a field name", None);
            return None;
        }
        return Some(Needle::FieldRef {
            path: FieldPath::new(t.trim()),
            how: match mods.wrap {
                None => RefHow::Equal,
                Some(Wrap::Contains) => RefHow::Contains,
                Some(Wrap::StartsWith) => RefHow::StartsWith,
                Some(Wrap::EndsWith) => RefHow::EndsWith,
            },
            cased: mods.cased,
        });
    }
    // Base64 forms are literal and case-sensitive (base64 alphabets differ by case).
    let (variants, cased): (Vec<Vec<Tok>>, bool) = if mods.base64 {
        (vec![vec![Tok::Lit(b64(t.as_bytes()))]], true)
    } else if mods.base64offset {
        (
            base64_offsets(t.as_bytes())
                .into_iter()
                .map(|s| vec![Tok::Lit(s)])
                .collect(),
            true,
        )
    } else {
        (vec![parse_wildcards(t)], mods.cased)
    };
    let mut alts = Vec::new();
    for mut toks in variants {
        match mods.wrap {
            Some(Wrap::Contains) => {
                toks.insert(0, Tok::Star);
                toks.push(Tok::Star);
            }
            Some(Wrap::StartsWith) => toks.push(Tok::Star),
            Some(Wrap::EndsWith) => toks.insert(0, Tok::Star),
            None => {}
        }
        match compile_pattern(toks, cased) {
            Ok(pat) => alts.push(Needle::Str { pat, cased }),
            Err(e) => {
                ctx.error(v.pos, e, None);
                return None;
            }
        }
    }
    Some(if alts.len() == 1 {
        alts.remove(0)
    } else {
        Needle::Any(alts)
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The three encodings of `value` as it may appear at any offset inside a base64 string
/// (the Sigma `base64offset` modifier): encode with 0, 1 and 2 bytes of padding before it and
/// cut the characters that depend on the unknown neighbours.
pub fn base64_offsets(value: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut buf = vec![b' '; i];
            buf.extend_from_slice(value);
            let enc = b64(&buf);
            let cut_end = END[(value.len() + i) % 3];
            let end = enc.len().saturating_sub(cut_end);
            enc.get(START[i]..end.max(START[i]))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Most alternatives one value may expand to through placeholders.
const MAX_EXPANSIONS: usize = 10_000;

fn expand_placeholders(ctx: &mut Ctx<'_>, v: &Node, text: &str) -> Option<Vec<String>> {
    let Some(ph) = ctx.placeholders else {
        ctx.error(
            v.pos,
            "`expand` needs placeholder values",
            Some(
                "pass --placeholders FILE (a YAML mapping of placeholder name to list of values)"
                    .into(),
            ),
        );
        return None;
    };
    let mut results = vec![String::new()];
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        let Some(values) = ph.get(name) else {
            let hint = condition::did_you_mean(name, ph.names())
                .map(|s| format!("did you mean `%{s}%`?"))
                .or_else(|| {
                    Some(format!(
                        "the placeholders file defines: {}",
                        ph.names().collect::<Vec<_>>().join(", ")
                    ))
                });
            ctx.error(
                v.pos,
                format!("placeholder `%{name}%` is not defined"),
                hint,
            );
            return None;
        };
        let prefix = &rest[..start];
        let mut next = Vec::new();
        for r in &results {
            for val in values {
                next.push(format!("{r}{prefix}{val}"));
            }
        }
        if next.len() > MAX_EXPANSIONS {
            ctx.error(
                v.pos,
                format!("placeholders expand to more than {MAX_EXPANSIONS} values"),
                None,
            );
            return None;
        }
        results = next;
        rest = &rest[start + len + 2..];
    }
    for r in &mut results {
        r.push_str(rest);
    }
    Some(results)
}

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
pub(crate) fn compile_pattern(toks: Vec<Tok>, cased: bool) -> Result<StrPattern, String> {
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
                .map_err(|e| format!("wildcard pattern is too complex: {e}"))
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

    #[test]
    fn base64offset_matches_pysigma() {
        // Values computed with pySigma's SigmaBase64OffsetModifier for "/bin/bash".
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            vec!["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
    }
}
