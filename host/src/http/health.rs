//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its job).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use crate::history::stats::BackfillProgress;

/// A flush waiting this long makes the writer unready (a flush takes
/// milliseconds when the database is well).
const SLOW_FLUSH: Duration = Duration::from_secs(5);

/// Liveness: the process serves HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Serialize)]
pub struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Check {
    fn from(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Check { ok: true, detail: None },
            Err(d) => Check {
                ok: false,
                detail: Some(d),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    ready: bool,
    database: Check,
    writer: Check,
    component: Check,
    feed: Check,
    /// The backfill's progress: shown, never waited for (an instance serves
    /// while it backfills; `/api/candles` says which buckets are final).
    #[serde(skip_serializing_if = "Option::is_none")]
    backfill: Option<BackfillProgress>,
    /// The listener has read the fleet's candles once (a later reconnect
    /// does not make the instance unready: it still serves what it has).
    listener: Check,
    /// Every shard (live, how stale its last update is), the replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<crate::fleet::FleetStatus>,
}

/// Readiness: the database answers, the writer is keeping up, the component
/// has a working instance, the feed subscribed and the fleet's listener read
/// the fleet once. 503 with the failing checks otherwise. The fleet's shards
/// (and how stale each one's last update is) are shown either way.
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Readiness>) {
    let database = match tokio::time::timeout(Duration::from_secs(2), crate::storage::ping(&state.pool)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 2 s".to_string()),
    };
    let writer = match &state.writer {
        None => Ok(()),
        Some(w) => match (w.last_error(), w.in_flight_for()) {
            (Some(e), _) => Err(format!(
                "flushes failing: {e} ({} keys waiting)",
                w.pending.load(std::sync::atomic::Ordering::Relaxed)
            )),
            (None, Some(waited)) if waited >= SLOW_FLUSH => Err(format!(
                "a flush has been waiting {:.0} s (a lock held on live_candles, or a slow database); {} keys waiting",
                waited.as_secs_f64(),
                w.pending.load(std::sync::atomic::Ordering::Relaxed)
            )),
            _ => Ok(()),
        },
    };
    let component = match tokio::time::timeout(Duration::from_secs(2), state.engine.status()).await {
        Ok(Ok(s)) if s.healthy => Ok(()),
        Ok(Ok(s)) => Err(s.last_fault.unwrap_or_else(|| "no working instance".into())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the engine did not answer within 2 s".into()),
    };
    // The feed is ready once every connection has subscribed at least once;
    // a later reconnect does not make the instance unready (it still serves).
    let feed = match &state.feed {
        None => Ok(()),
        Some(f) if f.all_started() => Ok(()),
        Some(f) => Err(format!(
            "{} of {} connections subscribed so far",
            f.connections
                .iter()
                .filter(|c| c.sessions.load(std::sync::atomic::Ordering::Relaxed) > 0)
                .count(),
            f.connections.len()
        )),
    };
    let fleet = state.fleet.as_ref().map(|f| f.status());
    let listener = match &fleet {
        Some(f) if !f.synced => Err(f
            .error
            .clone()
            .unwrap_or_else(|| "has not read the fleet's candles yet".into())),
        _ => Ok(()),
    };
    let r = Readiness {
        ready: database.is_ok() && writer.is_ok() && component.is_ok() && feed.is_ok() && listener.is_ok(),
        database: Check::from(database),
        writer: Check::from(writer),
        component: Check::from(component),
        feed: Check::from(feed),
        backfill: state.history.as_ref().map(|h| h.stats.backfill.progress()),
        listener: Check::from(listener),
        fleet,
    };
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r))
}
