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
    fn histogram(&mut self, name: &str, help: &str, h: &crate::histogram::Histogram) {
        let s = h.snapshot();
        self.family(name, "histogram", help);
        for (le, n) in &s.cumulative {
            self.sample(&format!("{name}_bucket"), &format!("le=\"{le}\""), n);
        }
        self.sample(&format!("{name}_bucket"), "le=\"+Inf\"", s.count);
        self.sample(&format!("{name}_sum"), "", s.sum);
        self.sample(&format!("{name}_count"), "", s.count);
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
    o.one(
        "spot_engine_unsafe_elements_total",
        "counter",
        "Elements refused before reaching browsers (not the contract's <spot-candle> shape); sent without them.",
        e.unsafe_elements,
    );
    o.one("spot_engine_swaps_total", "counter", "Component swaps.", e.swaps);
    o.one(
        "spot_engine_rollbacks_total",
        "counter",
        "Returns to the previous component.",
        e.rollbacks,
    );
    o.one(
        "spot_engine_automatic_rollbacks_total",
        "counter",
        "Rollbacks after the swapped-in component faulted.",
        e.auto_rollbacks,
    );
    o.one(
        "spot_engine_last_swap_pause_seconds",
        "gauge",
        "Engine pause of the last swap.",
        e.last_swap_pause_ns as f64 / 1e9,
    );
    o.one(
        "spot_engine_checkpoints_total",
        "counter",
        "State checkpoints exported.",
        e.checkpoints,
    );
    o.one(
        "spot_engine_last_checkpoint_seconds",
        "gauge",
        "Engine time the last checkpoint held (a snapshot of the journal, then dropping what the state covers); the engine takes no input meanwhile.",
        e.last_checkpoint_us as f64 / 1e6,
    );
    o.one(
        "spot_engine_last_checkpoint_build_seconds",
        "gauge",
        "Time the last checkpoint took to build off the engine's thread (import, replay of the journal, export).",
        e.last_checkpoint_build_us as f64 / 1e6,
    );
    o.one(
        "spot_engine_checkpoint_builds_total",
        "counter",
        "Checkpoints started off the engine's thread.",
        e.checkpoint_builds,
    );
    o.one(
        "spot_engine_checkpoint_builds_returned_total",
        "counter",
        "Checkpoint builds that came back, taken or not (the engine stops waiting for one that falls far behind).",
        e.checkpoint_builds_returned,
    );
    o.one(
        "spot_engine_checkpoint_builds_given_up_total",
        "counter",
        "Checkpoint builds that stopped before their export: the engine had stopped waiting for them.",
        e.checkpoint_builds_given_up,
    );
    o.one(
        "spot_engine_component_seconds_total",
        "counter",
        "Time spent in component calls.",
        e.call_nanos as f64 / 1e9,
    );
    o.family(
        "spot_engine_trade_stage_seconds_total",
        "counter",
        "Where live trades' time went in the engine, summed over trades (a call's time counts once per trade in it); \
         divided by spot_engine_trades_total, a trade's mean time in each stage.",
    );
    for stage in crate::engine::TradeStage::ALL {
        o.sample(
            "spot_engine_trade_stage_seconds_total",
            &format!("stage=\"{}\"", stage.name()),
            state.engine.stats().trade_nanos(stage) as f64 / 1e9,
        );
    }
    o.histogram(
        "spot_engine_call_seconds",
        "Wall time of each component call that applies an input (trades, repair, restore, clock).",
        &state.engine.stats().call_seconds,
    );
    o.one(
        "spot_candle_late_revisions_total",
        "counter",
        "Updates of already complete buckets caused by late trades.",
        e.late_revisions,
    );

    if let Some(w) = &state.writer {
        writer(&mut o, w);
    }
    if let Some(f) = &state.fleet {
        fleet(&mut o, f);
    }
    if let Some(f) = &state.feed {
        feed(&mut o, f);
    }
    if let Some(h) = &state.history {
        history(&mut o, h);
    }

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
        "spot_sse_events_written_by_publisher_total",
        "counter",
        "SSE events the hub wrote to a socket as it published (no stream task woken).",
        h.published_writes.load(Relaxed),
    );
    o.one(
        "spot_sse_mailbox_wait_seconds_total",
        "counter",
        "How long the events' oldest updates waited in their clients' mailboxes (put to take), summed; \
         divided by spot_sse_events_total, the mean wait.",
        h.waited_nanos.load(Relaxed) as f64 / 1e9,
    );
    o.one(
        "spot_sse_skipped_states_total",
        "counter",
        "States slow clients skipped.",
        h.skipped.load(Relaxed),
    );
    o.0
}

fn writer(o: &mut Out, w: &crate::storage::WriterStats) {
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
    o.histogram(
        "spot_writer_flush_seconds",
        "Time of each successful flush.",
        &w.flush_seconds,
    );
    o.histogram(
        "spot_writer_flush_rows",
        "Rows in each successful flush.",
        &w.flush_rows,
    );
    o.one(
        "spot_writer_pending_keys",
        "gauge",
        "Keys waiting to be written.",
        w.pending.load(Relaxed),
    );
    o.one(
        "spot_writer_flush_waiting_seconds",
        "gauge",
        "How long the flush in flight has been waiting (0: none in flight).",
        w.in_flight_for().map_or(0.0, |d| d.as_secs_f64()),
    );
    o.one(
        "spot_writer_healthy",
        "gauge",
        "1 when the last flush succeeded.",
        u8::from(w.healthy()),
    );
    o.one(
        "spot_writer_published_flushes_total",
        "counter",
        "Flushes whose changed rows were published to the fleet (fleet_updates).",
        w.published.load(Relaxed),
    );
    o.one(
        "spot_writer_notifications_total",
        "counter",
        "NOTIFYs sent to the fleet (at most one per flush).",
        w.notifications.load(Relaxed),
    );
    o.one(
        "spot_writer_notify_failures_total",
        "counter",
        "NOTIFYs that failed (the candles were stored; the next flush notifies them).",
        w.notify_failures.load(Relaxed),
    );
}

fn fleet(o: &mut Out, v: &crate::fleet::FleetView) {
    let status = v.status();
    let per_shard = |o: &mut Out, name: &str, help: &str, value: &dyn Fn(&crate::fleet::ShardStatus) -> Option<f64>| {
        o.family(name, "gauge", help);
        for s in &status.shards {
            if let Some(v) = value(s) {
                o.sample(name, &format!("shard=\"{}\"", s.shard), v);
            }
        }
    };
    per_shard(
        o,
        "spot_fleet_shard_up",
        "1 when the shard's freshest instance was heard from within the stale limit and has not stopped.",
        &|s| Some(f64::from(u8::from(s.live))),
    );
    per_shard(
        o,
        "spot_fleet_shard_heartbeat_age_seconds",
        "Seconds since the shard's freshest instance renewed its row.",
        &|s| Some(s.heartbeat_age_s),
    );
    per_shard(
        o,
        "spot_fleet_shard_last_update_age_seconds",
        "Seconds since the shard's writer last changed a stored candle (or its last flush was heard here).",
        &|s| s.last_update_age_s,
    );
    o.one(
        "spot_fleet_replicas",
        "gauge",
        "Live stream-only replicas.",
        status.replicas.iter().filter(|r| r.live).count(),
    );
    o.one(
        "spot_fleet_products",
        "gauge",
        "Products served (the whole fleet's).",
        v.catalog().products().list.len(),
    );
    let f = v.stats();
    o.one(
        "spot_fleet_listening",
        "gauge",
        "1 while the listener's connection is up.",
        u8::from(f.connected.load(Relaxed)),
    );
    for (name, help, value) in [
        (
            "spot_fleet_listener_connects_total",
            "Listener connections made.",
            &f.connects,
        ),
        (
            "spot_fleet_listener_disconnects_total",
            "Listener connections lost.",
            &f.disconnects,
        ),
        (
            "spot_fleet_resyncs_total",
            "Reads of the current candle of every followed key (each connect, new products, a writer's request).",
            &f.resyncs,
        ),
        (
            "spot_fleet_notifications_total",
            "Notifications of other instances' flushes.",
            &f.notifications,
        ),
        (
            "spot_fleet_candles_read_total",
            "Other instances' candles read back.",
            &f.candles_read,
        ),
        (
            "spot_fleet_candles_applied_total",
            "Other instances' candles rendered here.",
            &f.candles_applied,
        ),
        (
            "spot_fleet_candles_stale_total",
            "Candles read back but not newer than the one shown.",
            &f.candles_stale,
        ),
    ] {
        o.one(name, "counter", help, value.load(Relaxed));
    }
}

fn feed(o: &mut Out, f: &crate::feed::FeedStats) {
    let counters: [(&str, &str, &std::sync::atomic::AtomicU64); 15] = [
        (
            "spot_feed_connect_attempts_total",
            "WebSocket connection attempts.",
            &f.connect_attempts,
        ),
        (
            "spot_feed_reconnects_total",
            "Sessions that ended and were retried.",
            &f.reconnects,
        ),
        ("spot_feed_frames_total", "Frames received.", &f.frames),
        ("spot_feed_bytes_total", "Bytes of frames received.", &f.bytes),
        ("spot_feed_trades_total", "Trades handed to the engine.", &f.trades),
        ("spot_feed_heartbeats_total", "Heartbeats received.", &f.heartbeats),
        (
            "spot_feed_malformed_frames_total",
            "Frames that were not a message.",
            &f.malformed_frames,
        ),
        (
            "spot_feed_bad_trades_total",
            "Trades refused for a bad field.",
            &f.bad_trades,
        ),
        (
            "spot_feed_foreign_trades_total",
            "Trades of products not subscribed on that connection.",
            &f.foreign_trades,
        ),
        (
            "spot_feed_sequence_jumps_total",
            "sequence_num jumps (frames possibly lost).",
            &f.sequence_jumps,
        ),
        (
            "spot_feed_watchdog_timeouts_total",
            "Connections silent past the watchdog.",
            &f.watchdog_timeouts,
        ),
        (
            "spot_feed_server_closes_total",
            "Close frames from the server.",
            &f.server_closes,
        ),
        ("spot_feed_errors_total", "Error messages from the server.", &f.errors),
        (
            "spot_feed_auth_failures_total",
            "Authentication failures.",
            &f.auth_failures,
        ),
        (
            "spot_feed_past_horizon_trades_total",
            "Trades older than the horizon (HISTORY_DAYS): ignored by the component.",
            &f.past_horizon_trades,
        ),
    ];
    for (name, help, v) in counters {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        o.one(name, kind, help, v.load(Relaxed));
    }
    o.one(
        "spot_feed_connections_live",
        "gauge",
        "Connections subscribed and receiving.",
        f.live(),
    );
    let shard = format!("shard=\"{}\"", f.shard_index);
    o.family(
        "spot_feed_connection_state",
        "gauge",
        "Per connection: 0 backoff, 1 connecting, 2 subscribing, 3 live, 4 stopped.",
    );
    for (i, c) in f.connections.iter().enumerate() {
        o.sample(
            "spot_feed_connection_state",
            &format!("{shard},connection=\"{i}\""),
            c.state() as u8,
        );
    }
    o.family("spot_feed_connection_trades_total", "counter", "Trades per connection.");
    for (i, c) in f.connections.iter().enumerate() {
        o.sample(
            "spot_feed_connection_trades_total",
            &format!("{shard},connection=\"{i}\""),
            c.trades.load(Relaxed),
        );
    }
    o.family(
        "spot_feed_connection_reconnects_total",
        "counter",
        "Reconnects per connection.",
    );
    for (i, c) in f.connections.iter().enumerate() {
        o.sample(
            "spot_feed_connection_reconnects_total",
            &format!("{shard},connection=\"{i}\""),
            c.reconnects.load(Relaxed),
        );
    }
}

fn history(o: &mut Out, v: &super::HistoryView) {
    use crate::rest::Priority;
    let h = &v.stats;
    let b = &h.backfill;
    let counters: [(&str, &str, u64); 17] = [
        (
            "spot_repair_gaps_total",
            "Trade-id gaps queued for repair.",
            h.gaps.load(Relaxed),
        ),
        (
            "spot_repair_requests_total",
            "Repair requests that succeeded.",
            h.repairs.load(Relaxed),
        ),
        (
            "spot_repair_minutes_total",
            "Minutes replaced by REST candles in repairs.",
            h.repaired_minutes.load(Relaxed),
        ),
        (
            "spot_repair_failures_total",
            "Repair requests that failed (retried unless refused).",
            h.repair_failures.load(Relaxed),
        ),
        (
            "spot_repair_windows_pending",
            "Repair windows waiting.",
            h.repairs_pending.load(Relaxed),
        ),
        (
            "spot_rest_throttled_total",
            "REST answers 429 or 401.",
            h.rest_throttled.load(Relaxed),
        ),
        (
            "spot_backfill_products",
            "Products of this instance.",
            b.products.load(Relaxed),
        ),
        (
            "spot_backfill_products_planned",
            "Products whose span to backfill is known.",
            b.planned.load(Relaxed),
        ),
        (
            "spot_backfill_products_done",
            "Products with nothing left to backfill.",
            b.done.load(Relaxed),
        ),
        (
            "spot_backfill_requests_total",
            "Backfill requests planned.",
            b.requests.load(Relaxed),
        ),
        (
            "spot_backfill_requests_done_total",
            "Backfill requests done.",
            b.requests_done.load(Relaxed),
        ),
        (
            "spot_backfill_requests_pending",
            "Backfill requests not done yet.",
            b.requests.load(Relaxed).saturating_sub(b.requests_done.load(Relaxed)),
        ),
        (
            "spot_backfill_failures_total",
            "Backfill requests that failed (retried unless refused).",
            b.failures.load(Relaxed),
        ),
        (
            "spot_backfill_minutes_total",
            "Minutes with trades the backfill applied.",
            b.minutes.load(Relaxed),
        ),
        (
            "spot_backfill_done",
            "1 once every product's horizon is backfilled.",
            b.finished() as u64,
        ),
        (
            "spot_backfill_started_timestamp_seconds",
            "When the backfill began (unix s).",
            b.started_ms.load(Relaxed).div_euclid(1000) as u64,
        ),
        (
            "spot_backfill_done_timestamp_seconds",
            "When the backfill ended (unix s; 0 while it runs).",
            b.done_ms.load(Relaxed).div_euclid(1000) as u64,
        ),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        o.one(name, kind, help, value);
    }
    o.one(
        "spot_rest_rate",
        "gauge",
        "COINBASE_REST_RATE: REST requests a second.",
        v.rest_rate,
    );
    o.family(
        "spot_rest_requests_total",
        "counter",
        "REST requests granted by the budget, by priority.",
    );
    for p in Priority::ALL {
        o.sample(
            "spot_rest_requests_total",
            &format!("priority=\"{}\"", p.name()),
            v.budget.granted(p),
        );
    }
    o.family(
        "spot_rest_waiting",
        "gauge",
        "REST requests waiting for the budget, by priority.",
    );
    for p in Priority::ALL {
        o.sample(
            "spot_rest_waiting",
            &format!("priority=\"{}\"", p.name()),
            v.budget.waiting(p),
        );
    }
    if !v.audit {
        return;
    }
    let totals = h.audit.totals();
    o.family(
        "spot_audit_checked_total",
        "counter",
        "Buckets compared with the exchange's, by granularity.",
    );
    for g in spot_wire::Granularity::ALL {
        o.sample(
            "spot_audit_checked_total",
            &format!("granularity=\"{}\"", g.name()),
            totals[g.index()].checked,
        );
    }
    o.family(
        "spot_audit_mismatches_total",
        "counter",
        "Buckets that differed from the exchange's: missing (only the exchange has it), extra (only we do), value.",
    );
    for g in spot_wire::Granularity::ALL {
        let c = totals[g.index()];
        for (kind, n) in [("missing", c.missing), ("extra", c.extra), ("value", c.value)] {
            o.sample(
                "spot_audit_mismatches_total",
                &format!("granularity=\"{}\",kind=\"{kind}\"", g.name()),
                n,
            );
        }
    }
    o.family(
        "spot_audit_corrected_total",
        "counter",
        "Buckets corrected from the exchange's candle (1m; rollups follow).",
    );
    for g in spot_wire::Granularity::ALL {
        o.sample(
            "spot_audit_corrected_total",
            &format!("granularity=\"{}\"", g.name()),
            totals[g.index()].corrected,
        );
    }
    let (passes, last) = h.audit.passes();
    o.one("spot_audit_passes_total", "counter", "Audit passes completed.", passes);
    o.one(
        "spot_audit_last_pass_timestamp_seconds",
        "gauge",
        "When the last audit pass completed (unix s; 0 before the first).",
        last.unwrap_or(0),
    );
}

/// The route.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&state),
    )
}
