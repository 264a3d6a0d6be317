//! [`Pattern`]: a glob that keeps its text, so that rules holding one can
//! be compared, printed and serialized.

use std::fmt;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A glob pattern (`press-*`), compiled once. It serializes as its text,
/// and two patterns are equal when their texts are.
#[derive(Clone)]
pub struct Pattern {
    /// The compiled glob; its text is `matcher.glob().glob()`.
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compiles `glob`.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::rules::Pattern;
    ///
    /// let p = Pattern::new("press-*").unwrap();
    /// assert!(p.is_match("press-7") && !p.is_match("pump-1"));
    /// assert_eq!(p.as_str(), "press-*");
    /// ```
    pub fn new(glob: &str) -> Result<Self, globset::Error> {
        Ok(Pattern {
            matcher: Glob::new(glob)?.compile_matcher(),
        })
    }

    /// Whether `text` matches the pattern.
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    /// The pattern's text, as written.
    pub fn as_str(&self) -> &str {
        self.matcher.glob().glob()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_str().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Pattern::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_by_text_and_serialized_as_it() {
        let a = Pattern::new("press-*").unwrap();
        assert_eq!(a, Pattern::new("press-*").unwrap());
        assert_ne!(a, Pattern::new("press-?").unwrap());
        let bytes = bincode::serialize(&a).unwrap();
        assert_eq!(bytes, bincode::serialize("press-*").unwrap());
        assert_eq!(bincode::deserialize::<Pattern>(&bytes).unwrap(), a);
        assert_eq!(format!("{a:?} {a}"), "Pattern(\"press-*\") press-*");
    }
}
