//! The `detection` block: selections, groups, field keys with their modifiers, and the condition.

use super::legacy::Legacy;
use super::pattern::{Tok, compile_pattern, parse_wildcards};
use super::values::compile_value;
use super::{Ctx, pos_in_scalar};
use crate::event::FieldPath;
use crate::rules::condition;
use crate::rules::correlation;
use crate::rules::matcher::{CmpOp, Cond, FieldMatch, FieldTest, Needle, Selection};
use crate::rules::yaml::{Node, NodeKind, ScalarType};

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

/// A compiled `detection` block.
pub(super) struct Detection {
    pub(super) selections: Vec<(String, Selection)>,
    pub(super) condition: Cond,
    pub(super) text: String,
    pub(super) legacy: Option<Legacy>,
}

pub(super) fn compile_detection(ctx: &mut Ctx<'_>, det: &Node) -> Option<Detection> {
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
            ctx.error(node.pos, e.to_string(), None);
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
pub(super) enum Wrap {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Default)]
pub(super) struct Mods {
    pub(super) wrap: Option<Wrap>,
    pub(super) all: bool,
    pub(super) re: bool,
    pub(super) re_flags: (bool, bool, bool),
    pub(super) cidr: bool,
    pub(super) exists: bool,
    pub(super) fieldref: bool,
    pub(super) base64: bool,
    pub(super) base64offset: bool,
    pub(super) cmp: Option<CmpOp>,
    pub(super) cased: bool,
    pub(super) expand: bool,
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
