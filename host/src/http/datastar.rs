//! Where the page's Datastar client comes from, and whether it can be had.
//!
//! The page loads Datastar from `DATASTAR_URL` (its CDN by default). Where
//! that cannot be reached (offline, as in `make demo`, or behind a firewall),
//! a browser would first try and fail, with an error in its console, before
//! the page's own client takes over. So the server asks once at start (and
//! again every few minutes while it fails): while the URL is known to be
//! unreachable, the page is served without it and streams with its own client
//! straight away. A URL on this server's own origin is never probed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an unreachable URL is asked again.
const RETRY_EVERY: Duration = Duration::from_secs(300);

const UNKNOWN: u8 = 0;
const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

/// The Datastar client's URL and what the last probe found.
#[derive(Debug, Clone)]
pub struct Datastar {
    url: String,
    state: Arc<AtomicU8>,
}

impl Datastar {
    /// The client at `url`, not probed yet (the page names it until a probe
    /// says otherwise).
    pub fn new(url: impl Into<String>) -> Self {
        Datastar {
            url: url.into(),
            state: Arc::new(AtomicU8::new(UNKNOWN)),
        }
    }

    /// The URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the page should name the client: unless a probe found it
    /// unreachable.
    pub fn offered(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNREACHABLE
    }

    /// Probe the URL now and then every [`RETRY_EVERY`] while it fails; ends
    /// once it answered. A relative URL (this server's) is not probed.
    pub fn spawn_probe(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            self.state.store(REACHABLE, Ordering::Relaxed);
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot probe DATASTAR_URL; the page names it as is");
                    return;
                }
            };
            loop {
                match client.head(&this.url).send().await {
                    Ok(r) if r.status().is_success() => {
                        if this.state.swap(REACHABLE, Ordering::Relaxed) == UNREACHABLE {
                            tracing::info!(url = %this.url, "the Datastar client can be reached again; pages name it");
                        }
                        return;
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(r) => format!("answered {}", r.status()),
                            Err(e) => crate::errors::chain(&e),
                        };
                        if this.state.swap(UNREACHABLE, Ordering::Relaxed) != UNREACHABLE {
                            tracing::warn!(
                                url = %this.url, error = %why,
                                "the Datastar client cannot be reached from here: pages stream with their own client \
                                 (set DATASTAR_URL to a copy browsers can reach; asked again every 5 minutes)"
                            );
                        }
                    }
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_client_is_not_offered_and_a_local_one_always_is() {
        // A port nothing listens on: refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let d = Datastar::new(format!("http://127.0.0.1:{port}/datastar.js"));
        assert!(d.offered(), "offered until a probe says otherwise");
        let probe = d.spawn_probe().expect("an absolute URL is probed");
        tokio::time::timeout(Duration::from_secs(10), async {
            while d.offered() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the probe found the URL unreachable");
        probe.abort();

        let local = Datastar::new("/static/datastar.js");
        assert!(local.spawn_probe().is_none());
        assert!(local.offered());
    }
}
