//! `GET /?product=P&granularity=G&chart=G`: the page. Server-rendered, no
//! build step: a picker, a candlestick chart of one granularity, one
//! `<spot-candle>` placeholder per subscribed (product, granularity) with the
//! id the component renders (Datastar morphs patches into elements by id and
//! skips ids it cannot find), and a stable element whose `data-init` opens
//! the stream. Its scripts ([`super::assets`]) change the subscription
//! without a reload and draw the chart from the API and the elements.
//!
//! `<spot-candle>` renders its `data-*` attributes into its shadow root with
//! `textContent`, so no value, however hostile, becomes markup.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use spot_wire::Granularity;

use super::query::{self, BadRequest, Params};
use super::{AppState, assets};

/// Datastar 1.x from its official CDN (override with `DATASTAR_URL`).
pub const DATASTAR_CDN: &str = "https://cdn.jsdelivr.net/gh/starfederation/datastar@v1.0.4/bundles/datastar.js";

/// The page; an unknown product gets a page that says so and leads back.
pub async fn page(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let csp = [(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy(state.datastar.url()),
    )];
    match render(raw.as_deref(), &state) {
        Ok(html) => (csp, Html(html)).into_response(),
        Err(e) if e == query::UNKNOWN_PRODUCT => (StatusCode::NOT_FOUND, csp, Html(unknown(&state))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The page's policy, a second line of defence behind the element check:
/// scripts only from this origin and the Datastar client's (which evaluates
/// its attribute expressions with `Function`: `'unsafe-eval'`, as Datastar
/// documents), styles from this origin, connections (the stream) to it, no
/// frames, no plugins, forms only to it.
pub fn content_security_policy(datastar_url: &str) -> String {
    let datastar = super::cors::origin(datastar_url)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'{datastar} 'unsafe-eval'; style-src 'self'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// What the page shows: one product, its cards' granularities and the
/// chart's granularity (one of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub product: String,
    pub granularities: Vec<Granularity>,
    pub chart: Granularity,
}

/// The page's query, checked against whether a product is `served`; without
/// a product, `first` (BTC-USD when served, else the first served). The chart
/// shows `chart` when it is one of the cards' granularities, else the first.
pub fn parse_query(
    raw: Option<&str>,
    served: &dyn Fn(&str) -> bool,
    first: Option<&str>,
) -> Result<PageQuery, BadRequest> {
    let p = Params::parse(raw)?;
    let product = match p.one("product", "give one product")? {
        Some(v) => query::served_product(v, served)?,
        None => match first {
            Some(p) => p.to_string(),
            None => return Err(BadRequest::new(StatusCode::NOT_FOUND, "no products are served yet")),
        },
    };
    let granularities = query::granularities(&p)?;
    let chart = match p.one("chart", "give one chart")? {
        Some(g) => query::granularity(g)?,
        None => granularities[0],
    };
    let chart = if granularities.contains(&chart) {
        chart
    } else {
        granularities[0]
    };
    Ok(PageQuery {
        product,
        granularities,
        chart,
    })
}

/// The product a bare `/` shows: BTC-USD when served (what people look for
/// first), else the first served.
fn default_product(list: &[String]) -> Option<&str> {
    list.iter()
        .find(|p| *p == "BTC-USD")
        .or_else(|| list.first())
        .map(String::as_str)
}

/// A human name for a granularity (`ONE_MINUTE`: "1 minute").
fn label(g: Granularity) -> &'static str {
    match g {
        Granularity::OneMinute => "1 minute",
        Granularity::FiveMinutes => "5 minutes",
        Granularity::FifteenMinutes => "15 minutes",
        Granularity::ThirtyMinutes => "30 minutes",
        Granularity::OneHour => "1 hour",
        Granularity::TwoHours => "2 hours",
        Granularity::SixHours => "6 hours",
        Granularity::OneDay => "1 day",
    }
}

fn render(raw: Option<&str>, state: &AppState) -> Result<String, BadRequest> {
    let products = state.products();
    let q = parse_query(raw, &|p| state.serves(p), default_product(&products.list))?;
    let (product, granularities) = (&q.product, &q.granularities);

    let mut stream = format!("/stream?product={}", url(product));
    if granularities.len() < Granularity::ALL.len() {
        for g in granularities {
            stream.push_str("&granularity=");
            stream.push_str(g.name());
        }
    }
    let options: String = products
        .list
        .iter()
        .map(|p| {
            let selected = if p == product { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", escape(p))
        })
        .collect();
    let boxes: String = Granularity::ALL
        .iter()
        .map(|g| {
            let checked = if granularities.contains(g) { " checked" } else { "" };
            format!(
                "<label title=\"{0}\"><input type=\"checkbox\" name=\"granularity\" value=\"{0}\"{checked}> {1}</label>",
                g.name(),
                label(*g)
            )
        })
        .collect();
    let candles: String = granularities
        .iter()
        .map(|g| {
            format!(
                "<spot-candle id=\"{0}-{1}\" data-product=\"{0}\" data-granularity=\"{1}\"></spot-candle>\n",
                escape(product),
                g.name()
            )
        })
        .collect();
    let init = format!("@get('{stream}', {{retry: 'always', retryMaxCount: 1000, openWhenHidden: true}})");
    // While the horizon is being fetched, a bucket the clock has closed may
    // still be partial: say so (the API's `complete` already does).
    let notice = match state.history.as_ref().map(|h| h.stats.backfill.progress()) {
        Some(b) if !b.done => format!(
            "<p id=\"history-notice\" class=\"notice\">The history of the last days is still being fetched from the exchange \
             ({} of {} products done): a candle shown complete may still change. Reload to see the progress.</p>",
            b.products_done, b.products
        ),
        _ => String::new(),
    };
    let (source, source_name) = match &state.source {
        None => (String::new(), "Coinbase".to_string()),
        Some(url) => (
            format!(
                "<p id=\"source-notice\" class=\"notice\">Not Coinbase: this instance is fed by <code>{}</code>, \
                 a stand-in exchange (the offline demo or a test). Its prices are synthetic.</p>",
                escape(url)
            ),
            "a stand-in exchange, not Coinbase".to_string(),
        ),
    };
    let datastar = if state.datastar.offered() {
        format!(
            "<script type=\"module\" id=\"datastar\" src=\"{}\"></script>",
            escape(state.datastar.url())
        )
    } else {
        String::new()
    };
    Ok(format!(
        include_str!("assets/page.html"),
        datastar = datastar,
        assets = assets::VERSION.as_str(),
        options = options,
        boxes = boxes,
        init = escape(&init),
        candles = candles,
        notice = notice,
        source = source,
        source_name = source_name,
        product = escape(product),
        chart = q.chart.name(),
        chart_label = label(q.chart),
    ))
}

/// The page for a product not served: no echo of what was asked (it could
/// be markup), the products that are, and the way back.
fn unknown(state: &AppState) -> String {
    let products = state.products();
    let links: String = products
        .list
        .iter()
        .map(|p| format!("<li><a href=\"/?product={0}\">{0}</a></li>", escape(p)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Unknown product · spot</title>\n\
         <link rel=\"icon\" href=\"/assets/favicon.svg?v={v}\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/assets/page.css?v={v}\">\n</head>\n<body>\n\
         <header><h1><a href=\"/\">spot</a></h1></header>\n<main id=\"unknown\">\n\
         <h2>Unknown product</h2>\n<p>This service does not serve that product. <a id=\"back\" href=\"/\">Back to the market</a>, \
         or pick one of the {n} it serves:</p>\n<ul class=\"products\">{links}</ul>\n</main>\n</body>\n</html>\n",
        v = assets::VERSION.as_str(),
        n = products.list.len(),
    )
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
        // Nothing that could end the directive or add another source.
        let evil = content_security_policy("https://evil.example; script-src *");
        assert!(evil.contains("script-src 'self' 'unsafe-eval';"), "{evil}");
    }

    #[test]
    fn the_page_defaults_to_btc_usd_and_charts_one_of_its_cards() {
        let list: Vec<String> = ["ADA-USD", "BTC-USD", "ETH-USD"].map(String::from).to_vec();
        assert_eq!(default_product(&list), Some("BTC-USD"));
        assert_eq!(default_product(&list[2..]), Some("ETH-USD"));
        assert_eq!(default_product(&[]), None);
        let served = |p: &str| list.iter().any(|l| l == p);
        let q = parse_query(
            Some("granularity=ONE_HOUR&granularity=ONE_DAY&chart=ONE_DAY"),
            &served,
            Some("BTC-USD"),
        )
        .unwrap();
        assert_eq!((q.product.as_str(), q.chart), ("BTC-USD", Granularity::OneDay));
        let q = parse_query(
            Some("product=eth-usd&granularity=ONE_HOUR&chart=ONE_MINUTE"),
            &served,
            None,
        )
        .unwrap();
        assert_eq!((q.product.as_str(), q.chart), ("ETH-USD", Granularity::OneHour));
        assert_eq!(
            parse_query(Some("product=NOPE"), &served, None).unwrap_err(),
            query::UNKNOWN_PRODUCT
        );
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
