//! `GET /metrics`: the engine's, the writer's and the hub's counters in the
//! Prometheus text format (version 0.0.4), written by hand: a few dozen
//! counters do not need a metrics registry.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// One metric family: `# HELP`, `# TYPE`, then samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// Render every metric.
pub fn render(state: &AppState) -> String {
    let mut o = Out(String::with_capacity(4096));
    let e = state.engine.stats().snapshot();
    o.one(
        "spot_engine_trades_total",
        "counter",
        "Trades given to the component.",
        e.trades,
    );
    o.one(
        "spot_engine_batches_total",
        "counter",
        "Trade batches (component calls).",
        e.batches,
    );
    o.one(
        "spot_engine_updates_total",
        "counter",
        "Candle updates the component emitted.",
        e.updates,
    );
    o.one(
        "spot_engine_gaps_total",
        "counter",
        "Trade-id jumps the component reported.",
        e.gaps,
    );
    o.one(
        "spot_engine_duplicate_trades_total",
        "counter",
        "Trades dropped as already counted.",
        e.duplicates,
    );
    o.one(
        "spot_engine_ignored_total",
        "counter",
        "Inputs the component ignored.",
        e.ignored,
    );
    o.family("spot_engine_faults_total", "counter", "Component faults, by kind.");
    for (kind, n) in &e.faults_by_kind {
        o.sample("spot_engine_faults_total", &format!("kind=\"{kind}\""), n);
    }
    o.one(
        "spot_engine_rebuilds_total",
        "counter",
        "Instances rebuilt after a fault.",
        e.rebuilds,
    );
    o.one(
        "spot_engine_quarantined_total",
        "counter",
        "Inputs set aside after faulting twice.",
        e.quarantined,
    );
    o.one(
        "spot_engine_render_failures_total",
        "counter",
        "Updates the component failed to render.",
        e.render_failures,
    );
    o.one("spot_engine_swaps_total", "counter", "Component swaps.", e.swaps);
    o.one(
        "spot_engine_last_swap_pause_seconds",
        "gauge",
        "Engine pause of the last swap.",
        e.last_swap_pause_us as f64 / 1e6,
    );
    o.one(
        "spot_engine_checkpoints_total",
        "counter",
        "State checkpoints exported.",
        e.checkpoints,
    );
    o.one(
        "spot_engine_component_seconds_total",
        "counter",
        "Time spent in component calls.",
        e.call_nanos as f64 / 1e9,
    );

    let w = &state.writer;
    o.one(
        "spot_writer_updates_total",
        "counter",
        "Candle updates the writer received.",
        w.updates.load(Relaxed),
    );
    o.one(
        "spot_writer_rows_written_total",
        "counter",
        "Rows written.",
        w.rows_written.load(Relaxed),
    );
    o.one(
        "spot_writer_flushes_total",
        "counter",
        "Successful flushes.",
        w.flushes.load(Relaxed),
    );
    o.one(
        "spot_writer_flush_failures_total",
        "counter",
        "Failed flushes (retried).",
        w.failures.load(Relaxed),
    );
    o.one(
        "spot_writer_pending_keys",
        "gauge",
        "Keys waiting to be written.",
        w.pending.load(Relaxed),
    );
    o.one(
        "spot_writer_healthy",
        "gauge",
        "1 when the last flush succeeded.",
        u8::from(w.healthy()),
    );

    let h = state.hub.stats();
    o.one(
        "spot_sse_clients",
        "gauge",
        "SSE clients connected.",
        h.clients.load(Relaxed),
    );
    o.one(
        "spot_sse_connects_total",
        "counter",
        "SSE connections accepted.",
        h.connects.load(Relaxed),
    );
    o.one(
        "spot_sse_disconnects_total",
        "counter",
        "SSE clients gone.",
        h.disconnects.load(Relaxed),
    );
    o.one(
        "spot_sse_stuck_disconnects_total",
        "counter",
        "SSE clients cut off for being stuck.",
        h.stuck.load(Relaxed),
    );
    o.one(
        "spot_sse_refused_total",
        "counter",
        "SSE clients refused (too many).",
        h.refused.load(Relaxed),
    );
    o.one(
        "spot_sse_events_total",
        "counter",
        "SSE events sent.",
        h.events.load(Relaxed),
    );
    o.one(
        "spot_sse_skipped_states_total",
        "counter",
        "States slow clients skipped.",
        h.skipped.load(Relaxed),
    );
    o.0
}

/// The route.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&state),
    )
}
