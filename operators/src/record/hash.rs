//! The one stable hash of the project: 64-bit FNV-1a over bytes written
//! explicitly. It decides which worker owns a key, in every process of a
//! cluster and across restarts, and it fingerprints rules in checkpoints, so
//! its values must never change: they do not depend on std's `Hash` byte
//! stream, which Rust does not promise to keep across versions.

/// The FNV-1a offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a of `bytes`, continuing from `hash` ([`FNV_OFFSET`] to start).
///
/// # Examples
///
/// ```
/// use weir_operators::hash::{fnv1a, FNV_OFFSET};
///
/// // The published test vector of 64-bit FNV-1a for "a".
/// assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
/// // Hashing in two steps is hashing the concatenation.
/// assert_eq!(fnv1a(fnv1a(FNV_OFFSET, b"ab"), b"c"), fnv1a(FNV_OFFSET, b"abc"));
/// ```
#[inline]
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The routing hash of names: each name's UTF-8 bytes followed by `0xff`
/// (a byte UTF-8 never contains, so `("ab", "c")` and `("a", "bc")`
/// differ), FNV-1a over them, and the high bits mixed down so that
/// `hash % workers` spreads well.
///
/// # Examples
///
/// ```
/// use weir_operators::hash::route_hash;
///
/// assert_ne!(route_hash(&["ab", "c"]), route_hash(&["a", "bc"]));
/// assert_eq!(route_hash(&["press-1", "temperature"]), 0xf4ce_5340_ae1b_abe4);
/// ```
#[inline]
pub fn route_hash(names: &[&str]) -> u64 {
    let h = names.iter().fold(FNV_OFFSET, |h, name| {
        fnv1a(fnv1a(h, name.as_bytes()), &[0xff])
    });
    h ^ (h >> 29) ^ (h >> 47)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values worked out apart from this code (a few lines of Python over
    /// the same bytes); a change here moves keys between workers and makes
    /// every checkpoint's rules look changed.
    #[test]
    fn the_values_never_change() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(route_hash(&["", ""]), 0x0a99_c907_e238_1a6d);
        assert_eq!(
            route_hash(&["conveyor-017", "vibration"]),
            0x8f01_1619_102f_3574
        );
        assert_eq!(
            route_hash(&["press-1", "temperature"]),
            0xf4ce_5340_ae1b_abe4
        );
    }
}
