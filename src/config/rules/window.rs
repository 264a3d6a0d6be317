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
            let size_ms = match duration_ms(d, window, &field("window")) {
                Some(0) => {
                    d.err(window.span(), &field("window"), "must be longer than 0");
                    None
                }
                size => size,
            };
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
