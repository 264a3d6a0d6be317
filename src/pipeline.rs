//! The pipeline a config file describes, wired from the same operators a
//! Rust pipeline uses.

use std::sync::Arc;

use weir_operators::alarm::health::alarm_health;
use weir_operators::alert::alerts;
use weir_operators::decode::ControlDecoder;
use weir_operators::{Decoder, WindowAggregateOp, WindowKind};

use crate::config::PipelineSpec;
use crate::runtime::{run, Context, RunOptions, RunReport};

/// Wires the pipeline `spec` describes into `scope`:
///
/// ```text
/// source ─┬─ readings ─┬─ window_aggregate(window) ─┬─ parquet
///         │            │                            └─ evaluate_alerts (window rules of that size)
///         │            ├─ window_aggregate(other rule window sizes) ─ evaluate_alerts
///         │            └─ evaluate_alerts (reading rules)            ─┴─ sink(alerts)
///         │                                                              └─ alarm_health ─ sink(alarm health), parquet
///         └─ dead letters ─┬─ sink(dead letters)
/// control ─ control events ┼─ alarm ledger (inside alerts: shelved, acked)
///         └─ dead letters ─┘
/// ```
///
/// The rules are wired by [`alerts`], and the source and sinks connected by
/// the run's [`Context`] (see [`crate::plan::connect`]), as in a Rust
/// pipeline. Without a dead-letter sink, dead letters are counted and
/// logged only.
pub fn build(ctx: &Context<'_>, spec: &PipelineSpec) {
    let (readings, dead) = ctx.source(spec.source.clone(), Decoder::new(spec.decode.clone()));

    // Every output that writes Parquet, and the tumbling ones of a size
    // some rule judges (the others are made by `alerts`, for the rules).
    let sizes = spec.rules.window_sizes();
    let windows: Vec<_> = spec
        .windows
        .iter()
        .filter(|w| {
            w.parquet.is_some()
                || matches!(w.kind, WindowKind::Tumbling { size_ms } if sizes.contains(&size_ms))
        })
        .map(|w| {
            let windows = readings.clone().windows(w.spec(), ctx);
            if let Some(parquet) = &w.parquet {
                ctx.parquet_of(&w.name, windows.clone(), parquet.clone());
            }
            windows
        })
        .collect();

    let Some(alerts_sink) = &spec.alerts else {
        if let Some(sink) = &spec.dead_letters {
            ctx.sink(dead, sink.clone());
        }
        return;
    };
    let rules = Arc::new(spec.rules.clone());
    // Control events act on the alarms: the ledger `alerts` wires takes them.
    let dead = match &spec.control {
        Some(control) => {
            use timely::dataflow::operators::Concat;
            let refused = ctx.control(control.clone(), ControlDecoder::new(&rules));
            dead.concat(refused)
        }
        None => dead,
    };
    if let Some(sink) = &spec.dead_letters {
        ctx.sink(dead, sink.clone());
    }
    let alerts = alerts(&readings, &windows, rules.clone(), ctx);
    // The alarm system's health: on the status page, and to its topic.
    let health = alarm_health(&alerts, &rules, spec.alarm_health.clone(), ctx);
    if let Some(parquet) = &spec.alarm_health_parquet {
        ctx.health_parquet(health.clone(), parquet.clone());
    }
    if let Some(sink) = &spec.alarm_health_sink {
        ctx.sink(health, sink.clone());
    }
    ctx.sink(alerts, alerts_sink.clone());
}

/// Runs the pipeline `spec` describes with `options` (whose worker count
/// and bounded flag win over the file's), after checking that its brokers
/// answer, its topics exist and its output directory is writable.
pub fn run_spec(spec: &PipelineSpec, options: &RunOptions) -> anyhow::Result<RunReport> {
    crate::preflight::check_pipeline(spec, options)?;
    let mut options = options.clone();
    if options.deliveries.is_empty() {
        options.deliveries = spec.deliveries.clone();
    }
    if let (Some(var), Some(control), None) =
        (&spec.http_token_env, &spec.control, &options.alarm_actions)
    {
        options.alarm_actions = Some(alarm_actions(var, control)?);
    }
    let spec = Arc::new(spec.clone());
    run(&options, move |_scope, ctx| build(ctx, &spec))
}

/// The alarm actions of a pipeline whose `[http] token_env` names `var`:
/// its token (a secret from now on), and the control topic they write to.
fn alarm_actions(
    var: &str,
    control: &weir_operators::KafkaSourceConfig,
) -> anyhow::Result<crate::http::AlarmActions> {
    let token = std::env::var(var).ok().filter(|t| !t.is_empty());
    let Some(token) = token else {
        anyhow::bail!(
            "[http] token_env names {var}, which is not set: set it to the token that \
             alarm actions (POST /api/alarms/...) must carry, or remove token_env to turn them off"
        );
    };
    crate::secrets::remember(&token);
    Ok(crate::http::AlarmActions {
        token,
        brokers: control.brokers.clone(),
        topic: control.topic.clone(),
        properties: control.properties.clone(),
    })
}
