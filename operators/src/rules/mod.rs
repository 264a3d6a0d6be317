//! Alert rules as data: what a rule selects, observes and compares, free
//! of how rules are evaluated ([`crate::alert`]).
//!
//! A [`Rule`] is a header (name, severity, [`Selection`], labels), the
//! [`Modifiers`] of the state machine, and a [`RuleKind`] that carries its
//! own settings: thresholds ([`Threshold`]) for the threshold,
//! rate-of-change and deviation kinds, a span for silence, conditions for
//! a combination. A [`RuleSet`] holds the rules with the device
//! [`Registry`]; it knows what a reload changes ([`RulesDiff`]) and the
//! [fingerprints](RuleSet::fingerprints) checkpoints keep. [`describe`]
//! puts a rule in words.

pub mod combination;
pub mod describe;
mod fingerprint;
mod kind;
mod pattern;
mod registry;
mod rule;
mod set;

pub use combination::{Combination, Condition, Mode};
pub use kind::{Direction, RuleInput, RuleKind, Stat, Threshold};
pub use pattern::Pattern;
pub use registry::{Device, Limits, Registry};
pub use rule::{Chattering, Modifiers, Rule, Selection};
pub use set::{RuleSet, RulesDiff};
