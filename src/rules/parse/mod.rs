//! From YAML nodes to compiled rules, collecting every problem with its position.
//! This file reads a document and its metadata; the submodules compile the `detection` block
//! (`detection`, `values`, `pattern`) and translate the deprecated aggregation syntax (`legacy`).

mod detection;
mod legacy;
mod pattern;
mod values;

pub(crate) use pattern::{compile_pattern, parse_wildcards};

use super::correlation::{self, CorrelationDef};
use super::diag::{Diagnostic, Severity};
use super::testcase::{self, TestCase};
use super::yaml::{Node, NodeKind, Pos, ScalarType, Style};
use super::{Level, Logsource, Placeholders, Rule, RuleMeta, RuleSource};
use detection::compile_detection;
use legacy::translate_legacy;
use std::path::Path;

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
    pub(crate) fn new(
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

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.errors += 1;
        self.diags
            .push(Diagnostic::new(Severity::Error, self.file, Some(pos), message).with_hint(hint));
    }

    pub(crate) fn note(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(
            Severity::Note,
            self.file,
            Some(pos),
            message,
        ));
    }

    pub(crate) fn errors(&self) -> usize {
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
