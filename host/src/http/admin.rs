//! `/admin/component`: `GET` (what runs, here and in the fleet), `PUT`
//! (upload and swap), `POST …/rollback`; `?fleet` on `PUT` and rollback does
//! it for every live instance of the fleet, or for none. Present only when
//! `ADMIN_TOKEN` is set; every request needs `Authorization: Bearer <ADMIN_TOKEN>`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::admin::{Admin, AdminError, MAX_COMPONENT_BYTES, UploadRefusal, check_upload};
use crate::engine::{ComponentSummary, EngineError};

/// The admin routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/component", get(status).put(install))
        .route("/admin/component/rollback", post(rollback))
        .route("/admin/component/shadow", axum::routing::delete(discard_shadow))
        .route("/admin/component/shadow/confirm", post(confirm_shadow))
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    m.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], m).into_response()
}

/// Why a request is not let in.
enum Denied {
    NoAdmin,
    NoToken,
    WrongToken,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NoAdmin => plain(StatusCode::NOT_FOUND, "not found"),
            Denied::NoToken => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "a bearer token is required");
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                r
            }
            Denied::WrongToken => plain(StatusCode::FORBIDDEN, "wrong token"),
        }
    }
}

/// The admin, if the caller presents its token.
fn authorize<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a Admin, Denied> {
    let admin = state.admin.as_deref().ok_or(Denied::NoAdmin)?;
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Denied::NoToken)?;
    match value.strip_prefix("Bearer ") {
        Some(token) if admin.authorized(token.trim()) => Ok(admin),
        _ => Err(Denied::WrongToken),
    }
}

fn summary(c: &ComponentSummary) -> serde_json::Value {
    json!({
        "name": c.name,
        "version": c.version,
        "sha256": c.sha256,
        "loaded_at": c.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

fn engine_error(e: AdminError) -> Response {
    match e {
        AdminError::Refused(m) => plain(StatusCode::UNPROCESSABLE_ENTITY, m),
        AdminError::Engine(EngineError::Busy(m)) => plain(StatusCode::CONFLICT, m),
        AdminError::Engine(e @ EngineError::Fault { .. }) => plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the new component failed to take the state: {e}"),
        ),
        AdminError::Fleet(report) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "fleet": report, "error": format!("fleet operation aborted: {}",
                report.reason.as_deref().unwrap_or("no reason given")) })),
        )
            .into_response(),
        other => plain(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// `GET /admin/component`.
pub async fn status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let admin = match authorize(&state, &headers) {
        Ok(a) => a,
        Err(d) => return d.into_response(),
    };
    let s = match state.engine.status().await {
        Ok(s) => s,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    // Each instance's active component (from the fleet's rows), the fleet's
    // component and its last operation (from the database).
    let fleet = admin
        .fleet_status()
        .await
        .unwrap_or_else(|e| json!({ "error": e.to_string() }));
    Json(json!({
        "fleet": fleet,
        "active": summary(&s.active),
        "previous": s.previous.as_ref().map(summary),
        "healthy": s.healthy,
        "swaps": s.stats.swaps,
        "rollbacks": s.stats.rollbacks,
        "automatic_rollbacks": s.stats.auto_rollbacks,
        "last_swap_pause_us": crate::engine::micros(std::time::Duration::from_nanos(s.stats.last_swap_pause_ns)),
        "refused": admin.refused.load(std::sync::atomic::Ordering::Relaxed),
        "last_error": admin.last_error(),
        "last_fault": s.last_fault,
        "shadow": state.engine.shadow_status().await.ok().flatten().map(|r| json!({
            "component": summary(&r.component),
            "running": r.running,
            "elapsed_s": r.elapsed.as_secs_f64(),
            "remaining_s": r.remaining.as_secs_f64(),
            "inputs": r.inputs,
            "compared": r.compared,
            "differing": r.differing,
            "differing_elements": r.differing_elements,
            "examples": r.examples,
            "fault": r.fault,
        })),
    }))
    .into_response()
}

/// `PUT /admin/component` with the `.wasm` as the body.
pub async fn install(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let admin = match authorize(&state, request.headers()) {
        Ok(a) => a,
        Err(d) => return d.into_response(),
    };
    // `?shadow=SECONDS`: run beside the active component, swap on confirm.
    let shadow = match request.uri().query().map(shadow_seconds) {
        None => None,
        Some(Ok(s)) => s,
        Some(Err(m)) => return plain(StatusCode::BAD_REQUEST, m),
    };
    // `?fleet`: every live instance swaps, or none.
    let fleet = match fleet_flag(request.uri().query()) {
        Ok(f) => f,
        Err(m) => return plain(StatusCode::BAD_REQUEST, m),
    };
    if fleet && shadow.is_some() {
        return plain(
            StatusCode::BAD_REQUEST,
            "a shadow run is per instance: give shadow or fleet",
        );
    }
    let kind = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        kind.split(';').next().map(str::trim),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the component as application/wasm",
        );
    }
    let wasm = match read_wasm(request.into_body()).await {
        Ok(w) => w,
        Err(refused) => return refused,
    };
    if fleet {
        return match admin.install_fleet(wasm).await {
            Ok(report) => Json(json!({ "fleet": report })).into_response(),
            Err(e) => engine_error(e),
        };
    }
    if let Some(seconds) = shadow {
        return match admin.shadow(wasm, std::time::Duration::from_secs(seconds)).await {
            Ok(done) => (
                StatusCode::ACCEPTED,
                Json(json!({
                    "shadow": {
                        "name": done.component.name,
                        "version": done.component.version,
                        "sha256": done.component.sha256,
                        "seconds": seconds,
                    },
                    "confirm": "POST /admin/component/shadow/confirm",
                })),
            )
                .into_response(),
            Err(e) => engine_error(e),
        };
    }
    match admin.install(wasm).await {
        Ok(done) => Json(json!({
            "active": {
                "name": done.component.name,
                "version": done.component.version,
                "sha256": done.component.sha256,
            },
            "from": done.swap.from,
            "pause_us": crate::engine::micros(done.swap.pause),
            "prepare_ms": crate::engine::millis(done.swap.prepare),
        }))
        .into_response(),
        Err(e) => engine_error(e),
    }
}

/// `POST /admin/component/rollback` (`?fleet`: the fleet's previous component
/// on every live instance, or on none).
pub async fn rollback(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let admin = match authorize(&state, request.headers()) {
        Ok(a) => a,
        Err(d) => return d.into_response(),
    };
    match fleet_flag(request.uri().query()) {
        Ok(false) => {}
        Ok(true) => {
            return match admin.rollback_fleet().await {
                Ok(report) => Json(json!({ "fleet": report })).into_response(),
                Err(e) => engine_error(e),
            };
        }
        Err(m) => return plain(StatusCode::BAD_REQUEST, m),
    }
    match admin.rollback().await {
        Ok(r) => Json(json!({"from": r.from, "to": r.to, "pause_us": crate::engine::micros(r.pause)})).into_response(),
        Err(e) => engine_error(e),
    }
}

/// The upload, read as it arrives: refused at its first bytes when they are
/// not WebAssembly's magic (not after reading up to 64 MiB of something
/// else), and once it passes the size limit.
async fn read_wasm(body: Body) -> Result<Vec<u8>, Response> {
    use futures_util::StreamExt;
    let refused = |r: UploadRefusal| {
        let status = match r {
            UploadRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UploadRefusal::NotWasm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        plain(status, r.to_string())
    };
    let mut stream = body.into_data_stream();
    let mut wasm: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| plain(StatusCode::BAD_REQUEST, "the upload was cut off"))?;
        if wasm.len() + chunk.len() > MAX_COMPONENT_BYTES {
            return Err(refused(UploadRefusal::TooLarge));
        }
        wasm.extend_from_slice(&chunk);
        check_upload(&wasm, false).map_err(refused)?;
    }
    check_upload(&wasm, true).map_err(refused)?;
    Ok(wasm)
}

/// `fleet` (or `fleet=true`/`fleet=1`; `fleet=false`/`0` is the instance alone).
fn fleet_flag(query: Option<&str>) -> Result<bool, &'static str> {
    let Some(query) = query else { return Ok(false) };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "fleet" {
            return match &*v {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err("fleet takes no value, or true/false"),
            };
        }
    }
    Ok(false)
}

/// `shadow=SECONDS` (1 s to 1 day) from a query string.
fn shadow_seconds(query: &str) -> Result<Option<u64>, &'static str> {
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "shadow" {
            return match v.parse::<u64>() {
                Ok(s) if (1..=86_400).contains(&s) => Ok(Some(s)),
                _ => Err("shadow must be a number of seconds from 1 to 86400"),
            };
        }
    }
    Ok(None)
}

/// `POST /admin/component/shadow/confirm`: swap in the shadow's component.
pub async fn confirm_shadow(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let admin = match authorize(&state, &headers) {
        Ok(a) => a,
        Err(d) => return d.into_response(),
    };
    match admin.confirm_shadow().await {
        Ok(done) => Json(json!({
            "active": {"name": done.component.name, "version": done.component.version, "sha256": done.component.sha256},
            "from": done.swap.from,
            "pause_us": crate::engine::micros(done.swap.pause),
        }))
        .into_response(),
        Err(e) => engine_error(e),
    }
}

/// `DELETE /admin/component/shadow`: stop the shadow run, swap nothing.
pub async fn discard_shadow(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let admin = match authorize(&state, &headers) {
        Ok(a) => a,
        Err(d) => return d.into_response(),
    };
    match admin.discard_shadow().await {
        Ok(true) => plain(StatusCode::OK, "shadow run stopped"),
        Ok(false) => plain(StatusCode::CONFLICT, "there is no shadow run"),
        Err(e) => engine_error(e),
    }
}
