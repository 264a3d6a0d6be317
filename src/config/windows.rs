//! `[window]` and `[[window]]`: the window outputs, each of one kind, with
//! where its rows go.

use super::*;

/// The window outputs of `[window]` or `[[window]]` (`raw`; one tumbling
/// output of a minute when absent). With one output, its rows go to
/// `[sinks.parquet] path` (`parquet`); with several, each goes to its own
/// `path`, by default a directory named after the output below
/// `[sinks.parquet] path`.
pub(super) fn validate_windows(
    raw: Option<&[Spanned<RawWindow>]>,
    parquet: Option<&ParquetSinkConfig>,
    base: &Path,
    d: &mut Diag<'_>,
) -> Vec<WindowOutput> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return vec![WindowOutput {
            name: DEFAULT_OUTPUT.to_owned(),
            kind: WindowKind::Tumbling {
                size_ms: DEFAULT_WINDOW_MS,
            },
            stats: Stats::basic(),
            parquet: parquet.cloned(),
            allowed_lateness_ms: 0,
        }];
    };
    let several = raw.len() > 1;
    let mut outputs: Vec<WindowOutput> = Vec::new();
    let mut paths: Vec<(Location, String)> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let field = |name: &str| match several {
            true => format!("window[{i}].{name}"),
            false => format!("window.{name}"),
        };
        let r = w.get_ref();
        let name = match (&r.name, several) {
            (Some(n), _) => text(d, n, &field("name")),
            (None, false) => DEFAULT_OUTPUT.to_owned(),
            (None, true) => {
                d.at(
                    w.span().start,
                    &field("name"),
                    "required field is missing: with several [[window]] outputs, each has a name",
                );
                String::new()
            }
        };
        if let (Some(n), Some(first)) = (&r.name, outputs.iter().find(|o| o.name == name)) {
            if !name.is_empty() {
                d.err(
                    n.span(),
                    &field("name"),
                    format!(
                        "{:?} names another output too: names must be unique",
                        first.name
                    ),
                );
            }
        }
        let kind = window_kind(r, &field, d);
        let allowed_lateness_ms = lateness(r, kind, &field, d);
        let stats = validate_stats(r, &field, d);
        let dir = match (&r.path, parquet) {
            (Some(p), _) => {
                let text = text(d, p, &field("path"));
                Some((location(d, Some(p), &text, base, &field("path")), p.span()))
            }
            (None, Some(root)) if several => Some((root.dir.join(&name), w.span())),
            (None, Some(root)) => Some((root.dir.clone(), w.span())),
            (None, None) => None,
        };
        let parquet = dir.map(|(dir, span)| {
            if let Some((_, other)) = paths.iter().find(|(p, _)| *p == dir) {
                d.err(
                    span,
                    &field("path"),
                    format!(
                        "{dir} is where output {other:?} writes too: give each output its own path"
                    ),
                );
            }
            paths.push((dir.clone(), name.clone()));
            let mut config = parquet
                .cloned()
                .unwrap_or_else(|| ParquetSinkConfig::new(dir.clone()));
            config.dir = dir;
            config
        });
        outputs.push(WindowOutput {
            name,
            kind,
            stats,
            parquet,
            allowed_lateness_ms,
        });
    }
    outputs
}

/// The name of the output of `[window]` without a name, and where a run
/// with an output directory writes the rows of a Rust pipeline's
/// unnamed window output.
pub const DEFAULT_OUTPUT: &str = "windows";

/// The kind of a window output: session with `gap`, hopping with `slide`,
/// else tumbling.
fn window_kind(r: &RawWindow, field: &dyn Fn(&str) -> String, d: &mut Diag<'_>) -> WindowKind {
    if let Some(gap) = &r.gap {
        if let Some(other) = r.size.as_ref().or(r.slide.as_ref()) {
            d.err(
                other.span(),
                &field(if r.size.is_some() { "size" } else { "slide" }),
                "a session window has a `gap` and no size or slide: remove one of them",
            );
        }
        let gap_ms = match duration_ms(d, gap, &field("gap")) {
            Some(0) => {
                d.err(gap.span(), &field("gap"), "must be longer than 0");
                1
            }
            Some(ms) => ms,
            None => 1,
        };
        return WindowKind::Session { gap_ms };
    }
    let size_ms = window_size(r.size.as_ref(), field, d);
    match window_slide(r.slide.as_ref(), size_ms, field, d) {
        slide_ms if slide_ms == size_ms => WindowKind::Tumbling { size_ms },
        slide_ms => WindowKind::Hopping { size_ms, slide_ms },
    }
}

/// `allowed_lateness`: how long after its end late readings correct a
/// window (not for sessions); 0 when absent.
fn lateness(
    r: &RawWindow,
    kind: WindowKind,
    field: &dyn Fn(&str) -> String,
    d: &mut Diag<'_>,
) -> u64 {
    let Some(late) = &r.allowed_lateness else {
        return 0;
    };
    let ms = duration_ms(d, late, &field("allowed_lateness")).unwrap_or(0);
    if matches!(kind, WindowKind::Session { .. }) && r.gap.is_some() {
        d.err(
            late.span(),
            &field("allowed_lateness"),
            "session windows take no late readings: a late reading could join or split \
             sessions already written; use tumbling or hopping windows for corrections",
        );
        return 0;
    }
    ms
}

/// `size`: it must divide a day evenly; default one minute.
fn window_size(
    size: Option<&Spanned<String>>,
    field: &dyn Fn(&str) -> String,
    d: &mut Diag<'_>,
) -> u64 {
    let Some(size) = size else {
        return DEFAULT_WINDOW_MS;
    };
    match duration_ms(d, size, &field("size")) {
        Some(0) => {
            d.err(size.span(), &field("size"), "must be longer than 0");
            DEFAULT_WINDOW_MS
        }
        Some(ms) if DAY_MS % ms != 0 => {
            d.err(
                size.span(),
                &field("size"),
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
    }
}

/// `slide`: the time between two window ends, which must divide the size
/// (`size_ms`); the size when absent.
fn window_slide(
    slide: Option<&Spanned<String>>,
    size_ms: u64,
    field: &dyn Fn(&str) -> String,
    d: &mut Diag<'_>,
) -> u64 {
    let Some(slide) = slide else {
        return size_ms;
    };
    match duration_ms(d, slide, &field("slide")) {
        Some(0) => {
            d.err(slide.span(), &field("slide"), "must be longer than 0");
            size_ms
        }
        Some(ms) if size_ms % ms != 0 => {
            d.err(
                slide.span(),
                &field("slide"),
                format!(
                    "{:?} ({ms} ms) does not divide the window size ({size_ms} ms): every \
                     window must be made of whole slides",
                    slide.get_ref()
                ),
            );
            size_ms
        }
        Some(ms) => ms,
        None => size_ms,
    }
}

/// `stats`: the statistics of every row of an output; each must name a
/// statistic (`p0`, `p100`, `p1000` and `px` do not). The basic five when
/// absent.
fn validate_stats(r: &RawWindow, field: &dyn Fn(&str) -> String, d: &mut Diag<'_>) -> Stats {
    let mut stats = Stats::basic();
    for name in r
        .stats
        .as_ref()
        .map(|s| s.get_ref().as_slice())
        .unwrap_or_default()
    {
        match name.get_ref().parse::<Stat>() {
            Ok(stat) => stats.insert(stat),
            Err(e) => d.err(name.span(), &field("stats"), e),
        }
    }
    stats
}

/// The window outputs rules can name: each name with the size of its
/// windows if they are tumbling (rules judge only tumbling windows), and
/// the statistics of its rows.
pub(crate) type OutputNames = Vec<(String, Option<u64>, Stats)>;

/// The names rules can give in `window`, of `outputs`.
pub(super) fn output_names(outputs: &[WindowOutput]) -> OutputNames {
    outputs
        .iter()
        .map(|o| {
            let size = match o.kind {
                WindowKind::Tumbling { size_ms } => Some(size_ms),
                _ => None,
            };
            (o.name.clone(), size, o.stats.clone())
        })
        .collect()
}

/// Every window rule of `rules` (validated from `raw`, in its order) that
/// names a statistic must find it computed by a tumbling output of its
/// size, when the pipeline has one (rules on other sizes get windows of
/// their own, with what they need).
pub(super) fn check_rule_stats(raw: &[Spanned<RawRule>], rules: &[Rule], d: &mut Diag<'_>) {
    let Some(outputs) = d.outputs.clone() else {
        return;
    };
    for (i, (r, rule)) in raw.iter().zip(rules).enumerate() {
        let RuleInput::Window { size_ms, stat } = rule.input() else {
            continue;
        };
        let sized: Vec<_> = outputs.iter().filter(|o| o.1 == Some(size_ms)).collect();
        let (Some(at), false) = (
            &r.get_ref().stat,
            sized.is_empty() || sized.iter().any(|o| o.2.contains(stat)),
        ) else {
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
                "the {} windows of output {:?} do not compute {:?} (they compute {}): add it \
                 to its stats",
                human_ms(size_ms),
                sized[0].0,
                stat.name(),
                sized[0].2
            ),
        );
    }
}
