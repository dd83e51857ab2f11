//! The `baseline` document: a YAML document in the rules directory whose top-level
//! `baseline:` mapping configures the per-principal rate models. It ships with the built-in
//! rules (`rules/baseline.yml`); `--rules` replaces it like any rule. See docs/baselines.md.
//!
//! ```yaml
//! title: Unusual activity volume per principal
//! id: trailwatch-baseline
//! level: medium
//! baseline:
//!   false_alarms_per_week: 0.1   # per series (principal and metric)
//!   min_calls: 20                # never alert below this many calls in the window
//!   warmup: 24h                  # history a principal needs before it may alert
//! ```

use crate::util::time::{Millis, parse_duration};
use serde::Deserialize;

/// Longest sliding detection window, in minutes: the per-minute counts a series keeps.
pub const MAX_WINDOW_MINUTES: usize = 8;

/// How assumed-role activity is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleGrouping {
    /// By the role (`sessionContext.sessionIssuer.arn`); sessions are an attribute.
    Role,
    /// By the session ARN (`userIdentity.arn`).
    Session,
}

/// The settings of the baselines, with defaults filled in.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BaselineConfig {
    /// Days of history the hourly profile averages over (1 to 28).
    pub history_days: u32,
    /// Event-time history a series needs before it may alert.
    pub warmup: Millis,
    /// Expected false alarms per series per week; sets the p-value threshold.
    pub false_alarms_per_week: f64,
    /// Minimum events in the detection window for an alert (absolute floor).
    pub min_calls: u32,
    /// Minimum ratio of observed to expected events in the window.
    pub min_ratio: f64,
    /// Sliding detection window, in minutes (1 to 8).
    pub window_minutes: u32,
    /// Minutes below threshold before an anomaly ends.
    pub end_after_minutes: u32,
    /// Cap on tracked series; the idlest are evicted beyond it.
    pub max_series: usize,
    pub assumed_roles: RoleGrouping,
    pub write_volume: bool,
    /// Count failed write calls in `write_volume` too (they always count in `error_rate`).
    pub write_count_errors: bool,
    pub error_rate: bool,
    pub api_volume: bool,
    /// Keep a day-of-week profile (used after 14 days of history) for volume series.
    pub day_of_week: bool,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            history_days: 7,
            warmup: 24 * 3_600_000,
            false_alarms_per_week: 0.1,
            min_calls: 20,
            min_ratio: 4.0,
            window_minutes: 3,
            end_after_minutes: 5,
            max_series: 200_000,
            assumed_roles: RoleGrouping::Role,
            write_volume: true,
            write_count_errors: false,
            error_rate: true,
            api_volume: false,
            day_of_week: true,
        }
    }
}

impl BaselineConfig {
    /// One minute-test's p-value threshold: the weekly false-alarm budget spread over the
    /// 10 080 minutes of a week (each minute of a series is tested once; overlapping windows
    /// make consecutive tests dependent, so this is conservative, Bonferroni-style).
    pub fn p_threshold(&self) -> f64 {
        self.false_alarms_per_week / (7.0 * 24.0 * 60.0)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFile {
    enabled: Option<bool>,
    count_errors: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    write_volume: Option<MetricFile>,
    error_rate: Option<MetricFile>,
    api_volume: Option<MetricFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    history: Option<String>,
    warmup: Option<String>,
    false_alarms_per_week: Option<f64>,
    min_calls: Option<u32>,
    min_ratio: Option<f64>,
    window: Option<String>,
    end_after: Option<String>,
    max_series: Option<usize>,
    assumed_roles: Option<RoleGrouping>,
    day_of_week: Option<bool>,
    metrics: Option<MetricsFile>,
}

/// A setting of the `baseline:` mapping out of its range or shape.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BaselineSpecError {
    #[error("{0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("`{field}`: {source}")]
    Duration {
        field: &'static str,
        source: crate::util::time::TimeError,
    },
    #[error("`{field}` must be whole minutes, got `{text}`")]
    NotWholeMinutes { field: &'static str, text: String },
    #[error("`{field}` must be between {lo} and {hi} minutes, got `{text}`")]
    OutOfRange {
        field: &'static str,
        lo: i64,
        hi: i64,
        text: String,
    },
    #[error("`history` must be whole days (1d to 28d), got `{0}`")]
    HistoryNotDays(String),
    #[error("`false_alarms_per_week` must be above 0 and at most 100, got {0}")]
    FalseAlarms(f64),
    #[error("`{0}` must be at least 1")]
    AtLeastOne(&'static str),
    #[error("`min_ratio` must be at least 1, got {0}")]
    MinRatio(f64),
    #[error("`metrics.{0}` has no `count_errors`")]
    NoCountErrors(&'static str),
}

/// Whole minutes of a duration text, within `lo..=hi`.
fn minutes(text: &str, field: &'static str, lo: i64, hi: i64) -> Result<i64, BaselineSpecError> {
    let ms =
        parse_duration(text).map_err(|source| BaselineSpecError::Duration { field, source })?;
    if ms % 60_000 != 0 {
        return Err(BaselineSpecError::NotWholeMinutes {
            field,
            text: text.to_string(),
        });
    }
    let m = ms / 60_000;
    if m < lo || m > hi {
        return Err(BaselineSpecError::OutOfRange {
            field,
            lo,
            hi,
            text: text.to_string(),
        });
    }
    Ok(m)
}

impl BaselineConfig {
    /// Reads the `baseline:` mapping (as JSON from the YAML tree). Unknown keys are errors.
    pub(crate) fn from_json(v: serde_json::Value) -> Result<BaselineConfig, BaselineSpecError> {
        let f: ConfigFile = if v.is_null() {
            ConfigFile::default()
        } else {
            serde_json::from_value(v)?
        };
        let mut c = BaselineConfig::default();
        if let Some(h) = &f.history {
            let m = minutes(h, "history", 1440, 28 * 1440)?;
            if m % 1440 != 0 {
                return Err(BaselineSpecError::HistoryNotDays(h.clone()));
            }
            c.history_days = (m / 1440) as u32;
        }
        if let Some(w) = &f.warmup {
            c.warmup = minutes(w, "warmup", 0, 28 * 1440)? * 60_000;
        }
        if let Some(x) = f.false_alarms_per_week {
            if !(x > 0.0 && x <= 100.0) {
                return Err(BaselineSpecError::FalseAlarms(x));
            }
            c.false_alarms_per_week = x;
        }
        if let Some(n) = f.min_calls {
            if n == 0 {
                return Err(BaselineSpecError::AtLeastOne("min_calls"));
            }
            c.min_calls = n;
        }
        if let Some(r) = f.min_ratio {
            if !(r >= 1.0 && r.is_finite()) {
                return Err(BaselineSpecError::MinRatio(r));
            }
            c.min_ratio = r;
        }
        if let Some(w) = &f.window {
            c.window_minutes = minutes(w, "window", 1, MAX_WINDOW_MINUTES as i64)? as u32;
        }
        if let Some(e) = &f.end_after {
            c.end_after_minutes = minutes(e, "end_after", 1, 24 * 60)? as u32;
        }
        if let Some(n) = f.max_series {
            if n == 0 {
                return Err(BaselineSpecError::AtLeastOne("max_series"));
            }
            c.max_series = n;
        }
        if let Some(d) = f.day_of_week {
            c.day_of_week = d;
        }
        if let Some(g) = f.assumed_roles {
            c.assumed_roles = g;
        }
        if let Some(m) = f.metrics {
            if let Some(w) = m.write_volume {
                c.write_volume = w.enabled.unwrap_or(true);
                c.write_count_errors = w.count_errors.unwrap_or(false);
            }
            if let Some(e) = m.error_rate {
                if e.count_errors.is_some() {
                    return Err(BaselineSpecError::NoCountErrors("error_rate"));
                }
                c.error_rate = e.enabled.unwrap_or(true);
            }
            if let Some(a) = m.api_volume {
                if a.count_errors.is_some() {
                    return Err(BaselineSpecError::NoCountErrors("api_volume"));
                }
                c.api_volume = a.enabled.unwrap_or(true);
            }
        }
        Ok(c)
    }
}

/// A loaded `baseline` document: what the findings name as their rule, and the settings.
#[derive(Debug, Clone)]
pub struct BaselineDoc {
    pub meta: crate::rules::RuleMeta,
    pub source: crate::rules::RuleSource,
    pub config: BaselineConfig,
}

/// Compiles a YAML document with a top-level `baseline:` mapping (called by the rule loader).
pub(crate) fn compile_document(
    ctx: &mut crate::rules::parse::Ctx<'_>,
    root: &crate::rules::yaml::Node,
    node: &crate::rules::yaml::Node,
    doc: usize,
    mut meta: crate::rules::RuleMeta,
    source: crate::rules::RuleSource,
) -> crate::rules::parse::DocOutcome {
    use crate::rules::parse::{DocOutcome, Item};
    let before = ctx.errors();
    for key in ["detection", "correlation"] {
        if let Some(n) = root.get(key) {
            ctx.error(
                n.pos,
                format!("a `baseline` document has no `{key}`"),
                Some("put detection and correlation rules in their own documents".into()),
            );
        }
    }
    if !node.is_null() && node.as_map().is_none() {
        ctx.error(
            node.pos,
            format!(
                "`baseline` must be a mapping of settings, found {}",
                node.kind_name()
            ),
            Some("see docs/baselines.md for the fields".into()),
        );
        return DocOutcome::Invalid;
    }
    let config = match BaselineConfig::from_json(node.to_json()) {
        Ok(c) => Some(c),
        Err(message) => {
            ctx.error(
                node.pos,
                format!("invalid `baseline`: {message}"),
                Some("see docs/baselines.md for the fields and their ranges".into()),
            );
            None
        }
    };
    if ctx.errors() > before {
        return DocOutcome::Invalid;
    }
    let Some(config) = config else {
        return DocOutcome::Invalid;
    };
    crate::rules::parse::fill_missing_id(ctx, root, doc, &mut meta);
    DocOutcome::Items(vec![Item::Baseline(Box::new(BaselineDoc {
        meta,
        source,
        config,
    }))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = BaselineConfig::from_json(serde_json::Value::Null).unwrap();
        assert_eq!(c, BaselineConfig::default());
        let c = BaselineConfig::from_json(serde_json::json!({
            "history": "14d", "warmup": "12h", "min_calls": 30, "window": "2m",
            "assumed_roles": "session", "metrics": {"api_volume": {"enabled": true}}
        }))
        .unwrap();
        assert_eq!(c.history_days, 14);
        assert_eq!(c.warmup, 12 * 3_600_000);
        assert_eq!(c.min_calls, 30);
        assert_eq!(c.window_minutes, 2);
        assert_eq!(c.assumed_roles, RoleGrouping::Session);
        assert!(c.api_volume);
    }

    #[test]
    fn rejects_bad_values_and_unknown_keys() {
        for bad in [
            serde_json::json!({"history": "60d"}),
            serde_json::json!({"history": "36h"}),
            serde_json::json!({"window": "30s"}),
            serde_json::json!({"min_calls": 0}),
            serde_json::json!({"false_alarms_per_week": 0}),
            serde_json::json!({"colour": "red"}),
        ] {
            assert!(BaselineConfig::from_json(bad.clone()).is_err(), "{bad}");
        }
    }
}
