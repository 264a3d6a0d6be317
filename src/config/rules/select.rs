//! Which readings a rule watches: its sensors, its device glob, and the
//! registry fields a device must match (`where`); and the labels its alerts
//! carry.

use super::*;

/// `sensor` or `sensors` (exactly one); a combination rule's are those of
/// its conditions.
pub(super) fn rule_sensors(
    d: &mut Diag<'_>,
    r: &RawRule,
    at: usize,
    combination: Option<&Combination>,
    field: &dyn Fn(&str) -> String,
) -> Vec<String> {
    match (&r.sensor, &r.sensors) {
        _ if combination.is_some() => combination.map(|c| c.sensors()).unwrap_or_default(),
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
    }
}

/// `devices`: a glob of device ids; default every device.
pub(super) fn rule_devices(
    d: &mut Diag<'_>,
    r: &RawRule,
    field: &dyn Fn(&str) -> String,
) -> Option<Pattern> {
    r.devices
        .as_ref()
        .and_then(|g| match Pattern::new(g.get_ref()) {
            Ok(pattern) => Some(pattern),
            Err(e) => {
                d.err(
                    g.span(),
                    &field("devices"),
                    format!("invalid device pattern: {e}"),
                );
                None
            }
        })
}

/// `where`: the registry fields a device must match, each a glob.
pub(super) fn rule_fields(
    d: &mut Diag<'_>,
    r: &RawRule,
    field: &dyn Fn(&str) -> String,
) -> Vec<(String, Pattern)> {
    patterns(d, r.where_.as_ref(), &field("where"), true)
        .into_iter()
        .map(|(k, p)| (k, Pattern::new(&p).expect("checked")))
        .collect()
}

/// `labels`: the labels every alert of the rule carries.
pub(super) fn rule_labels(
    d: &mut Diag<'_>,
    r: &RawRule,
    field: &dyn Fn(&str) -> String,
) -> Vec<(String, String)> {
    patterns(d, r.labels.as_ref(), &field("labels"), false)
}

/// The entries of a table of strings (`path` names it), each checked as a
/// glob with `glob`; an entry that is not one is left out.
fn patterns(
    d: &mut Diag<'_>,
    map: Option<&Spanned<BTreeMap<String, Spanned<String>>>>,
    path: &str,
    glob: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in map.map(|m| m.get_ref()).into_iter().flatten() {
        let path = format!("{path}.{key}");
        let text = text(d, value, &path);
        match glob.then(|| Glob::new(&text)) {
            Some(Err(e)) => d.err(value.span(), &path, format!("invalid pattern: {e}")),
            _ => out.push((key.clone(), text)),
        }
    }
    out
}
