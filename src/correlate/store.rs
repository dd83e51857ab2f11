//! The group table (every correlation's group per key, one table slot per key) and the
//! interner of the who/where copies tumbling windows keep.

use super::Who;
use super::window::{Group, State};
use crate::util::time::Millis;
use std::sync::Arc;

/// Hash sets (and group tables) of the correlator: foldhash (fast, seeded per process)
/// instead of SipHash; keys come from input, so a fixed-seed hash would invite collisions.
type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Shared copies of the parts of who and where (principals, accounts, regions) that tumbling
/// windows hold (they report their latest hit's who/where when judged, long after the record
/// is gone): one allocation per distinct text. Other groups keep no who/where: their
/// findings take it from the hit that completed them.
///
/// While a copy is held outside the interner it stays in it (`prune` forgets only copies
/// nobody else holds).
#[derive(Debug, Default)]
pub(super) struct Interner {
    set: FastSet<Arc<str>>,
    /// The latest hit's who (as the worker made it) and the correlator's copy: the hits of
    /// one record share it, so most hits skip building one.
    recent_who: Option<(Arc<Who>, Arc<Who>)>,
    /// Values held just after the last pruning.
    pruned_at: usize,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// A copy of `w` made of interned parts; `key` is a shared text that is often its
    /// principal (groups keyed by the principal), which saves a lookup.
    fn who(&mut self, w: &Who, key: &Arc<str>) -> Arc<Who> {
        let principal = if **key == *w.principal {
            key.clone()
        } else {
            self.get(&w.principal)
        };
        Arc::new(Who {
            principal,
            account: w.account.as_deref().map(|a| self.get(a)),
            region: w.region.as_deref().map(|r| self.get(r)),
        })
    }

    /// The correlator's copy of a hit's who/where (`key`: the hit's group key, as the group
    /// table holds it).
    pub(super) fn who_of(&mut self, who: &Arc<Who>, key: &Arc<str>) -> Arc<Who> {
        if let Some((from, to)) = &self.recent_who
            && Arc::ptr_eq(from, who)
        {
            return to.clone();
        }
        let to = self.who(who, key);
        self.recent_who = Some((who.clone(), to.clone()));
        to
    }

    /// Forgets values no group holds any more, once the interner has doubled since it last
    /// did: a pruning reads every value (a cache miss each), so it is amortised over as many
    /// new values, and at most half of what the interner holds is unused.
    pub(super) fn prune(&mut self) {
        let held = self.set.len();
        if held < 2 * self.pruned_at.max(1024) {
            return;
        }
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.pruned_at = self.set.len();
    }
}

/// Room a key's groups vec starts with.
const GROUPS_FIRST: usize = 4;

/// Groups of a key whose correlation is indexed in the key's table slot.
const ORDER: usize = 16;

/// Every correlation's group for one key: a record's hits usually share their key, so they
/// find all their groups with one lookup, next to each other in memory. One table slot per
/// key, a cache line each.
#[derive(Debug)]
#[repr(align(64))]
pub(super) struct KeyGroups {
    pub(super) key: Arc<str>,
    /// The correlation of each of the first [`ORDER`] groups (255: not indexed), mirroring
    /// `groups`: finding a correlation's group reads this (in the slot, already in cache)
    /// instead of the groups vec (a cache line per group).
    order: [u8; ORDER],
    /// (correlation, its group for this key), in no particular order; room for
    /// [`GROUPS_FIRST`] at first, then doubling (most keys feed a few correlations).
    pub(super) groups: Vec<(u32, Group)>,
    /// No group of this key can expire before this time (at most the smallest `newest +
    /// timespan` of its sliding/temporal groups; tumbling groups never count): the sweep
    /// skips the key without reading its groups (a cache miss each) while the watermark is
    /// below it. A group's `newest` only grows, so the bound stays valid after hits; it is
    /// lowered when a group is made and made exact when the sweep reads the groups.
    pub(super) due: Millis,
}

impl KeyGroups {
    fn new(key: Arc<str>) -> KeyGroups {
        KeyGroups {
            key,
            order: [u8::MAX; ORDER],
            groups: Vec::new(),
            due: Millis::MAX,
        }
    }

    /// The position of correlation `ci`'s group.
    fn find(&self, ci: u32) -> Option<usize> {
        let n = self.groups.len();
        if let Ok(c) = u8::try_from(ci)
            && c != u8::MAX
        {
            if let Some(i) = self.order[..n.min(ORDER)].iter().position(|&o| o == c) {
                return Some(i);
            }
            if n <= ORDER {
                return None;
            }
            return self.groups[ORDER..]
                .iter()
                .position(|(g, _)| *g == ci)
                .map(|i| i + ORDER);
        }
        self.groups.iter().position(|(g, _)| *g == ci)
    }

    fn push(&mut self, ci: u32, g: Group) {
        if let Some(o) = self.order.get_mut(self.groups.len()) {
            *o = u8::try_from(ci).unwrap_or(u8::MAX);
        }
        self.groups.push((ci, g));
    }

    /// Rebuilds `order` after groups were removed.
    fn reindex(&mut self) {
        self.order = [u8::MAX; ORDER];
        for (o, (ci, _)) in self.order.iter_mut().zip(&self.groups) {
            *o = u8::try_from(*ci).unwrap_or(u8::MAX);
        }
    }
}

/// The groups of all correlations, by group key (the text, hashed once per record).
#[derive(Debug, Default)]
pub(super) struct Groups {
    table: hashbrown::HashTable<KeyGroups>,
    hasher: foldhash::fast::RandomState,
    /// Live groups per correlation.
    counts: Vec<usize>,
    /// The latest hit's key (as the worker made it) and its hash: the hits of one record
    /// share it, so most hits skip hashing.
    recent: Option<(Arc<str>, u64)>,
}

/// The entry of `key` in `table`, made (with no group) if there is none. (A function of the
/// fields, not a method: callers keep using the table's other fields while they hold it.)
fn key_entry<'t>(
    table: &'t mut hashbrown::HashTable<KeyGroups>,
    hasher: &foldhash::fast::RandomState,
    hash: u64,
    key: &Arc<str>,
) -> &'t mut KeyGroups {
    table
        .entry(
            hash,
            |s| *s.key == **key,
            |s| std::hash::BuildHasher::hash_one(hasher, &*s.key),
        )
        .or_insert_with(|| KeyGroups::new(key.clone()))
        .into_mut()
}

impl Groups {
    pub(super) fn new(correlations: usize) -> Groups {
        Groups {
            counts: vec![0; correlations],
            ..Groups::default()
        }
    }

    pub(super) fn hash(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    /// The hash of a hit's key (remembered for the next hit sharing it).
    pub(super) fn hash_of(&mut self, key: &Arc<str>) -> u64 {
        if let Some((k, h)) = &self.recent
            && Arc::ptr_eq(k, key)
        {
            return *h;
        }
        let h = self.hash(key);
        self.recent = Some((key.clone(), h));
        h
    }

    /// Live groups of correlation `ci`.
    pub(super) fn len(&self, ci: usize) -> usize {
        self.counts.get(ci).copied().unwrap_or(0)
    }

    /// Live groups over all correlations.
    pub(super) fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    pub(super) fn contains(&self, ci: u32, hash: u64, key: &str) -> bool {
        self.table
            .find(hash, |s| *s.key == *key)
            .is_some_and(|s| s.find(ci).is_some())
    }

    pub(super) fn get_mut(&mut self, ci: u32, hash: u64, key: &str) -> Option<&mut Group> {
        let s = self.table.find_mut(hash, |s| *s.key == *key)?;
        let i = s.find(ci)?;
        Some(&mut s.groups[i].1)
    }

    /// Removes correlation `ci`'s group at `key` (and the key, once no group is left).
    pub(super) fn remove(&mut self, ci: u32, hash: u64, key: &str) -> Option<Group> {
        let Ok(mut e) = self.table.find_entry(hash, |s| *s.key == *key) else {
            return None;
        };
        let s = e.get_mut();
        let i = s.find(ci)?;
        let (_, g) = s.groups.swap_remove(i);
        s.reindex();
        if s.groups.is_empty() {
            e.remove();
        }
        if let Some(n) = self.counts.get_mut(ci as usize) {
            *n -= 1;
        }
        Some(g)
    }

    /// The key's entry (made if there is none) and the position of correlation `ci`'s group
    /// in it, made by `new` if there is none.
    pub(super) fn get_or_insert_with(
        &mut self,
        ci: u32,
        hash: u64,
        key: &Arc<str>,
        new: impl FnOnce() -> Group,
    ) -> (&mut KeyGroups, usize) {
        let hasher = &self.hasher;
        let s = key_entry(&mut self.table, hasher, hash, key);
        let i = match s.find(ci) {
            Some(i) => i,
            None => {
                // Room for 4 first, then doubling: growing one at a time reallocated (and
                // copied) the vec at every new group of a key (8 % of the full pass), and keys
                // usually feed several correlations.
                if s.groups.len() == s.groups.capacity() {
                    s.groups.reserve_exact(s.groups.len().max(GROUPS_FIRST));
                }
                let g = new();
                s.push(ci, g);
                if let Some(n) = self.counts.get_mut(ci as usize) {
                    *n += 1;
                }
                s.groups.len() - 1
            }
        };
        (s, i)
    }

    /// Keeps the groups for which `keep(correlation, key, group)` holds.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(u32, &Arc<str>, &Group) -> bool) {
        let counts = &mut self.counts;
        self.table.retain(|s| {
            let key = &s.key;
            let before = s.groups.len();
            s.groups.retain(|(ci, g)| {
                let k = keep(*ci, key, g);
                if !k && let Some(n) = counts.get_mut(*ci as usize) {
                    *n -= 1;
                }
                k
            });
            if s.groups.capacity() > GROUPS_FIRST && s.groups.len() < s.groups.capacity() / 2 {
                s.groups.shrink_to_fit();
            }
            if s.groups.len() != before {
                s.reindex();
            }
            !s.groups.is_empty()
        });
    }

    /// Drops the groups that can no longer fire at watermark `wm`: sliding and temporal
    /// groups whose newest hit is a timespan (`span(correlation)`) or more before it.
    /// Tumbling windows are left to `advance`, which judges them. Keys whose `due` is past
    /// the watermark are kept without reading their groups. Returns how many were dropped.
    pub(super) fn sweep(&mut self, wm: Millis, span: impl Fn(u32) -> Millis) -> usize {
        let counts = &mut self.counts;
        let mut dropped = 0;
        self.table.retain(|s| {
            if s.due > wm {
                return true;
            }
            let mut due = Millis::MAX;
            let before = s.groups.len();
            s.groups.retain(|(ci, g)| {
                if matches!(g.state, State::Tumbling(_)) {
                    return true;
                }
                let end = g.newest().saturating_add(span(*ci));
                if end > wm {
                    due = due.min(end);
                    return true;
                }
                if let Some(n) = counts.get_mut(*ci as usize) {
                    *n -= 1;
                }
                dropped += 1;
                false
            });
            s.due = due;
            if s.groups.capacity() > GROUPS_FIRST && s.groups.len() < s.groups.capacity() / 2 {
                s.groups.shrink_to_fit();
            }
            if s.groups.len() != before {
                s.reindex();
            }
            !s.groups.is_empty()
        });
        dropped
    }

    /// Correlation `ci`'s groups.
    fn iter(&self, ci: u32) -> impl Iterator<Item = (&Arc<str>, &Group)> {
        self.table.iter().flat_map(move |s| {
            s.groups
                .iter()
                .filter(move |(c, _)| *c == ci)
                .map(move |(_, g)| (&s.key, g))
        })
    }

    /// Removes correlation `ci`'s group seen longest ago (ties: smallest key); tells whether
    /// there was one.
    pub(super) fn evict_oldest(&mut self, ci: u32) -> bool {
        let Some(victim) = self
            .iter(ci)
            .min_by(|a, b| (a.1.newest, a.0).cmp(&(b.1.newest, b.0)))
            .map(|(k, _)| k.clone())
        else {
            return false;
        };
        let vh = self.hash(&victim);
        self.remove(ci, vh, &victim);
        true
    }

    /// Every group: (correlation, key, group).
    pub(super) fn iter_all(&self) -> impl Iterator<Item = (u32, &Arc<str>, &Group)> {
        self.table
            .iter()
            .flat_map(|s| s.groups.iter().map(move |(c, g)| (*c, &s.key, g)))
    }

    /// Sets correlation `ci`'s group at `key` (replacing one there).
    pub(super) fn insert(&mut self, ci: u32, key: Arc<str>, group: Group) {
        let hash = self.hash(&key);
        let hasher = &self.hasher;
        let s = key_entry(&mut self.table, hasher, hash, &key);
        // Restored groups: the sweep reads the key's groups next time (and sets the bound).
        s.due = Millis::MIN;
        match s.find(ci) {
            Some(i) => s.groups[i].1 = group,
            None => {
                s.push(ci, group);
                if let Some(n) = self.counts.get_mut(ci as usize) {
                    *n += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::EventIds;
    use crate::correlate::window::Ev;

    /// A sliding group whose newest hit is at `newest`.
    fn sliding(newest: Millis) -> Group {
        Group {
            state: State::Sliding(Vec::new()),
            newest,
        }
    }

    fn tumbling() -> Group {
        Group {
            state: State::Tumbling(Vec::new()),
            newest: 0,
        }
    }

    fn keys(g: &Groups, ci: u32) -> Vec<String> {
        let mut v: Vec<String> = g.iter(ci).map(|(k, _)| k.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_key_finds_each_correlation_group_indexed_or_not() {
        // More groups than the index holds, and correlations past what a u8 indexes.
        let cis: Vec<u32> = (0..20).chain([255, 300, 1000]).collect();
        let mut g = Groups::new(1001);
        let key: Arc<str> = "k".into();
        let hash = g.hash(&key);
        for (n, &ci) in cis.iter().enumerate() {
            let (slot, i) = g.get_or_insert_with(ci, hash, &key, || sliding(n as Millis));
            assert_eq!(slot.groups[i].0, ci);
        }
        // Asking again finds the group instead of making one.
        let (_, i) = g.get_or_insert_with(7, hash, &key, || panic!("made twice"));
        assert_eq!(i, 7);
        assert_eq!(g.total(), cis.len());
        for (n, &ci) in cis.iter().enumerate() {
            assert_eq!(g.get_mut(ci, hash, &key).unwrap().newest, n as Millis);
            assert_eq!(g.len(ci as usize), 1);
        }
        assert!(!g.contains(20, hash, &key));

        // Removing swaps the last group in: the index follows.
        assert_eq!(g.remove(3, hash, &key).unwrap().newest, 3);
        assert!(g.remove(3, hash, &key).is_none());
        assert_eq!(g.len(3), 0);
        for (n, &ci) in cis.iter().enumerate().filter(|&(_, &ci)| ci != 3) {
            assert_eq!(g.get_mut(ci, hash, &key).unwrap().newest, n as Millis);
        }
        // The key goes with its last group.
        g.retain(|ci, _, _| ci == 1000);
        assert_eq!(g.total(), 1);
        g.remove(1000, hash, &key);
        assert_eq!(g.total(), 0);
        assert_eq!(g.table.len(), 0);
    }

    #[test]
    fn sweep_drops_groups_a_timespan_past_the_watermark_but_not_tumbling_windows() {
        let mut g = Groups::new(2);
        g.insert(0, "old".into(), sliding(100));
        g.insert(0, "new".into(), sliding(150));
        g.insert(1, "old".into(), tumbling());
        // Timespan 50: "old" can fire until 150 (exclusive), "new" until 200.
        assert_eq!(g.sweep(149, |_| 50), 0);
        assert_eq!(g.sweep(150, |_| 50), 1);
        assert_eq!(keys(&g, 0), ["new"]);
        assert_eq!(keys(&g, 1), ["old"]);
        // The sweep learnt when "new" is due: below it, the key is not read.
        let h = g.hash("new");
        let slot = g.table.find(h, |s| &*s.key == "new").unwrap();
        assert_eq!(slot.due, 200);
        assert_eq!(g.sweep(Millis::MAX, |_| 50), 1);
        assert_eq!(g.total(), 1);
        assert_eq!(g.len(1), 1);
    }

    #[test]
    fn evict_oldest_takes_the_group_seen_longest_ago_then_the_smallest_key() {
        let mut g = Groups::new(2);
        g.insert(0, "carol".into(), sliding(30));
        g.insert(0, "bob".into(), sliding(20));
        g.insert(0, "alice".into(), sliding(20));
        g.insert(1, "dave".into(), sliding(0));
        assert!(g.evict_oldest(0));
        assert_eq!(keys(&g, 0), ["bob", "carol"]);
        assert!(g.evict_oldest(0));
        assert_eq!(keys(&g, 0), ["carol"]);
        // Other correlations' groups are not candidates.
        assert_eq!(keys(&g, 1), ["dave"]);
        let mut empty = Groups::new(1);
        assert!(!empty.evict_oldest(0));
    }

    #[test]
    fn a_restored_group_replaces_the_one_at_its_key() {
        let mut g = Groups::new(1);
        g.insert(0, "k".into(), sliding(1));
        let held = Group {
            state: State::Sliding1(Ev {
                t: 5,
                ids: EventIds::one("e"),
            }),
            newest: 5,
        };
        g.insert(0, "k".into(), held.clone());
        assert_eq!(g.total(), 1);
        let h = g.hash("k");
        assert_eq!(g.get_mut(0, h, "k"), Some(&mut held.clone()));
    }

    fn who(principal: &str, account: &str) -> Arc<Who> {
        Arc::new(Who {
            principal: principal.into(),
            account: Some(account.into()),
            region: None,
        })
    }

    #[test]
    fn interner_shares_copies_and_forgets_those_nobody_holds() {
        let mut s = Interner::default();
        let key: Arc<str> = "alice".into();
        let w = who("alice", "111");
        let a = s.who_of(&w, &key);
        // The principal is the group key's text, not a copy.
        assert!(Arc::ptr_eq(&a.principal, &key));
        assert_eq!(*a, *w);
        // The same record's who again: the same copy.
        assert!(Arc::ptr_eq(&s.who_of(&w, &key), &a));
        // Another record, same texts: a new who made of the same parts.
        let b = s.who_of(&who("alice", "111"), &key);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(
            a.account.as_ref().unwrap(),
            b.account.as_ref().unwrap()
        ));

        // Pruning waits until the interner has doubled, then forgets unheld texts only.
        let held: Vec<Arc<Who>> = (0..100)
            .map(|i| s.who_of(&who(&format!("p{i}"), "111"), &key))
            .collect();
        s.prune();
        assert_eq!(s.set.len(), 101);
        for i in 0..2000 {
            s.get(&format!("x{i}"));
        }
        drop(b);
        s.recent_who = None;
        s.prune();
        // Left: the 100 principals and the account, which `a` and `held` still hold.
        assert_eq!(s.set.len(), 101);
        assert_eq!(s.pruned_at, 101);
        assert!(Arc::ptr_eq(&s.get("111"), a.account.as_ref().unwrap()));
        drop(held);
    }
}
