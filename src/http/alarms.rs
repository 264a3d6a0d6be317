//! `GET /api/alarms`: the alarm views as JSON, filtered by site, line,
//! severity, state and rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use weir_operators::record::{ActiveAlarm, AlarmBoard, Place};

use super::ServerState;

/// The filters `GET /api/alarms` takes; each given one must match.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filter {
    site: Option<String>,
    line: Option<String>,
    severity: Option<String>,
    /// `firing` (not escalated) or `escalated`.
    state: Option<String>,
    rule: Option<String>,
}

impl Filter {
    /// Whether `place` is of the site and line asked for. A line is named
    /// alone or as the counts name it, `site/line`.
    fn admits_place(&self, place: &Place) -> bool {
        let site = self.site.as_deref().is_none_or(|w| w == place.site);
        let line = self.line.as_deref().is_none_or(|w| {
            w == place.line || w.split_once('/') == Some((&place.site, &place.line))
        });
        site && line
    }

    fn admits(&self, alarm: &ActiveAlarm, place: &Place) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.admits_place(place)
            && is(&self.severity, &alarm.severity)
            && is(&self.state, state_of(alarm))
            && is(&self.rule, &alarm.rule)
    }
}

fn state_of(alarm: &ActiveAlarm) -> &'static str {
    if alarm.escalated {
        "escalated"
    } else {
        "firing"
    }
}

/// The alarm views of `board` that `filter` admits, as JSON: the active
/// alarms that match, the counts of all active alarms by site, line,
/// severity and rule, and the longest-standing alarm of each place (of the
/// `site` and `line` asked for).
pub(super) fn alarms_json(board: &AlarmBoard, filter: &Filter) -> serde_json::Value {
    let alarms: Vec<serde_json::Value> = board
        .alarms
        .iter()
        .filter(|(a, place)| filter.admits(a, place))
        .map(|(a, place)| {
            serde_json::json!({
                "rule": a.rule, "device": a.device, "sensor": a.sensor,
                "severity": a.severity, "state": state_of(a), "since": a.since,
                "site": place.site, "line": place.line, "shelved": a.shelved,
                "acked_by": a.acked_by, "acked_at": a.acked_at,
            })
        })
        .collect();
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (dim, value, n) in &board.counts {
        counts.entry(dim).or_default().insert(value, *n);
    }
    let oldest: Vec<serde_json::Value> = board
        .oldest
        .iter()
        .filter(|(place, _)| filter.admits_place(place))
        .map(|(place, a)| {
            serde_json::json!({
                "site": place.site, "line": place.line, "since": a.since,
                "rule": a.rule, "device": a.device, "sensor": a.sensor,
            })
        })
        .collect();
    serde_json::json!({
        "as_of": board.as_of, "complete": board.complete,
        "alarms": alarms, "counts": counts, "oldest": oldest,
    })
}

pub(super) async fn get_alarms(
    State(state): State<Arc<ServerState>>,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match filter {
        Ok(Query(filter)) => {
            let board = state.run().metrics.alarm_board();
            let mut body = alarms_json(&board, &filter);
            // Whether `POST /api/alarms/{action}` is on (it takes a token).
            body["actions"] = state.actions.is_some().into();
            let body = body.to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!(
                "{}: the filters are site, line, severity, state (firing or escalated) and rule\n",
                e.body_text()
            ),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(rule: &str, device: &str, severity: &str, escalated: bool) -> ActiveAlarm {
        ActiveAlarm {
            rule: rule.into(),
            device: device.into(),
            sensor: "temp".into(),
            severity: severity.into(),
            since: 1_000,
            escalated,
            acked_by: None,
            acked_at: None,
            shelved: false,
        }
    }

    fn place(site: &str, line: &str) -> Place {
        Place {
            site: site.into(),
            line: line.into(),
        }
    }

    fn devices(board: &AlarmBoard, query: &str) -> Vec<String> {
        let Query(filter) =
            Query::<Filter>::try_from_uri(&format!("/api/alarms?{query}").parse().unwrap())
                .unwrap();
        alarms_json(board, &filter)["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}:{}",
                    a["rule"].as_str().unwrap(),
                    a["device"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn each_filter_narrows_the_alarms_and_the_counts_stay_whole() {
        let board = AlarmBoard {
            as_of: Some(5_000),
            complete: false,
            alarms: vec![
                (
                    alarm("hot", "d1", "warning", false),
                    place("north", "press"),
                ),
                (
                    alarm("hot", "d2", "critical", true),
                    place("south", "press"),
                ),
                (
                    alarm("cold", "d3", "warning", false),
                    place("north", "paint"),
                ),
            ],
            counts: vec![
                ("rule".into(), "hot".into(), 2),
                ("rule".into(), "cold".into(), 1),
            ],
            oldest: vec![
                (
                    place("north", "paint"),
                    alarm("cold", "d3", "warning", false),
                ),
                (
                    place("south", "press"),
                    alarm("hot", "d2", "critical", true),
                ),
            ],
        };
        assert_eq!(devices(&board, ""), ["hot:d1", "hot:d2", "cold:d3"]);
        assert_eq!(devices(&board, "site=north"), ["hot:d1", "cold:d3"]);
        assert_eq!(devices(&board, "site=north&line=press"), ["hot:d1"]);
        assert_eq!(devices(&board, "line=north/press"), ["hot:d1"]);
        assert_eq!(devices(&board, "severity=critical"), ["hot:d2"]);
        assert_eq!(devices(&board, "state=escalated"), ["hot:d2"]);
        assert_eq!(devices(&board, "state=firing&rule=hot"), ["hot:d1"]);
        let json = alarms_json(&board, &Filter::default());
        assert_eq!(json["as_of"], 5_000);
        assert_eq!(json["counts"]["rule"]["hot"], 2);
        assert_eq!(json["alarms"][1]["state"], "escalated");
        assert_eq!(json["alarms"][1]["site"], "south");
        assert_eq!(json["oldest"].as_array().unwrap().len(), 2);
        let Query(north) =
            Query::<Filter>::try_from_uri(&"/api/alarms?site=north".parse().unwrap()).unwrap();
        let oldest = &alarms_json(&board, &north)["oldest"];
        assert_eq!(oldest.as_array().unwrap().len(), 1);
        assert_eq!(oldest[0]["device"], "d3");
        // An unknown filter is refused.
        assert!(Query::<Filter>::try_from_uri(&"/api/alarms?zone=1".parse().unwrap()).is_err());
    }
}
