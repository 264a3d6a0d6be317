//! Combination rules: all or any of several conditions on one device within a
//! time span, for example "temperature above 90 and vibration above 7 within
//! 10 s". This module holds the rule ([`Combination`]) and the state machine
//! of one device ([`CombinationState`]), free of timely.
//!
//! Semantics:
//!
//! - A condition names a sensor, a direction, a threshold and a clear
//!   threshold. It starts to hold at a reading strictly past the threshold
//!   (above it for `above`, below it for `below`), and stops holding only at a
//!   reading at or past the clear threshold on the safe side (hysteresis; by
//!   default the clear threshold is the threshold). A reading between the two
//!   leaves the condition as it was. Only readings of its sensor change a
//!   condition, and time alone never does.
//! - A reading at which a condition holds is a breaching reading of that
//!   condition; while a condition holds, its latest breaching reading is the
//!   latest reading of its sensor.
//! - The readings of a device are applied one by one in event-time order
//!   (readings with equal event times in the caller's order). A reading of a
//!   sensor that no condition names is ignored: it changes nothing and is not
//!   evaluated. A sensor may be named by several conditions (a band: `any` of
//!   above 90 and below 10); a reading of it updates each of them.
//! - After each reading of a named sensor, at its event time `t`, a condition
//!   counts when it holds and its latest breaching reading, at `b`, lies within
//!   the span: `t - b <= within`. `all` holds when every condition counts;
//!   `any` holds when at least one does.
//! - The rule fires at the first reading at which it holds: the firing event
//!   has that reading's event time and value, and as `values` the latest
//!   breaching value of each condition that counts, in condition order (every
//!   condition for `all`). It resolves at the first later reading at which it
//!   no longer holds, with that reading's event time and value. It can fire
//!   again at a later reading at which it holds again.
//! - Nothing happens without a reading: there are no timers. A firing rule
//!   whose breaches have all gone out of the span stays firing until the
//!   device's next reading of a named sensor resolves it. Timers would make a
//!   device's alerts depend on other devices' progress (the watermark) rather
//!   than on its own readings; a device that stops reporting is a silence
//!   rule's business.

use serde::{Deserialize, Serialize};

use super::AlertState;
pub use crate::rules::combination::{Combination, Condition, Mode};
pub use crate::rules::Direction;

/// The latest breaching reading of a condition that holds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Its event time.
    pub time: u64,
    /// Its value.
    pub value: f64,
}

/// The state of one combination for one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CombinationState {
    /// Per condition, in condition order: its latest breaching reading while
    /// it holds, `None` while it does not.
    pub conditions: Vec<Option<Breach>>,
    /// Whether the combination is firing.
    pub firing: bool,
}

/// A state change of a combination for one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinationTransition {
    /// [`AlertState::Firing`] or [`AlertState::Resolved`].
    pub state: AlertState,
    /// Event time of the reading that caused it.
    pub time: u64,
    /// Value of the reading that caused it.
    pub value: f64,
    /// Firing: the latest breaching value of each condition that counts, in
    /// condition order. Resolved: empty.
    pub values: Vec<f64>,
}

impl CombinationState {
    /// Applies one reading of the device, not earlier than the previous one,
    /// and pushes the state change it causes, if any, to `out`. A state
    /// belongs to one rule: after an edit of the rule, start from the
    /// default state.
    pub fn observe(
        &mut self,
        rule: &Combination,
        sensor: &str,
        time: u64,
        value: f64,
        out: &mut Vec<CombinationTransition>,
    ) {
        self.conditions.resize(rule.conditions.len(), None);
        let mut named = false;
        for (cond, held) in rule.conditions.iter().zip(&mut self.conditions) {
            if cond.sensor != sensor {
                continue;
            }
            named = true;
            let holds = match held {
                Some(_) => !cond.clears(value),
                None => cond.breaches(value),
            };
            *held = holds.then_some(Breach { time, value });
        }
        if !named {
            return;
        }
        let counting = || {
            self.conditions
                .iter()
                .flatten()
                .filter(|b| time.saturating_sub(b.time) <= rule.within_ms)
        };
        let holds = match rule.mode {
            Mode::All => counting().count() == rule.conditions.len(),
            Mode::Any => counting().next().is_some(),
        };
        if holds != self.firing {
            self.firing = holds;
            out.push(CombinationTransition {
                state: if holds {
                    AlertState::Firing
                } else {
                    AlertState::Resolved
                },
                time,
                value,
                values: if holds {
                    counting().map(|b| b.value).collect()
                } else {
                    Vec::new()
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMP: &str = "temperature";
    const VIB: &str = "vibration";

    /// temperature above 90 and vibration above 7 within 10 s.
    fn hot_and_shaking(mode: Mode) -> Combination {
        Combination {
            mode,
            conditions: vec![
                Condition::new(TEMP, Direction::Above, 90.0),
                Condition::new(VIB, Direction::Above, 7.0),
            ],
            within_ms: 10_000,
        }
    }

    fn fired(time: u64, value: f64, values: &[f64]) -> CombinationTransition {
        CombinationTransition {
            state: AlertState::Firing,
            time,
            value,
            values: values.to_vec(),
        }
    }

    fn resolved(time: u64, value: f64) -> CombinationTransition {
        CombinationTransition {
            state: AlertState::Resolved,
            time,
            value,
            values: Vec::new(),
        }
    }

    /// Applies `readings` to a fresh state, returning the transitions each
    /// reading caused.
    fn run(rule: &Combination, readings: &[(&str, u64, f64)]) -> Vec<Vec<CombinationTransition>> {
        let mut state = CombinationState::default();
        readings
            .iter()
            .map(|&(sensor, time, value)| {
                let mut out = Vec::new();
                state.observe(rule, sensor, time, value, &mut out);
                out
            })
            .collect()
    }

    /// One reading (sensor, event time, value) and the transitions it
    /// causes.
    type Step<'a> = (&'a str, u64, f64, Vec<CombinationTransition>);

    /// Applies the readings of `steps` to a fresh state, one by one: each
    /// must cause the transitions next to it.
    fn check(rule: &Combination, steps: &[Step]) {
        let readings: Vec<_> = steps.iter().map(|&(s, t, v, _)| (s, t, v)).collect();
        let want: Vec<_> = steps.iter().map(|step| step.3.clone()).collect();
        assert_eq!(run(rule, &readings), want);
    }

    #[test]
    fn all_fires_when_every_condition_breaches_within_the_span() {
        check(
            &hot_and_shaking(Mode::All),
            &[
                (TEMP, 1_000, 95.0, vec![]), // temperature only
                // Both, 4 s apart.
                (VIB, 5_000, 8.0, vec![fired(5_000, 8.0, &[95.0, 8.0])]),
                (TEMP, 6_000, 97.0, vec![]), // still both
                // Temperature clears (not above 90).
                (TEMP, 7_000, 90.0, vec![resolved(7_000, 90.0)]),
            ],
        );
    }

    #[test]
    fn simultaneous_readings_are_evaluated_one_by_one() {
        let rule = hot_and_shaking(Mode::All);
        check(
            &rule,
            &[
                (TEMP, 1_000, 95.0, vec![]),
                // Fires with the second reading's value.
                (VIB, 1_000, 8.0, vec![fired(1_000, 8.0, &[95.0, 8.0])]),
                // Resolves at the same time.
                (TEMP, 1_000, 50.0, vec![resolved(1_000, 50.0)]),
            ],
        );
        // The other order: the value is the temperature's.
        check(
            &rule,
            &[
                (VIB, 1_000, 8.0, vec![]),
                (TEMP, 1_000, 95.0, vec![fired(1_000, 95.0, &[95.0, 8.0])]),
            ],
        );
    }

    #[test]
    fn a_condition_clearing_while_others_hold() {
        // All: resolves, and fires again when it breaches again.
        check(
            &hot_and_shaking(Mode::All),
            &[
                (TEMP, 0, 95.0, vec![]),
                (VIB, 1_000, 8.0, vec![fired(1_000, 8.0, &[95.0, 8.0])]),
                (VIB, 2_000, 5.0, vec![resolved(2_000, 5.0)]),
                (VIB, 3_000, 9.0, vec![fired(3_000, 9.0, &[95.0, 9.0])]),
            ],
        );
        // Any: the other condition keeps it firing.
        check(
            &hot_and_shaking(Mode::Any),
            &[
                (TEMP, 0, 95.0, vec![fired(0, 95.0, &[95.0])]),
                (VIB, 1_000, 8.0, vec![]),
                (TEMP, 2_000, 80.0, vec![]),
                (VIB, 3_000, 7.5, vec![]),
                (VIB, 4_000, 7.0, vec![resolved(4_000, 7.0)]),
            ],
        );
    }

    #[test]
    fn any_with_one_condition() {
        let rule = Combination {
            mode: Mode::Any,
            conditions: vec![Condition::new(TEMP, Direction::Above, 90.0)],
            within_ms: 10_000,
        };
        check(
            &rule,
            &[
                (TEMP, 0, 95.0, vec![fired(0, 95.0, &[95.0])]),
                (TEMP, 100, 96.0, vec![]),
                (TEMP, 200, 80.0, vec![resolved(200, 80.0)]),
                (TEMP, 300, 91.0, vec![fired(300, 91.0, &[91.0])]),
            ],
        );
    }

    #[test]
    fn stale_breaches_do_not_count() {
        check(
            &hot_and_shaking(Mode::All),
            &[
                (TEMP, 0, 95.0, vec![]),
                (VIB, 10_001, 8.0, vec![]), // 10.001 s after the temperature breach
                // Both within 2 s.
                (TEMP, 12_000, 93.0, vec![fired(12_000, 93.0, &[93.0, 8.0])]),
            ],
        );
        // The span is inclusive.
        check(
            &hot_and_shaking(Mode::All),
            &[
                (TEMP, 0, 95.0, vec![]),
                (VIB, 10_000, 8.0, vec![fired(10_000, 8.0, &[95.0, 8.0])]),
            ],
        );
    }

    #[test]
    fn out_of_span_resolves_at_the_next_reading_and_a_fresh_breach_refires() {
        check(
            &hot_and_shaking(Mode::All),
            &[
                (TEMP, 1_000, 95.0, vec![]),
                (VIB, 5_000, 8.0, vec![fired(5_000, 8.0, &[95.0, 8.0])]),
                // Ignored, though the temperature breach is stale.
                ("humidity", 11_200, 40.0, vec![]),
                // Temperature breach 10.5 s old.
                (VIB, 11_500, 8.5, vec![resolved(11_500, 8.5)]),
                // Fresh: fires again.
                (TEMP, 12_000, 96.0, vec![fired(12_000, 96.0, &[96.0, 8.5])]),
            ],
        );
    }

    #[test]
    fn no_reading_no_change() {
        // Firing with both breaches long out of the span: nothing happens
        // until a reading of a named sensor.
        let rule = hot_and_shaking(Mode::All);
        let mut state = CombinationState::default();
        let mut out = Vec::new();
        state.observe(&rule, TEMP, 0, 95.0, &mut out);
        state.observe(&rule, VIB, 0, 8.0, &mut out);
        state.observe(&rule, "humidity", 60_000, 40.0, &mut out);
        assert!(state.firing);
        assert_eq!(out, vec![fired(0, 8.0, &[95.0, 8.0])]);
        state.observe(&rule, VIB, 60_000, 8.0, &mut out);
        assert_eq!(out[1..], [resolved(60_000, 8.0)]);
    }

    /// [`hot_and_shaking`] with all conditions, the temperature condition
    /// clearing only at or below 80.
    fn hot_clearing_at_80_and_shaking() -> Combination {
        let mut rule = hot_and_shaking(Mode::All);
        rule.conditions[0] = Condition::new(TEMP, Direction::Above, 90.0).clear_at(80.0);
        rule
    }

    #[test]
    fn hysteresis() {
        check(
            &hot_clearing_at_80_and_shaking(),
            &[
                (TEMP, 0, 95.0, vec![]),
                (VIB, 1_000, 8.0, vec![fired(1_000, 8.0, &[95.0, 8.0])]),
                (TEMP, 2_000, 85.0, vec![]), // between clear and threshold: holds
                (VIB, 11_500, 8.0, vec![]),  // the 85 at 2 s is the latest breach
                // At the clear threshold: clears.
                (TEMP, 12_000, 80.0, vec![resolved(12_000, 80.0)]),
                (TEMP, 12_500, 85.0, vec![]), // does not hold: not above 90
                (TEMP, 13_000, 90.0, vec![]), // not strictly above
                (TEMP, 13_500, 90.5, vec![fired(13_500, 90.5, &[90.5, 8.0])]),
            ],
        );
    }

    #[test]
    fn hysteresis_is_not_reset_by_time() {
        // The temperature condition holds from 0 s on: a reading between the
        // clear threshold and the threshold 30 s later is a fresh breach.
        check(
            &hot_clearing_at_80_and_shaking(),
            &[
                (TEMP, 0, 95.0, vec![]),
                (TEMP, 30_000, 85.0, vec![]),
                (VIB, 31_000, 8.0, vec![fired(31_000, 8.0, &[85.0, 8.0])]),
            ],
        );
    }

    #[test]
    fn two_conditions_on_one_sensor_make_a_band() {
        let rule = Combination {
            mode: Mode::Any,
            conditions: vec![
                Condition::new(TEMP, Direction::Above, 90.0),
                Condition::new(TEMP, Direction::Below, 10.0),
            ],
            within_ms: 10_000,
        };
        check(
            &rule,
            &[
                (TEMP, 0, 50.0, vec![]),
                (TEMP, 1_000, 95.0, vec![fired(1_000, 95.0, &[95.0])]),
                (TEMP, 2_000, 5.0, vec![]), // from one side to the other: still holds
                (TEMP, 3_000, 10.0, vec![resolved(3_000, 10.0)]),
                (TEMP, 4_000, 9.0, vec![fired(4_000, 9.0, &[9.0])]),
            ],
        );
        // All of a band that cannot hold at once never fires.
        let all = Combination {
            mode: Mode::All,
            ..rule
        };
        let got = run(&all, &[(TEMP, 0, 95.0), (TEMP, 1, 5.0), (TEMP, 2, 95.0)]);
        assert!(got.iter().all(Vec::is_empty));
    }

    #[test]
    fn state_survives_a_checkpoint() {
        let rule = hot_and_shaking(Mode::All);
        let mut state = CombinationState::default();
        let mut out = Vec::new();
        state.observe(&rule, TEMP, 1_000, 95.0, &mut out);
        let bytes = bincode::serialize(&state).unwrap();
        let mut restored: CombinationState = bincode::deserialize(&bytes).unwrap();
        assert_eq!(restored, state);
        restored.observe(&rule, VIB, 2_000, 8.0, &mut out);
        assert_eq!(out, vec![fired(2_000, 8.0, &[95.0, 8.0])]);
        let rule_bytes = bincode::serialize(&rule).unwrap();
        assert_eq!(
            bincode::deserialize::<Combination>(&rule_bytes).unwrap(),
            rule
        );
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// Recomputes from the whole history `readings[..=k]` whether the rule
    /// holds at reading `k`, and the values of the conditions that count.
    fn reference_holds(
        rule: &Combination,
        readings: &[(&str, u64, f64)],
        k: usize,
    ) -> (bool, Vec<f64>) {
        let t = readings[k].1;
        let mut values = Vec::new();
        let mut counting = 0;
        for cond in &rule.conditions {
            let mine: Vec<(u64, f64)> = readings[..=k]
                .iter()
                .filter(|r| r.0 == cond.sensor)
                .map(|r| (r.1, r.2))
                .collect();
            // It holds iff a reading breached and none since cleared; then
            // its latest breaching reading is its sensor's latest reading.
            let holds = mine
                .iter()
                .rposition(|r| cond.breaches(r.1))
                .is_some_and(|p| !mine[p + 1..].iter().any(|r| cond.clears(r.1)));
            if let (true, Some(&(b, v))) = (holds, mine.last()) {
                if t - b <= rule.within_ms {
                    counting += 1;
                    values.push(v);
                }
            }
        }
        let holds = match rule.mode {
            Mode::All => counting == rule.conditions.len(),
            Mode::Any => counting > 0,
        };
        (holds, values)
    }

    #[test]
    fn matches_a_naive_reference_on_random_sequences() {
        let sensors = ["a", "b", "c", "unnamed"];
        for seed in 1..=500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let conditions = (0..1 + rng.below(3))
                .map(|_| {
                    let sensor = sensors[rng.below(3) as usize];
                    let threshold = (5 + rng.below(11)) as f64;
                    let band = rng.below(4) as f64;
                    if rng.below(2) == 0 {
                        Condition::new(sensor, Direction::Above, threshold)
                            .clear_at(threshold - band)
                    } else {
                        Condition::new(sensor, Direction::Below, threshold)
                            .clear_at(threshold + band)
                    }
                })
                .collect();
            let rule = Combination {
                mode: if rng.below(2) == 0 {
                    Mode::All
                } else {
                    Mode::Any
                },
                conditions,
                within_ms: rng.below(8) * 1_000,
            };
            let mut time = 0;
            let readings: Vec<(&str, u64, f64)> = (0..200)
                .map(|_| {
                    time += rng.below(5) * 500;
                    let sensor = sensors[rng.below(4) as usize];
                    (sensor, time, rng.below(21) as f64)
                })
                .collect();

            let got = run(&rule, &readings);
            let mut firing = false;
            for (k, &(sensor, time, value)) in readings.iter().enumerate() {
                let mut want = Vec::new();
                if rule.conditions.iter().any(|c| c.sensor == sensor) {
                    let (holds, values) = reference_holds(&rule, &readings, k);
                    if holds && !firing {
                        want.push(fired(time, value, &values));
                    } else if !holds && firing {
                        want.push(resolved(time, value));
                    }
                    firing = holds;
                }
                assert_eq!(got[k], want, "seed {seed}, reading {k}: {rule:?}");
            }
        }
    }
}
