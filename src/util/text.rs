//! Counts in sentences: "1 rule", "2 rules", "1 mismatch", "3 closing summaries". Every
//! count a person reads goes through [`count`], so singular and plural are right everywhere.

/// `n` and `noun`, the noun in the plural unless `n` is 1: `count(1, "event")` is
/// `1 event`, `count(2, "match")` is `2 matches`, `count(0, "summary")` is `0 summaries`.
/// The plural is the regular English one (`-s`, `-es` after s/x/ch/sh, `-ies` after a
/// consonant and y); only the last word changes (`2 baseline documents`).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    format!("{n} {}", plural(noun))
}

/// The regular English plural of `noun`.
pub fn plural(noun: &str) -> String {
    let b = noun.as_bytes();
    let consonant_y = b.len() >= 2
        && b[b.len() - 1] == b'y'
        && !matches!(b[b.len() - 2], b'a' | b'e' | b'i' | b'o' | b'u');
    if consonant_y {
        format!("{}ies", &noun[..noun.len() - 1])
    } else if ["s", "x", "ch", "sh"].iter().any(|e| noun.ends_with(e)) {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_and_plural() {
        assert_eq!(count(1, "mismatch"), "1 mismatch");
        assert_eq!(count(2, "mismatch"), "2 mismatches");
        assert_eq!(count(0, "event"), "0 events");
        assert_eq!(count(1, "event"), "1 event");
        assert_eq!(count(3, "closing summary"), "3 closing summaries");
        assert_eq!(count(2, "key"), "2 keys");
        assert_eq!(count(2, "baseline document"), "2 baseline documents");
        assert_eq!(count(1, "correlation"), "1 correlation");
    }
}
