//! Watching a run from beside its workers: signals, the progress line, rule
//! reloads and dead-letter bursts.

use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_operators::{Metrics, Run};

/// Watches the run until `done`: shows progress, turns a signal into a stop
/// request, and reloads the rules when asked. Set `done`, then unpark the
/// thread, to end it at once.
pub(super) fn spawn_monitor(
    run: Run,
    done: Arc<AtomicBool>,
    progress: bool,
    signal: Option<Arc<AtomicBool>>,
    mut rules: Option<crate::reload::RulesWatch>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = if progress {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let metrics = &run.metrics;
        let mut known_end = false;
        let mut bursts = DeadLetterBursts::default();
        while !done.load(Ordering::Relaxed) {
            if signal.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                && !run.control.stop_requested()
            {
                eprintln!("Stopping: draining windows and sinks (signal again to exit at once).");
                run.control.request_stop();
            }
            if let Some(rules) = rules.as_mut() {
                rules.poll(&run);
            }
            bursts.watch(metrics);
            let expected = metrics.records_expected.get();
            if expected > 0 && !known_end {
                // The end is known (a replay): a bar with rate and ETA.
                known_end = true;
                bar.set_length(expected);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "[{elapsed}] {bar:30} {percent}% {per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            bar.set_position(metrics.records_read.get());
            bar.set_message(format!(
                "{} records read, {} windows, {} alert events, {} dead letters",
                metrics.records_read.get(),
                metrics.windows.get(),
                metrics
                    .alerts_by_rule()
                    .values()
                    .map(|c| c.firing + c.resolved)
                    .sum::<u64>(),
                metrics.dead_letters_total(),
            ));
            bar.tick();
            // Unparked when the run ends, so that it ends without a wait.
            std::thread::park_timeout(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        bursts.end(metrics);
    })
}

/// Logs dead letters once per burst, not once per record: a burst starts
/// with the first dead letter after a quiet spell and ends after
/// [`BURST_QUIET`] without one (or [`BURST_MAX`] after it began); its line
/// gives the count by reason.
#[derive(Default)]
struct DeadLetterBursts {
    /// Counts by reason when the current burst began, when it began, and
    /// when the last dead letter of it was seen.
    current: Option<(Vec<u64>, Instant, Instant)>,
    /// Counts by reason last seen.
    seen: Vec<u64>,
}

/// A burst ends after this long without a dead letter.
const BURST_QUIET: Duration = Duration::from_secs(5);
/// A burst is logged at least this often while it lasts.
const BURST_MAX: Duration = Duration::from_secs(60);

impl DeadLetterBursts {
    fn counts(metrics: &Metrics) -> Vec<u64> {
        metrics.dead_letters.iter().map(Counter::get).collect()
    }

    fn watch(&mut self, metrics: &Metrics) {
        let now = Self::counts(metrics);
        if self.seen.is_empty() {
            self.seen = vec![0; now.len()];
        }
        let grew = now != self.seen;
        match &mut self.current {
            None if grew => {
                self.current = Some((self.seen.clone(), Instant::now(), Instant::now()))
            }
            Some((_, _, last)) if grew => *last = Instant::now(),
            Some((_, began, last))
                if last.elapsed() >= BURST_QUIET || began.elapsed() >= BURST_MAX =>
            {
                self.end(metrics)
            }
            _ => {}
        }
        self.seen = now;
    }

    /// Logs the burst under way, if any.
    fn end(&mut self, metrics: &Metrics) {
        let Some((from, began, _)) = self.current.take() else {
            return;
        };
        let now = Self::counts(metrics);
        let parts: Vec<String> = weir_operators::DeadLetterReason::ALL
            .iter()
            .zip(now.iter().zip(&from))
            .filter(|(_, (n, f))| n > f)
            .map(|(reason, (n, f))| format!("{reason} {}", n - f))
            .collect();
        let total: u64 = now.iter().sum::<u64>() - from.iter().sum::<u64>();
        tracing::warn!(
            dead_letters = total,
            seconds = began.elapsed().as_secs(),
            reasons = %parts.join(", "),
            "Dead-letter burst"
        );
    }
}
