//! A rule's input: readings, or a statistic of tumbling windows (`window`
//! and `stat`: any statistic a window output can compute).

use super::*;

/// What a rule watches: readings (always for silence rules), or a
/// statistic (`stat`, default the mean) of windows of `window`.
pub(super) fn rule_input(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> RuleInput {
    match (&r.window, &r.stat) {
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
            let size_ms = window_size(d, window, &field("window"));
            let stat = stat.as_ref().map_or(Some(Stat::Mean), |s| {
                s.get_ref()
                    .parse::<Stat>()
                    .map_err(|e| d.err(s.span(), &field("stat"), e))
                    .ok()
            });
            RuleInput::Window {
                size_ms: size_ms.unwrap_or(DEFAULT_WINDOW_MS),
                stat: stat.unwrap_or(Stat::Mean),
            }
        }
    }
}

/// `window`: the size of the windows a rule judges, or the name of a
/// window output of the pipeline (of tumbling windows).
fn window_size(d: &mut Diag<'_>, window: &Spanned<String>, path: &str) -> Option<u64> {
    let name = window.get_ref();
    let output = d
        .outputs
        .as_ref()
        .and_then(|outputs| outputs.iter().find(|(n, _, _)| n == name).cloned());
    match output {
        Some((_, Some(size_ms), _)) => return Some(size_ms),
        Some((_, None, _)) => {
            d.err(
                window.span(),
                path,
                format!(
                    "output {name:?} is not of tumbling windows: window rules judge tumbling windows only"
                ),
            );
            return None;
        }
        None => {}
    }
    match parse_duration_ms(name) {
        Ok(0) => d.err(window.span(), path, "must be longer than 0"),
        Ok(ms) => return Some(ms),
        Err(e) => match &d.outputs {
            Some(outputs) => {
                let mut names: Vec<&str> = outputs
                    .iter()
                    .map(|(n, _, _)| n.as_str())
                    .filter(|n| !n.is_empty())
                    .collect();
                names.dedup();
                d.err(
                    window.span(),
                    path,
                    format!(
                        "{name:?} is neither a window size (like \"10s\") nor a window output \
                         of the pipeline ({})",
                        names.join(", ")
                    ),
                );
            }
            None if name.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                d.err(window.span(), path, e)
            }
            None => d.err(
                window.span(),
                path,
                format!(
                    "{name:?} is not a window size (like \"10s\"); a rule names a window output \
                     only within its pipeline: check it with the pipeline file"
                ),
            ),
        },
    }
    None
}
