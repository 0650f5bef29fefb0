//! `Pacer`: events at most N per second, evenly spaced, shared by every
//! connection of the process (Coinbase limits connections and subscribe
//! messages per IP: 8/s each).
//!
//! Evenly spaced rather than "N in any window": a burst of N at the start of
//! each window is within the limit where it is sent, but a few milliseconds
//! of jitter on the way shift the bursts into one window at the receiver.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// One event per `1/N` second at most. Waiters are served in arrival order
/// (the mutex is fair), so no connection starves.
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `per_second` events a second, `1/per_second` apart.
    pub fn per_second(per_second: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Wait for a slot, then take it.
    pub async fn acquire(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let at = next.map_or(now, |n| n.max(now));
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(at + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_n_in_a_window() {
        let pacer = std::sync::Arc::new(Pacer::per_second(3));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let p = pacer.clone();
            tasks.push(tokio::spawn(async move {
                p.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 3, "{in_window} events within a second");
        }
        // And it does not wait longer than needed: 10 events at 3/s take 3 s.
        let took = times[9].duration_since(times[0]);
        assert!(
            took >= Duration::from_millis(2999) && took <= Duration::from_millis(3001),
            "{took:?}"
        );
    }
}
