//! Stable ids: deterministic digests of the parts that identify a finding or a record.

/// 128-bit FNV-1a, hex: a stable, dependency-free digest for finding ids (not a security
/// boundary: ids only need to be deterministic and practically unique). Each part is followed
/// by a 0xff byte (which UTF-8 never contains).
pub fn stable_id(parts: &[&str]) -> String {
    parts
        .iter()
        .fold(StableId::new(), |id, p| id.part(p))
        .finish()
}

/// [`stable_id`] built piece by piece, for a part made of several texts without joining them
/// first: `StableId::new().part("a").text("b").text("c").end_part()` is the id of
/// `["a", "bc"]`.
#[derive(Debug, Clone, Copy)]
pub struct StableId(u128);

impl Default for StableId {
    fn default() -> Self {
        StableId::new()
    }
}

impl StableId {
    pub fn new() -> StableId {
        StableId(0x6c62272e07bb014262b821756295c58d)
    }

    /// Text of the current part.
    pub fn text(self, s: &str) -> StableId {
        StableId(s.bytes().fold(self.0, fnv))
    }

    /// Ends the current part.
    pub fn end_part(self) -> StableId {
        StableId(fnv(self.0, 0xff))
    }

    /// A whole part.
    pub fn part(self, s: &str) -> StableId {
        self.text(s).end_part()
    }

    /// The id: 32 lower-case hex digits.
    pub fn finish(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 32];
        for (i, b) in text.iter_mut().enumerate() {
            *b = HEX[((self.0 >> (4 * (31 - i))) & 0xf) as usize];
        }
        // Hex digits: ASCII.
        String::from_utf8_lossy(&text).into_owned()
    }
}

fn fnv(h: u128, b: u8) -> u128 {
    (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(stable_id(&["a", "b"]), stable_id(&["a", "b"]));
        assert_ne!(stable_id(&["a", "b"]), stable_id(&["ab", ""]));
        assert_eq!(stable_id(&["x"]).len(), 32);
        // Fixed forever: ids in outboxes and people's tickets stay valid.
        assert_eq!(stable_id(&["a", "b"]), "697222d0e0757277b806e9775b4e0ce2");
        assert_eq!(
            StableId::new()
                .part("a")
                .text("b")
                .text("")
                .end_part()
                .finish(),
            stable_id(&["a", "b"])
        );
        assert_eq!(
            StableId::new().finish(),
            format!("{:032x}", 0x6c62272e07bb014262b821756295c58d_u128)
        );
    }
}
