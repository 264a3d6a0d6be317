//! A test file as written: raw structs that mirror it, and the field by
//! field check of a file that does not deserialize.

use super::*;

/// A test file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTestFile {
    /// The rules file under test, relative to the test file.
    pub(super) rules: Option<Spanned<String>>,
    /// Or a pipeline file whose rules are under test.
    pub(super) pipeline: Option<Spanned<String>>,
    /// The tests.
    pub(super) test: Option<Vec<Spanned<RawTest>>>,
}

/// One `[[test]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTest {
    /// The test's name (required, unique).
    pub(super) name: Option<Spanned<String>>,
    /// Time between two values of a series; default `1s`.
    pub(super) interval: Option<Spanned<String>>,
    /// Event time of the first value: an RFC 3339 time; default the epoch.
    pub(super) start: Option<Spanned<toml::Value>>,
    /// The source's out-of-orderness bound; default the pipeline's, or `5s`.
    pub(super) out_of_orderness: Option<Spanned<String>>,
    /// How many readings must be late.
    pub(super) late: Option<Spanned<i64>>,
    /// How far an alert's value may be from an expected value.
    pub(super) tolerance: Option<Spanned<f64>>,
    /// `[[test.series]]`: the input.
    pub(super) series: Option<Vec<Spanned<RawSeries>>>,
    /// `[[test.alert]]`: the expected alert events.
    pub(super) alert: Option<Vec<Spanned<RawAlert>>>,
}

/// One `[[test.series]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeries {
    /// Device id (required).
    pub(super) device: Option<Spanned<String>>,
    /// Sensor name (required).
    pub(super) sensor: Option<Spanned<String>>,
    /// The values, in the compact notation (required).
    pub(super) values: Option<Spanned<String>>,
}

/// One `[[test.alert]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    /// When: a duration after `start`, or an RFC 3339 time (required).
    pub(super) at: Option<Spanned<toml::Value>>,
    /// Rule name (required).
    pub(super) rule: Option<Spanned<String>>,
    /// Device id (required).
    pub(super) device: Option<Spanned<String>>,
    /// Sensor name (required).
    pub(super) sensor: Option<Spanned<String>>,
    /// `firing` or `resolved` (required).
    pub(super) state: Option<Spanned<String>>,
    /// The alert's value.
    pub(super) value: Option<Spanned<f64>>,
    /// The alert's labels, all of them: `{ site = "north" }`.
    pub(super) labels: Option<BTreeMap<String, String>>,
}

/// Checks a test file part by part: each field of each test, series and alert.
pub(super) fn test_file_parts(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        if !(key.get_ref() == "test" && check_tests(value, out)) {
            check_entry::<RawTestFile>(key, value, doc.span(), out);
        }
    }
}

/// Checks each field of each `[[test]]` and of its series and alerts;
/// false if `value` is not an array of tables.
fn check_tests(value: &Spanned<DeValue<'_>>, out: &mut Vec<toml::de::Error>) -> bool {
    let Some(tests) = tables(value) else {
        return false;
    };
    for test in tests {
        let DeValue::Table(table) = test.get_ref() else {
            continue;
        };
        for (key, field) in table.iter() {
            let nested = match key.get_ref().as_ref() {
                "series" => tables(field).map(|s| {
                    s.iter().for_each(|t| {
                        check_fields::<RawSeries>(t, out);
                    })
                }),
                "alert" => tables(field).map(|a| {
                    a.iter().for_each(|t| {
                        check_fields::<RawAlert>(t, out);
                    })
                }),
                _ => None,
            };
            if nested.is_none() {
                check_entry::<RawTest>(key, field, test.span(), out);
            }
        }
    }
    true
}

/// The items of an array of tables.
fn tables<'a, 'd>(value: &'a Spanned<DeValue<'d>>) -> Option<&'a [Spanned<DeValue<'d>>]> {
    match value.get_ref() {
        DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => Some(items),
        _ => None,
    }
}
