//! A resumed run keeps the rule states of the rules that did not change
//! since its checkpoint: the manifest's fingerprints tell them apart,
//! including what the device registry holds for a rule.

use weir_operators::alert::{Device, Direction, Limits, Registry, Rule, RuleSet};
use weir_operators::checkpoint::{Manifest, FORMAT};

#[test]
fn a_resumed_run_keeps_the_states_of_unchanged_rules_only() {
    let hot = Rule::new("hot", "temp", Direction::Above, 90.0);
    let warm = Rule::new("warm", "temp", Direction::Above, 80.0);
    let manifest = Manifest {
        format: FORMAT,
        pipeline: "p".into(),
        id: 1,
        frontier: 1_000,
        created_ms: 0,
        workers: 1,
        parts: Vec::new(),
        files: Vec::new(),
        rules_version: 2,
        rules: [&hot, &warm]
            .iter()
            .map(|r| (r.name.clone(), r.fingerprint()))
            .collect(),
    };
    let now = RuleSet::new(vec![
        hot.clone(),
        warm.clone().with_threshold(|t| t.threshold = 85.0),
        Rule::new("cold", "temp", Direction::Below, 5.0),
    ]);
    assert_eq!(
        manifest.changed_rules(&now.fingerprints()),
        vec!["warm", "cold"]
    );
    // A checkpoint that kept no fingerprints keeps states by name.
    let old = Manifest {
        rules: Vec::new(),
        ..manifest
    };
    assert!(old.changed_rules(&now.fingerprints()).is_empty());
    // A registry edit changes the rules that devices have limits for.
    let limit = |threshold| {
        let limits = Limits {
            threshold: Some(threshold),
            clear: None,
        };
        let device = Device {
            fields: Vec::new(),
            limits: vec![("hot".into(), limits)],
        };
        Registry {
            devices: [("p1".to_owned(), device)].into(),
            file: None,
        }
    };
    let set =
        |threshold| RuleSet::new(vec![hot.clone(), warm.clone()]).with_devices(limit(threshold));
    let manifest = Manifest {
        rules: set(95.0).fingerprints(),
        ..old
    };
    assert!(manifest.changed_rules(&set(95.0).fingerprints()).is_empty());
    assert_eq!(
        manifest.changed_rules(&set(97.0).fingerprints()),
        vec!["hot"]
    );
}
