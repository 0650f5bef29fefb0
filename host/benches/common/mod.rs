//! What the benches that run child processes share: reading their memory
//! and CPU from /proc, and the line protocol they are driven by.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Where the benches' servers would load Datastar from: a port nothing
/// listens on (a bench reaches no internet; no page is loaded anyway).
pub const OFFLINE_DATASTAR: &str = "http://127.0.0.1:9/datastar.js";

/// Resident memory of this process, KB.
pub fn rss_kb() -> u64 {
    rss_of(std::process::id())
}

/// Resident memory of process `pid`, KB (0 when it is gone).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Lines from standard input, for a child process driven by its parent;
/// `None` once the parent closes it.
pub struct StdinLines {
    reader: tokio::io::BufReader<tokio::io::Stdin>,
    line: String,
}

impl StdinLines {
    pub fn new() -> Self {
        StdinLines {
            reader: tokio::io::BufReader::new(tokio::io::stdin()),
            line: String::new(),
        }
    }

    pub async fn next(&mut self) -> Option<&str> {
        self.line.clear();
        match tokio::io::AsyncBufReadExt::read_line(&mut self.reader, &mut self.line).await {
            Ok(n) if n > 0 => Some(self.line.trim()),
            _ => None,
        }
    }
}

/// The fake's market as a parent drives it in a child process: `rate N`
/// (trades/s from now, in frames every `frame`; answers `ok`) and `made`
/// (trades so far).
pub struct Market {
    running: Option<tokio::task::JoinHandle<()>>,
    frame: std::time::Duration,
}

impl Market {
    pub fn new(frame: std::time::Duration) -> Self {
        Market { running: None, frame }
    }

    /// The answer to `line` when it is one of the market's commands.
    pub fn answer(&mut self, fake: &spot_fake_coinbase::Fake, line: &str) -> Option<String> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("rate"), Some(r)) => {
                if let Some(m) = self.running.take() {
                    m.abort();
                }
                let r: u64 = r.parse().unwrap_or(0);
                if r > 0 {
                    self.running = Some(fake.run_market_every(r, self.frame));
                }
                Some("ok".into())
            }
            (Some("made"), _) => Some(fake.made().to_string()),
            _ => None,
        }
    }
}

/// A child process this binary runs, talking in lines.
pub struct Peer {
    pub child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    /// This bench binary again, with `args` (its child mode).
    pub fn spawn(args: &[&str]) -> Peer {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("child process");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Peer { child, stdin, lines }
    }

    /// Send a line, read the answer line.
    pub fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").expect("to child");
        self.stdin.flush().expect("flush");
        self.read()
    }

    /// The next line it writes.
    pub fn read(&mut self) -> String {
        self.lines.next().and_then(|l| l.ok()).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Store `minutes` settled 1-minute candles of each of `products` products
/// (`P0-USD`, `P1-USD`, …) from `first_s` (unix s, a minute's start) in a
/// migrated database, and the coverage an earlier run would have recorded
/// (`covered`: from, through, unix s). With `trade_ids` every minute carries
/// a last trade id (a restart's case: the ids are far above the fake's, so
/// its live trades would count as seen); without, live trades count from the
/// first one.
pub async fn store_minutes(
    pool: &deadpool_postgres::Pool,
    products: usize,
    first_s: i64,
    minutes: i64,
    covered: (i64, i64),
    trade_ids: bool,
) {
    spot_host::storage::migrate(pool).await.expect("migrate");
    if minutes <= 0 {
        return;
    }
    let client = pool.get().await.expect("client");
    client
        .execute(
            r#"INSERT INTO live_candles (exchange, product_id, granularity, "timestamp", open, high, low,
                   close, volume, trades, last_trade_id, complete, revision)
               SELECT 'coinbase', 'P' || p || '-USD', 'ONE_MINUTE', to_timestamp($1::int8 + m * 60),
                      100 + (m % 17) + p % 7, 130, 90, 101 + (m % 13), 3.25 + (m % 5), 10,
                      CASE WHEN $4 THEN p::int8 * 100000000 + m * 10 + 9 END, true, 1
               FROM generate_series(0, $2::int4 - 1) p, generate_series(0, $3::int8 - 1) m"#,
            &[&first_s, &(products as i32), &minutes, &trade_ids],
        )
        .await
        .expect("insert minutes");
    client
        .execute(
            "INSERT INTO history_coverage (exchange, product_id, covered_from, covered_through)
             SELECT 'coinbase', 'P' || p || '-USD', to_timestamp($1::int8), to_timestamp($2::int8)
             FROM generate_series(0, $3::int4 - 1) p",
            &[&covered.0, &covered.1, &(products as i32)],
        )
        .await
        .expect("insert coverage");
}

/// Latency samples from `<spot-candle>` elements whose close is a stamp (the
/// unix µs a trade was made or handed over): one per minute candle, read at
/// `now`. Completed candles are skipped: the clock completes a minute up to
/// a minute after its last trade, and that is not a delivery delay.
///
/// It scans bytes with prebuilt searchers: a bench's clients share the two
/// cores with the server, and decoding every read as text and searching it
/// with `str` patterns was half of the pipeline clients' time at 100k
/// trades/s (their lag then showed as latency the server had not caused).
pub struct Scan {
    element: memchr::memmem::Finder<'static>,
    end: memchr::memmem::FinderRev<'static>,
    minute: memchr::memmem::Finder<'static>,
    complete: memchr::memmem::Finder<'static>,
    close: memchr::memmem::Finder<'static>,
}

const ELEMENT_END: &[u8] = b"</spot-candle>";

impl Scan {
    pub fn new() -> Self {
        Scan {
            element: memchr::memmem::Finder::new(b"<spot-candle "),
            end: memchr::memmem::FinderRev::new(ELEMENT_END),
            minute: memchr::memmem::Finder::new(b"-ONE_MINUTE\""),
            complete: memchr::memmem::Finder::new(b"data-complete=\"true\""),
            close: memchr::memmem::Finder::new(b"data-close=\""),
        }
    }

    /// Where the whole elements of `bytes` end (0: none ends in it).
    pub fn whole(&self, bytes: &[u8]) -> usize {
        self.end.rfind(bytes).map_or(0, |i| i + ELEMENT_END.len())
    }

    /// Push `now - close` of every open minute candle in `elements`.
    pub fn trade_latencies(&self, elements: &[u8], now: i64, out: &mut Vec<i64>) {
        let mut starts = self.element.find_iter(elements).peekable();
        while let Some(from) = starts.next() {
            let el = &elements[from..starts.peek().copied().unwrap_or(elements.len())];
            if self.minute.find(el).is_none() || self.complete.find(el).is_some() {
                continue;
            }
            let Some(at) = self.close.find(el) else { continue };
            let digits = &el[at + self.close.needle().len()..];
            let end = memchr::memchr(b'"', digits).unwrap_or(0);
            if let Some(stamp) = std::str::from_utf8(&digits[..end])
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
            {
                out.push(now - stamp);
            }
        }
    }
}
