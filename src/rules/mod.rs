//! Detection rules: Sigma YAML, loaded with every problem reported at once, compiled once,
//! selected per event through a candidate index.

pub(crate) mod baseline;
pub(crate) mod condition;
pub mod correlation;
pub mod diag;
pub mod exceptions;
pub(crate) mod explain;
pub mod index;
pub(crate) mod matcher;
pub(crate) mod parse;
pub(crate) mod plan;
pub mod testcase;
pub mod yaml;

use crate::event::Event;
use diag::{Diagnostic, Severity};
use index::CandidateIndex;
use matcher::{Cond, Selection};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use testcase::TestCase;
use yaml::Pos;

/// Largest rule file read (rules are small; this guards against pointing at a log archive).
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;

/// Sigma severity levels, ordered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" | "info" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }
    /// The level in text meant to be read (finding and alert lines, tables): `INFO`, `LOW`,
    /// `MEDIUM`, `HIGH`, `CRITICAL`. One spelling for every text output, at most 8 wide (so
    /// columns line up), read back by [`Level::parse`]. JSON keeps [`Level::as_str`].
    pub fn tag(&self) -> &'static str {
        match self {
            Level::Informational => "INFO",
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Logsource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

impl Logsource {
    /// `product: aws` with `service: cloudtrail` (or no service), or `service: cloudtrail`
    /// alone. A rule without any `logsource` is also taken as a CloudTrail rule.
    pub fn is_cloudtrail(&self, extra_services: &[String]) -> bool {
        let product_ok = self
            .product
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case("aws"));
        let service_ok = self.service.as_deref().is_none_or(|s| {
            s.eq_ignore_ascii_case("cloudtrail")
                || extra_services.iter().any(|e| e.eq_ignore_ascii_case(s))
        });
        let said_something = self.product.is_some() || self.service.is_some();
        product_ok && service_ok && (said_something || self.category.is_none())
    }
}

/// What a rule says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleMeta {
    pub id: String,
    /// Sigma `name`: how correlation rules may refer to this rule.
    pub name: Option<String>,
    pub title: String,
    pub status: Option<String>,
    pub description: Option<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub tags: Vec<String>,
    pub logsource: Logsource,
    pub falsepositives: Vec<String>,
    pub level: Level,
    pub fields: Vec<String>,
    /// Keys trailwatch does not interpret, kept as written.
    #[serde(skip)]
    pub extra: Vec<(String, serde_json::Value)>,
}

/// Where a rule came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSource {
    pub file: String,
    /// Index of the YAML document in the file.
    pub doc: usize,
    #[serde(skip)]
    pub pos: Pos,
    #[serde(skip)]
    pub id_pos: Option<Pos>,
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub meta: RuleMeta,
    pub source: RuleSource,
    pub selections: Vec<(String, Selection)>,
    pub condition: Cond,
    /// The condition as written (for explanations).
    pub condition_text: String,
    pub tests: Vec<TestCase>,
    pub suppress: correlation::SuppressSetting,
}

impl Rule {
    /// Does this rule match the event?
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        self.condition.eval(&self.selections, ev)
    }
}

/// Values for `|expand` placeholders: `%name%` → list of values.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    values: BTreeMap<String, Vec<String>>,
}

impl Placeholders {
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.values.get(name).map(Vec::as_slice)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Reads a YAML mapping of placeholder name to a value or a list of values.
    pub fn from_yaml(file: &str, text: &str) -> Result<Placeholders, Vec<Diagnostic>> {
        let err =
            |pos: Option<Pos>, msg: String| vec![Diagnostic::new(Severity::Error, file, pos, msg)];
        let docs = yaml::parse_documents(text).map_err(|e| err(Some(e.pos), e.message))?;
        let Some(doc) = docs.first() else {
            return Ok(Placeholders::default());
        };
        let Some(map) = doc.root.as_map() else {
            return Err(err(
                Some(doc.root.pos),
                "placeholders must be a mapping of name to values".into(),
            ));
        };
        let mut values = BTreeMap::new();
        for (k, v) in map {
            let Some(name) = k.scalar_text() else {
                return Err(err(Some(k.pos), "placeholder names must be strings".into()));
            };
            let list: Vec<String> = match v.as_seq() {
                Some(items) => items
                    .iter()
                    .map(|i| i.scalar_text().map(str::to_string).ok_or(i.pos))
                    .collect::<Result<_, _>>()
                    .map_err(|p| {
                        err(Some(p), format!("values of `{name}` must be plain values"))
                    })?,
                None => match v.scalar_text() {
                    Some(t) => vec![t.to_string()],
                    None => {
                        return Err(err(
                            Some(v.pos),
                            format!("`{name}` must be a value or a list of values"),
                        ));
                    }
                },
            };
            values.insert(name.trim_matches('%').to_string(), list);
        }
        Ok(Placeholders { values })
    }
}

/// Options for loading rules.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub placeholders: Option<Placeholders>,
    /// Extra `logsource.service` names (with `product: aws`) to accept as CloudTrail rules;
    /// some rule sets name the AWS service (`iam`, `ec2`) whose API calls CloudTrail records.
    pub extra_services: Vec<String>,
}

/// Everything a load produced: the rules that compiled and every diagnostic.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub rules: Vec<Rule>,
    pub diagnostics: Vec<Diagnostic>,
    /// Source text by file label, to render snippets.
    pub sources: HashMap<String, String>,
    /// Number of YAML documents skipped because they are not CloudTrail rules.
    pub skipped: usize,
    /// Correlation rules as written (resolved into `correlations` by `finish`).
    pub correlation_defs: Vec<correlation::CorrelationDef>,
    /// Correlation rules with their references resolved.
    pub correlations: Vec<correlation::Correlation>,
    /// The `baseline` document (the last one loaded replaces earlier ones).
    pub baseline: Option<baseline::BaselineDoc>,
}

impl LoadReport {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
    /// How many rules, correlations and `baseline` documents loaded (see [`Counts`]).
    pub fn counts(&self) -> Counts {
        Counts {
            rules: self.rules.len(),
            correlations: self.correlations.len(),
            baselines: usize::from(self.baseline.is_some()),
        }
    }
    /// Renders a diagnostic with its source snippet.
    pub fn render(&self, d: &Diagnostic) -> String {
        d.render(self.sources.get(&d.file).map(String::as_str))
    }
}

/// Collects rules from files, directories and strings.
#[derive(Debug, Default)]
pub struct Loader {
    opts: LoadOptions,
    report: LoadReport,
}

/// Lists rule files under `dir` (recursively, `.yml`/`.yaml`, sorted).
fn rule_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, std::io::Error)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push((dir.to_path_buf(), e));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rule_files(&p, out, errors);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
        {
            out.push(p);
        }
    }
}

impl Loader {
    pub fn new(opts: LoadOptions) -> Self {
        Loader {
            opts,
            report: LoadReport::default(),
        }
    }

    /// Loads a rule file, or every `.yml`/`.yaml` file below a directory.
    pub fn load_path(&mut self, path: &Path) {
        let label = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.io_error(&label, &e);
                return;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            let mut errors = Vec::new();
            rule_files(path, &mut files, &mut errors);
            for (p, e) in errors {
                self.io_error(&p.display().to_string(), &e);
            }
            if files.is_empty() {
                self.report.diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    &label,
                    None,
                    "no .yml or .yaml rule files in this directory",
                ));
            }
            for f in files {
                self.load_file(&f);
            }
        } else {
            self.load_file(path);
        }
    }

    fn io_error(&mut self, label: &str, e: &std::io::Error) {
        self.report.diagnostics.push(Diagnostic::new(
            Severity::Error,
            label,
            None,
            format!("cannot read: {e}"),
        ));
    }

    fn load_file(&mut self, path: &Path) {
        let label = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_RULE_FILE_BYTES => {
                self.report.diagnostics.push(Diagnostic::new(
                    Severity::Error,
                    &label,
                    None,
                    format!(
                        "file is {} bytes; rule files may be at most {MAX_RULE_FILE_BYTES}",
                        m.len()
                    ),
                ));
                return;
            }
            Err(e) => {
                self.io_error(&label, &e);
                return;
            }
            _ => {}
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.io_error(&label, &e);
                return;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                self.report.diagnostics.push(Diagnostic::new(
                    Severity::Error,
                    &label,
                    None,
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                ));
                return;
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.load_source(&label, &text, Some(&base));
    }

    /// Loads rules from `text`, labelled `label` in messages. `base_dir` is where
    /// `event_file` test paths are resolved; `None` (built-in rules) forbids them.
    pub fn load_source(&mut self, label: &str, text: &str, base_dir: Option<&Path>) {
        self.report
            .sources
            .insert(label.to_string(), text.to_string());
        let docs = match yaml::parse_documents(text) {
            Ok(d) => d,
            Err(e) => {
                // Limits (alias expansion, nesting, duplicate keys) are not syntax errors.
                let (message, hint) = if e.limit {
                    (e.message, None)
                } else {
                    (
                        format!("YAML syntax: {}", e.message),
                        Some("check indentation and quoting around this place".to_string()),
                    )
                };
                self.report.diagnostics.push(
                    Diagnostic::new(Severity::Error, label, Some(e.pos), message).with_hint(hint),
                );
                return;
            }
        };
        let mut ctx = parse::Ctx::new(
            label,
            &mut self.report.diagnostics,
            self.opts.placeholders.as_ref(),
            &self.opts.extra_services,
            base_dir,
        );
        for doc in docs {
            match parse::compile_document(&mut ctx, &doc.root, doc.index) {
                parse::DocOutcome::Items(items) => {
                    for item in items {
                        match item {
                            parse::Item::Rule(r) => self.report.rules.push(*r),
                            parse::Item::Correlation(c) => self.report.correlation_defs.push(*c),
                            parse::Item::Baseline(b) => {
                                if let Some(old) = &self.report.baseline {
                                    ctx.note(
                                        b.source.pos,
                                        format!(
                                            "this baseline document replaces the one in {}",
                                            old.source.file
                                        ),
                                    );
                                }
                                self.report.baseline = Some(*b);
                            }
                        }
                    }
                }
                parse::DocOutcome::Skipped => self.report.skipped += 1,
                parse::DocOutcome::Invalid => {}
            }
        }
    }

    /// Checks what needs every rule (duplicate ids) and returns the report.
    pub fn finish(mut self) -> LoadReport {
        // Rules and correlations share one id space.
        let mut first: HashMap<String, (String, Option<Pos>)> = HashMap::new();
        let mut dup_rules = Vec::new();
        let mut dup_corrs = Vec::new();
        let sources = self
            .report
            .rules
            .iter()
            .map(|r| (&r.meta.id, &r.source, false))
            .chain(
                self.report
                    .correlation_defs
                    .iter()
                    .map(|c| (&c.meta.id, &c.source, true)),
            );
        let (mut ri, mut ci) = (0usize, 0usize);
        let mut dups = Vec::new();
        for (id, src, is_corr) in sources {
            let here = (src.file.clone(), src.id_pos.or(Some(src.pos)));
            if let Some((f, p)) = first.get(id) {
                let at = match p {
                    Some(p) => format!("{f}:{}:{}", p.line, p.col),
                    None => f.clone(),
                };
                dups.push(
                    Diagnostic::new(
                        Severity::Error,
                        &here.0,
                        here.1,
                        format!("duplicate rule id `{id}`"),
                    )
                    .with_hint(Some(format!(
                        "first defined at {at}; every rule needs its own id"
                    ))),
                );
                if is_corr {
                    dup_corrs.push(ci);
                } else {
                    dup_rules.push(ri);
                }
            } else {
                first.insert(id.clone(), here);
            }
            if is_corr {
                ci += 1;
            } else {
                ri += 1;
            }
        }
        self.report.diagnostics.extend(dups);
        for i in dup_rules.into_iter().rev() {
            self.report.rules.remove(i);
        }
        for i in dup_corrs.into_iter().rev() {
            self.report.correlation_defs.remove(i);
        }
        let defs = std::mem::take(&mut self.report.correlation_defs);
        self.report.correlations =
            correlation::resolve(&self.report.rules, defs, &mut self.report.diagnostics);
        // Files in load order; within a file, by position.
        let mut order: HashMap<String, usize> = HashMap::new();
        for d in &self.report.diagnostics {
            let n = order.len();
            order.entry(d.file.clone()).or_insert(n);
        }
        self.report
            .diagnostics
            .sort_by_key(|d| (order.get(&d.file).copied(), d.line, d.column));
        self.report
    }
}

/// What a rule set holds, counted and described one way wherever it is shown (`rules list`,
/// `rules validate`, `run`'s start-up log): `103 rules, 1 correlation, 1 baseline document`.
/// Kinds other than detection rules are left out when there are none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Single-event detection rules.
    pub rules: usize,
    pub correlations: usize,
    /// `baseline` documents (at most one is in force).
    pub baselines: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::util::text::count;
        f.write_str(&count(self.rules as u64, "rule"))?;
        if self.correlations > 0 {
            write!(f, ", {}", count(self.correlations as u64, "correlation"))?;
        }
        if self.baselines > 0 {
            write!(f, ", {}", count(self.baselines as u64, "baseline document"))?;
        }
        Ok(())
    }
}

/// Ids given to select rules that no loaded rule has.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no loaded rule has the id {}", .0.join(", "))]
pub struct UnknownRuleIds(pub Vec<String>);

/// A compiled, indexed set of rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    index: CandidateIndex,
    plans: plan::Plans,
    baseline: Option<std::sync::Arc<baseline::BaselineDoc>>,
}

impl RuleSet {
    /// Single-event rules only.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self::with_correlations(rules, Vec::new()).0
    }

    /// Rules and correlation rules. Correlations whose rules are not all present are left
    /// out; the messages say which.
    pub fn with_correlations(
        rules: Vec<Rule>,
        correlations: Vec<correlation::Correlation>,
    ) -> (Self, Vec<String>) {
        let index = CandidateIndex::build(&rules);
        let (plans, dropped) = plan::Plans::build(&rules, correlations);
        (
            RuleSet {
                rules,
                index,
                plans,
                baseline: None,
            },
            dropped,
        )
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Ids of every rule, correlation and the `baseline` document.
    pub fn ids(&self) -> std::collections::HashSet<String> {
        self.rules
            .iter()
            .map(|r| r.meta.id.clone())
            .chain(self.plans.plans.iter().map(|p| p.corr.def.meta.id.clone()))
            .chain(self.baseline.as_ref().map(|b| b.meta.id.clone()))
            .collect()
    }

    /// The set without the rules, correlations or `baseline` document whose id is in
    /// `disable`, and without those below `min_level` — except base rules that kept
    /// correlations need, whatever their own level. Also returns a note for each correlation
    /// left out because a rule it needs is gone. Unknown ids in `disable` are an error.
    pub fn select(
        self,
        disable: &[String],
        min_level: Option<Level>,
    ) -> Result<(RuleSet, Vec<String>), UnknownRuleIds> {
        let known = self.ids();
        let unknown: Vec<String> = disable
            .iter()
            .filter(|d| !known.contains(*d))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(UnknownRuleIds(unknown));
        }
        let baseline = self
            .baseline()
            .filter(|b| !disable.contains(&b.meta.id))
            .cloned();
        let (mut rules, mut corrs) = self.into_parts();
        corrs.retain(|c| !disable.contains(&c.def.meta.id));
        if let Some(min) = min_level {
            corrs.retain(|c| c.def.meta.level >= min);
        }
        // Base rules of kept correlations stay, whatever their own level.
        let feeding: std::collections::HashSet<&str> = corrs
            .iter()
            .flat_map(|c| c.refs.iter())
            .filter_map(|r| match r {
                correlation::RefId::Rule(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        rules.retain(|r| !disable.contains(&r.meta.id));
        if let Some(min) = min_level {
            rules.retain(|r| r.meta.level >= min || feeding.contains(r.meta.id.as_str()));
        }
        let (set, dropped) = RuleSet::with_correlations(rules, corrs);
        Ok((set.with_baseline(baseline), dropped))
    }

    /// The same set with baselines configured by `doc` (or none).
    pub fn with_baseline(mut self, doc: Option<baseline::BaselineDoc>) -> Self {
        self.baseline = doc.map(std::sync::Arc::new);
        self
    }

    /// The `baseline` document, when baselines run.
    pub fn baseline(&self) -> Option<&baseline::BaselineDoc> {
        self.baseline.as_deref()
    }

    /// How correlations are fed.
    pub fn plans(&self) -> &plan::Plans {
        &self.plans
    }

    /// The rules and correlations, to filter and index anew.
    pub fn into_parts(self) -> (Vec<Rule>, Vec<correlation::Correlation>) {
        let corrs = self.plans.plans.into_iter().map(|p| p.corr).collect();
        (self.rules, corrs)
    }

    /// How many rules, correlations and `baseline` documents the set holds.
    pub fn counts(&self) -> Counts {
        Counts {
            rules: self.rules.len(),
            correlations: self.plans.plans.len(),
            baselines: usize::from(self.baseline.is_some()),
        }
    }

    /// Rules plus correlation rules (plus one for a `baseline` document).
    pub fn len(&self) -> usize {
        self.rules.len() + self.plans.plans.len() + usize::from(self.baseline.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn index(&self) -> &CandidateIndex {
        &self.index
    }

    /// Indices of the rules matching `ev`, in rule order, appended to `out` (cleared first).
    pub fn matching(&self, ev: &Event<'_>, out: &mut Vec<u32>) {
        out.clear();
        self.index.for_candidates(ev, |i| {
            if self.rules[i as usize].matches(ev) {
                out.push(i);
            }
        });
        out.sort_unstable();
    }

    /// The same result as [`RuleSet::matching`], evaluating every rule (for tests).
    pub fn matching_full_scan(&self, ev: &Event<'_>, out: &mut Vec<u32>) {
        out.clear();
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(ev) {
                out.push(i as u32);
            }
        }
    }
}

/// The built-in rules, compiled into the binary from `rules/`.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

/// Loads the built-in rules into `loader`.
pub fn load_builtin(loader: &mut Loader) {
    for (name, text) in builtin::RULES {
        loader.load_source(&format!("builtin:{name}"), text, None);
    }
}

/// Loads rule paths (or the built-in set when `paths` is empty) with `opts`.
pub fn load(paths: &[PathBuf], with_builtin: bool, opts: LoadOptions) -> LoadReport {
    let mut loader = Loader::new(opts);
    if with_builtin {
        load_builtin(&mut loader);
    }
    for p in paths {
        loader.load_path(p);
    }
    loader.finish()
}
