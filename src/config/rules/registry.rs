//! The device registry of a rule set, `[devices]`: a CSV file whose fields
//! rules select devices by (`where`).

use super::*;

/// Validates rules and the registry `[devices]` names (relative to `base`):
/// the registry's columns must name rules, and the fields rules select by
/// must be columns of it.
pub(in crate::config) fn rules_with_devices(
    raw: &[Spanned<RawRule>],
    devices: Option<&Spanned<RawDevices>>,
    base: &Path,
    d: &mut Diag<'_>,
) -> RuleSet {
    let rules = validate_rules(raw, d);
    let registry = devices.and_then(|devices| {
        let Some(file) = &devices.get_ref().file else {
            d.err(
                devices.span(),
                "devices.file",
                "required field is missing (or remove the [devices] table)",
            );
            return None;
        };
        let path = base.join(text(d, file, "devices.file"));
        match load_registry(&path, &rules) {
            Ok(registry) => Some(registry),
            Err(problems) => {
                d.other.extend(problems);
                None
            }
        }
    });
    for (i, r) in raw.iter().enumerate() {
        let Some(fields) = &r.get_ref().where_ else {
            continue;
        };
        let label = element_path(
            "rule",
            i,
            r.get_ref().name.as_ref().map(|n| n.get_ref().as_str()),
        );
        let field = format!("{label}.where");
        match (&registry, devices) {
            (None, None) => d.err(
                fields.span(),
                &field,
                "selects devices by registry fields, but no [devices] file is given",
            ),
            (Some(registry), _) => {
                for (name, value) in fields.get_ref() {
                    if !registry.fields.contains(name) {
                        d.err(
                            value.span(),
                            &format!("{field}.{name}"),
                            format!(
                                "the device registry has no field {name:?} (its fields are {})",
                                registry.fields.join(", ")
                            ),
                        );
                    }
                }
            }
            // The registry has problems of its own, already reported.
            (None, Some(_)) => {}
        }
    }
    let registry = registry.map(|r| r.registry).unwrap_or_default();
    RuleSet::new(rules).with_devices(registry)
}
