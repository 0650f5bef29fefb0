//! `GET /?product=P&granularity=G`: the page. Server-rendered, no build step:
//! a picker, one `<spot-candle>` placeholder per subscribed (product,
//! granularity) with the id the component renders (Datastar morphs patches
//! into elements by id and skips ids it cannot find), and a stable element
//! whose `data-init` opens the stream.
//!
//! `<spot-candle>` renders its `data-*` attributes into its shadow root with
//! `textContent`, so no value, however hostile, becomes markup.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use spot_wire::Granularity;

use super::AppState;
use super::query::{self, BadRequest, Params};

/// Datastar 1.x from its official CDN (override with `DATASTAR_URL`).
pub const DATASTAR_CDN: &str = "https://cdn.jsdelivr.net/gh/starfederation/datastar@v1.0.4/bundles/datastar.js";

/// The page's script and style, served by spot itself (the page allows no
/// inline script or style).
pub const SCRIPT: &str = include_str!("page.js");
pub const STYLE: &str = include_str!("page.css");

/// A version of the assets for their URLs (`?v=`): a new build's page never
/// gets an old script from a cache.
static ASSETS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(SCRIPT.as_bytes())
        .chain_update(STYLE.as_bytes())
        .finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// The page.
pub async fn page(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    match render(raw.as_deref(), &state) {
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                content_security_policy(&state.datastar_url),
            )],
            Html(html),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /assets/page.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /assets/page.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            // Versioned by the page's URLs (`?v=`): cacheable for a day.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The page's policy, a second line of defence behind the element check:
/// scripts only from this origin and the Datastar client's (which evaluates
/// its attribute expressions with `Function`: `'unsafe-eval'`, as Datastar
/// documents), styles from this origin, connections (the stream) to it, no
/// frames, no plugins, forms only to it.
pub fn content_security_policy(datastar_url: &str) -> String {
    let datastar = origin(datastar_url).map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'{datastar} 'unsafe-eval'; style-src 'self'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an absolute http(s) URL; `None` for a relative
/// one (served from this origin) or anything else.
fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    let ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| &url[..url.len() - rest.len() + host_end])
}

/// The page's query: one product (`first` when none is given) and the
/// granularities shown, checked against whether a product is `served`.
pub fn parse_query(
    raw: Option<&str>,
    served: &dyn Fn(&str) -> bool,
    first: Option<&str>,
) -> Result<(String, Vec<Granularity>), BadRequest> {
    let p = Params::parse(raw)?;
    let product = match p.one("product", "give one product")? {
        Some(v) => {
            let v = query::product(v)?;
            if !served(v) {
                return Err(BadRequest::new(axum::http::StatusCode::NOT_FOUND, "unknown product"));
            }
            v.to_string()
        }
        None => match first {
            Some(p) => p.to_string(),
            None => return Err(BadRequest::new(axum::http::StatusCode::NOT_FOUND, "no products")),
        },
    };
    Ok((product, query::granularities(&p)?))
}

fn render(raw: Option<&str>, state: &AppState) -> Result<String, BadRequest> {
    let products = state.products();
    let (product, granularities) = parse_query(raw, &|p| state.serves(p), products.list.first().map(String::as_str))?;

    let mut stream = format!("/stream?product={}", url(&product));
    if granularities.len() < Granularity::ALL.len() {
        for g in &granularities {
            stream.push_str("&granularity=");
            stream.push_str(g.name());
        }
    }
    let options: String = state
        .products()
        .list
        .iter()
        .map(|p| {
            let selected = if *p == product { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", escape(p))
        })
        .collect();
    let boxes: String = Granularity::ALL
        .iter()
        .map(|g| {
            let checked = if granularities.contains(g) { " checked" } else { "" };
            format!(
                "<label><input type=\"checkbox\" name=\"granularity\" value=\"{0}\"{checked}> {0}</label>",
                g.name()
            )
        })
        .collect();
    let candles: String = granularities
        .iter()
        .map(|g| {
            format!(
                "<spot-candle id=\"{0}-{1}\" data-product=\"{0}\" data-granularity=\"{1}\"></spot-candle>\n",
                escape(&product),
                g.name()
            )
        })
        .collect();
    let init = format!("@get('{stream}', {{retry: 'always', retryMaxCount: 1000, openWhenHidden: true}})");
    // While the horizon is being fetched, a bucket the clock has closed may
    // still be partial: say so (the API's `complete` already does).
    let notice = match state.history.as_ref().map(|h| h.stats.backfill.progress()) {
        Some(b) if !b.done => format!(
            "<p id=\"history-notice\">The history of the last days is still being fetched from Coinbase \
             ({} of {} products done): a candle shown complete may still change. Reload to see the progress.</p>",
            b.products_done, b.products
        ),
        _ => String::new(),
    };
    Ok(format!(
        include_str!("page.html"),
        datastar = escape(&state.datastar_url),
        assets = ASSETS.as_str(),
        options = options,
        boxes = boxes,
        init = escape(&init),
        candles = candles,
        notice = notice,
        product = escape(&product),
    ))
}

/// Escape text for an HTML attribute value or text node.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query value (products are validated to `[A-Za-z0-9-]`,
/// so this is belt and braces).
fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_datastar_origin_only() {
        let csp = content_security_policy(DATASTAR_CDN);
        assert!(
            csp.contains("script-src 'self' https://cdn.jsdelivr.net 'unsafe-eval';"),
            "{csp}"
        );
        assert!(
            csp.starts_with("default-src 'none';") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let local = content_security_policy("/static/datastar.js");
        assert!(local.contains("script-src 'self' 'unsafe-eval';"), "{local}");
        assert_eq!(origin("http://127.0.0.1:9/d.js"), Some("http://127.0.0.1:9"));
        // Nothing that could end the directive or add another source.
        assert_eq!(origin("https://evil.example; script-src *"), None);
        assert_eq!(origin("javascript:alert(1)"), None);
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
