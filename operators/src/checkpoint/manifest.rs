//! The manifest of a checkpoint: written last, it names every part, and it
//! carries a checksum of its own content, so a manifest that was damaged or
//! edited is refused like a damaged part.

use serde::{Deserialize, Serialize};

use super::{PartInfo, PendingFile};

/// What makes a checkpoint complete: written last, it names every part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of checkpoints.
    pub format: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// Checkpoint number.
    pub id: u64,
    /// Event-time frontier, ms since the epoch.
    pub frontier: u64,
    /// Wall-clock time it completed, ms since the epoch.
    pub created_ms: u64,
    /// Workers of the run that wrote it (over all processes).
    pub workers: usize,
    /// Every part.
    pub parts: Vec<PartInfo>,
    /// Files made visible by this checkpoint.
    pub files: Vec<PendingFile>,
    /// The version of the rule set in force at the frontier (0 in
    /// checkpoints written before versions were kept).
    #[serde(default)]
    pub rules_version: u64,
    /// Each rule in force at the frontier, by name, with its
    /// [`fingerprint`](crate::alert::Rule::fingerprint): a resumed run keeps
    /// the states of the rules that are unchanged.
    #[serde(default)]
    pub rules: Vec<(String, u64)>,
}

impl Manifest {
    /// What changed since this checkpoint in the rules whose
    /// [fingerprints](crate::alert::RuleSet::fingerprints) are `now`: rules
    /// with the same name and another definition, and new rules (none if
    /// the checkpoint kept no fingerprints).
    pub fn changed_rules(&self, now: &[(String, u64)]) -> Vec<String> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        now.iter()
            .filter(|rule| !self.rules.contains(rule))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Total size of the parts, in bytes.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// A manifest as stored: its fields and, beside them, the CRC-32 of its
/// canonical encoding (compact JSON of the [`Manifest`] alone), so the
/// check does not depend on the file's layout.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(flatten)]
    manifest: Manifest,
    #[serde(default)]
    crc32: Option<u32>,
}

fn canonical_crc(manifest: &Manifest) -> u32 {
    crc32fast::hash(&serde_json::to_vec(manifest).expect("a manifest serializes"))
}

impl Manifest {
    /// The stored form: pretty JSON of the fields and their checksum.
    pub fn seal(&self) -> Vec<u8> {
        let sealed = Sealed {
            crc32: Some(canonical_crc(self)),
            manifest: self.clone(),
        };
        serde_json::to_vec_pretty(&sealed).expect("a manifest serializes")
    }

    /// Reads a stored manifest, refusing one that is not valid JSON, has
    /// no checksum, or whose checksum does not match its content.
    pub fn unseal(bytes: &[u8]) -> Result<Manifest, String> {
        let sealed: Sealed =
            serde_json::from_slice(bytes).map_err(|e| format!("its manifest is not valid: {e}"))?;
        let stored = sealed
            .crc32
            .ok_or("its manifest has no checksum (written by an older Weir, or edited)")?;
        let computed = canonical_crc(&sealed.manifest);
        if stored != computed {
            return Err(format!(
                "its manifest does not match its checksum (crc32 {stored:08x} stored, \
                 {computed:08x} computed): it was damaged or edited"
            ));
        }
        Ok(sealed.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: super::super::FORMAT,
            pipeline: "p".into(),
            id: 3,
            frontier: 1_795_341_600_000,
            created_ms: 1_795_341_700_123,
            workers: 2,
            parts: vec![PartInfo {
                name: "ckpt-000000000003-window.1-w0.part".into(),
                op: "window.1".into(),
                worker: 0,
                bytes: 120,
                crc32: 0xdead_beef,
            }],
            files: Vec::new(),
            rules_version: 1,
            rules: vec![("hot".into(), 42)],
        }
    }

    #[test]
    fn a_sealed_manifest_reads_back_and_any_edit_is_refused() {
        let sealed = manifest().seal();
        assert_eq!(Manifest::unseal(&sealed).unwrap(), manifest());

        // Re-indenting does not change the content: still accepted.
        let value: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        assert_eq!(Manifest::unseal(&compact).unwrap(), manifest());

        // The frontier moved 5 minutes later, as a person editing it would.
        let text = String::from_utf8(sealed.clone()).unwrap();
        let edited = text.replace("1795341600000", "1795341900000");
        assert_ne!(edited, text);
        let error = Manifest::unseal(edited.as_bytes()).unwrap_err();
        assert!(error.contains("does not match its checksum"), "{error}");

        // One byte flipped inside a name.
        let flipped = text.replacen("window.1", "window.2", 1);
        assert!(Manifest::unseal(flipped.as_bytes()).is_err());

        // No checksum at all.
        let mut value = value;
        value.as_object_mut().unwrap().remove("crc32");
        let bare = serde_json::to_vec(&value).unwrap();
        let error = Manifest::unseal(&bare).unwrap_err();
        assert!(error.contains("no checksum"), "{error}");

        // Cut short.
        assert!(Manifest::unseal(&sealed[..sealed.len() / 2]).is_err());
    }
}
