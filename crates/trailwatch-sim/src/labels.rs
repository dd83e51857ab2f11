//! Labels: what the generator injected (anomalies) and the benign daily jobs, written to
//! `labels.json` by the generator and read by the scorer and the tests.

use crate::{Params, SimError, io_err};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    WriteBurst,
    ErrorStorm,
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnomalyKind::WriteBurst => "write_burst",
            AnomalyKind::ErrorStorm => "error_storm",
        })
    }
}

/// What generated the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    pub version: u32,
    #[serde(flatten)]
    pub params: Params,
    pub start: String,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// One injected anomaly. `principal` is the grouping key a baseline uses: the role ARN for
/// assumed roles, the user ARN for IAM users. `[start, end)` is in event time; the rate is
/// exact in every minute of it (writes for a burst, refused calls for a storm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyLabel {
    pub id: String,
    pub kind: AnomalyKind,
    pub principal: String,
    #[serde(default)]
    pub account: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub rate_per_min: f64,
    /// The principal's mean rate (writes, or errors for a storm) per minute in the same
    /// hours of the previous days.
    #[serde(default)]
    pub usual_per_min: f64,
    /// `human` or `automation`.
    #[serde(default)]
    pub principal_kind: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub source_ip: String,
    #[serde(default)]
    pub user_agent: String,
}

/// A benign daily job: a run of writes starting at `hour_utc:start_minute` every day for
/// about `minutes` minutes, from `first_day` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodicLabel {
    pub principal: String,
    #[serde(default)]
    pub account: String,
    pub hour_utc: u32,
    #[serde(default)]
    pub start_minute: u32,
    pub minutes: u32,
    /// `YYYY-MM-DD`.
    pub first_day: String,
    #[serde(default)]
    pub writes_per_run: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Parameters of the generator ([`GeneratorInfo`]); free-form in hand-written labels.
    #[serde(default)]
    pub generator: Value,
    pub anomalies: Vec<AnomalyLabel>,
    #[serde(default)]
    pub periodic_jobs: Vec<PeriodicLabel>,
}

impl Labels {
    /// Reads a labels file.
    pub fn read(path: &Path) -> Result<Labels, SimError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        serde_json::from_str(&text).map_err(|e| SimError::Labels {
            path: path.to_path_buf(),
            message: format!(
                "not a labels file (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        })
    }

    /// The generator parameters recorded in the file, if it was written by this version.
    pub fn generator_info(&self) -> Option<GeneratorInfo> {
        serde_json::from_value(self.generator.clone()).ok()
    }
}
