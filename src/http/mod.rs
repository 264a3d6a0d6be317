//! The operations server: Prometheus metrics on `/metrics`, liveness on
//! `/health`, readiness on `/ready`, the active alarms as JSON on
//! `/api/alarms` (and, with a token, the alarm actions of
//! [`actions`](AlarmActions)), and a live status page on `/` (its
//! figures come over server-sent events from `/events`; the page is embedded
//! in the binary and loads nothing from elsewhere). It runs on its own thread with a small
//! tokio runtime, outside the dataflow's worker threads, and reads the run's
//! [`Metrics`](weir_operators::Metrics) when asked.

mod actions;
mod alarms;
mod history;

pub use actions::AlarmActions;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use weir_operators::{Run, RunControl};

/// Where the server finds the run to show, at each request: a run, or
/// whichever run a caller shows now.
pub type MetricsSource = Arc<dyn Fn() -> Run + Send + Sync>;

/// What the handlers share: the run, and its last 15 minutes.
struct ServerState {
    source: MetricsSource,
    history: Mutex<history::History>,
    /// The alarm actions, when a token for them is configured.
    actions: Option<actions::Actions>,
}

impl ServerState {
    /// The run to show now.
    fn run(&self) -> Run {
        (self.source)()
    }
}

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the server on `addr` (port 0: any free port). Binding fails at
/// once, with the address in the error.
pub fn serve(addr: SocketAddr, run: Run) -> anyhow::Result<Server> {
    serve_from(addr, Arc::new(move || run.clone()))
}

/// [`serve`], with the metrics of whichever run `source` gives.
pub fn serve_from(addr: SocketAddr, source: MetricsSource) -> anyhow::Result<Server> {
    serve_with(addr, source, None)
}

/// [`serve_from`], with the alarm actions (`POST /api/alarms/{action}`)
/// on when `actions` is given.
pub fn serve_with(
    addr: SocketAddr,
    source: MetricsSource,
    actions: Option<AlarmActions>,
) -> anyhow::Result<Server> {
    let actions = actions.map(actions::Actions::new).transpose()?;
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for the metrics server"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the metrics server's runtime")?;
    let state = Arc::new(ServerState {
        source,
        history: Mutex::default(),
        actions,
    });
    let sampled = Arc::clone(&state);
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/", get(|| async { axum::response::Html(STATUS_PAGE) }))
        .route("/events", get(events))
        .route("/api/alarms", get(alarms::get_alarms))
        .route("/api/alarms/{action}", post(actions::post_action))
        .with_state(Arc::clone(&state));
    let thread = std::thread::Builder::new()
        .name("weir-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(sample_every_second(sampled));
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "Metrics server cannot listen");
                        return;
                    }
                };
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "Metrics server failed");
                }
            });
        })?;
    tracing::info!(%addr, "Serving /metrics, /health and /ready");
    Ok(Server {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

async fn scrape(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let run = state.run();
    let mut registry = Registry::with_prefix("weir");
    run.metrics.register(&mut registry);
    registry.register_collector(Box::new(ErrorsCollector(run.control.clone())));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            crate::secrets::redact(&body),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// Samples the run once a second for the status page's charts.
async fn sample_every_second(state: Arc<ServerState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let run = state.run();
        state
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(&run);
    }
}

/// The status page.
const STATUS_PAGE: &str = include_str!("status.html");

/// A snapshot of the run every second, as server-sent events.
async fn events(
    State(state): State<Arc<ServerState>>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    // Each page gets the samples of the last 15 minutes once, then the new
    // ones: `sent` is the time of the last sample it has (`None`: none).
    let stream =
        futures_util::stream::unfold((state, true, None), |(state, first, sent)| async move {
            if !first {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            let mut page = snapshot(&state.run());
            let sent = {
                let history = state.history.lock().unwrap_or_else(|e| e.into_inner());
                page["rate"] = history.rate().into();
                page["samples"] = history.samples_after(sent).into();
                page["samples_from_start"] = first.into();
                page["actions"] = state.actions.is_some().into();
                history.latest().or(sent)
            };
            let snapshot = crate::secrets::redact(&page.to_string());
            let event = axum::response::sse::Event::default().data(snapshot);
            Some((Ok(event), (state, false, sent)))
        });
    axum::response::sse::Sse::new(stream)
}

/// What the status page shows, as JSON.
pub fn snapshot(run: &Run) -> serde_json::Value {
    let m = &run.metrics;
    let get = Counter::get;
    let alert = |a: &weir_operators::metrics::AlertEvent| {
        serde_json::json!({
            "rule": a.rule, "severity": a.severity, "device": a.device, "sensor": a.sensor,
            "state": a.state, "event_time": a.event_time, "value": a.value,
        })
    };
    let recent = m.recent_alerts();
    let board = m.alarm_board();
    let partitions: Vec<serde_json::Value> = m
        .partitions()
        .into_iter()
        .map(|((topic, partition), s)| {
            let lag = s.high_watermark.or(s.end).map(|h| (h - s.position).max(0));
            serde_json::json!({
                "topic": topic, "partition": partition, "records": s.records,
                "position": s.position, "lag": lag, "watermark": s.watermark, "idle": s.idle,
                "held": s.held,
            })
        })
        .collect();
    let dead: serde_json::Map<String, serde_json::Value> = weir_operators::DeadLetterReason::ALL
        .iter()
        .map(|r| (r.to_string(), get(&m.dead_letters[r.index()]).into()))
        .collect();
    serde_json::json!({
        "records_read": get(&m.records_read),
        "readings": get(&m.readings),
        "dead_letters": dead,
        "windows": get(&m.windows),
        "parquet_rows": get(&m.parquet_rows),
        "parquet_files": m.files().len(),
        "alerts_delivered": get(&m.alerts_delivered),
        "checkpoints": get(&m.checkpoints),
        "checkpoint_frontier": m.last_checkpoint_frontier.get(),
        "partitions": partitions,
        "firing": board.alarms.iter().map(|(a, place)| serde_json::json!({
            "rule": a.rule, "severity": a.severity, "device": a.device, "sensor": a.sensor,
            "since": a.since, "escalated": a.escalated, "site": place.site, "line": place.line,
            "shelved": a.shelved, "acked_by": a.acked_by, "acked_at": a.acked_at,
        })).collect::<Vec<_>>(),
        "alarms_as_of": board.as_of,
        "alarms_complete": board.complete,
        "health": m.recent_health().iter().map(health_row).collect::<Vec<_>>(),
        "alarm_counts": board.counts.iter().map(|(dim, value, n)| serde_json::json!({
            "by": dim, "value": value, "active": n,
        })).collect::<Vec<_>>(),
        "recent": recent.iter().map(alert).collect::<Vec<_>>(),
        "errors": run.control.errors(),
    })
}

/// A health event of the alarm system, for the status page: its time,
/// area, measure, and what it found in words.
fn health_row(e: &weir_operators::record::HealthEvent) -> serde_json::Value {
    use weir_operators::record::Health;
    let what = match &e.health {
        Health::FloodStarted { .. } => "flood under way".to_owned(),
        Health::Flood { start, end, activations, peak } => format!(
            "flood over: {activations} activations in {} min, peak {peak} per window",
            (end - start) / 60_000
        ),
        Health::Stale { rule, device, sensor, since } => {
            format!("{rule} on {device}/{sensor} active since {since}")
        }
        Health::Rate { activations, average, peak, chattering, top, .. } => format!(
            "{activations} activations, average {average:.1} and peak {peak} per window,              {chattering} chattering; most: {}",
            top.first().map_or("none".to_owned(), |t| format!("{} on {} ({})", t.rule, t.device, t.activations))
        ),
    };
    serde_json::json!({
        "event_time": e.event_time, "area": e.area, "measure": e.measure(), "what": what,
    })
}

async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let run = state.run();
    let m = &run.metrics;
    let errors = run.control.errors();
    let (open, wired) = (m.sources_open.get(), m.sources_wired.get());
    if let Some(error) = errors.first() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            crate::secrets::redact(&format!("not ready: {error}\n")),
        )
    } else if wired == 0 || open < wired {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {open} of {wired} sources have their partitions assigned\n"),
        )
    } else {
        (StatusCode::OK, "ready\n".to_owned())
    }
}

/// The run's errors, as a counter.
#[derive(Debug)]
struct ErrorsCollector(Arc<RunControl>);

impl Collector for ErrorsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let errors = ConstCounter::new(self.0.errors().len() as u64);
        let metric = encoder.encode_descriptor(
            "errors",
            "Pipeline errors (each stops the run)",
            None,
            errors.metric_type(),
        )?;
        errors.encode(metric)
    }
}
