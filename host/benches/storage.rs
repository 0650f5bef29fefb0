//! The storage writer against the baselines, in one run on one throwaway
//! PostgreSQL cluster with default durability (fsync, synchronous commit on):
//!
//! - one upsert per row (autocommit): what a naive writer does;
//! - raw UNNEST: pre-coalesced 500-row batches sent back to back, no writer;
//! - the writer: engine outputs of 56 updates in, as the service runs it.
//!
//! Workload (as in `../shared/reference/postgres-upserts.md`): 700 products ×
//! 8 granularities = 5,600 keys; each tick updates every key once and ~2.5 %
//! of them move to a new bucket. Each method has its own `exchange` value so
//! their rows do not interfere. Reports rows/s and ratios; asserts nothing.
//!
//! The writer publishing to the fleet is run three times a round, each with
//! the WAL it wrote per row (`pg_current_wal_lsn`): as migrated
//! (`fleet_updates` arrays compressed with lz4, migration 9), stored
//! uncompressed (migration 8: 9's down step applied) and compressed with
//! TOAST's pglz (PostgreSQL's default: 8's down step too).
//!
//! `make bench` runs it (`cargo bench -p spot-host --bench storage`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use spot_host::engine::{CandleUpdate, Cause, EngineOutput};
use spot_host::storage::upsert::{CandleRow, upsert, upsert_one};
use spot_host::storage::{self, Writer, WriterConfig};
use spot_testkit::pg::Cluster;
use spot_wire::{Candle, Fixed, Granularity};
use tokio::sync::mpsc;

const PRODUCTS: usize = 700;
const KEYS: usize = PRODUCTS * 8;
const DAY: i64 = 1_704_499_200;

/// The 5,600 rows of tick `tick`.
fn tick_rows(products: &[Arc<str>], tick: usize) -> Vec<(Arc<str>, Candle)> {
    let mut rows = Vec::with_capacity(KEYS);
    for (i, p) in products.iter().enumerate() {
        for (j, g) in Granularity::ALL.into_iter().enumerate() {
            let key = i * 8 + j;
            let bucket = ((tick + key) / 40) as i64;
            let price = Fixed::from_units((20_000 + (tick * 7 + key) % 1000) as i128 * 10i128.pow(16));
            rows.push((
                p.clone(),
                Candle {
                    product: i as u32,
                    granularity: g,
                    start: DAY + bucket * g.seconds(),
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    volume: Fixed::from_units((tick * 1_000_003 + key) as i128 * 10i128.pow(12)),
                    last_trade_id: Some((tick * KEYS + key) as u64),
                    trades: tick as u32 + 1,
                    complete: false,
                    authoritative: false,
                },
            ));
        }
    }
    rows
}

struct Revisions(i64);
impl Revisions {
    fn next(&mut self) -> i64 {
        self.0 += 1;
        self.0
    }
}

async fn one_per_row(
    pool: &deadpool_postgres::Pool,
    products: &[Arc<str>],
    ticks: std::ops::Range<usize>,
    rev: &mut Revisions,
) -> (usize, Duration) {
    let client = pool.get().await.expect("connection");
    let started = Instant::now();
    let mut n = 0;
    for t in ticks {
        for (p, c) in tick_rows(products, t) {
            let row = CandleRow {
                product: &p,
                candle: &c,
                revision: rev.next(),
            };
            upsert_one(&client, "bench-row", row).await.expect("upsert");
            n += 1;
        }
    }
    (n, started.elapsed())
}

async fn raw_unnest(
    pool: &deadpool_postgres::Pool,
    products: &[Arc<str>],
    ticks: std::ops::Range<usize>,
    rev: &mut Revisions,
) -> (usize, Duration) {
    let client = pool.get().await.expect("connection");
    let started = Instant::now();
    let mut n = 0;
    for t in ticks {
        let rows = tick_rows(products, t);
        for chunk in rows.chunks(500) {
            let revs: Vec<i64> = chunk.iter().map(|_| rev.next()).collect();
            upsert(
                &client,
                "bench-unnest",
                chunk.iter().zip(&revs).map(|((p, c), r)| CandleRow {
                    product: p,
                    candle: c,
                    revision: *r,
                }),
            )
            .await
            .expect("upsert");
            n += chunk.len();
        }
    }
    (n, started.elapsed())
}

/// Returns (updates fed, rows written, time until all stored). `paced`: wait
/// until each tick is stored before sending the next, so nothing coalesces
/// across ticks and every update becomes a row (the writer's write rate);
/// otherwise send as fast as possible (the rate it absorbs a flood at).
async fn writer(
    pool: &deadpool_postgres::Pool,
    products: &[Arc<str>],
    ticks: std::ops::Range<usize>,
    paced: bool,
    publish: bool,
) -> (usize, u64, Duration) {
    let (tx, rx) = mpsc::channel(256);
    let writer = Writer::spawn(
        pool.clone(),
        rx,
        WriterConfig {
            exchange: "bench-writer".into(),
            // As a server writes: each flush's changed rows also go to the
            // fleet (fleet_updates) with one NOTIFY.
            publish: publish.then(|| Arc::from("bench-writer")),
            ..WriterConfig::default()
        },
    );
    let started = Instant::now();
    let mut fed = 0;
    for t in ticks {
        let rows = tick_rows(products, t);
        for chunk in rows.chunks(56) {
            fed += chunk.len();
            let out = EngineOutput {
                more: false,
                cause: Cause::Trades,
                updates: chunk
                    .iter()
                    .map(|(p, c)| CandleUpdate {
                        product: p.clone(),
                        candle: *c,
                        element: bytes::Bytes::new(),
                    })
                    .collect(),
                gaps: Vec::new(),
                duplicates: 0,
                ignored: 0,
            };
            tx.send(Arc::new(out)).await.expect("send");
        }
        if paced {
            writer.sync().await.expect("sync");
        }
    }
    writer.sync().await.expect("sync");
    let took = started.elapsed();
    let written = writer.stats().rows_written.load(Ordering::Relaxed);
    drop(tx);
    writer.finish().await;
    (fed, written, took)
}

/// Where the WAL ends now, in bytes.
async fn wal_lsn(pool: &deadpool_postgres::Pool) -> f64 {
    let client = pool.get().await.expect("connection");
    let row = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8", &[])
        .await
        .expect("pg_current_wal_lsn");
    row.get(0)
}

/// How `fleet_updates`' arrays are stored; rows inserted afterwards are
/// stored so.
#[derive(Clone, Copy)]
enum Arrays {
    /// As migrated: lz4.
    Lz4,
    /// Out of line, uncompressed (migration 8).
    Uncompressed,
    /// PostgreSQL's default: compressed with pglz.
    Pglz,
}

const LZ4_UP: &str = include_str!("../../migrations/0009_fleet_updates_lz4.up.sql");
const LZ4_DOWN: &str = include_str!("../../migrations/0009_fleet_updates_lz4.down.sql");
const UNCOMPRESSED_UP: &str = include_str!("../../migrations/0008_fleet_updates_uncompressed.up.sql");
const UNCOMPRESSED_DOWN: &str = include_str!("../../migrations/0008_fleet_updates_uncompressed.down.sql");

impl Arrays {
    /// The migrations' steps from the migrated storage to this one, and back.
    fn steps(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Arrays::Lz4 => (&[], &[]),
            Arrays::Uncompressed => (&[LZ4_DOWN], &[LZ4_UP]),
            Arrays::Pglz => (&[LZ4_DOWN, UNCOMPRESSED_DOWN], &[UNCOMPRESSED_UP, LZ4_UP]),
        }
    }
}

async fn execute(pool: &deadpool_postgres::Pool, steps: &[&str]) {
    let client = pool.get().await.expect("connection");
    for sql in steps {
        client.batch_execute(sql).await.expect("fleet_updates storage");
    }
}

/// [`writer`] paced and publishing, with `fleet_updates`' arrays stored as
/// `arrays` says: (rows/s, WAL bytes per row).
async fn publishing(
    pool: &deadpool_postgres::Pool,
    products: &[Arc<str>],
    ticks: std::ops::Range<usize>,
    arrays: Arrays,
) -> (f64, f64) {
    let (there, back) = arrays.steps();
    execute(pool, there).await;
    let before = wal_lsn(pool).await;
    let (_, written, d) = writer(pool, products, ticks, true, true).await;
    let wal = wal_lsn(pool).await - before;
    execute(pool, back).await;
    (written as f64 / d.as_secs_f64(), wal / written as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pg = Cluster::temporary_with(true).expect("cluster");
        let pool = storage::pool(&pg.url("postgres"), 4).expect("pool");
        storage::migrate(&pool).await.expect("migrate");
        let products: Vec<Arc<str>> = (0..PRODUCTS).map(|i| Arc::from(format!("P{i}-USD"))).collect();
        let mut rev = Revisions(0);

        // Warm-up: every method inserts its first tick (all new rows).
        one_per_row(&pool, &products, 0..1, &mut rev).await;
        raw_unnest(&pool, &products, 0..1, &mut rev).await;
        writer(&pool, &products, 0..1, true, false).await;

        let (mut row_rates, mut unnest_rates, mut writer_rates, mut flood_rates) = (vec![], vec![], vec![], vec![]);
        let (mut publishing_rates, mut publishing_wal, mut writer_wal) = (vec![], vec![], vec![]);
        let (mut uncompressed_rates, mut uncompressed_wal, mut pglz_rates, mut pglz_wal) = (vec![], vec![], vec![], vec![]);
        let mut tick = 1;
        for round in 0..3 {
            let (n, d) = one_per_row(&pool, &products, tick..tick + 1, &mut rev).await;
            row_rates.push(n as f64 / d.as_secs_f64());
            let (n, d) = raw_unnest(&pool, &products, tick..tick + 10, &mut rev).await;
            unnest_rates.push(n as f64 / d.as_secs_f64());
            let before = wal_lsn(&pool).await;
            let (fed, written, d) = writer(&pool, &products, tick + 10..tick + 20, true, false).await;
            writer_wal.push((wal_lsn(&pool).await - before) / written as f64);
            assert_eq!(fed as u64, written, "paced: every update is a row");
            writer_rates.push(written as f64 / d.as_secs_f64());
            let (fed, written, d) = writer(&pool, &products, tick + 20..tick + 30, false, true).await;
            flood_rates.push(fed as f64 / d.as_secs_f64());
            let (rate, wal) = publishing(&pool, &products, tick + 30..tick + 40, Arrays::Lz4).await;
            publishing_rates.push(rate);
            publishing_wal.push(wal);
            let (rate, wal) = publishing(&pool, &products, tick + 40..tick + 50, Arrays::Uncompressed).await;
            uncompressed_rates.push(rate);
            uncompressed_wal.push(wal);
            let (rate, wal) = publishing(&pool, &products, tick + 50..tick + 60, Arrays::Pglz).await;
            pglz_rates.push(rate);
            pglz_wal.push(wal);
            println!(
                "round {round}: one-per-row {:>6.0} rows/s | raw UNNEST {:>6.0} rows/s | writer {:>6.0} rows/s ({:.0} B of WAL a row) | publishing to the fleet {:>6.0} ({:.0} B), its arrays uncompressed {:>6.0} ({:.0} B), with pglz {:>6.0} ({:.0} B) | flood: {:>7.0} updates/s absorbed ({written} rows for {fed} updates)",
                row_rates[round], unnest_rates[round], writer_rates[round], writer_wal[round],
                publishing_rates[round], publishing_wal[round], uncompressed_rates[round], uncompressed_wal[round],
                pglz_rates[round], pglz_wal[round], flood_rates[round]
            );
            tick += 60;
        }
        let (row, unnest, writer, flood) =
            (median(row_rates), median(unnest_rates), median(writer_rates), median(flood_rates));
        let (publishing, uncompressed, pglz) =
            (median(publishing_rates), median(uncompressed_rates), median(pglz_rates));
        let (writer_wal, publishing_wal, uncompressed_wal, pglz_wal) = (
            median(writer_wal),
            median(publishing_wal),
            median(uncompressed_wal),
            median(pglz_wal),
        );
        println!();
        println!("median rows/s: one-per-row {row:.0}, raw UNNEST x500 {unnest:.0}, writer {writer:.0}");
        println!("a flood is absorbed at {flood:.0} updates/s (coalesced before writing)");
        println!("writer / one-per-row = {:.1}x   (target >= 15x)", writer / row);
        println!("writer / raw UNNEST  = {:.0}%   (target >= 80%)", 100.0 * writer / unnest);
        println!(
            "writer publishing to the fleet / writer alone = {:.0}%   (the fleet_updates row and the NOTIFY of each flush)",
            100.0 * publishing / writer
        );
        println!(
            "WAL a row: the writer alone {writer_wal:.0} B, publishing {publishing_wal:.0} B (fleet_updates with lz4), {uncompressed_wal:.0} B uncompressed, {pglz_wal:.0} B with pglz"
        );
        println!(
            "fleet_updates with lz4 (as migrated) / uncompressed: {:.2}x the rows/s, {:.2}x the WAL; / pglz: {:.2}x the rows/s, {:.2}x the WAL",
            publishing / uncompressed,
            publishing_wal / uncompressed_wal,
            publishing / pglz,
            publishing_wal / pglz_wal
        );
    });
}
