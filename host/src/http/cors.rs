//! Cross-origin access to `/stream` and `/api/*` for the origins in
//! `ALLOWED_ORIGINS` (none by default): a chart or trading UI served from
//! another origin can open the stream with Datastar (whose
//! `Datastar-Request` header makes the browser ask first with a preflight
//! `OPTIONS`) and read the API. The admin routes never answer another origin.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::AppState;

/// The request headers a cross-origin client may send: Datastar's, the
/// stream's resume header, and a JSON content type.
pub const ALLOWED_HEADERS: &str = "datastar-request, last-event-id, cache-control, content-type";

/// How long a browser may keep a preflight's answer, seconds.
const MAX_AGE: &str = "600";

/// The origins answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins (`scheme://host[:port]`).
    origins: Vec<String>,
    /// `*`: any origin.
    any: bool,
}

/// A value of `ALLOWED_ORIGINS` that is not a list of origins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin: scheme://host[:port], no path (or * for any)")]
pub struct InvalidOrigin(pub String);

impl Cors {
    /// Parse `ALLOWED_ORIGINS`: origins separated by commas, or `*`.
    pub fn parse(list: &str) -> Result<Self, InvalidOrigin> {
        let mut cors = Cors::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                cors.any = true;
                continue;
            }
            // An origin is a URL that is all origin: no path, query or fragment.
            if origin(item) != Some(item) {
                return Err(InvalidOrigin(item.to_string()));
            }
            // Browsers send origins in lower case.
            cors.origins.push(item.to_ascii_lowercase());
        }
        Ok(cors)
    }

    /// Whether any origin is answered.
    pub fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The `Origin` header's value when it is allowed.
    pub fn allows<'a>(&self, origin: &'a str) -> Option<&'a str> {
        (self.any || self.origins.iter().any(|o| o == origin)).then_some(origin)
    }

    /// The headers of an answer to `origin` (empty when it is not allowed),
    /// as `name: value` pairs for the raw-socket stream too.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        match origin.and_then(|o| self.allows(o)) {
            Some(o) => vec![
                ("access-control-allow-origin", o.to_string()),
                ("vary", "origin".to_string()),
            ],
            None => Vec::new(),
        }
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL; `None` for a relative
/// one (served from this origin) or anything else.
pub fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| &url[..url.len() - rest.len() + host_end])
}

/// The middleware of `/stream` and `/api/*`: preflights are answered here,
/// other requests get the allow headers added to their response.
pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let origin = request_origin(request.headers());
    if request.method() == Method::OPTIONS {
        return preflight(&state.cors, origin.as_deref(), request.headers());
    }
    let mut response = next.run(request).await;
    add(&state.cors, origin.as_deref(), response.headers_mut());
    response
}

fn request_origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn add(cors: &Cors, origin: Option<&str>, headers: &mut HeaderMap) {
    for (name, value) in cors.headers(origin) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// A preflight: 204 with what is allowed, or 403 for an origin that is not.
fn preflight(cors: &Cors, origin: Option<&str>, request: &HeaderMap) -> Response {
    let method_ok = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_none_or(|m| m.as_bytes() == b"GET" || m.as_bytes() == b"HEAD");
    if origin.and_then(|o| cors.allows(o)).is_none() || !method_ok {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cross-origin request not allowed (ALLOWED_ORIGINS)\n",
        )
            .into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    add(cors, origin, h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_checked() {
        let cors = Cors::parse(" https://charts.example.com , http://127.0.0.1:8000").unwrap();
        assert!(cors.enabled());
        assert_eq!(
            cors.allows("https://charts.example.com"),
            Some("https://charts.example.com")
        );
        assert_eq!(cors.allows("http://127.0.0.1:8000"), Some("http://127.0.0.1:8000"));
        assert_eq!(cors.allows("https://evil.example.com"), None);
        assert_eq!(cors.allows("https://charts.example.com.evil"), None);
        assert!(cors.headers(Some("null")).is_empty());
        assert!(!Cors::parse("").unwrap().enabled());
        assert_eq!(Cors::parse("*").unwrap().allows("http://x"), Some("http://x"));
        for bad in [
            "charts.example.com",
            "https://a.example/path",
            "https://",
            "ftp://a",
            "https://a b",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad:?}");
        }
    }
}
