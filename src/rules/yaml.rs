//! YAML documents as trees that remember where every node came from.
//!
//! Rule errors must point at the offending *value* (`file:line:column`), not only at YAML
//! syntax errors, so rules are read through `saphyr-parser`'s event stream into [`Node`]s that
//! carry their position. Aliases are expanded here, with a bound on the total number of
//! nodes a document may expand to ("billion laughs" files are rejected, never expanded), and
//! nesting depth is bounded too.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span};

/// Most nodes one document may hold after alias expansion.
pub const MAX_NODES: usize = 200_000;
/// Deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;

/// A position in the source: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// How a scalar was written; plain scalars are typed (null, bool, number), quoted and block
/// scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar { text: String, style: Style },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

/// The YAML 1.2 core-schema type of a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    Null,
    Bool(bool),
    Int,
    Float,
    Str,
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }
    /// The text of a scalar of any type.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
    /// The text of a scalar that is a string (not null).
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        self.scalar_type() == Some(ScalarType::Null)
    }
    /// Member `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v)
    }
    /// A short description of the node's type, for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar { .. } => match self.scalar_type() {
                Some(ScalarType::Null) => "null",
                Some(ScalarType::Bool(_)) => "a boolean",
                Some(ScalarType::Int) | Some(ScalarType::Float) => "a number",
                _ => "a string",
            },
        }
    }

    /// The core-schema type of a scalar.
    pub fn scalar_type(&self) -> Option<ScalarType> {
        let NodeKind::Scalar { text, style } = &self.kind else {
            return None;
        };
        if *style != Style::Plain {
            return Some(ScalarType::Str);
        }
        Some(match text.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => ScalarType::Null,
            "true" | "True" | "TRUE" => ScalarType::Bool(true),
            "false" | "False" | "FALSE" => ScalarType::Bool(false),
            t if is_int(t) => ScalarType::Int,
            t if is_float(t) => ScalarType::Float,
            _ => ScalarType::Str,
        })
    }

    /// Converts to JSON with core-schema typing (used for events written in YAML).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(members) => J::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
            NodeKind::Scalar { text, .. } => match self.scalar_type() {
                Some(ScalarType::Null) => J::Null,
                Some(ScalarType::Bool(b)) => J::Bool(b),
                Some(ScalarType::Int) => parse_int(text)
                    .map(J::from)
                    .unwrap_or_else(|| J::String(text.clone())),
                Some(ScalarType::Float) => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(text.clone())),
                _ => J::String(text.clone()),
            },
        }
    }

    /// Number of nodes in this tree.
    fn size(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar { .. } => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeKind::Map(m) => 1 + m.iter().map(|(k, v)| k.size() + v.size()).sum::<usize>(),
        }
    }
}

fn is_int(t: &str) -> bool {
    let d = t.strip_prefix(['-', '+']).unwrap_or(t);
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        || t.strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        || t.strip_prefix("0o")
            .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
}

fn parse_int(t: &str) -> Option<i64> {
    if let Some(h) = t.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    if let Some(o) = t.strip_prefix("0o") {
        return i64::from_str_radix(o, 8).ok();
    }
    t.parse().ok()
}

fn is_float(t: &str) -> bool {
    let d = t.strip_prefix(['-', '+']).unwrap_or(t);
    if matches!(d, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mant, exp) = match d.find(['e', 'E']) {
        Some(i) => (&d[..i], Some(&d[i + 1..])),
        None => (d, None),
    };
    let mant_ok = match mant.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mant.is_empty() && mant.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    mant_ok && exp_ok && (mant.contains('.') || exp.is_some())
}

/// A YAML document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
    /// A limit or well-formedness rule (aliases, depth, duplicate keys), not a syntax error.
    pub limit: bool,
}

/// One document of a (possibly multi-document) YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based index of the document within its file.
    pub index: usize,
    pub root: Node,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        members: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Scalar keys seen so far, with where they were (duplicates are errors).
        seen: std::collections::HashMap<String, Pos>,
        pos: Pos,
        anchor: usize,
    },
}

/// Parses every document of `text`. On a syntax error, the documents before it are lost;
/// the error carries its position.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut doc_index = 0usize;

    while let Some(next) = parser.next_event() {
        let (event, span): (Event, Span) = next.map_err(|e| YamlError {
            pos: Pos::from_marker(e.marker()),
            message: e.info().to_string(),
            limit: false,
        })?;
        let pos = Pos::from_marker(&span.start);
        let finished: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                anchors.clear();
                root = None;
                nodes = 0;
                None
            }
            Event::DocumentEnd => {
                if let Some(r) = root.take() {
                    docs.push(Document {
                        index: doc_index,
                        root: r,
                    });
                }
                doc_index += 1;
                None
            }
            Event::Alias(id) => {
                let target = anchors.get(&id).ok_or_else(|| YamlError {
                    pos,
                    message: "alias refers to an unknown anchor".into(),
                    limit: false,
                })?;
                // Count before cloning, so an expansion bomb is refused before it is built.
                nodes += target.size();
                if nodes > MAX_NODES {
                    return Err(YamlError {
                        pos,
                        message: format!(
                            "document expands to more than {MAX_NODES} nodes through aliases (a \"billion laughs\" file?)"
                        ),
                        limit: true,
                    });
                }
                Some((target.clone(), 0))
            }
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                Some((
                    Node {
                        kind: NodeKind::Scalar {
                            text: text.into_owned(),
                            style,
                        },
                        pos,
                    },
                    anchor,
                ))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                        limit: true,
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        pos,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        members: Vec::new(),
                        key: None,
                        seen: std::collections::HashMap::new(),
                        pos,
                        anchor,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { items, pos, anchor }) => Some((
                    Node {
                        kind: NodeKind::Seq(items),
                        pos,
                    },
                    anchor,
                )),
                Some(Frame::Map {
                    members,
                    pos,
                    anchor,
                    ..
                }) => Some((
                    Node {
                        kind: NodeKind::Map(members),
                        pos,
                    },
                    anchor,
                )),
                None => None,
            },
        };
        if nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: format!(
                    "document expands to more than {MAX_NODES} nodes (aliases nested too deeply?)"
                ),
                limit: true,
            });
        }
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                members, key, seen, ..
            }) => match key.take() {
                None => {
                    // YAML requires unique keys; a repeated key silently dropping a value
                    // would change what a rule means.
                    if let Some(text) = node.scalar_text() {
                        if let Some(first) = seen.get(text) {
                            return Err(YamlError {
                                pos: node.pos,
                                message: format!(
                                    "duplicate key `{text}` (first at line {}, column {})",
                                    first.line, first.col
                                ),
                                limit: true,
                            });
                        }
                        seen.insert(text.to_string(), node.pos);
                    }
                    *key = Some(node)
                }
                Some(k) => members.push((k, node)),
            },
        }
    }
    if let Some(r) = root.take() {
        docs.push(Document {
            index: doc_index,
            root: r,
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_values() {
        let docs =
            parse_documents("title: x\ndetection:\n  sel:\n    eventName: 'Stop'\n").unwrap();
        let v = docs[0]
            .root
            .get("detection")
            .unwrap()
            .get("sel")
            .unwrap()
            .get("eventName")
            .unwrap();
        assert_eq!(v.pos, Pos { line: 4, col: 16 });
        assert_eq!(v.as_str(), Some("Stop"));
    }

    #[test]
    fn multiple_documents() {
        let docs = parse_documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 1);
        assert!(docs[1].root.get("b").is_some());
    }

    #[test]
    fn aliases_expand_but_billion_laughs_is_rejected() {
        let ok = parse_documents("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(ok[0].root.get("b").unwrap().as_seq().unwrap().len(), 2);
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        let err = parse_documents(&bomb).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(
            err.message.contains("duplicate key `a` (first at line 1"),
            "{err:?}"
        );
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = "[".repeat(1000);
        assert!(parse_documents(&text).is_err());
    }

    #[test]
    fn core_schema_typing() {
        let docs = parse_documents("[~, true, '1', 1, 1.5, 0x1f, abc, 1e3, .5]").unwrap();
        let json = docs[0].root.to_json();
        assert_eq!(
            json,
            serde_json::json!([null, true, "1", 1, 1.5, 31, "abc", 1000.0, 0.5])
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }
}
