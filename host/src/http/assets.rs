//! `GET /assets/{name}` and `GET /favicon.ico`: the page's scripts, style and
//! icon, and the chart library with its licence, compiled into the binary so
//! the page needs nothing from elsewhere (the offline demo included).
//!
//! - `page.js`: the picker (no reload) and the stream client the page falls
//!   back to without Datastar;
//! - `candle.js`: the `<spot-candle>` element (the cards);
//! - `chart.js`: the candlestick chart, which follows one `<spot-candle>`;
//! - `lightweight-charts.js`: TradingView Lightweight Charts 5.3.0, the
//!   standalone build from npm (`vendor/README.md`), Apache-2.0.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One served file.
struct Asset {
    name: &'static str,
    kind: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $kind:expr, $file:literal) => {
        Asset {
            name: $name,
            kind: $kind,
            body: include_bytes!($file),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("page.js", JS, "assets/page.js"),
    asset!("candle.js", JS, "assets/candle.js"),
    asset!("chart.js", JS, "assets/chart.js"),
    asset!("page.css", "text/css; charset=utf-8", "assets/page.css"),
    asset!("favicon.svg", "image/svg+xml", "assets/favicon.svg"),
    asset!("lightweight-charts.js", JS, "assets/vendor/lightweight-charts.js"),
    asset!(
        "lightweight-charts.LICENSE.txt",
        "text/plain; charset=utf-8",
        "assets/vendor/lightweight-charts.LICENSE.txt"
    ),
];

/// A version of the assets for their URLs (`?v=`): a new build's page never
/// gets an old script from a cache.
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for a in ASSETS {
        digest.update(a.body);
    }
    digest.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// `GET /favicon.ico`: the icon, for what a browser asks on its own (a JSON
/// answer opened in a tab).
pub async fn favicon() -> Response {
    match ASSETS.iter().find(|a| a.name == "favicon.svg") {
        Some(a) => serve(a),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve(a: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, a.kind),
            // Versioned by the page's URLs (`?v=`): cacheable for a day.
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        a.body,
    )
        .into_response()
}
