//! `[window]`: the size of the windows, their slide and their statistics,
//! and the check that window rules look only at statistics their windows
//! compute.

use super::*;

/// A window output that feeds window rules of its size: tumbling windows
/// and the statistics of their rows.
pub(super) struct WindowOutput {
    /// Window size, ms.
    pub(super) size_ms: u64,
    /// The statistics every row carries.
    pub(super) stats: Stats,
}

/// `[window] size`: it must divide a day evenly; default one minute.
pub(super) fn validate_window(raw: Option<&RawWindow>, d: &mut Diag<'_>) -> u64 {
    match raw.and_then(|w| w.size.as_ref()) {
        Some(size) => match duration_ms(d, size, "window.size") {
            Some(0) => {
                d.err(size.span(), "window.size", "must be longer than 0");
                DEFAULT_WINDOW_MS
            }
            Some(ms) if DAY_MS % ms != 0 => {
                d.err(
                    size.span(),
                    "window.size",
                    format!(
                        "{:?} ({ms} ms) does not divide a day evenly, so windows would not line up \
                         with the Parquet hour and day partitions; use a size such as 1m, 5m, 15m or 1h",
                        size.get_ref()
                    ),
                );
                DEFAULT_WINDOW_MS
            }
            Some(ms) => ms,
            None => DEFAULT_WINDOW_MS,
        },
        None => DEFAULT_WINDOW_MS,
    }
}

/// `[window] slide`: the time between two window ends, which must divide
/// the size (`window_ms`, when the size is valid); the size when absent.
pub(super) fn validate_slide(raw: Option<&RawWindow>, window_ms: u64, d: &mut Diag<'_>) -> u64 {
    let Some(slide) = raw.and_then(|w| w.slide.as_ref()) else {
        return window_ms;
    };
    match duration_ms(d, slide, "window.slide") {
        Some(0) => {
            d.err(slide.span(), "window.slide", "must be longer than 0");
            window_ms
        }
        Some(ms) if window_ms % ms != 0 => {
            d.err(
                slide.span(),
                "window.slide",
                format!(
                    "{:?} ({ms} ms) does not divide the window size ({window_ms} ms): every \
                     window must be made of whole slides",
                    slide.get_ref()
                ),
            );
            window_ms
        }
        Some(ms) => ms,
        None => window_ms,
    }
}

/// `[window] stats`: the statistics of every window row; each must name a
/// statistic (`p0`, `p100`, `p1000` and `px` do not). The basic five when
/// absent.
pub(super) fn validate_stats(raw: Option<&RawWindow>, d: &mut Diag<'_>) -> Stats {
    let Some(names) = raw.and_then(|w| w.stats.as_ref()) else {
        return Stats::basic();
    };
    let mut stats = Stats::basic();
    for name in names.get_ref() {
        match name.get_ref().parse::<Stat>() {
            Ok(stat) => stats.insert(stat),
            Err(e) => d.err(name.span(), "window.stats", e),
        }
    }
    stats
}

/// Every window rule of `rules` (validated from `raw`, in its order) whose
/// windows come from one of `outputs` must look at a statistic that output
/// computes.
pub(super) fn check_rule_stats(
    raw: &[Spanned<RawRule>],
    rules: &[Rule],
    outputs: &[WindowOutput],
    d: &mut Diag<'_>,
) {
    for (i, (r, rule)) in raw.iter().zip(rules).enumerate() {
        let RuleInput::Window { size_ms, stat } = rule.input() else {
            continue;
        };
        let Some(output) = outputs.iter().find(|o| o.size_ms == size_ms) else {
            continue;
        };
        let (Some(at), false) = (&r.get_ref().stat, output.stats.contains(stat)) else {
            continue;
        };
        let label = element_path(
            "rule",
            i,
            r.get_ref().name.as_ref().map(|n| n.get_ref().as_str()),
        );
        d.err(
            at.span(),
            &format!("{label}.stat"),
            format!(
                "the {} windows of [window] do not compute {:?} (they compute {}): add it to \
                 [window] stats",
                human_ms(size_ms),
                stat.name(),
                output.stats
            ),
        );
    }
}
