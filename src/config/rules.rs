//! Stage two of rule tables: every rule kind, its modifiers and its
//! combination conditions, validated into the operators' [`Rule`]s.

use super::*;

/// Validates rules in file order: each rule, then that names are unique.
pub(super) fn validate_rules(raw: &[Spanned<RawRule>], d: &mut Diag<'_>) -> Vec<Rule> {
    let mut first_use: HashMap<String, (usize, usize)> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let name = r.get_ref().name.as_ref();
        let label = element_path("rule", i, name.map(|n| n.get_ref().as_str()));
        let rule = validate_rule(r, &label, d);
        if let Some(name) = name.filter(|n| !n.get_ref().is_empty()) {
            match first_use.get(name.get_ref()) {
                Some(&(j, offset)) => {
                    let first = d.position(offset);
                    d.err(
                        name.span(),
                        &format!("{label}.name"),
                        format!(
                            "duplicate rule name {:?}: rule[{j}] at {first} has it too",
                            name.get_ref()
                        ),
                    );
                }
                None => {
                    first_use.insert(name.get_ref().clone(), (i, name.span().start));
                }
            }
        }
        rules.push(rule);
    }
    rules
}

/// One `[[rule]]`; `label` names it in messages (`rule[2] "overheat"`).
pub(super) fn validate_rule(raw: &Spanned<RawRule>, label: &str, d: &mut Diag<'_>) -> Rule {
    let at = raw.span().start;
    let r = raw.get_ref();
    let field = |name: &str| format!("{label}.{name}");

    let name = required_text(d, r.name.as_ref(), at, &field("name"));
    let kind = rule_kind(d, r, &field);
    let combination = (kind == RuleKind::Combination).then(|| rule_combination(d, r, at, &field));
    let sensors = match (&r.sensor, &r.sensors) {
        _ if combination.is_some() => combination
            .as_ref()
            .map(|c| c.sensors())
            .unwrap_or_default(),
        (Some(s), None) => vec![sensor_name(d, s, &field("sensor"))],
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                d.err(
                    list.span(),
                    &field("sensors"),
                    "must name at least one sensor",
                );
            }
            list.get_ref()
                .iter()
                .map(|s| sensor_name(d, s, &field("sensors")))
                .collect()
        }
        (Some(_), Some(list)) => {
            d.err(
                list.span(),
                &field("sensors"),
                "give either `sensor` or `sensors`, not both",
            );
            Vec::new()
        }
        (None, None) => {
            d.at(
                at,
                &field("sensor"),
                "required field is missing: give `sensor = \"...\"` or `sensors = [\"...\"]`",
            );
            Vec::new()
        }
    };

    let devices = r
        .devices
        .as_ref()
        .and_then(|g| match Glob::new(g.get_ref()) {
            Ok(glob) => Some(glob.compile_matcher()),
            Err(e) => {
                d.err(
                    g.span(),
                    &field("devices"),
                    format!("invalid device pattern: {e}"),
                );
                None
            }
        });

    let silence = matches!(kind, RuleKind::Silence { .. });
    if silence {
        if let Some(t) = r.above.as_ref().or(r.below.as_ref()) {
            d.err(
                t.span(),
                &field(if r.above.is_some() { "above" } else { "below" }),
                "a silence rule has no threshold: it fires when no reading comes for `after`",
            );
        }
    }
    let (direction, threshold) = match (&r.above, &r.below) {
        _ if silence || combination.is_some() => (Direction::Above, Some(0.0)),
        (Some(above), None) => (Direction::Above, finite(d, above, &field("above"))),
        (None, Some(below)) => (Direction::Below, finite(d, below, &field("below"))),
        (Some(_), Some(below)) => {
            d.err(
                below.span(),
                &field("below"),
                "give either `above` or `below`, not both",
            );
            (Direction::Above, None)
        }
        (None, None) => {
            d.at(
                at,
                label,
                "no threshold: give `above = <number>` or `below = <number>`",
            );
            (Direction::Above, None)
        }
    };
    let clear = match (&r.clear, threshold) {
        (Some(c), threshold) => {
            let clear = finite(d, c, &field("clear"));
            if let (Some(clear), Some(threshold)) = (clear, threshold) {
                let side = direction.clear_side();
                let (key, resolves) = match direction {
                    Direction::Above => ("above", "falls"),
                    Direction::Below => ("below", "rises"),
                };
                if !direction.clears_at(threshold, clear) {
                    d.err(
                        c.span(),
                        &field("clear"),
                        format!(
                            "{clear} must be {side} the threshold ({key} = {threshold}): a firing \
                             alert resolves when the value {resolves} back to `clear`"
                        ),
                    );
                }
            }
            clear
        }
        (None, threshold) => threshold,
    };

    let consecutive = r
        .consecutive
        .as_ref()
        .and_then(|c| count(d, c, &field("consecutive"), 1, u32::MAX))
        .unwrap_or(1);
    let for_ms = r
        .for_
        .as_ref()
        .and_then(|f| duration_ms(d, f, &field("for")))
        .unwrap_or(0);
    let cooldown_ms = r
        .cooldown
        .as_ref()
        .and_then(|c| duration_ms(d, c, &field("cooldown")))
        .unwrap_or(0);
    let keep_firing_for_ms = r
        .keep_firing_for
        .as_ref()
        .and_then(|k| duration_ms(d, k, &field("keep_firing_for")))
        .unwrap_or(0);
    let severity = r
        .severity
        .as_ref()
        .and_then(|s| {
            choice(
                d,
                s,
                &field("severity"),
                &[
                    ("info", "info"),
                    ("warning", "warning"),
                    ("critical", "critical"),
                ],
            )
        })
        .unwrap_or("warning");

    if let (true, Some(window)) = (silence, &r.window) {
        d.err(
            window.span(),
            &field("window"),
            "a silence rule watches readings: remove `window`",
        );
    }
    let escalation = rule_escalation(d, r, silence, &field);
    let chattering = rule_chattering(d, r, silence, &field);
    let input = match (&r.window, &r.stat) {
        _ if silence => RuleInput::Readings,
        (None, None) => RuleInput::Readings,
        (None, Some(stat)) => {
            d.err(
                stat.span(),
                &field("stat"),
                "`stat` applies only to window rules: add `window = \"1m\"` or remove `stat`",
            );
            RuleInput::Readings
        }
        (Some(window), stat) => {
            let size_ms = match duration_ms(d, window, &field("window")) {
                Some(0) => {
                    d.err(window.span(), &field("window"), "must be longer than 0");
                    None
                }
                size => size,
            };
            let stat = stat.as_ref().map_or(Some(Stat::Mean), |s| {
                choice(
                    d,
                    s,
                    &field("stat"),
                    &[
                        ("mean", Stat::Mean),
                        ("min", Stat::Min),
                        ("max", Stat::Max),
                        ("sum", Stat::Sum),
                        ("count", Stat::Count),
                    ],
                )
            });
            RuleInput::Window {
                size_ms: size_ms.unwrap_or(DEFAULT_WINDOW_MS),
                stat: stat.unwrap_or(Stat::Mean),
            }
        }
    };

    let mut patterns =
        |map: Option<&Spanned<BTreeMap<String, Spanned<String>>>>, what: &str, glob: bool| {
            let mut out = Vec::new();
            for (key, value) in map.map(|m| m.get_ref()).into_iter().flatten() {
                let path = format!("{}.{key}", field(what));
                let text = text(d, value, &path);
                match glob.then(|| Glob::new(&text)) {
                    Some(Err(e)) => d.err(value.span(), &path, format!("invalid pattern: {e}")),
                    _ => out.push((key.clone(), text)),
                }
            }
            out
        };
    let fields = patterns(r.where_.as_ref(), "where", true)
        .into_iter()
        .map(|(k, p)| (k, Glob::new(&p).expect("checked").compile_matcher()))
        .collect();
    let labels = patterns(r.labels.as_ref(), "labels", false);

    Rule {
        name,
        severity: severity.to_owned(),
        sensors,
        devices,
        fields,
        labels,
        direction,
        threshold: threshold.unwrap_or(0.0),
        clear: clear.unwrap_or(0.0),
        consecutive,
        for_ms,
        cooldown_ms,
        keep_firing_for_ms,
        input,
        kind,
        escalation,
        chattering,
        combination,
    }
}

/// The conditions of a combination rule (`all` or `any`, and `within`).
/// The rule's own thresholds and modifiers do not apply to it: each one
/// given is an error.
pub(super) fn rule_combination(
    d: &mut Diag<'_>,
    r: &RawRule,
    at: usize,
    field: &dyn Fn(&str) -> String,
) -> Combination {
    let single = [
        ("sensor", r.sensor.as_ref().map(Spanned::span)),
        ("sensors", r.sensors.as_ref().map(Spanned::span)),
        ("above", r.above.as_ref().map(Spanned::span)),
        ("below", r.below.as_ref().map(Spanned::span)),
        ("clear", r.clear.as_ref().map(Spanned::span)),
        ("consecutive", r.consecutive.as_ref().map(Spanned::span)),
        ("for", r.for_.as_ref().map(Spanned::span)),
        ("cooldown", r.cooldown.as_ref().map(Spanned::span)),
        (
            "keep_firing_for",
            r.keep_firing_for.as_ref().map(Spanned::span),
        ),
        (
            "escalate_after",
            r.escalate_after.as_ref().map(Spanned::span),
        ),
        (
            "chatter_changes",
            r.chatter_changes.as_ref().map(Spanned::span),
        ),
        ("window", r.window.as_ref().map(Spanned::span)),
    ];
    for (name, span) in single {
        if let Some(span) = span {
            d.err(
                span,
                &field(name),
                format!("a combination rule takes its sensors and thresholds from its conditions (`all` or `any`): remove `{name}`"),
            );
        }
    }
    let (mode, list, key) = match (&r.all, &r.any) {
        (Some(all), None) => (Mode::All, Some(all), "all"),
        (None, Some(any)) => (Mode::Any, Some(any), "any"),
        (Some(_), Some(any)) => {
            d.err(
                any.span(),
                &field("any"),
                "give either `all` or `any`, not both",
            );
            (Mode::Any, None, "any")
        }
        (None, None) => {
            d.at(
                at,
                &field("all"),
                "a combination rule needs `all = [...]` or `any = [...]`: its conditions, like { sensor = \"temperature\", above = 90.0 }",
            );
            (Mode::All, None, "all")
        }
    };
    let mut conditions = Vec::new();
    if let Some(list) = list {
        if list.get_ref().len() < 2 && mode == Mode::All {
            d.err(
                list.span(),
                &field(key),
                "`all` needs at least two conditions",
            );
        }
        if list.get_ref().is_empty() {
            d.err(list.span(), &field(key), "needs at least one condition");
        }
        for (i, c) in list.get_ref().iter().enumerate() {
            let path = format!("{}[{i}]", field(key));
            let raw = c.get_ref();
            let sensor = match raw.sensor.as_ref() {
                Some(s) => sensor_name(d, s, &format!("{path}.sensor")),
                None => required_text(d, None, c.span().start, &format!("{path}.sensor")),
            };
            let (direction, threshold) = match (&raw.above, &raw.below) {
                (Some(a), None) => (Direction::Above, finite(d, a, &format!("{path}.above"))),
                (None, Some(b)) => (Direction::Below, finite(d, b, &format!("{path}.below"))),
                _ => {
                    d.err(
                        c.span(),
                        &path,
                        "give exactly one of `above = <number>` or `below = <number>`",
                    );
                    (Direction::Above, None)
                }
            };
            let threshold = threshold.unwrap_or(0.0);
            let clear = match &raw.clear {
                None => threshold,
                Some(v) => {
                    let clear = finite(d, v, &format!("{path}.clear")).unwrap_or(threshold);
                    if !direction.clears_at(threshold, clear) {
                        d.err(
                            v.span(),
                            &format!("{path}.clear"),
                            format!(
                                "{clear} is on the breaching side of the threshold {threshold}"
                            ),
                        );
                    }
                    clear
                }
            };
            conditions.push(Condition::new(&sensor, direction, threshold).clear_at(clear));
        }
    }
    let within_ms = match &r.within {
        Some(w) => duration_ms(d, w, &field("within")).unwrap_or(0),
        None => {
            d.at(
                at,
                &field("within"),
                "a combination rule needs `within = \"...\"`: the span its conditions' breaches must fall in",
            );
            0
        }
    };
    Combination {
        mode,
        conditions,
        within_ms,
    }
}

/// A rule's chattering detection, from `chatter_changes`, `chatter_within`
/// (default one minute, as ISA-18.2 suggests: 3 changes a minute) and
/// `chatter_calm` (default `chatter_within`).
pub(super) fn rule_chattering(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<Chattering> {
    let Some(changes) = &r.chatter_changes else {
        for (name, value) in [
            ("chatter_within", &r.chatter_within),
            ("chatter_calm", &r.chatter_calm),
        ] {
            if let Some(value) = value {
                d.err(
                    value.span(),
                    &field(name),
                    format!("`{name}` needs `chatter_changes = 3` (how many state changes make the rule chattering)"),
                );
            }
        }
        return None;
    };
    if silence {
        d.err(
            changes.span(),
            &field("chatter_changes"),
            "silence rules do not chatter",
        );
        return None;
    }
    let changes = count(d, changes, &field("chatter_changes"), 2, u32::MAX);
    let positive = |d: &mut Diag<'_>, value: &Option<Spanned<String>>, name: &str| match value {
        None => Some(None),
        Some(v) => match duration_ms(d, v, &field(name)) {
            Some(0) => {
                d.err(v.span(), &field(name), "must be longer than 0");
                None
            }
            ms => ms.map(Some),
        },
    };
    let within_ms = positive(d, &r.chatter_within, "chatter_within")?.unwrap_or(60_000);
    let calm_ms = positive(d, &r.chatter_calm, "chatter_calm")?.unwrap_or(within_ms);
    Some(Chattering {
        changes: changes?,
        within_ms,
        calm_ms,
    })
}

/// A rule's escalation, from `escalate_after` and `escalate_to`.
pub(super) fn rule_escalation(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<(u64, String)> {
    let severities = [
        ("info", "info"),
        ("warning", "warning"),
        ("critical", "critical"),
    ];
    match (&r.escalate_after, &r.escalate_to) {
        (None, None) => None,
        (Some(after), _) if silence => {
            d.err(
                after.span(),
                &field("escalate_after"),
                "silence rules do not escalate",
            );
            None
        }
        (Some(after), Some(to)) => {
            let after_ms = duration_ms(d, after, &field("escalate_after"));
            let to = choice(d, to, &field("escalate_to"), &severities);
            Some((after_ms?, to?.to_owned()))
        }
        (Some(after), None) => {
            d.err(
                after.span(),
                &field("escalate_to"),
                "`escalate_after` needs `escalate_to = \"critical\"` (the severity to escalate to)",
            );
            None
        }
        (None, Some(to)) => {
            d.err(
                to.span(),
                &field("escalate_after"),
                "`escalate_to` needs `escalate_after = \"...\"` (how long an alert fires before it escalates)",
            );
            None
        }
    }
}

/// The kind of a rule, from `kind` and the fields that go with it (`span`
/// for rates, `baseline` for deviations; each is an error with another kind).
pub(super) fn rule_kind(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) -> RuleKind {
    #[derive(Clone, Copy, PartialEq)]
    enum Tag {
        Threshold,
        Rate,
        Deviation,
        Silence,
        Combination,
    }
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
    let kind_at = r.kind.as_ref().map_or(0..0, Spanned::span);
    let span = r.span.as_ref();
    let baseline = r.baseline.as_ref();
    let after = r.after.as_ref();
    let extra = [
        ("span", span.map(Spanned::span), Tag::Rate, "rate"),
        (
            "baseline",
            baseline.map(Spanned::span),
            Tag::Deviation,
            "deviation",
        ),
        ("after", after.map(Spanned::span), Tag::Silence, "silence"),
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
    match tag {
        Tag::Threshold => RuleKind::Threshold,
        Tag::Combination => RuleKind::Combination,
        Tag::Rate => {
            let span_ms = match span {
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
            RuleKind::RateOfChange {
                span_ms: span_ms.unwrap_or(1),
            }
        }
        Tag::Deviation => {
            let n = match baseline {
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
            RuleKind::Deviation {
                baseline: n.unwrap_or(2),
            }
        }
        Tag::Silence => {
            let after_ms = match after {
                Some(a) => match duration_ms(d, a, &field("after")) {
                    Some(0) => {
                        d.err(a.span(), &field("after"), "must be longer than 0");
                        None
                    }
                    ms => ms,
                },
                None => {
                    d.err(
                        kind_at,
                        &field("after"),
                        "a silence rule needs `after = \"...\"`: how long without a reading",
                    );
                    None
                }
            };
            RuleKind::Silence {
                after_ms: after_ms.unwrap_or(1),
            }
        }
    }
}

/// The name a rules file gives a statistic.
pub(crate) fn stat_name(stat: Stat) -> &'static str {
    match stat {
        Stat::Mean => "mean",
        Stat::Min => "min",
        Stat::Max => "max",
        Stat::Sum => "sum",
        Stat::Count => "count",
    }
}
