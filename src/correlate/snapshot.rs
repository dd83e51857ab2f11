//! The correlator's persisted form: what a snapshot holds, and snapshot/restore.

use super::window::{Ev, Group, State};
use super::{CorrelationStats, Correlator, EventIds, Last};
use crate::rules::plan::Plans;
use crate::util::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// [`Ev`] as snapshots hold it (the event count a field of its own).
#[derive(Serialize, Deserialize)]
pub(super) struct EvRepr {
    t: Millis,
    ids: EventIds,
    events: u64,
}

impl From<EvRepr> for Ev {
    fn from(r: EvRepr) -> Ev {
        Ev {
            t: r.t,
            ids: r.ids.with_events(r.events.max(1)),
        }
    }
}

impl From<Ev> for EvRepr {
    fn from(e: Ev) -> EvRepr {
        EvRepr {
            t: e.t,
            events: e.events(),
            ids: e.ids,
        }
    }
}

/// [`Group`] as snapshots of version 2 hold it: `last.time` is the newest time; `last.who`
/// is written empty and ignored when read (groups kept it before findings took it from the
/// completing hit).
#[derive(Serialize, Deserialize)]
pub(super) struct GroupRepr {
    state: State,
    last: Last,
}

impl From<GroupRepr> for Group {
    fn from(r: GroupRepr) -> Group {
        Group {
            state: r.state,
            newest: r.last.time,
        }
    }
}

impl From<Group> for GroupRepr {
    fn from(g: Group) -> GroupRepr {
        GroupRepr {
            state: g.state,
            last: Last {
                time: g.newest,
                who: Arc::default(),
            },
        }
    }
}

/// The persisted form of the correlator.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    ids: Vec<String>,
    groups: Vec<Vec<(Arc<str>, Group)>>,
    max_seen: Option<Millis>,
    stats: CorrelationStats,
}

const SNAPSHOT_VERSION: u32 = 2;

/// Why a snapshot was not restored.
#[derive(Debug, thiserror::Error)]
pub enum CorrelationSnapshotError {
    #[error("state snapshot is not readable: {0}")]
    Corrupt(String),
    #[error("state snapshot has version {0}; this trailwatch reads version {SNAPSHOT_VERSION}")]
    Version(u32),
}

impl Correlator {
    /// The correlator's state as bytes (versioned JSON), to persist across restarts.
    pub fn snapshot(&self, plans: &Plans) -> Vec<u8> {
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            ids: plans
                .plans
                .iter()
                .map(|p| p.corr.def.meta.id.clone())
                .collect(),
            groups: {
                // Per correlation, by key (the layout of version 2, before the groups of a
                // key were kept together).
                let mut per: Vec<Vec<(Arc<str>, Group)>> = vec![Vec::new(); plans.plans.len()];
                for (ci, k, g) in self.groups.iter_all() {
                    if let Some(v) = per.get_mut(ci as usize) {
                        v.push((k.clone(), g.clone()));
                    }
                }
                for v in &mut per {
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                }
                per
            },
            max_seen: self.max_seen,
            stats: self.stats.clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Restores state saved by [`Correlator::snapshot`]. Correlations are matched by id;
    /// state of correlations no longer loaded, or whose type or rules changed, is dropped.
    pub fn restore(&mut self, plans: &Plans, bytes: &[u8]) -> Result<(), CorrelationSnapshotError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(bytes)
            .map_err(|e| CorrelationSnapshotError::Corrupt(e.to_string()))?;
        if v.version != SNAPSHOT_VERSION {
            return Err(CorrelationSnapshotError::Version(v.version));
        }
        let snap: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| CorrelationSnapshotError::Corrupt(e.to_string()))?;
        let index: HashMap<&str, usize> = plans
            .plans
            .iter()
            .enumerate()
            .map(|(i, p)| (p.corr.def.meta.id.as_str(), i))
            .collect();
        for (id, groups) in snap.ids.iter().zip(snap.groups) {
            if let Some(&i) = index.get(id.as_str()) {
                let plan = &plans.plans[i];
                let ci = i as u32;
                self.groups.retain(|c, _, _| c != ci);
                for (k, g) in groups.into_iter().filter(|(_, g)| g.fits(plan)) {
                    // A key given twice: the last one wins.
                    self.groups.insert(ci, k, g);
                }
            }
        }
        self.deadlines.clear();
        for (ci, key, g) in self.groups.iter_all() {
            let Some(plan) = plans.plans.get(ci as usize) else {
                continue;
            };
            let span = plan.corr.def.timespan;
            if let State::Tumbling(ws) = &g.state {
                for w in ws {
                    self.deadlines.push(std::cmp::Reverse((
                        w.start.saturating_add(span),
                        ci,
                        key.clone(),
                    )));
                }
            }
        }
        self.max_seen = snap.max_seen;
        self.stats = snap.stats;
        Ok(())
    }
}
