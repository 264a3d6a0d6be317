//! The kind of a rule: `kind`, and the fields that go with one kind only
//! (`span` for rates, `baseline` for deviations, `after` for silence, and
//! `all`, `any` and `within` for combinations).

use super::*;

/// The kinds a rule can have, as `kind` names them.
#[derive(Clone, Copy, PartialEq)]
enum Tag {
    /// `threshold` (the default).
    Threshold,
    /// `rate`.
    Rate,
    /// `deviation`.
    Deviation,
    /// `silence`.
    Silence,
    /// `combination`.
    Combination,
}

/// The kind of a rule with the settings that go with that kind alone:
/// what [`RuleKind`] becomes once the rule's thresholds and combination
/// are known ([`KindOf::with`]).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum KindOf {
    /// A threshold rule.
    Threshold,
    /// A rate rule over `span_ms`.
    RateOfChange { span_ms: u64 },
    /// A deviation rule from a baseline of `baseline` observations.
    Deviation { baseline: u32 },
    /// A silence rule: no reading for `after_ms`.
    Silence { after_ms: u64 },
    /// A combination rule.
    Combination,
}

impl KindOf {
    /// The rule kind, with the rule's `threshold` (for the threshold, rate
    /// and deviation kinds) or `combination` (for a combination rule).
    pub(super) fn with(self, threshold: Threshold, combination: Option<Combination>) -> RuleKind {
        match self {
            KindOf::Threshold => RuleKind::Threshold(threshold),
            KindOf::RateOfChange { span_ms } => RuleKind::RateOfChange { span_ms, threshold },
            KindOf::Deviation { baseline } => RuleKind::Deviation {
                baseline,
                threshold,
            },
            KindOf::Silence { after_ms } => RuleKind::Silence { after_ms },
            KindOf::Combination => {
                RuleKind::Combination(combination.expect("a combination rule has its conditions"))
            }
        }
    }
}

/// The kind of a rule, from `kind` and the fields that go with it (`span`
/// for rates, `baseline` for deviations; each is an error with another kind).
pub(super) fn rule_kind(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) -> KindOf {
    let tag = r
        .kind
        .as_ref()
        .and_then(|k| {
            choice(
                d,
                k,
                &field("kind"),
                &[
                    ("threshold", Tag::Threshold),
                    ("rate", Tag::Rate),
                    ("deviation", Tag::Deviation),
                    ("silence", Tag::Silence),
                    ("combination", Tag::Combination),
                ],
            )
        })
        .unwrap_or(Tag::Threshold);
    reject_fields_of_other_kinds(d, r, tag, field);
    let kind_at = r.kind.as_ref().map_or(0..0, Spanned::span);
    match tag {
        Tag::Threshold => KindOf::Threshold,
        Tag::Combination => KindOf::Combination,
        Tag::Rate => rate(d, r, kind_at, field),
        Tag::Deviation => deviation(d, r, kind_at, field),
        Tag::Silence => silence::silence(d, r, kind_at, field),
    }
}

/// Reports each field given that belongs to another kind than `tag`.
fn reject_fields_of_other_kinds(
    d: &mut Diag<'_>,
    r: &RawRule,
    tag: Tag,
    field: &dyn Fn(&str) -> String,
) {
    let extra = [
        (
            "span",
            r.span.as_ref().map(Spanned::span),
            Tag::Rate,
            "rate",
        ),
        (
            "baseline",
            r.baseline.as_ref().map(Spanned::span),
            Tag::Deviation,
            "deviation",
        ),
        (
            "after",
            r.after.as_ref().map(Spanned::span),
            Tag::Silence,
            "silence",
        ),
        (
            "all",
            r.all.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
        (
            "any",
            r.any.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
        (
            "within",
            r.within.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
    ];
    for (name, at, kind, kind_name) in extra {
        if let Some(at) = at.filter(|_| tag != kind) {
            d.err(
                at,
                &field(name),
                format!("`{name}` applies only to {kind_name} rules: add `kind = \"{kind_name}\"` or remove `{name}`"),
            );
        }
    }
}

/// A rate rule: the change per second over `span` (required, longer than 0).
fn rate(
    d: &mut Diag<'_>,
    r: &RawRule,
    kind_at: Range<usize>,
    field: &dyn Fn(&str) -> String,
) -> KindOf {
    let span_ms = match r.span.as_ref() {
        Some(span) => match duration_ms(d, span, &field("span")) {
            Some(0) => {
                d.err(span.span(), &field("span"), "must be longer than 0");
                None
            }
            ms => ms,
        },
        None => {
            d.err(
                kind_at,
                &field("span"),
                "a rate rule needs `span = \"...\"`: how far back the rate looks",
            );
            None
        }
    };
    KindOf::RateOfChange {
        span_ms: span_ms.unwrap_or(1),
    }
}

/// A deviation rule: standard deviations from the mean of the previous
/// `baseline` observations (required, at least 2).
fn deviation(
    d: &mut Diag<'_>,
    r: &RawRule,
    kind_at: Range<usize>,
    field: &dyn Fn(&str) -> String,
) -> KindOf {
    let n = match r.baseline.as_ref() {
        Some(b) => count(d, b, &field("baseline"), 2, u32::MAX),
        None => {
            d.err(
                kind_at,
                &field("baseline"),
                "a deviation rule needs `baseline = N`: how many previous observations make the baseline",
            );
            None
        }
    };
    KindOf::Deviation {
        baseline: n.unwrap_or(2),
    }
}
