//! The device registry file: a CSV file with one row per device.
//!
//! ```csv
//! device,site,line,type,threshold.overheat,clear.overheat
//! press-001,north,L1,press,95,90
//! press-002,north,L2,press,,
//! lathe-001,south,L1,lathe,,
//! ```
//!
//! The first column is the device id. A column `threshold.RULE` or
//! `clear.RULE` gives the device its own limit for the rule named `RULE`
//! (an empty cell keeps the rule's); every other column is a field that
//! rules select devices by (`where = { site = "north" }`) and that alerts
//! on the device carry as labels.

use std::collections::BTreeMap;
use std::path::Path;

use weir_operators::alert::{Device, Direction, Limits, Registry, Rule, RuleKind, Threshold};

/// A registry read from its file, and the names of its fields.
#[derive(Debug)]
pub struct RegistryFile {
    /// The devices.
    pub registry: Registry,
    /// The field columns, in file order (without `device` and limits).
    pub fields: Vec<String>,
}

/// What a column holds.
enum Column {
    Field(String),
    Threshold(usize),
    Clear(usize),
    /// A limit column of an unknown rule (reported once, at the header).
    Unknown,
}

/// Reads and validates the registry at `path` for `rules`. Every problem
/// is reported with `file:line`, in file order.
pub fn load_registry(path: &Path, rules: &[Rule]) -> Result<RegistryFile, Vec<String>> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| vec![format!("cannot read {file}: {e}")])?;
    let mut problems = Vec::new();
    let header = reader
        .headers()
        .map_err(|e| vec![format!("{file}:1: {e}")])?
        .clone();
    if header.get(0) != Some("device") {
        problems.push(format!(
            "{file}:1: the first column must be `device` (the device id), not {:?}",
            header.get(0).unwrap_or("")
        ));
    }
    let columns: Vec<Column> = header
        .iter()
        .skip(1)
        .map(|name| column(name, rules, &mut problems, &file))
        .collect();
    let fields: Vec<String> = columns
        .iter()
        .filter_map(|c| match c {
            Column::Field(name) => Some(name.clone()),
            _ => None,
        })
        .collect();

    let mut devices: BTreeMap<String, (u64, Device)> = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("{file}:{line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let id = record.get(0).unwrap_or("").to_owned();
        if id.is_empty() {
            problems.push(format!("{file}:{line}: device: the device id is empty"));
            continue;
        }
        let mut device = Device::default();
        let mut limits: BTreeMap<usize, Limits> = BTreeMap::new();
        for (column, cell) in columns.iter().zip(record.iter().skip(1)) {
            match column {
                Column::Field(name) => device.fields.push((name.clone(), cell.to_owned())),
                Column::Threshold(rule) | Column::Clear(rule) if !cell.is_empty() => {
                    let name = column_name(column, rules);
                    match cell.parse::<f64>() {
                        Ok(v) if v.is_finite() => {
                            let limit = limits.entry(*rule).or_default();
                            match column {
                                Column::Threshold(_) => limit.threshold = Some(v),
                                _ => limit.clear = Some(v),
                            }
                        }
                        _ => problems.push(format!(
                            "{file}:{line}: {name}: {cell:?} is not a number (leave the cell empty to keep the rule's limit)"
                        )),
                    }
                }
                _ => {}
            }
        }
        for (rule, limit) in limits {
            let rule = &rules[rule];
            if let Some(problem) = clear_side(rule, &limit) {
                problems.push(format!("{file}:{line}: {problem}"));
            }
            device.limits.push((rule.name.clone(), limit));
        }
        if let Some((first, _)) = devices.get(&id) {
            problems.push(format!(
                "{file}:{line}: device: {id:?} is listed twice (first at line {first})"
            ));
            continue;
        }
        devices.insert(id, (line, device));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let devices = devices.into_iter().map(|(id, (_, d))| (id, d)).collect();
    Ok(RegistryFile {
        registry: Registry {
            devices,
            file: Some(path.to_owned()),
        },
        fields,
    })
}

/// What the header cell `name` names.
fn column(
    name: &str,
    rules: &[Rule],
    problems: &mut Vec<String>,
    file: &impl std::fmt::Display,
) -> Column {
    let limit = name
        .strip_prefix("threshold.")
        .map(|rule| (rule, true))
        .or_else(|| name.strip_prefix("clear.").map(|rule| (rule, false)));
    let Some((rule, threshold)) = limit else {
        if name.is_empty() || name == "device" {
            problems.push(format!(
                "{file}:1: column {name:?}: a field column needs a unique, non-empty name"
            ));
        }
        return Column::Field(name.to_owned());
    };
    match rules.iter().position(|r| r.name == rule) {
        None => {
            let known: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
            problems.push(format!(
                "{file}:1: column {name:?}: there is no rule {rule:?} (the rules are {})",
                known.join(", ")
            ));
            Column::Unknown
        }
        Some(i) if matches!(rules[i].kind, RuleKind::Silence { .. }) => {
            problems.push(format!(
                "{file}:1: column {name:?}: rule {rule:?} is a silence rule, which has no threshold"
            ));
            Column::Unknown
        }
        Some(i) if threshold => Column::Threshold(i),
        Some(i) => Column::Clear(i),
    }
}

/// The header name of a limit column.
fn column_name(column: &Column, rules: &[Rule]) -> String {
    match column {
        Column::Threshold(i) => format!("threshold.{}", rules[*i].name),
        Column::Clear(i) => format!("clear.{}", rules[*i].name),
        Column::Field(name) => name.clone(),
        Column::Unknown => String::new(),
    }
}

/// Why a device's limits for `rule` cannot work, if they cannot: its clear
/// threshold must be on the safe side of its threshold.
fn clear_side(rule: &Rule, limit: &Limits) -> Option<String> {
    // A rule without thresholds of its own is checked against the
    // `above = 0` its alerts carry.
    let own = rule.threshold().copied();
    let own = own.unwrap_or_else(|| Threshold::new(Direction::Above, 0.0));
    let limited = limit.apply_to(&own);
    let (threshold, clear) = (limited.threshold, limited.clear);
    (!own.direction.clears_at(threshold, clear)).then(|| {
        let side = own.direction.clear_side();
        format!(
            "clear.{0}: the clear threshold {clear} must be {side} the threshold {threshold} of rule {0:?} for this device",
            rule.name
        )
    })
}
