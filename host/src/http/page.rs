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
use axum::response::{Html, IntoResponse, Response};
use spot_wire::Granularity;

use super::AppState;
use super::query::{self, BadRequest, Params};

/// Datastar 1.x from its official CDN (override with `DATASTAR_URL`).
pub const DATASTAR_CDN: &str = "https://cdn.jsdelivr.net/gh/starfederation/datastar@v1.0.4/bundles/datastar.js";

/// The page.
pub async fn page(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    match render(raw.as_deref(), &state) {
        Ok(html) => Html(html).into_response(),
        Err(e) => e.into_response(),
    }
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
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
