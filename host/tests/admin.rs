//! Hot swap through the real HTTP API, with real compiled components, a real
//! PostgreSQL and the fake Coinbase feeding the server over real sockets.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use common::fake::{feed_config, past_minute, repair_config, stored_equal_log, wait_until, wait_up};
use common::http::{self, Response};
use spot_fake_coinbase::{Fake, FakeConfig};
use spot_host::config::Config;
use spot_host::server::{Options, Server};
use spot_testkit::pg::Cluster;
use spot_wire::Fixed;

const TOKEN: &str = "s3cret-admin-token";

fn products() -> Vec<String> {
    vec!["BTC-USD".into(), "ETH-USD".into(), "SOL-USD".into()]
}

async fn server(pg: &Cluster, fake: &Fake, token: Option<&str>) -> Server {
    server_with(pg, fake, token, &common::component_path("spot_guest")).await
}

async fn server_with(pg: &Cluster, fake: &Fake, token: Option<&str>, component: &std::path::Path) -> Server {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", pg.url("postgres")),
        ("COMPONENT_PATH", component.display().to_string()),
        ("DATASTAR_URL", common::OFFLINE_DATASTAR.to_string()),
        ("COINBASE_WS_URL", fake.ws_url()),
        ("COINBASE_REST_URL", fake.rest_url()),
        ("COINBASE_REST_RATE", "200".into()),
        ("PRODUCTS", products().join(",")),
        // Any origin may use the stream and the API; never the admin routes.
        ("ALLOWED_ORIGINS", "*".into()),
    ]);
    if let Some(t) = token {
        vars.insert("ADMIN_TOKEN", t.to_string());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let options = Options {
        engine: common::config(),
        limits: common::test_limits(),
        bind: Some(([127, 0, 0, 1], 0).into()),
        feed: Some(feed_config(fake)),
        repair: repair_config(),
        component_poll: Some(Duration::from_millis(50)),
        // These tests feed trades into minutes of the last hour, some of
        // them for seconds. The audit settles a minute once it is over for
        // this long (2 minutes by default), and trades of a settled minute
        // no longer count: it would race the feeders. Here it looks at
        // older minutes only, and these tests are not about it.
        audit_settle: Duration::from_secs(3600),
        ..Options::default()
    };
    let server = Server::start(&config, options).await.expect("start");
    wait_up(&server).await;
    server
}

/// The fake exchange and a database, for one test.
async fn parts() -> (Fake, Cluster) {
    common::trace();
    let fake = Fake::start(FakeConfig {
        products: products(),
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    (fake, Cluster::temporary().expect("cluster"))
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(common::component_path(name)).expect("component")
}

async fn put(server: &Server, body: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    http::request(
        server.addr(),
        "PUT",
        "/admin/component",
        &[("Authorization", &auth), ("Content-Type", "application/wasm")],
        body,
    )
    .await
}

/// `method path` with the admin token and no body.
async fn call(server: &Server, method: &str, path: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    http::request(server.addr(), method, path, &[("Authorization", &auth)], b"").await
}

async fn status(server: &Server) -> serde_json::Value {
    let r = call(server, "GET", "/admin/component").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_its_token_and_is_absent_without_one() {
    let (fake, pg) = parts().await;
    let guest = wasm("spot_guest");
    let other = wasm("spot_test_misbehave");

    let off = server(&pg, &fake, None).await;
    for (method, path) in [
        ("GET", "/admin/component"),
        ("PUT", "/admin/component"),
        ("POST", "/admin/component/rollback"),
    ] {
        let r = http::request(
            off.addr(),
            method,
            path,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            &other,
        )
        .await;
        assert_eq!(r.status, 404, "{method} {path} exists without ADMIN_TOKEN");
    }
    off.stop().await;

    let s = server(&pg, &fake, Some(TOKEN)).await;
    let origin = ("Origin", "http://elsewhere.example");
    let preflight = [origin, ("Access-Control-Request-Method", "PUT")];
    let r = http::request(s.addr(), "OPTIONS", "/admin/component", &preflight, b"").await;
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "admin answered a preflight"
    );
    let r = http::request(s.addr(), "GET", "/admin/component", &[origin], b"").await;
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "admin answered another origin"
    );
    let r = http::request(s.addr(), "GET", "/api/products", &[origin], b"").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://elsewhere.example")
    );
    let wasm_type = ("Content-Type", "application/wasm");
    let r = http::request(s.addr(), "PUT", "/admin/component", &[wasm_type], &other).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    for wrong in ["Bearer nope", "Bearer s3cret-admin-toke", "Basic czNjcmV0", TOKEN] {
        let r = http::request(
            s.addr(),
            "PUT",
            "/admin/component",
            &[wasm_type, ("Authorization", wrong)],
            &other,
        )
        .await;
        assert_eq!(r.status, 403, "{wrong}");
    }
    let auth = format!("Bearer {TOKEN}");
    let r = http::request(
        s.addr(),
        "PUT",
        "/admin/component",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        &other,
    )
    .await;
    assert_eq!(r.status, 415);
    let r = put(&s, b"<html>not wasm</html>").await;
    assert_eq!(r.status, 415);
    // A 64 MiB upload of something else is refused at its first bytes: the
    // answer comes while the rest has not been sent.
    let mut socket = tokio::net::TcpStream::connect(s.addr()).await.expect("connect");
    let head = format!(
        "PUT /admin/component HTTP/1.1\r\nHost: spot\r\nAuthorization: {auth}\r\n\
         Content-Type: application/wasm\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
        .await
        .expect("head");
    tokio::io::AsyncWriteExt::write_all(&mut socket, &[0u8; 4096])
        .await
        .expect("first bytes");
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut socket, &mut answer),
    )
    .await
    .expect("answered before the body was sent")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let mut huge = b"\0asm".to_vec();
    huge.resize((64 << 20) + 1, 0);
    let r = put(&s, &huge).await;
    assert_eq!(r.status, 413, "{}", r.body);
    drop(huge);
    let r = http::request(
        s.addr(),
        "POST",
        "/admin/component/rollback",
        &[("Authorization", "Bearer x")],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);

    // None of it changed anything.
    let st = status(&s).await;
    assert_eq!(st["active"]["sha256"], sha256(&guest));
    assert_eq!(st["swaps"], 0);
    assert_eq!(st["rollbacks"], 0);
    // Nothing to roll back to yet.
    let r = http::request(
        s.addr(),
        "POST",
        "/admin/component/rollback",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_components_are_refused_with_a_reason_and_the_service_goes_on() {
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let guest = wasm("spot_guest");
    let t = past_minute(4);
    fake.emit("BTC-USD", 10, t);

    let half = guest[..guest.len() / 2].to_vec();
    for (what, body, reason) in [
        (
            "another contract major",
            wasm("spot_test_wrong_contract"),
            "a different major version of the contract",
        ),
        (
            "a forbidden import",
            wasm("spot_test_foreign_import"),
            "which spot does not provide",
        ),
        ("a truncated file", half, "not a valid WebAssembly component"),
        (
            "malformed candles",
            wasm("spot_test_bad_output"),
            "golden run: ingest: malformed",
        ),
    ] {
        let r = put(&s, &body).await;
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        assert!(
            r.body.contains(reason),
            "{what}: the reason is missing from {:?}",
            r.body
        );
        let st = status(&s).await;
        assert_eq!(
            st["active"]["sha256"],
            sha256(&guest),
            "{what} changed the active component"
        );
        assert!(st["last_error"].as_str().unwrap_or("").contains(reason));
    }
    assert_eq!(status(&s).await["refused"], 4);
    fake.emit("ETH-USD", 10, t + 1000);
    stored_equal_log(&s, &fake, &products()).await;
    assert_eq!(http::get(s.addr(), "/readyz").await.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_a_continuous_feed_lose_and_double_nothing_and_survive_a_restart() {
    common::trace();
    let (fake, pg) = parts().await;
    let fake = Arc::new(fake);
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let (guest, other) = (wasm("spot_guest"), wasm("spot_test_misbehave"));

    // Trades flow the whole time, into minutes that are already over.
    let running = Arc::new(AtomicBool::new(true));
    let t0 = past_minute(12);
    let feeder = {
        let (fake, running) = (fake.clone(), running.clone());
        tokio::spawn(async move {
            let mut i = 0i64;
            while running.load(Relaxed) {
                let p = &products()[(i % 3) as usize];
                fake.emit(p, 1 + (i % 4) as usize, t0 + i * 150);
                i += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            i
        })
    };
    let mut pauses = Vec::new();
    for k in 0..20 {
        let body = if k % 2 == 0 { &other } else { &guest };
        let r = put(&s, body).await;
        assert_eq!(r.status, 200, "swap {k}: {}", r.body);
        let j = r.json();
        assert_eq!(j["active"]["sha256"], sha256(body));
        // The pause is measured to the ns (often below 1 µs): never a flat 0.
        let pause = j["pause_us"].as_f64().unwrap_or(0.0);
        assert!(pause > 0.0, "swap {k}: {}", r.body);
        assert!(
            j["prepare_ms"].to_string().len() < 12,
            "prepare_ms rounded: {}",
            j["prepare_ms"]
        );
        pauses.push(pause);
    }
    running.store(false, Relaxed);
    let emitted = feeder.await.expect("feeder");
    println!("{emitted} frames during 20 swaps; pauses (us): {pauses:?}");
    stored_equal_log(&s, &fake, &products()).await;
    let st = status(&s).await;
    assert_eq!(st["swaps"], 20);
    assert_eq!(st["active"]["sha256"], sha256(&guest));
    assert_eq!(st["previous"]["sha256"], sha256(&other));

    // Rollback: back to the other one, state handed over.
    let r = call(&s, "POST", "/admin/component/rollback").await;
    assert_eq!(r.status, 200, "{}", r.body);
    fake.emit("SOL-USD", 5, t0 + 200_000);
    stored_equal_log(&s, &fake, &products()).await;
    let st = status(&s).await;
    assert_eq!(st["active"]["sha256"], sha256(&other));
    assert_eq!(st["rollbacks"], 1);
    let metrics = http::get(s.addr(), "/metrics").await.body;
    assert!(metrics.contains("spot_engine_swaps_total 20"));
    assert!(metrics.contains("spot_engine_rollbacks_total 1"));
    s.stop().await;

    // A restart keeps the component that was active, and the one a
    // rollback returns to.
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let st = status(&s).await;
    assert_eq!(st["active"]["sha256"], sha256(&other));
    assert_eq!(st["previous"]["sha256"], sha256(&guest), "{st}");
    assert!(st["last_swap_pause_us"].is_number());
    // Each batch after the restart goes into a minute of its own (this
    // failed 2 times in 4 when both went into one and the audit still
    // settled minutes of this test: see `server_with`).
    fake.emit("BTC-USD", 5, t0 + 240_000);
    stored_equal_log(&s, &fake, &products()).await;
    let r = call(&s, "POST", "/admin/component/rollback").await;
    assert_eq!(r.status, 200, "rollback after a restart: {}", r.body);
    assert!(r.json()["pause_us"].as_f64().is_some_and(|p| p > 0.0), "{}", r.body);
    assert_eq!(status(&s).await["active"]["sha256"], sha256(&guest));
    fake.emit("BTC-USD", 5, t0 + 300_000);
    stored_equal_log(&s, &fake, &products()).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_after_a_swap_rolls_back_on_its_own() {
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let (guest, other) = (wasm("spot_guest"), wasm("spot_test_misbehave"));
    let t = past_minute(5);
    fake.emit("BTC-USD", 10, t);
    let r = put(&s, &other).await;
    assert_eq!(r.status, 200, "{}", r.body);
    fake.emit("ETH-USD", 10, t + 1000);
    // 668 makes the test component panic: a trap at run time, after the swap.
    fake.emit_priced("BTC-USD", t + 2000, Fixed::from_int(668));
    fake.emit("BTC-USD", 5, t + 3000);
    stored_equal_log(&s, &fake, &products()).await;
    let st = status(&s).await;
    assert_eq!(st["active"]["sha256"], sha256(&guest), "rolled back to the default");
    assert_eq!(st["automatic_rollbacks"], 1);
    assert!(st["last_fault"].as_str().unwrap_or("").contains("rolled back"), "{st}");
    s.stop().await;

    // The rollback is what a restart runs, too.
    let s = server(&pg, &fake, Some(TOKEN)).await;
    assert_eq!(status(&s).await["active"]["sha256"], sha256(&guest));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_at_component_path_is_swapped_in_and_a_half_written_one_never() {
    use std::io::Write;
    let (fake, pg) = parts().await;
    let (guest, other) = (wasm("spot_guest"), wasm("spot_test_misbehave"));
    let dir = std::env::temp_dir().join(format!("spot-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("component.wasm");
    std::fs::write(&path, &guest).expect("write");
    // No ADMIN_TOKEN: the file is the only way in.
    let s = server_with(&pg, &fake, None, &path).await;
    let active = |s: &Server| s.engine().active().borrow().clone();
    let t = past_minute(4);
    fake.emit("BTC-USD", 5, t);

    // An atomic rename (how deploy tools replace files).
    let tmp = dir.join("component.wasm.tmp");
    std::fs::write(&tmp, &other).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    wait_until("the renamed file is swapped in", Duration::from_secs(30), || {
        active(&s) == sha256(&other)
    })
    .await;
    fake.emit("ETH-USD", 5, t + 1000);

    // An in-place write that stops half way: refused, never loaded...
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("open");
    f.write_all(&guest[..guest.len() / 2]).expect("half");
    f.flush().expect("flush");
    wait_until("the half-written file is tried", Duration::from_secs(30), || {
        s.admin().refused.load(Relaxed) >= 1
    })
    .await;
    assert_eq!(active(&s), sha256(&other), "a half-written file never runs");
    // ...and once the write completes, it is swapped in.
    f.write_all(&guest[guest.len() / 2..]).expect("rest");
    f.flush().expect("flush");
    drop(f);
    wait_until("the completed file is swapped in", Duration::from_secs(30), || {
        active(&s) == sha256(&guest)
    })
    .await;
    fake.emit("SOL-USD", 5, t + 2000);
    stored_equal_log(&s, &fake, &products()).await;
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_component_swaps_in_and_renders_its_own_element() {
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let t = past_minute(3);
    fake.emit("BTC-USD", 6, t);
    let r = put(&s, &wasm("spot_example_change")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["active"]["name"], "spot-example-change");
    fake.emit("BTC-USD", 4, t + 1000);
    stored_equal_log(&s, &fake, &products()).await;
    let mut sse = http::sse(s.addr(), "/stream?product=BTC-USD&granularity=ONE_MINUTE", &[], None).await;
    let first = sse.event().await.expect("the current state");
    let element = first.elements.join("\n");
    let want = &fake.candles("BTC-USD", 60)[0];
    let change = spot_wire::Fixed::from_units(want.close.units() - want.open.units());
    assert!(element.contains("id=\"BTC-USD-ONE_MINUTE\""), "{element}");
    assert!(element.contains(&format!("data-change=\"{change}\"")), "{element}");
    assert!(element.contains("data-trades=\"10\""), "{element}");
    s.stop().await;
}

/// A component project made from `templates/new-component` in a directory
/// outside the workspace, as a developer would, built there with cargo:
/// its `.wasm`.
fn component_from_the_template() -> Vec<u8> {
    let spot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dest = std::env::temp_dir()
        .join(format!("spot-template-{}", std::process::id()))
        .join("my-spread");
    let _ = std::fs::remove_dir_all(dest.parent().expect("parent"));
    let made = std::process::Command::new(spot.join("templates/new-component"))
        .arg(&dest)
        .output()
        .expect("templates/new-component");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // Its own target directory, kept under spot's so that a second run
    // compiles nothing again.
    let target = spot.join("target/component-template");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&dest)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .expect("cargo build");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/my_spread.wasm")).expect("the built component");
    let _ = std::fs::remove_dir_all(dest.parent().expect("parent"));
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_made_from_the_template_outside_the_workspace_swaps_in() {
    let wasm = tokio::task::spawn_blocking(component_from_the_template)
        .await
        .expect("build");
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let t = past_minute(3);
    fake.emit("ETH-USD", 6, t);
    let r = put(&s, &wasm).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["active"]["name"], "my-spread");
    fake.emit("ETH-USD", 4, t + 1000);
    stored_equal_log(&s, &fake, &products()).await;
    let mut sse = http::sse(s.addr(), "/stream?product=ETH-USD&granularity=ONE_MINUTE", &[], None).await;
    let element = sse.event().await.expect("the current state").elements.join("\n");
    let want = &fake.candles("ETH-USD", 60)[0];
    let spread = spot_wire::Fixed::from_units(want.high.units() - want.low.units());
    assert!(element.contains("id=\"ETH-USD-ONE_MINUTE\""), "{element}");
    assert!(element.contains(&format!("data-spread=\"{spread}\"")), "{element}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_run_compares_on_live_input_and_swaps_only_on_confirm() {
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let (guest, other) = (wasm("spot_guest"), wasm("spot_test_misbehave"));
    let t = past_minute(4);
    fake.emit("BTC-USD", 5, t);
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/wasm")];
    let r = http::request(s.addr(), "PUT", "/admin/component?shadow=0", &headers, &other).await;
    assert_eq!(r.status, 400);
    let r = http::request(s.addr(), "PUT", "/admin/component?shadow=60", &headers, &other).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A second shadow run does not replace the first in silence.
    let change = wasm("spot_example_change");
    let r = http::request(s.addr(), "PUT", "/admin/component?shadow=60", &headers, &change).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("DELETE /admin/component/shadow"), "{}", r.body);

    // The same rules: everything compared agrees.
    fake.emit("ETH-USD", 5, t + 1000);
    let shadow = wait_for_shadow(&s, |sh| sh["compared"].as_u64().unwrap_or(0) > 0).await;
    assert_eq!(shadow["differing"], 0, "{shadow}");
    assert_eq!(shadow["running"], true);
    // A batch the test component reports with doubled volumes.
    fake.emit_priced("BTC-USD", t + 2000, Fixed::from_int(675));
    let shadow = wait_for_shadow(&s, |sh| sh["differing"].as_u64().unwrap_or(0) > 0).await;
    assert_eq!(shadow["differing"], 8, "one bucket per granularity: {shadow}");
    let example = shadow["examples"][0].as_str().unwrap_or("");
    assert!(
        example.starts_with("BTC-USD ") && example.contains("active o"),
        "{example}"
    );

    // Nothing the shadow produced went anywhere; the active one never changed.
    stored_equal_log(&s, &fake, &products()).await;
    assert_eq!(status(&s).await["active"]["sha256"], sha256(&guest));

    let r = call(&s, "POST", "/admin/component/shadow/confirm").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let st = status(&s).await;
    assert_eq!(st["active"]["sha256"], sha256(&other));
    assert!(st["shadow"].is_null());
    fake.emit("SOL-USD", 5, t + 3000);
    stored_equal_log(&s, &fake, &products()).await;
    assert_eq!(call(&s, "DELETE", "/admin/component/shadow").await.status, 409);
    assert_eq!(call(&s, "POST", "/admin/component/shadow/confirm").await.status, 409);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_run_shows_an_element_only_change() {
    let (fake, pg) = parts().await;
    let s = server(&pg, &fake, Some(TOKEN)).await;
    let t = past_minute(4);
    fake.emit("BTC-USD", 5, t);
    stored_equal_log(&s, &fake, &products()).await;
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/wasm")];
    // The same rules, another element (it adds data-change and more).
    let change = wasm("spot_example_change");
    let r = http::request(s.addr(), "PUT", "/admin/component?shadow=60", &headers, &change).await;
    assert_eq!(r.status, 202, "{}", r.body);
    fake.emit("ETH-USD", 5, t + 1000);
    let shadow = wait_for_shadow(&s, |sh| sh["differing_elements"].as_u64().unwrap_or(0) >= 8).await;
    assert_eq!(shadow["differing"], 0, "the candles agree: {shadow}");
    let example = shadow["examples"][0].as_str().unwrap_or("");
    assert!(
        example.starts_with("ETH-USD ")
            && example.contains("same candle, other element")
            && example.contains("data-change="),
        "{example}"
    );
    assert_eq!(call(&s, "DELETE", "/admin/component/shadow").await.status, 200);
    s.stop().await;
}

/// Poll the shadow report until `done` holds (it changes as inputs arrive).
async fn wait_for_shadow(s: &Server, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shadow = status(s).await["shadow"].clone();
        if done(&shadow) {
            return shadow;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "shadow never got there: {shadow}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
