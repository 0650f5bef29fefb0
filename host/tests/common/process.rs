//! The real `spot-server` process, as an operator runs it: configured by
//! environment, JSON logs read line by line, stopped by its PID; optionally
//! with its wall clock moved (libfaketime) to a chosen time of day.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::http::get;

/// A running `spot-server` and the JSON log lines it wrote.
pub struct Process {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub logs: mpsc::UnboundedReceiver<serde_json::Value>,
    /// Every stdout line, kept for the failure message.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// The start-up summary line.
    pub started: serde_json::Value,
}

/// Start the binary with exactly `env` (plus JSON logs) and wait for its
/// start-up line, which names the address it bound (`PORT=0`).
pub async fn spawn(env: &[(&str, String)]) -> Process {
    spawn_at(env, None).await
}

/// Debian's libfaketime (package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// [`spawn`] with the process's wall clock `offset_s` seconds from the real
/// one (libfaketime; the monotonic clock, which timers use, is left alone).
pub async fn spawn_at(env: &[(&str, String)], offset_s: Option<i64>) -> Process {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_spot-server"));
    command.env_clear().envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    if let Some(offset) = offset_s {
        assert!(
            std::path::Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: `apt-get install faketime` (make test installs it)"
        );
        command
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME", format!("{offset:+}"))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let mut child = command
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn spot-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut logs) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().unwrap().push(line.clone());
            let json: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("LOG_FORMAT=json wrote a non-JSON line ({e}): {line}"));
            let _ = tx.send(json);
        }
    });
    let started = until_log(&mut logs, &seen, "spot-server started").await;
    let port: u16 = started["addr"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no addr in {started}"));
    Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        logs,
        seen,
        started,
    }
}

/// The next log line whose message starts with `message` (60 s at most).
pub async fn until_log(
    logs: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    seen: &Mutex<Vec<String>>,
    message: &str,
) -> serde_json::Value {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = logs.recv().await {
            assert!(line["level"].is_string(), "a log line without a level: {line}");
            assert!(
                line["severity"].is_string(),
                "a log line without Cloud Logging's severity: {line}"
            );
            if line["message"].as_str().is_some_and(|m| m.starts_with(message)) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        _ => panic!(
            "no {message:?} log line; stdout was:\n{}",
            seen.lock().unwrap().join("\n")
        ),
    }
}

impl Process {
    /// A line already written whose message starts with `message` (also the
    /// ones before the start-up line, which [`Process::until_log`] is past).
    pub fn logged(&self, message: &str) -> Option<serde_json::Value> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(message)))
    }

    /// The next log line whose message starts with `message`.
    pub async fn until_log(&mut self, message: &str) -> serde_json::Value {
        until_log(&mut self.logs, &self.seen, message).await
    }

    /// SIGTERM, then the exit status and how long the exit took.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().expect("pid").to_string();
        let sent = Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(kill.success());
        // Cloud Run kills 10 s after SIGTERM.
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("spot-server still running 10 s after SIGTERM")
            .expect("wait");
        (status, sent.elapsed())
    }

    /// SIGKILL: no drain, no final flush, nothing recorded at the stop.
    pub async fn kill9(mut self) {
        let pid = self.child.id().expect("pid").to_string();
        let kill = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(kill.success());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("spot-server still running after SIGKILL");
    }

    /// The value of a counter or gauge in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let body = get(self.addr, "/metrics").await.body;
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Wait until `server`'s backfill is done and no repair waits.
pub async fn settled(server: &Process) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if server.metric("spot_backfill_done").await == 1.0 && server.metric("spot_repair_windows_pending").await == 0.0
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backfill or a repair never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process's wall clock under libfaketime: the real one moved by whole seconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// What [`spawn_at`] takes.
    pub offset_s: i64,
}

impl Clock {
    /// A clock that reads `secs_of_day` (UTC) of today's date now.
    pub fn at(secs_of_day: i64) -> Clock {
        let now_s = spot_fake_coinbase::now_ms().div_euclid(1000);
        Clock {
            offset_s: now_s.div_euclid(86_400) * 86_400 + secs_of_day - now_s,
        }
    }

    /// What the process's clock reads now, unix ms.
    pub fn now_ms(&self) -> i64 {
        spot_fake_coinbase::now_ms() + self.offset_s * 1000
    }

    /// Wait for the process's clock to pass `ms` (when what is under test is
    /// what the wall clock does: a bucket ends).
    pub async fn sleep_until(&self, ms: i64) {
        let wait = ms - self.now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
}
