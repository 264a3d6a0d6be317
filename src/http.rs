//! The operations server: Prometheus metrics on `/metrics`, liveness on
//! `/health`, readiness on `/ready`, and a live status page on `/` (its
//! figures come over server-sent events from `/events`; the page is embedded
//! in the binary and loads nothing from elsewhere). It runs on its own thread with a small
//! tokio runtime, outside the dataflow's worker threads, and reads the run's
//! [`Metrics`] when asked.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use weir_operators::Metrics;

/// Where the server finds the metrics to show, at each request: a run's
/// metrics, or whichever run a caller shows now.
pub type MetricsSource = Arc<dyn Fn() -> Arc<Metrics> + Send + Sync>;

type ServerState = MetricsSource;

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
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<Server> {
    serve_from(addr, Arc::new(move || metrics.clone()))
}

/// [`serve`], with the metrics of whichever run `source` gives.
pub fn serve_from(addr: SocketAddr, source: MetricsSource) -> anyhow::Result<Server> {
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
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/", get(|| async { axum::response::Html(STATUS_PAGE) }))
        .route("/events", get(events))
        .with_state(Arc::new(source));
    let thread = std::thread::Builder::new()
        .name("weir-http".into())
        .spawn(move || {
            runtime.block_on(async move {
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
    let mut registry = Registry::with_prefix("weir");
    registry.register_collector(Box::new(RunCollector(state())));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
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
    let stream = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let event = axum::response::sse::Event::default().data(snapshot(&state()).to_string());
        Some((Ok(event), (state, false)))
    });
    axum::response::sse::Sse::new(stream)
}

/// What the status page shows, as JSON.
pub fn snapshot(m: &Metrics) -> serde_json::Value {
    let get = Metrics::get;
    let alert = |a: &weir_operators::metrics::AlertEvent| {
        serde_json::json!({
            "rule": a.rule, "severity": a.severity, "device": a.device, "sensor": a.sensor,
            "state": a.state, "event_time": a.event_time, "value": a.value,
        })
    };
    let (recent, firing) = m.alert_feed();
    let partitions: Vec<serde_json::Value> = m
        .partitions()
        .into_iter()
        .map(|((topic, partition), s)| {
            let lag = s.high_watermark.or(s.end).map(|h| (h - s.position).max(0));
            serde_json::json!({
                "topic": topic, "partition": partition, "records": s.records,
                "position": s.position, "lag": lag, "watermark": s.watermark, "idle": s.idle,
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
        "checkpoint_frontier": get(&m.last_checkpoint_frontier),
        "partitions": partitions,
        "firing": firing.iter().map(alert).collect::<Vec<_>>(),
        "recent": recent.iter().map(alert).collect::<Vec<_>>(),
        "errors": m.errors(),
    })
}

async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let m = state();
    let errors = m.errors();
    let (open, wired) = (
        Metrics::get(&m.sources_open),
        Metrics::get(&m.sources_wired),
    );
    if let Some(error) = errors.first() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {error}\n"),
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

/// Reads the run's counters at each scrape.
#[derive(Debug)]
struct RunCollector(Arc<Metrics>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

impl Collector for RunCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let get = Metrics::get;
        counter(
            &mut encoder,
            "records_read",
            "Records read by the sources",
            None,
            get(&m.records_read),
        )?;
        counter(
            &mut encoder,
            "readings",
            "Readings decoded and accepted",
            None,
            get(&m.readings),
        )?;
        counter(
            &mut encoder,
            "windows_emitted",
            "Window aggregates emitted",
            None,
            get(&m.windows),
        )?;
        counter(
            &mut encoder,
            "parquet_rows",
            "Rows written to committed Parquet files",
            None,
            get(&m.parquet_rows),
        )?;
        counter(
            &mut encoder,
            "parquet_files",
            "Parquet files committed",
            None,
            m.files().len() as u64,
        )?;
        counter(
            &mut encoder,
            "alerts_delivered",
            "Alert events delivered to the alert sink",
            None,
            get(&m.alerts_delivered),
        )?;
        counter(
            &mut encoder,
            "alerts_suppressed",
            "Firing events suppressed by a cooldown",
            None,
            get(&m.alerts_suppressed),
        )?;
        counter(
            &mut encoder,
            "dead_letters_delivered",
            "Dead letters delivered to the dead-letter sink",
            None,
            get(&m.dead_letters_delivered),
        )?;
        counter(
            &mut encoder,
            "checkpoints",
            "Checkpoints completed",
            None,
            get(&m.checkpoints),
        )?;
        counter(
            &mut encoder,
            "errors",
            "Pipeline errors (each stops the run)",
            None,
            m.errors().len() as u64,
        )?;
        gauge(
            &mut encoder,
            "checkpoint_size",
            "Size of the last completed checkpoint",
            Some(&Unit::Bytes),
            get(&m.last_checkpoint_bytes) as i64,
        )?;
        gauge(
            &mut encoder,
            "checkpoint_frontier",
            "Event-time frontier of the last completed checkpoint (ms since the epoch)",
            None,
            get(&m.last_checkpoint_frontier) as i64,
        )?;

        let mut dead = encoder.encode_descriptor(
            "dead_letters",
            "Records sent to the dead letters, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for reason in weir_operators::DeadLetterReason::ALL.iter() {
            let n = get(&m.dead_letters[reason.index()]);
            ConstCounter::new(n).encode(dead.encode_family(&[("reason", reason.to_string())])?)?;
        }
        let mut alerts = encoder.encode_descriptor(
            "alerts",
            "Alert events made, by rule and state",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (rule, c) in m.alerts_by_rule() {
            for (state, n) in [("firing", c.firing), ("resolved", c.resolved)] {
                ConstCounter::new(n).encode(
                    alerts.encode_family(&[("rule", rule.clone()), ("state", state.to_owned())])?,
                )?;
            }
        }

        let partitions = m.partitions();
        let labels =
            |(topic, p): &(String, i32)| [("topic", topic.clone()), ("partition", p.to_string())];
        let mut records = encoder.encode_descriptor(
            "source_records",
            "Records read, by source partition",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (key, s) in &partitions {
            ConstCounter::new(s.records).encode(records.encode_family(&labels(key))?)?;
        }
        let mut position = encoder.encode_descriptor(
            "source_position",
            "The next offset a source partition reads",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (key, s) in &partitions {
            ConstGauge::new(s.position).encode(position.encode_family(&labels(key))?)?;
        }
        let mut remaining = encoder.encode_descriptor(
            "source_remaining",
            "Records left before a bounded partition's end",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (key, s) in partitions.iter().filter(|(_, s)| s.end.is_some()) {
            let left = s.end.unwrap_or_default().saturating_sub(s.position).max(0);
            ConstGauge::new(left).encode(remaining.encode_family(&labels(key))?)?;
        }
        let mut lag = encoder.encode_descriptor(
            "source_lag",
            "Records in a Kafka partition not read yet: its end offset minus the position",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (key, s) in partitions
            .iter()
            .filter(|(_, s)| s.high_watermark.is_some())
        {
            let left = s
                .high_watermark
                .unwrap_or_default()
                .saturating_sub(s.position)
                .max(0);
            ConstGauge::new(left).encode(lag.encode_family(&labels(key))?)?;
        }
        let mut watermark = encoder.encode_descriptor(
            "source_watermark",
            "A source partition's watermark (ms of event time since the epoch)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (key, s) in partitions.iter().filter(|(_, s)| s.watermark.is_some()) {
            let wm = s.watermark.unwrap_or_default() as i64;
            ConstGauge::new(wm).encode(watermark.encode_family(&labels(key))?)?;
        }
        let mut idle = encoder.encode_descriptor(
            "source_idle",
            "1 while a source partition is declared idle",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (key, s) in &partitions {
            ConstGauge::new(i64::from(s.idle)).encode(idle.encode_family(&labels(key))?)?;
        }
        Ok(())
    }
}
