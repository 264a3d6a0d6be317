//! What the alert evaluators of a run can judge, kept for the run in its
//! [`Env`]: a rule nothing is fed for fails the run at start, and a reload
//! with such a rule is refused.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use super::{Rule, RuleKind, RuleSet};
use crate::run::Env;

/// Whether an alert evaluator can judge a rule.
pub(crate) type Judges = Box<dyn Fn(&Rule) -> bool>;

/// The alert evaluators of one worker's dataflow.
#[derive(Default)]
pub(crate) struct Wiring {
    /// Whether each evaluator can judge a rule: it is fed what the rule
    /// looks at, and is wired as the rule needs (following the sources'
    /// progress for silence rules, routing by device for combination rules).
    evaluators: RefCell<Vec<Judges>>,
    /// Every rule given to an evaluator, by name: what it looks at, and
    /// whether some evaluator feeds it.
    fed: RefCell<BTreeMap<String, (String, bool)>>,
}

impl Wiring {
    /// Notes an evaluator of `env`'s run, which can judge the rules `judges`
    /// accepts, given `rules`: the first one makes the run check reloads
    /// and, once wired, that every rule is fed.
    pub(crate) fn note_evaluator(env: &Env<'_>, judges: Judges, rules: &Arc<RuleSet>) {
        let wiring = env.layer::<Wiring>();
        if wiring.evaluators.borrow().is_empty() {
            let checked = wiring.clone();
            env.on_reload(Box::new(move |reload| {
                let rules = RuleSet::from_reload(reload)?;
                unjudged(&rules, &checked.evaluators.borrow())?;
                Ok(rules.fingerprints())
            }));
            let checked = wiring.clone();
            env.check_at_finish(Box::new(move || checked.unfed()));
        }
        wiring.evaluators.borrow_mut().push(judges);
        env.set_definitions(rules.fingerprints());
    }

    /// Notes rules given to an evaluator: (name, what it looks at, whether
    /// this evaluator feeds it).
    pub(crate) fn note_rules(
        env: &Env<'_>,
        rules: impl IntoIterator<Item = (String, String, bool)>,
    ) {
        let wiring = env.layer::<Wiring>();
        let mut fed = wiring.fed.borrow_mut();
        for (name, input, feeds) in rules {
            fed.entry(name).or_insert((input, false)).1 |= feeds;
        }
    }

    /// The rules no evaluator is fed for, as a pipeline error.
    fn unfed(self: &Rc<Self>) -> Option<String> {
        let unfed: Vec<String> = self
            .fed
            .borrow()
            .iter()
            .filter(|(_, (_, fed))| !fed)
            .map(|(name, (input, _))| format!("rule \"{name}\" ({input})"))
            .collect();
        (!unfed.is_empty()).then(|| {
            format!(
                "no alert evaluator of the pipeline sees what {} looks at: evaluate the rules \
                 with weir_operators::alert::alerts, which wires the windows every rule needs",
                unfed.join(", ")
            )
        })
    }
}

/// Why some alert evaluator of the pipeline cannot judge a rule of
/// `rules`: no evaluator is fed what it looks at (windows of a size the
/// pipeline does not compute), or none is wired as it needs (a silence
/// rule, or a combination rule, where the pipeline started without one).
pub(crate) fn unjudged(rules: &RuleSet, evaluators: &[Judges]) -> Result<(), String> {
    let problems: Vec<String> = rules
        .rules
        .iter()
        .filter(|r| !evaluators.iter().any(|judges| judges(r)))
        .map(|r| {
            let kind = match r.kind {
                RuleKind::Silence { .. } => ", a silence rule",
                RuleKind::Combination(_) => ", a combination rule",
                _ => "",
            };
            format!("rule \"{}\" ({}{kind})", r.name, r.input())
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no alert evaluator of the running pipeline can judge {}: restart the pipeline to add it",
        problems.join(", ")
    ))
}
