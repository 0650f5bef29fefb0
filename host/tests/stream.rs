//! The SSE stream and the page over real sockets, fed by the real engine and
//! component: snapshot then updates, per-client filtering, conflation for a
//! stalled client, cutting off a stuck one, reconnects, validation.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::http::{self, attr};
use spot_host::config::Config;
use spot_host::engine::EngineConfig;
use spot_host::hub::HubConfig;
use spot_host::server::{Options, Server};
use spot_testkit::pg::Cluster;
use spot_wire::{Granularity, Trade};

struct Setup {
    _pg: Cluster,
    server: Server,
    names: Vec<String>,
    fed: Vec<Trade>,
}

/// The other origin the test servers answer (`ALLOWED_ORIGINS`).
const ALLOWED: &str = "http://charts.example";

async fn setup(products: u32, hub: HubConfig) -> Setup {
    common::trace();
    let pg = Cluster::temporary().expect("cluster");
    let names = common::product_names(products);
    let component = common::component_path("spot_guest");
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", pg.url("postgres")),
        ("PRODUCTS", names.join(",")),
        ("COMPONENT_PATH", component.display().to_string()),
        ("DATASTAR_URL", common::OFFLINE_DATASTAR.to_string()),
        ("ALLOWED_ORIGINS", ALLOWED.to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let options = Options {
        engine: EngineConfig {
            clock: None,
            ..EngineConfig::default()
        },
        limits: common::test_limits(),
        hub,
        bind: Some(([127, 0, 0, 1], 0).into()),
        feed: None,
        ..Options::default()
    };
    let server = Server::start(&config, options).await.expect("start");
    let ids = server.engine().register_products(&names).await.expect("ids");
    assert_eq!(ids, (0..products).collect::<Vec<_>>());
    Setup {
        _pg: pg,
        server,
        names,
        fed: Vec::new(),
    }
}

impl Setup {
    async fn feed(&mut self, trades: &[Trade], per_batch: usize) {
        for chunk in trades.chunks(per_batch) {
            self.server.engine().trades(chunk.to_vec()).await.expect("trades");
        }
        self.fed.extend_from_slice(trades);
        self.server.sync().await.expect("sync");
    }

    /// The element the native rules render for the newest bucket of each
    /// (product, granularity), by element id.
    fn expected(&self) -> BTreeMap<String, String> {
        let agg = common::reference(&self.names, &self.fed, &common::config());
        let mut newest: BTreeMap<(u32, Granularity), spot_wire::Candle> = BTreeMap::new();
        for c in agg.candles() {
            let e = newest.entry((c.product, c.granularity)).or_insert(c);
            if c.start > e.start {
                *e = c;
            }
        }
        newest
            .into_iter()
            .map(|((p, g), c)| {
                let name = &self.names[p as usize];
                (format!("{name}-{}", g.name()), spot_rules::render::element(&c, name))
            })
            .collect()
    }
}

fn id_of(element: &str) -> String {
    attr(element, "id").expect("an id")
}

/// Read events until the latest element of every id in `want` equals it.
async fn read_until(sse: &mut http::Sse, want: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    while want.iter().any(|(id, e)| seen.get(id) != Some(e)) {
        let ev = sse.event().await.expect("the stream ended early");
        for e in ev.elements {
            seen.insert(id_of(&e), e);
        }
    }
    seen
}

#[tokio::test]
async fn snapshot_first_then_updates_each_client_only_its_own() {
    let mut s = setup(3, HubConfig::default()).await;
    let market = common::market(3, 600, 11);
    s.feed(&market[..500], 25).await;
    let addr = s.server.addr();

    let mut all = http::sse(addr, "/stream?product=P0-USD", &[("Datastar-Request", "true")], None).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some("text/event-stream"));
    assert_eq!(all.header("cache-control"), Some("no-cache"));
    assert_eq!(all.header("x-accel-buffering"), Some("no"));
    assert_eq!(all.header("content-encoding"), None);
    let mut two = http::sse(
        addr,
        "/stream?product=P1-USD&granularity=ONE_MINUTE&granularity=ONE_HOUR&datastar=%7B%7D",
        &[],
        None,
    )
    .await;

    // The first event is the current state of every subscribed key.
    let want = s.expected();
    let first = all.event().await.expect("snapshot");
    assert_eq!(first.event, "datastar-patch-elements");
    let got: BTreeMap<String, String> = first.elements.iter().map(|e| (id_of(e), e.clone())).collect();
    let want_p0: BTreeMap<String, String> = want
        .clone()
        .into_iter()
        .filter(|(id, _)| id.starts_with("P0-USD-"))
        .collect();
    assert_eq!(got, want_p0);
    let first_two = two.event().await.expect("snapshot");
    let ids: Vec<String> = first_two.elements.iter().map(|e| id_of(e)).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"P1-USD-ONE_MINUTE".into()) && ids.contains(&"P1-USD-ONE_HOUR".into()));
    assert_eq!(
        first_two.elements.iter().find(|e| id_of(e) == "P1-USD-ONE_HOUR"),
        want.get("P1-USD-ONE_HOUR")
    );

    // Then updates: each client ends on the new state, and sees only its keys.
    s.feed(&market[500..], 25).await;
    let want = s.expected();
    let want_p0: BTreeMap<String, String> = want
        .clone()
        .into_iter()
        .filter(|(id, _)| id.starts_with("P0-USD-"))
        .collect();
    let seen = read_until(&mut all, &want_p0).await;
    assert!(seen.keys().all(|id| id.starts_with("P0-USD-")), "{:?}", seen.keys());
    let want_two: BTreeMap<String, String> = ["P1-USD-ONE_MINUTE", "P1-USD-ONE_HOUR"]
        .iter()
        .map(|id| (id.to_string(), want[*id].clone()))
        .collect();
    let seen = read_until(&mut two, &want_two).await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["P1-USD-ONE_HOUR", "P1-USD-ONE_MINUTE"]
    );

    // Event ids are <unix-ms>-<sequence>.
    let (ms, seq) = first.id.split_once('-').expect("ms-seq");
    assert!(ms.parse::<i64>().expect("ms") > 1_700_000_000_000 && seq.parse::<u64>().is_ok());
    s.server.stop().await;
}

#[tokio::test]
async fn a_stalled_client_skips_states_but_ends_on_the_latest_and_slows_nobody() {
    let mut s = setup(1, HubConfig::default()).await;
    let addr = s.server.addr();
    let mut slow = http::sse(addr, "/stream?product=P0-USD", &[], Some(4096)).await;
    let mut fast = http::sse(addr, "/stream?product=P0-USD&granularity=ONE_DAY", &[], None).await;
    // 4 000 outputs of 8 updates each, synced every 5 so that they do not all
    // coalesce: megabytes of events, more than the socket and hyper buffers
    // hold, while `slow` reads nothing.
    let market = common::market(1, 4_000, 5);
    for chunk in market.chunks(5) {
        s.feed(chunk, 1).await;
    }
    let want = s.expected();
    let day = "P0-USD-ONE_DAY".to_string();
    read_until(&mut fast, &BTreeMap::from([(day.clone(), want[&day].clone())])).await;

    let stats = s.server.hub().stats();
    assert!(
        stats.skipped.load(Ordering::Relaxed) > 0,
        "the stalled client skipped nothing"
    );
    assert!(
        stats.largest_mailbox.load(Ordering::Relaxed) <= 8,
        "a mailbox held more than its 8 keys"
    );
    // It resumes and ends on the latest state of every key.
    let seen = read_until(&mut slow, &want).await;
    assert_eq!(seen, want);
    s.server.stop().await;
}

#[tokio::test]
async fn a_stuck_client_is_cut_off_and_a_gone_one_cleaned_up() {
    let hub = HubConfig {
        stuck_after: Duration::from_millis(300),
        ..HubConfig::default()
    };
    let mut s = setup(1, hub).await;
    let addr = s.server.addr();
    let mut stuck = http::sse(addr, "/stream?product=P0-USD", &[], Some(4096)).await;
    let gone = http::sse(addr, "/stream?product=P0-USD&granularity=ONE_MINUTE", &[], None).await;
    assert_eq!(s.server.hub().stats().clients.load(Ordering::Relaxed), 2);
    drop(gone);
    // Feed while it reads nothing: its socket buffers fill, then its mailbox
    // holds undelivered states, and once they have waited past the limit the
    // hub cuts it off.
    let market = common::market(1, 4_000, 9);
    for chunk in market.chunks(5) {
        s.feed(chunk, 1).await; // a sync per 5 outputs: they do not all coalesce
    }
    let stats = s.server.hub().stats();
    assert!(
        stats.skipped.load(Ordering::Relaxed) > 0,
        "the client never fell behind"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.stuck.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck client was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Its connection is cut: reading what the kernel holds ends in EOF.
    stuck.until_closed().await;
    // Both are gone from the hub.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.clients.load(Ordering::Relaxed) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "clients not cleaned up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stats.disconnects.load(Ordering::Relaxed), 2);
    // And the metrics say so.
    let m = http::get(addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    for line in [
        "spot_sse_clients 0",
        "spot_sse_stuck_disconnects_total 1",
        "spot_sse_disconnects_total 2",
    ] {
        assert!(m.body.lines().any(|l| l == line), "{line} missing from\n{}", m.body);
    }
    let trades = format!("spot_engine_trades_total {}", s.fed.len());
    assert!(m.body.lines().any(|l| l == trades), "{trades}");
    s.server.stop().await;
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_the_current_state_again() {
    let mut s = setup(1, HubConfig::default()).await;
    let market = common::market(1, 200, 3);
    s.feed(&market[..100], 10).await;
    let addr = s.server.addr();
    let path = "/stream?product=P0-USD&granularity=FIVE_MINUTES";
    let mut first = http::sse(addr, path, &[("Datastar-Request", "true")], None).await;
    let e1 = first.event().await.expect("snapshot");
    drop(first);
    s.feed(&market[100..], 10).await;
    let mut again = http::sse(
        addr,
        path,
        &[("Datastar-Request", "true"), ("Last-Event-ID", &e1.id)],
        None,
    )
    .await;
    let e2 = again.event().await.expect("snapshot again");
    let want = s.expected();
    assert_eq!(e2.elements, vec![want["P0-USD-FIVE_MINUTES"].clone()]);
    let seq = |id: &str| {
        id.split_once('-')
            .map(|(_, s)| s.parse::<u64>().expect("seq"))
            .expect("id")
    };
    assert!(seq(&e2.id) > seq(&e1.id));

    // A request head that arrives in pieces: cut inside the method and path
    // (too short to tell it is a stream: hyper serves it) and after the path
    // (the stream is served on the socket, which reads until the head ends).
    // The gap only makes separate segments likely; either way the answer is
    // the same.
    for pieces in [
        [
            "GET /str",
            "eam?product=P0-USD&granularity=FIVE_MINUTES HTTP/1.1\r\nHost: x\r\n\r\n",
        ],
        [
            "GET /stream?product=P0-USD&granularity=FIVE_MINUTES HTTP/1.1\r\nHo",
            "st: x\r\n\r\n",
        ],
    ] {
        let mut split = http::sse_in_pieces(addr, &pieces, std::time::Duration::from_millis(50)).await;
        assert_eq!(split.status, 200, "{pieces:?}");
        assert_eq!(split.header("content-type"), Some("text/event-stream"));
        let e = split.event().await.expect("snapshot");
        assert_eq!(e.elements, vec![want["P0-USD-FIVE_MINUTES"].clone()], "{pieces:?}");
    }
    s.server.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_get_a_short_4xx_and_the_page_escapes() {
    let s = setup(9, HubConfig::default()).await;
    let addr = s.server.addr();
    let many: String = (0..9).map(|i| format!("product=P{i}-USD&")).collect();
    let long = format!("/stream?product=P0-USD&pad={}", "x".repeat(5000));
    for (path, status) in [
        ("/stream".to_string(), 400),
        ("/stream?product=NOPE-USD".to_string(), 404),
        ("/stream?product=NOPE".to_string(), 404),
        ("/stream?product=P0-USD&granularity=ONE_WEEK".to_string(), 400),
        (
            "/stream?product=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_string(),
            404,
        ),
        (format!("/stream?{many}"), 400),
        (long, 414),
    ] {
        let r = http::get(addr, &path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
        assert!(!r.body.contains('<') && !r.body.contains("NOPE") && !r.body.contains("ONE_WEEK"));
    }

    // A request head past the stream's limit (8 KB), and one that is not HTTP.
    let huge = "y".repeat(9000);
    let r = http::request(addr, "GET", "/stream?product=P0-USD", &[("x-pad", &huge)], b"").await;
    assert_eq!(r.status, 431, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let r = http::request(addr, "GET", "/stream?product=P0-USD HTTP/9\u{0}", &[], b"").await;
    assert_eq!(r.status, 400, "{}", r.body);

    let page = http::get(addr, "/?product=P3-USD&granularity=ONE_HOUR&granularity=ONE_DAY").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    let b = &page.body;
    assert!(b.contains(r#"<spot-candle id="P3-USD-ONE_HOUR" data-product="P3-USD" data-granularity="ONE_HOUR">"#));
    assert!(b.contains(r#"id="P3-USD-ONE_DAY""#) && !b.contains(r#"id="P3-USD-ONE_MINUTE""#));
    assert!(b.contains(
        "data-init=\"@get(&#39;/stream?product=P3-USD&amp;granularity=ONE_HOUR&amp;granularity=ONE_DAY&#39;, {retry: &#39;always&#39;"
    ));
    // The chart: history from the API, then the element of the chosen pair.
    assert!(b.contains(r#"<section id="market" data-product="P3-USD" data-chart="ONE_HOUR">"#));
    assert!(b.contains(r#"<div id="chart"></div>"#));
    // A policy behind the element check: no inline script or style runs.
    let csp = page
        .header("content-security-policy")
        .expect("a Content-Security-Policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self' http://127.0.0.1:9 'unsafe-eval';"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !b.contains("<script>") && !b.contains("<style>") && !b.contains(" onerror=") && !b.contains(" style="),
        "inline code in the page"
    );
    for (asset, kind) in [
        ("/assets/page.js", "text/javascript"),
        ("/assets/candle.js", "text/javascript"),
        ("/assets/chart.js", "text/javascript"),
        ("/assets/lightweight-charts.js", "text/javascript"),
        ("/assets/page.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        assert!(b.contains(&format!("\"{asset}?v=")), "{asset} not linked");
        let r = http::get(addr, asset).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.header("content-type").is_some_and(|t| t.starts_with(kind)), "{asset}");
        assert!(!r.body.is_empty());
    }
    let licence = http::get(addr, "/assets/lightweight-charts.LICENSE.txt").await;
    assert!(
        licence.status == 200 && licence.body.contains("Apache License"),
        "the chart library's licence"
    );
    assert!(b.contains("href=\"/assets/lightweight-charts.LICENSE.txt\""));
    assert_eq!(http::get(addr, "/favicon.ico").await.status, 200);
    assert_eq!(http::get(addr, "/assets/nothing.js").await.status, 404);

    // The Datastar client (DATASTAR_URL: a port nothing listens on) is found
    // unreachable at once: pages then leave it out and stream with their own
    // client, with no failed request in the browser.
    let named = r#"<script type="module" id="datastar" src="http://127.0.0.1:9/datastar.js"></script>"#;
    let mut left_out = false;
    for _ in 0..200 {
        if !http::get(addr, "/?product=P3-USD").await.body.contains(named) {
            left_out = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(left_out, "the unreachable Datastar client is still named");

    // Any case finds a product; the rest, whatever its shape, gets a page
    // that says so and leads back, and never shows what was asked.
    let page = http::get(addr, "/?product=p3-usd").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<option value="P3-USD" selected>"#));
    for path in ["/?product=NOPE-USD", "/?product=%22%3E%3Cscript%3E"] {
        let r = http::get(addr, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/html")));
        assert!(r.body.contains(r#"<a id="back" href="/">"#) && r.body.contains(r#"href="/?product=P0-USD""#));
        assert!(!r.body.contains("NOPE") && !r.body.contains("<script>"), "{}", r.body);
    }
    // The chart's granularity is one of the cards'.
    let page = http::get(addr, "/?product=P3-USD&granularity=ONE_DAY&chart=ONE_MINUTE").await;
    assert!(page.body.contains(r#"data-chart="ONE_DAY""#));
    s.server.stop().await;
}

#[tokio::test]
async fn another_origin_gets_the_stream_and_the_api_only_when_allowed() {
    let mut s = setup(2, HubConfig::default()).await;
    let market = common::market(2, 50, 3);
    s.feed(&market, 25).await;
    let addr = s.server.addr();
    let allowed = ("Origin", ALLOWED);
    let other = ("Origin", "http://evil.example");

    // Datastar's header makes the browser ask first.
    let ask = |origin| {
        [
            origin,
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "datastar-request"),
        ]
    };
    for path in ["/stream?product=P0-USD", "/api/candles?product=P0-USD", "/api/products"] {
        let r = http::request(addr, "OPTIONS", path, &ask(allowed), b"").await;
        assert_eq!(r.status, 204, "{path}: {}", r.body);
        assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED), "{path}");
        assert!(
            r.header("access-control-allow-headers")
                .is_some_and(|h| h.contains("datastar-request")),
            "{path}"
        );
        let r = http::request(addr, "OPTIONS", path, &ask(other), b"").await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.header("access-control-allow-origin").is_none(), "{path}");
    }

    // The stream itself (served on the raw socket) and its refusals.
    let mut stream = http::sse(addr, "/stream?product=P0-USD&granularity=ONE_MINUTE", &[allowed], None).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(stream.header("vary"), Some("origin"));
    assert!(stream.event().await.is_some(), "the snapshot");
    let stream = http::sse(addr, "/stream?product=P0-USD", &[other], None).await;
    assert_eq!(stream.status, 200);
    assert!(stream.header("access-control-allow-origin").is_none());
    let r = http::request(addr, "GET", "/stream?product=NOPE-USD", &[allowed], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(ALLOWED),
        "an allowed origin reads why"
    );

    // The API; not the page, the metrics or health.
    let r = http::request(addr, "GET", "/api/products", &[allowed], b"").await;
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    let r = http::request(addr, "GET", "/api/products", &[other], b"").await;
    assert!(r.header("access-control-allow-origin").is_none());
    for path in ["/", "/metrics", "/readyz"] {
        let r = http::request(addr, "GET", path, &[allowed], b"").await;
        assert!(r.header("access-control-allow-origin").is_none(), "{path}");
    }
    s.server.stop().await;
}
