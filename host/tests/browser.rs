//! The page in a real browser: Debian's Chromium driven by playwright-core
//! (`host/tests/browser/check.mjs`) against the server fed by the fake
//! Coinbase. `make test` installs Chromium and the npm package
//! (`make browser-deps`); without them this test fails and says so.
//!
//! This side runs the server and the market and tells the script, one JSON
//! line at a time, which candles the page must show; the script answers
//! `ok <step>` or `FAIL: ...`.

mod common;

use common::fake::{feed_config, past_minute, repair_config, stored_equal_log, wait_up};

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use spot_fake_coinbase::{Fake, HOSTILE_PRODUCT};
use spot_host::server::{Options, Server};
use spot_wire::Granularity;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The newest candle of `product` at every granularity, from the fake's log,
/// as the element ids and attribute values the page must show.
fn expected(fake: &Fake, product: &str) -> Value {
    let mut out = serde_json::Map::new();
    for g in Granularity::ALL {
        let c = fake.candles(product, g.seconds()).pop().expect("candles");
        out.insert(format!("{product}-{}", g.name()), attributes(&c));
    }
    Value::Object(out)
}

/// A candle as the attribute values of its element.
fn attributes(c: &spot_fake_coinbase::RefCandle) -> Value {
    json!({
        "timestamp": c.start.to_string(),
        "open": c.open.to_string(),
        "high": c.high.to_string(),
        "low": c.low.to_string(),
        "close": c.close.to_string(),
        "volume": c.volume.to_string(),
    })
}

/// Every candle of `product` at one minute, oldest first: the bars the chart
/// must hold.
fn chart(fake: &Fake, product: &str) -> Value {
    Value::Array(fake.candles(product, 60).iter().map(attributes).collect())
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_candles_in_chromium_and_never_runs_hostile_input() {
    common::trace();
    let script_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        chromium().exists() && script_dir.join("node_modules/playwright-core").exists(),
        "Chromium ({}) or playwright-core is missing: run `make browser-deps` (make test does)",
        chromium().display()
    );

    let products: Vec<String> = ["BTC-USD", "ETH-USD"].map(String::from).to_vec();
    let (fake, pg) = common::fake::fake_and_database(&products).await;
    // Another origin (another port): a page there uses the stream and the API.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let elsewhere_origin = format!("http://{}", elsewhere.local_addr().expect("addr"));
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html(include_str!("browser/elsewhere.html")) }),
    );
    let elsewhere_task = tokio::spawn(async move { axum::serve(elsewhere, page).await });
    let mut env = common::fake::server_env(&pg, &fake);
    env.push(("ALLOWED_ORIGINS", elsewhere_origin.clone()));
    let vars: std::collections::HashMap<&str, String> = env.into_iter().collect();
    let config = spot_host::config::Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let server = Server::start(
        &config,
        Options {
            limits: common::test_limits(),
            bind: Some(([127, 0, 0, 1], 0).into()),
            feed: Some(feed_config(&fake)),
            repair: repair_config(),
            ..Options::default()
        },
    )
    .await
    .expect("server");
    assert_eq!(server.products(), products.as_slice(), "the hostile listing is skipped");
    wait_up(&server).await;

    // Candles of earlier minutes and of this one.
    let t = past_minute(3);
    for p in &products {
        fake.emit(p, 10, t);
        fake.emit(p, 5, spot_fake_coinbase::now_ms());
    }
    stored_equal_log(&server, &fake, &products).await;

    let mut browser = tokio::process::Command::new("node")
        .arg(script_dir.join("check.mjs"))
        .arg(format!("http://{}", server.addr()))
        .env("CHROMIUM", chromium())
        .envs(std::env::var_os("SCREENSHOTS").map(|d| ("SCREENSHOTS", d)))
        .current_dir(&script_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut to = browser.stdin.take().expect("stdin");
    let mut from = tokio::io::BufReader::new(browser.stdout.take().expect("stdout")).lines();
    let mut step = async |message: Value| {
        let name = message["step"].as_str().expect("step").to_string();
        to.write_all(format!("{message}\n").as_bytes())
            .await
            .expect("to the script");
        let answer = tokio::time::timeout(Duration::from_secs(90), from.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser said nothing about {name} in 90 s"))
            .expect("from the script")
            .unwrap_or_else(|| format!("FAIL: the script ended before {name}"));
        eprintln!("browser: {answer}");
        assert!(answer.starts_with(&format!("ok {name}")), "{answer}");
    };

    // The Datastar URL nothing answers is found unreachable: pages leave it
    // out (what the script checks).
    let named = format!("src=\"{}\"", common::OFFLINE_DATASTAR);
    let mut left_out = false;
    for _ in 0..200 {
        if !common::http::get(server.addr(), "/").await.body.contains(&named) {
            left_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(left_out, "the page still names the unreachable Datastar client");

    step(
        json!({"step": "snapshot", "product": "BTC-USD", "expect": expected(&fake, "BTC-USD"),
        "chart": chart(&fake, "BTC-USD")}),
    )
    .await;

    // Live trades while the page is open; the stream carries them.
    fake.emit("BTC-USD", 7, spot_fake_coinbase::now_ms());
    stored_equal_log(&server, &fake, &products).await;
    step(json!({"step": "live", "expect": expected(&fake, "BTC-USD"), "chart": chart(&fake, "BTC-USD")})).await;

    step(json!({"step": "picker", "product": "ETH-USD", "expect": expected(&fake, "ETH-USD")})).await;

    step(json!({"step": "origin", "url": elsewhere_origin})).await;

    step(json!({"step": "hostile", "value": HOSTILE_PRODUCT})).await;
    let status = tokio::time::timeout(Duration::from_secs(30), browser.wait())
        .await
        .expect("the script did not exit")
        .expect("wait");
    assert!(status.success(), "the browser script failed: {status}");
    elsewhere_task.abort();
    server.stop().await;
}
