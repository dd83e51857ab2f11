//! The configuration file (`--config FILE`, YAML). Every key is optional; flags on the
//! command line win over the file.
//!
//! ```yaml
//! # Default incident key and window for every rule that does not set its own `suppress:`
//! # (rules opt out with `suppress: false`, keeping rule + principal and the alert window).
//! suppress:
//!   by: [userIdentity.arn]
//!   for: 1h
//! correlation:
//!   allowed_lateness: 15m     # how late an event may arrive and still count
//!   max_group_keys: 100000    # live group keys per correlation before eviction
//! run:                        # `trailwatch run` (each key is also a flag; flags win)
//!   log_groups: [cloudtrail-logs]
//!   topic_arn: arn:aws:sns:us-east-1:123456789012:trailwatch-alerts
//!   state_dir: /var/lib/trailwatch
//!   overlap: 15m
//!   min_level: medium
//!   silence: 30m
//!   max_messages_per_minute: 10
//! alerts:                     # incidents (`backtest --format alerts`, `run --alerts`)
//!   enabled: true             # `run` publishes alerts (the default; false: --per-finding)
//!   window: 60m               # --alert-window
//!   update_every: 15m         # --alert-update-every
//!   min_level: medium         # --alert-min-level
//! ```

use serde::Deserialize;
use trailwatch::engine::{AlertSettings, Settings};
use trailwatch::rules::Level;
use trailwatch::rules::correlation::Suppress;
use trailwatch::util::time::Millis;
use trailwatch::util::time::parse_duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressFile {
    #[serde(default)]
    by: Vec<String>,
    #[serde(rename = "for")]
    period: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrelationFile {
    allowed_lateness: Option<String>,
    max_group_keys: Option<usize>,
}

/// Settings of `trailwatch run` (flags on the command line win).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub log_groups: Option<Vec<String>>,
    pub kinesis_stream: Option<String>,
    pub sqs_queue: Option<String>,
    pub topic_arn: Option<String>,
    pub region: Option<String>,
    pub state_dir: Option<std::path::PathBuf>,
    pub start_from: Option<String>,
    pub poll: Option<String>,
    pub overlap: Option<String>,
    pub rescan_every: Option<String>,
    pub wide_rescan: Option<String>,
    pub wide_rescan_every: Option<String>,
    pub requests_per_second: Option<f64>,
    pub min_level: Option<String>,
    pub silence: Option<String>,
    pub max_messages_per_minute: Option<usize>,
    pub metrics_addr: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    enabled: Option<bool>,
    window: Option<String>,
    update_every: Option<String>,
    min_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    suppress: Option<SuppressFile>,
    correlation: Option<CorrelationFile>,
    run: Option<RunConfig>,
    alerts: Option<AlertsFile>,
}

/// The `alerts:` section: how findings become alerts (flags win).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// `run` publishes alerts instead of findings (the default).
    pub enabled: bool,
    pub window: Option<Millis>,
    pub update_every: Option<Millis>,
    pub min_level: Option<Level>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            window: None,
            update_every: None,
            min_level: None,
        }
    }
}

impl AlertsConfig {
    /// The alert settings: each flag given wins over the file, which wins over the default.
    pub fn settings(
        &self,
        window: Option<Millis>,
        update_every: Option<Millis>,
        min_level: Option<Level>,
    ) -> AlertSettings {
        let d = AlertSettings::default();
        AlertSettings {
            window: window.or(self.window).unwrap_or(d.window),
            update_every: update_every.or(self.update_every).unwrap_or(d.update_every),
            min_level: min_level.or(self.min_level).unwrap_or(d.min_level),
        }
    }
}

/// The parts of the configuration the engine uses.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    pub default_suppress: Option<Suppress>,
    pub allowed_lateness: Option<trailwatch::util::time::Millis>,
    pub max_group_keys: Option<usize>,
    /// The `run:` section (live mode).
    pub run: RunConfig,
    /// The `alerts:` section.
    pub alerts: AlertsConfig,
}

impl AppConfig {
    /// Reads the configuration file given with `--config`, if any.
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Option<AppConfig>> {
        use anyhow::Context;
        let Some(p) = path else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read configuration {}", p.display()))?;
        Ok(Some(AppConfig::from_yaml(&p.display().to_string(), &text)?))
    }

    pub fn from_yaml(file: &str, text: &str) -> Result<AppConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_string(),
            message,
        };
        let parsed: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let default_suppress = match parsed.suppress {
            None => None,
            Some(s) => Some(Suppress {
                by: s.by,
                period: parse_duration(&s.period)
                    .map_err(|e| invalid(format!("suppress.for: {e}")))?,
            }),
        };
        let c = parsed.correlation.unwrap_or_default();
        let allowed_lateness = c
            .allowed_lateness
            .map(|d| {
                parse_duration(&d)
                    .map_err(|e| invalid(format!("correlation.allowed_lateness: {e}")))
            })
            .transpose()?;
        let a = parsed.alerts.unwrap_or_default();
        let duration = |v: Option<String>, key: &str| {
            v.map(|d| parse_duration(&d).map_err(|e| invalid(format!("alerts.{key}: {e}"))))
                .transpose()
        };
        let alerts = AlertsConfig {
            enabled: a.enabled.unwrap_or(true),
            window: duration(a.window, "window")?,
            update_every: duration(a.update_every, "update_every")?,
            min_level: a
                .min_level
                .map(|l| {
                    super::parse_level(&l).map_err(|e| invalid(format!("alerts.min_level: {e}")))
                })
                .transpose()?,
        };
        Ok(AppConfig {
            default_suppress,
            allowed_lateness,
            max_group_keys: c.max_group_keys,
            run: parsed.run.unwrap_or_default(),
            alerts,
        })
    }

    /// Engine settings from this configuration (defaults where it is silent).
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            lateness: self.allowed_lateness.unwrap_or(d.lateness),
            max_keys: self.max_group_keys.unwrap_or(d.max_keys),
            default_suppress: self.default_suppress.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects_unknown_keys() {
        let c = AppConfig::from_yaml(
            "c.yml",
            "suppress: {by: [userIdentity.arn], for: 1h}\ncorrelation: {allowed_lateness: 5m}\n",
        )
        .unwrap();
        let s = c.settings();
        assert_eq!(s.lateness, 300_000);
        assert_eq!(s.default_suppress.unwrap().period, 3_600_000);
        let e = AppConfig::from_yaml("c.yml", "supress: {}\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `supress`"), "{e}");
    }

    #[test]
    fn alerts_section_and_flags_win() {
        let c = AppConfig::from_yaml(
            "c.yml",
            "alerts:\n  enabled: true\n  window: 2h\n  min_level: high\n",
        )
        .unwrap();
        assert!(c.alerts.enabled);
        let s = c.alerts.settings(None, None, None);
        assert_eq!(s.window, 2 * 3_600_000);
        assert_eq!(
            s.update_every,
            15 * 60_000,
            "the default where the file is silent"
        );
        assert_eq!(s.min_level, Level::High);
        let s = c.alerts.settings(Some(60_000), None, Some(Level::Low));
        assert_eq!((s.window, s.min_level), (60_000, Level::Low), "flags win");
        let e = AppConfig::from_yaml("c.yml", "alerts: {window: soon}\n").unwrap_err();
        assert!(e.to_string().contains("alerts.window"), "{e}");
        let e = AppConfig::from_yaml("c.yml", "alerts: {min_level: loud}\n").unwrap_err();
        assert!(e.to_string().contains("alerts.min_level"), "{e}");
        let e = AppConfig::from_yaml("c.yml", "alerts: {windw: 1h}\n").unwrap_err();
        assert!(e.to_string().contains("windw"), "{e}");
    }
}
