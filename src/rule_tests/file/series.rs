//! The series of a test (`[[test.series]]`), turned into readings in
//! arrival order.

use super::*;

/// When the values of a series are: the event time of the first interval,
/// and the time between two.
#[derive(Clone, Copy)]
pub(super) struct Clock {
    /// Event time of the first interval, ms since the epoch.
    pub(super) start_ms: u64,
    /// Time between two values, in ms.
    pub(super) interval_ms: u64,
}

/// Where the series of each (device, sensor) starts in the file.
pub(super) type SeriesKeys = HashMap<(String, String), usize>;

/// A reading and its place in the arrival order: (arrival, series index,
/// slot index).
type Arrival = ((u64, usize, usize), TestReading);

/// Validates the series of a test (`label` names the test); one series per
/// device and sensor. Returns the readings in arrival order (by interval,
/// then by series in file order), and where each series starts.
pub(super) fn validate_series(
    raw: &[Spanned<RawSeries>],
    label: &str,
    clock: Clock,
    d: &mut Diag<'_>,
) -> (Vec<TestReading>, SeriesKeys) {
    let mut keys = SeriesKeys::new();
    let mut arrivals: Vec<Arrival> = Vec::new();
    for (j, s) in raw.iter().enumerate() {
        let label = format!("{label}.series[{j}]");
        if let Some(series) = one_series(s, &label, &mut keys, d) {
            series.readings(j, clock, &label, &mut arrivals, d);
        }
    }
    arrivals.sort_by_key(|(order, _)| *order);
    let readings: Vec<TestReading> = arrivals.into_iter().map(|(_, r)| r).collect();
    (readings, keys)
}

/// A series whose fields are valid.
struct Series<'r> {
    /// Device id.
    device: String,
    /// Sensor name.
    sensor: String,
    /// The values, as written.
    values: &'r Spanned<String>,
    /// The values, one slot per interval.
    slots: Vec<Slot>,
}

/// One `[[test.series]]`; `None` if it has problems (they are recorded).
fn one_series<'r>(
    s: &'r Spanned<RawSeries>,
    label: &str,
    keys: &mut SeriesKeys,
    d: &mut Diag<'_>,
) -> Option<Series<'r>> {
    let r = s.get_ref();
    let device = required(d, r.device.as_ref(), s.span(), &format!("{label}.device"));
    let sensor = required(d, r.sensor.as_ref(), s.span(), &format!("{label}.sensor"));
    if let (Some(device), Some(sensor)) = (&device, &sensor) {
        let key = (device.clone(), sensor.clone());
        match keys.get(&key) {
            Some(first) => {
                let first = d.position(*first);
                d.err(
                    s.span(),
                    label,
                    format!(
                        "a series of device {:?} sensor {:?} is given at {first} already: give one series per device and sensor",
                        key.0, key.1
                    ),
                );
            }
            None => {
                keys.insert(key, s.span().start);
            }
        }
    }
    let Some(values) = r.values.as_ref() else {
        d.at(
            s.span().start,
            &format!("{label}.values"),
            "required field is missing",
        );
        return None;
    };
    let slots = match expand_values(values.get_ref()) {
        Ok(slots) => slots,
        Err((offset, e)) => {
            d.at(string_offset(values, offset), &format!("{label}.values"), e);
            return None;
        }
    };
    let (Some(device), Some(sensor)) = (device, sensor) else {
        return None;
    };
    Some(Series {
        device,
        sensor,
        values,
        slots,
    })
}

impl Series<'_> {
    /// Adds the readings of series `j` to `arrivals`, up to the first whose
    /// time cannot be represented.
    fn readings(
        &self,
        j: usize,
        clock: Clock,
        label: &str,
        arrivals: &mut Vec<Arrival>,
        d: &mut Diag<'_>,
    ) {
        for (k, slot) in self.slots.iter().enumerate() {
            let Slot::Value { value, shift_ms } = *slot else {
                continue;
            };
            let arrival = (k as u64)
                .checked_mul(clock.interval_ms)
                .and_then(|o| o.checked_add(clock.start_ms));
            let time = arrival.and_then(|a| a.checked_add_signed(shift_ms));
            let (Some(arrival), Some(time)) = (arrival, time) else {
                d.err(
                    self.values.span(),
                    &format!("{label}.values"),
                    format!(
                        "the value {} in interval {k} (counting from 0) has an event time before 1970 or too far ahead",
                        value
                    ),
                );
                return;
            };
            arrivals.push((
                (arrival, j, k),
                TestReading {
                    device: self.device.clone(),
                    sensor: self.sensor.clone(),
                    time,
                    arrival,
                    value,
                },
            ));
        }
    }
}

/// The byte offset in the file of byte `offset` of a string value's
/// contents; the string's own start when it is written with escapes or
/// over several lines.
fn string_offset(value: &Spanned<String>, offset: usize) -> usize {
    let span = value.span();
    span.start
        + value
            .get_ref()
            .get(..offset)
            .filter(|_| {
                let written = span.end - span.start;
                written == value.get_ref().len() + 2
            })
            .map_or(0, |before| before.len() + 1)
}
