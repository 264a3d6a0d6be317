//! How [`RuleSet`](crate::alert::RuleSet) reaches a running pipeline: as a
//! [`Reload`](crate::Reload) of its bincode encoding.

use crate::rules::RuleSet;

impl RuleSet {
    /// This rule set as a reload of a running pipeline (see
    /// [`RunControl::request_reload`](crate::RunControl::request_reload)).
    ///
    /// # Examples
    /// ```
    /// use weir_operators::alert::{Direction, Rule, RuleSet};
    ///
    /// let rules = RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]);
    /// assert_eq!(RuleSet::from_reload(&rules.to_reload()).unwrap(), rules);
    /// ```
    pub fn to_reload(&self) -> crate::Reload {
        crate::Reload {
            payload: bincode::serialize(self).expect("a rule set serializes"),
        }
    }

    /// The rule set a reload made by [`RuleSet::to_reload`] carries.
    pub fn from_reload(reload: &crate::Reload) -> Result<RuleSet, String> {
        bincode::deserialize(&reload.payload)
            .map_err(|e| format!("a reload does not hold rules of this version of Weir: {e}"))
    }
}
