//! Problems found while loading rules, reported all at once with their place in the source.

use super::yaml::Pos;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One problem (or notice) about a rule file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as given (or `builtin:rules/<name>` for built-in rules).
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        file: &str,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            file: file.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.col),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column`, or `file` when the position is unknown.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }

    /// The full report: location, message, the source line with a caret, and the hint.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = format!("{}: {}: {}\n", self.location(), self.severity, self.message);
        if let (Some(src), Some(line)) = (source, self.line)
            && let Some(text) = src.lines().nth(line.saturating_sub(1))
        {
            let gutter = line.to_string().len();
            let col = self.column.unwrap_or(1).max(1);
            // Tabs keep their width in the caret line so the caret lines up.
            let pad: String = text
                .chars()
                .take(col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{:gutter$} |\n", ""));
            out.push_str(&format!("{line} | {text}\n"));
            out.push_str(&format!("{:gutter$} | {pad}^\n", ""));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("  = hint: {h}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.location(),
            self.severity,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_with_caret() {
        let d = Diagnostic::new(
            Severity::Error,
            "r.yml",
            Some(Pos { line: 2, col: 5 }),
            "unknown modifier `contain`",
        )
        .with_hint(Some("did you mean `contains`?".into()));
        let out = d.render(Some("a: 1\nb: x|contain\n"));
        assert_eq!(
            out,
            "r.yml:2:5: error: unknown modifier `contain`\n  |\n2 | b: x|contain\n  |     ^\n  = hint: did you mean `contains`?\n"
        );
    }
}
