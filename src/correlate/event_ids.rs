//! The event ids behind a hit, as the correlator holds them.
//!
//! Almost every hit comes from one CloudTrail record, whose `eventID` is a UUID in canonical
//! text form. That id is held inline as its 16 bytes: no allocation when the worker makes the
//! hit, nothing to free (cold, long after) when a window lets the hit go. Anything else (an id
//! in another form, several ids of a chained correlation's firing) is a shared list of the
//! original texts. Either way the texts come back exactly as they were.
//!
//! The number of events behind a hit is 1 except for a chained correlation's firing, whose
//! list carries its total: a held hit is then its time and these 24 bytes (32 in all).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// The event ids behind a hit (serialised as a list of strings, or `null` for none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventIds {
    #[default]
    None,
    /// One id that was a UUID in canonical form (lowercase hex, hyphens at 8-4-4-4-12).
    Uuid([u8; 16]),
    /// Any other id, or several, or a count of events other than 1: shared by every holder.
    List(Arc<Many>),
}

/// Event ids as texts, and how many events they stand for.
#[derive(Debug, PartialEq, Eq)]
pub struct Many {
    /// Events behind the hit (at least the number of ids: a sample may be shorter).
    pub events: u64,
    pub ids: Box<[Box<str>]>,
}

/// The 16 bytes of `s` if it is a UUID in canonical lowercase form (so that formatting them
/// gives `s` back exactly). Runs once per record that feeds a correlation: plain indexing.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // Offsets of the 16 two-digit bytes in the text.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [0u8; 16];
    for (byte, &i) in out.iter_mut().zip(AT.iter()) {
        *byte = hex_digit(b[i])? << 4 | hex_digit(b[i + 1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn format_uuid(u: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(byte >> 4)] as char);
        s.push(HEX[usize::from(byte & 0xf)] as char);
    }
    s
}

impl EventIds {
    /// One record's id.
    pub fn one(id: &str) -> EventIds {
        match parse_uuid(id) {
            Some(u) => EventIds::Uuid(u),
            None => EventIds::List(Arc::new(Many {
                events: 1,
                ids: Box::new([id.into()]),
            })),
        }
    }

    /// Several ids (none: [`EventIds::None`]).
    pub fn from_strings(ids: &[String]) -> EventIds {
        match ids {
            [] => EventIds::None,
            [one] => EventIds::one(one),
            _ => EventIds::List(Arc::new(Many {
                events: ids.len() as u64,
                ids: ids.iter().map(|s| s.as_str().into()).collect(),
            })),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events these ids stand for (1 unless said otherwise).
    pub fn events(&self) -> u64 {
        match self {
            EventIds::List(l) => l.events,
            _ => 1,
        }
    }

    /// The same ids standing for `events` events.
    pub fn with_events(self, events: u64) -> EventIds {
        if events == self.events() {
            return self;
        }
        let ids = match self {
            EventIds::None => Box::default(),
            EventIds::List(l) => l.ids.clone(),
            uuid @ EventIds::Uuid(_) => uuid.to_vec().into_iter().map(Into::into).collect(),
        };
        EventIds::List(Arc::new(Many { events, ids }))
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        match self {
            EventIds::None => 0,
            EventIds::Uuid(_) => 1,
            EventIds::List(l) => l.ids.len(),
        }
    }

    /// The `i`th id as text.
    pub fn get(&self, i: usize) -> Option<String> {
        match self {
            EventIds::None => None,
            EventIds::Uuid(u) => (i == 0).then(|| format_uuid(u)),
            EventIds::List(l) => l.ids.get(i).map(|s| s.to_string()),
        }
    }

    /// The ids as text, in order.
    pub fn for_each(&self, mut f: impl FnMut(String)) {
        match self {
            EventIds::None => {}
            EventIds::Uuid(u) => f(format_uuid(u)),
            EventIds::List(l) => l.ids.iter().for_each(|s| f(s.to_string())),
        }
    }

    /// The first id as text.
    pub fn first(&self) -> Option<String> {
        match self {
            EventIds::None => None,
            EventIds::Uuid(u) => Some(format_uuid(u)),
            EventIds::List(l) => l.ids.first().map(|s| s.to_string()),
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        let mut v = Vec::new();
        self.for_each(|s| v.push(s));
        v
    }
}

impl Serialize for EventIds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventIds::None => s.serialize_none(),
            _ => s.collect_seq(self.to_vec()),
        }
    }
}

impl<'de> Deserialize<'de> for EventIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventIds, D::Error> {
        let ids: Option<Vec<String>> = Option::deserialize(d)?;
        Ok(ids.map_or(EventIds::None, |v| EventIds::from_strings(&v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_are_inline_and_come_back_exactly() {
        let id = "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f";
        let e = EventIds::one(id);
        assert!(matches!(e, EventIds::Uuid(_)));
        assert_eq!(e.to_vec(), vec![id.to_string()]);
        assert_eq!(e.first().as_deref(), Some(id));
    }

    #[test]
    fn other_ids_keep_their_text() {
        for id in [
            "3B8F1C5E-2A59-4C1D-9F10-0A1B2C3D4E5F",
            "3b8f1c5e2a594c1d9f100a1b2c3d4e5f",
            "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5g",
            "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f0",
            "x",
            "",
            "3b8f1c5e-2a59-4c1d-9f10+0a1b2c3d4e5f",
        ] {
            let e = EventIds::one(id);
            assert!(matches!(e, EventIds::List(_)), "{id}");
            assert_eq!(e.to_vec(), vec![id.to_string()]);
        }
    }

    #[test]
    fn counts_of_events_travel_with_the_ids() {
        let id = "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f";
        assert_eq!(EventIds::one(id).events(), 1);
        assert_eq!(EventIds::None.events(), 1);
        let e = EventIds::one(id).with_events(40);
        assert_eq!((e.events(), e.to_vec()), (40, vec![id.to_string()]));
        let e = EventIds::None.with_events(3);
        assert_eq!((e.events(), e.len()), (3, 0));
        assert!(matches!(
            EventIds::one(id).with_events(1),
            EventIds::Uuid(_)
        ));
    }

    #[test]
    fn serialises_as_a_list_of_strings() {
        let ids = vec![
            "3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f".to_string(),
            "other".to_string(),
        ];
        for e in [
            EventIds::None,
            EventIds::from_strings(&ids[..1]),
            EventIds::from_strings(&ids),
        ] {
            let j = serde_json::to_string(&e).unwrap();
            let back: EventIds = serde_json::from_str(&j).unwrap();
            assert_eq!(back, e, "{j}");
        }
        assert_eq!(serde_json::to_string(&EventIds::None).unwrap(), "null");
        assert_eq!(
            serde_json::to_string(&EventIds::from_strings(&ids)).unwrap(),
            r#"["3b8f1c5e-2a59-4c1d-9f10-0a1b2c3d4e5f","other"]"#
        );
    }
}
