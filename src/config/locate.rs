//! Where a problem is: stage one's field-by-field check of a file that
//! does not deserialize, and positions and paths of fields.

use super::*;

/// Parses `d`'s text and deserializes it into `T`. On failure reports every
/// syntax error, or else every field that does not deserialize (checking the
/// document part by part with `parts`), and returns `None`.
pub(crate) fn deserialize<T: DeserializeOwned>(
    d: &mut Diag<'_>,
    parts: fn(&Spanned<DeTable<'_>>, &mut Vec<toml::de::Error>),
) -> Option<T> {
    deserialize_with(d, parts, |_| {})
}

/// [`deserialize`], with `prepare` applied to the parsed document first.
pub(crate) fn deserialize_with<T: DeserializeOwned>(
    d: &mut Diag<'_>,
    parts: fn(&Spanned<DeTable<'_>>, &mut Vec<toml::de::Error>),
    prepare: fn(&mut DeTable<'_>),
) -> Option<T> {
    let (mut doc, syntax) = DeTable::parse_recoverable(d.text);
    prepare(doc.get_mut());
    if !syntax.is_empty() {
        let mut seen = Vec::new();
        for e in syntax {
            let offset = e.span().map_or(0, |s| s.start);
            if !seen.contains(&(offset, e.message().to_owned())) {
                d.at(offset, "invalid TOML", e.message());
                seen.push((offset, e.message().to_owned()));
            }
        }
        return None;
    }
    match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
        Ok(raw) => Some(raw),
        Err(first) => {
            let mut errors = Vec::new();
            parts(&doc, &mut errors);
            if errors.is_empty() {
                errors.push(first);
            }
            for e in errors {
                let offset = e.span().map_or(0, |s| s.start);
                let path = locate(doc.get_ref(), offset);
                d.at(offset, &path, with_hint(&path, e.message()));
            }
            None
        }
    }
}

/// Checks a pipeline document part by part: each field of each section.
pub(super) fn pipeline_sections(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        let checked = match key.get_ref().as_ref() {
            "source" => check_fields::<RawSource>(value, out),
            "decode" => check_fields::<RawDecode>(value, out),
            "window" => check_tables::<RawWindow>(value, out),
            "rules" => check_fields::<RawRulesRef>(value, out),
            "devices" => check_fields::<RawDevices>(value, out),
            "runtime" => check_fields::<RawRuntime>(value, out),
            "checkpoint" => check_fields::<RawCheckpoint>(value, out),
            "http" => check_fields::<RawHttp>(value, out),
            "rule" => check_tables::<RawRule>(value, out),
            "sinks" => match value.get_ref() {
                DeValue::Table(sinks) => {
                    for (name, sink) in sinks.iter() {
                        let checked = match name.get_ref().as_ref() {
                            "parquet" => check_fields::<RawParquet>(sink, out),
                            "alerts" | "dead_letters" => check_fields::<RawKafkaSink>(sink, out),
                            _ => false,
                        };
                        if !checked {
                            check_entry::<RawSinks>(name, sink, value.span(), out);
                        }
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !checked {
            check_entry::<RawPipeline>(key, value, doc.span(), out);
        }
    }
}

/// Checks a rules document part by part: each field of each rule.
pub(super) fn rules_sections(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        let checked = match key.get_ref().as_ref() {
            "rule" => check_tables::<RawRule>(value, out),
            "devices" => check_fields::<RawDevices>(value, out),
            _ => false,
        };
        if !checked {
            check_entry::<RawRulesFile>(key, value, doc.span(), out);
        }
    }
}

/// `[window]`, one output, reads as `[[window]]` with one table: every
/// window output is then an entry of the same array.
pub(super) fn windows_as_array(doc: &mut DeTable<'_>) {
    for (key, value) in doc.iter_mut() {
        if key.get_ref().as_ref() == "window" && value.get_ref().is_table() {
            let span = value.span();
            let table =
                std::mem::replace(value, Spanned::new(span.clone(), DeValue::Boolean(false)));
            let mut array = toml::de::DeArray::new();
            array.push(table);
            *value = Spanned::new(span, DeValue::Array(array));
        }
    }
}

/// Checks each field of each table of an array of tables, as fields of
/// `T`; false if `value` is not one.
pub(super) fn check_tables<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    out: &mut Vec<toml::de::Error>,
) -> bool {
    let DeValue::Array(tables) = value.get_ref() else {
        return false;
    };
    if !tables.iter().all(|t| t.get_ref().is_table()) {
        return false;
    }
    for table in tables.iter() {
        check_fields::<T>(table, out);
    }
    true
}

/// Fields whose values are durations, written as strings.
pub(super) const DURATION_FIELDS: [&str; 18] = [
    "out_of_orderness",
    "idle_timeout",
    "watermark_step",
    "watermark_alignment",
    "max_future",
    "size",
    "for",
    "cooldown",
    "keep_firing_for",
    "span",
    "after",
    "escalate_after",
    "chatter_within",
    "chatter_calm",
    "window",
    "slide",
    "gap",
    "allowed_lateness",
];

/// Adds a hint to a type error on a duration field given as a number.
pub(super) fn with_hint(path: &str, message: &str) -> String {
    let field = path.rsplit('.').next().unwrap_or(path);
    let numeric = message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point");
    if numeric && DURATION_FIELDS.contains(&field) {
        format!("{message} (durations are strings with a unit, such as \"30s\" or \"5m\")")
    } else {
        message.to_owned()
    }
}

/// Checks each field of a table on its own as a field of `T`; false if
/// `value` is not a table.
pub(crate) fn check_fields<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    out: &mut Vec<toml::de::Error>,
) -> bool {
    let DeValue::Table(table) = value.get_ref() else {
        return false;
    };
    for (key, field) in table.iter() {
        check_entry::<T>(key, field, value.span(), out);
    }
    true
}

/// Deserializes `T` from a table holding only `key = value` (every raw field
/// is optional, so only an unknown key or a mistyped value fails).
pub(crate) fn check_entry<T: DeserializeOwned>(
    key: &Spanned<DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
    span: Range<usize>,
    out: &mut Vec<toml::de::Error>,
) {
    let mut table = DeTable::new();
    table.insert(key.clone(), value.clone());
    let single = Spanned::new(span, DeValue::Table(table));
    if let Err(e) = T::deserialize(ValueDeserializer::from(single)) {
        out.push(e);
    }
}

/// The field path of the smallest key or value of `doc` whose span holds
/// `offset`, such as `source.topic` or `rule[2] "overheat".above`.
pub(super) fn locate(doc: &DeTable<'_>, offset: usize) -> String {
    let mut best = None;
    locate_in_table(doc, "", 0, offset, &mut best);
    best.map_or_else(|| "(document)".to_owned(), |(_, _, path)| path)
}

/// The best match so far: span length, depth, path.
pub(super) type Located = Option<(usize, usize, String)>;

/// Considers every key of `table` and, recursively, its values.
pub(super) fn locate_in_table(
    table: &DeTable<'_>,
    prefix: &str,
    depth: usize,
    offset: usize,
    best: &mut Located,
) {
    for (key, value) in table.iter() {
        let path = field_path(prefix, key.get_ref());
        consider(key.span(), &path, depth, offset, best);
        locate_in_value(value, &path, depth, offset, best);
    }
}

/// Considers `value` and, recursively, what it holds.
pub(super) fn locate_in_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    depth: usize,
    offset: usize,
    best: &mut Located,
) {
    consider(value.span(), path, depth, offset, best);
    match value.get_ref() {
        DeValue::Table(table) => locate_in_table(table, path, depth + 1, offset, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = match item.get_ref() {
                    DeValue::Table(t) => t.get("name").and_then(|n| n.get_ref().as_str()),
                    _ => None,
                };
                let path = element_path(path, i, name);
                locate_in_value(item, &path, depth + 1, offset, best);
            }
        }
        _ => {}
    }
}

/// Keeps `path` if its span holds `offset` and is smaller (or as small and deeper) than the best so far.
pub(super) fn consider(
    span: Range<usize>,
    path: &str,
    depth: usize,
    offset: usize,
    best: &mut Located,
) {
    if span.start <= offset && (offset < span.end || offset == span.start) {
        let len = span.end - span.start;
        let better = best
            .as_ref()
            .is_none_or(|(l, d, _)| len < *l || (len == *l && depth > *d));
        if better {
            *best = Some((len, depth, path.to_owned()));
        }
    }
}

/// `prefix.key`, quoting a key that is not a bare TOML key.
pub(super) fn field_path(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `path[i]`, followed by the element's name when it has one: `rule[2] "overheat"`.
pub(crate) fn element_path(path: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{path}[{index}] {name:?}"),
        None => format!("{path}[{index}]"),
    }
}
