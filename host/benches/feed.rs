//! Feed parse throughput on one core: Coinbase `market_trades` frames →
//! packed trades, as the connection task does it (parse, product lookup,
//! decimal and time conversion). The baseline, measured in the same run, is
//! serde_json parsing the same frames into a generic `Value` and nothing more.
//!
//! `cargo bench -p spot-host --bench feed`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use spot_host::feed::message::{self, Frame};

fn frame(seq: u64, products: &[String], trades: usize, next_id: &mut u64) -> String {
    let mut list = Vec::with_capacity(trades);
    for i in 0..trades {
        *next_id += 1;
        let p = &products[(*next_id as usize * 7 + i) % products.len()];
        list.push(format!(
            r#"{{"product_id":"{p}","trade_id":"{}","price":"{}.{:02}","size":"0.{:08}","time":"2026-09-30T02:39:59.{:06}Z","side":"{}"}}"#,
            *next_id,
            2000 + *next_id % 900,
            *next_id % 100,
            (*next_id * 7919) % 100_000_000,
            (*next_id * 31) % 1_000_000,
            if next_id.is_multiple_of(2) { "BUY" } else { "SELL" }
        ));
    }
    let kind = if trades > 20 { "snapshot" } else { "update" };
    format!(
        r#"{{"channel":"market_trades","timestamp":"2026-09-30T02:39:59.452764328Z","sequence_num":{seq},"events":[{{"type":"{kind}","trades":[{}]}}]}}"#,
        list.join(",")
    )
}

fn run(label: &str, frames: &[String], f: &mut dyn FnMut(&str) -> usize) -> (f64, f64) {
    // Warm up, then repeat for at least a second.
    for fr in frames.iter().take(1000) {
        black_box(f(fr));
    }
    let start = Instant::now();
    let (mut n_frames, mut n_trades) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        for fr in frames {
            n_trades += f(fr) as u64;
            n_frames += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (fps, tps) = (n_frames as f64 / secs, n_trades as f64 / secs);
    println!("{label:<34} {:>12.0} frames/s {:>12.0} trades/s", fps, tps);
    (fps, tps)
}

fn main() {
    let products: Vec<String> = (0..100).map(|i| format!("P{i}-USD")).collect();
    let ids: HashMap<String, u32> = products.iter().cloned().zip(0..).collect();
    let mut next_id = 846_000_000u64;
    for (name, sizes) in [
        ("updates (1-8 trades)", &[1usize, 2, 3, 5, 8][..]),
        ("snapshots (50 trades)", &[50][..]),
    ] {
        let frames: Vec<String> = (0..2000)
            .map(|i| frame(i as u64, &products, sizes[i % sizes.len()], &mut next_id))
            .collect();
        let bytes: usize = frames.iter().map(String::len).sum();
        println!(
            "\n{name}: {} frames, {} bytes on average",
            frames.len(),
            bytes / frames.len()
        );
        let (base_fps, base_tps) = run("baseline: serde_json::Value", &frames, &mut |text| {
            let v: serde_json::Value = serde_json::from_str(text).expect("json");
            v["events"][0]["trades"].as_array().map_or(0, Vec::len)
        });
        let mut batch = Vec::with_capacity(64);
        let (fps, tps) = run("feed: parse + convert", &frames, &mut |text| {
            batch.clear();
            if let Ok(Frame::Trades { trades, .. }) = message::parse(text) {
                for t in &trades {
                    if let Some(&id) = ids.get(&*t.product_id)
                        && let Ok(trade) = t.to_trade(id)
                    {
                        batch.push(trade);
                    }
                }
            }
            black_box(&batch);
            batch.len()
        });
        println!(
            "ratio feed/baseline: {:.2}x frames/s, {:.2}x trades/s",
            fps / base_fps,
            tps / base_tps
        );
    }
}
