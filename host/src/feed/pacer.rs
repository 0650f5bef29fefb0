//! `Pacer`: events at most N per second, evenly spaced, shared by every
//! connection of the process (Coinbase limits connections and subscribe
//! messages per IP: 8/s each).
//!
//! Evenly spaced rather than "N in any window": a burst of N at the start of
//! each window is within the limit where it is sent, but a few milliseconds
//! of jitter on the way shift the bursts into one window at the receiver.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One event per `1/N` second at most. A [`Claim`] puts its holder ahead of
/// every plain [`Pacer::acquire`]: a connection claims its `market_trades`
/// subscribe before it connects, so after a start (or a mass reconnect)
/// every connection's data flows before any connection's keep-alive
/// subscribe takes a slot.
pub struct Pacer {
    interval: Duration,
    /// When the next event may happen (`None`: now). A waiter sleeps
    /// without holding the lock and takes a slot only if it is still free
    /// when it wakes, so a waiter that is not polled for a while (its task
    /// is busy) blocks nobody, and a late event pushes the next one back.
    next: std::sync::Mutex<Option<Instant>>,
    /// Claims held, and claimed waiters waiting for a slot now.
    claims: watch::Sender<Claims>,
    /// How long a plain waiter yields to claims held (a connection still
    /// connecting) before it competes for slots; it always yields to a
    /// claimed waiter, so a connected connection subscribes within a slot
    /// or two (Coinbase's 5-second deadline).
    patience: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Claims {
    held: usize,
    waiting: usize,
}

/// A claim on slots ahead of [`Pacer::acquire`]'s; released when dropped.
pub struct Claim<'a>(&'a Pacer);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.claims.send_modify(|c| c.held = c.held.saturating_sub(1));
    }
}

/// A claimed waiter waiting (dropped when it has its slot, or is cancelled).
struct Waiting<'a>(&'a Pacer);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.claims.send_modify(|c| c.waiting = c.waiting.saturating_sub(1));
    }
}

impl Pacer {
    /// At most `per_second` events a second, `1/per_second` apart.
    pub fn per_second(per_second: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: std::sync::Mutex::new(None),
            claims: watch::Sender::new(Claims::default()),
            patience: Duration::from_secs(5),
        }
    }

    /// Go ahead of every plain waiter until the claim is dropped.
    pub fn claim(&self) -> Claim<'_> {
        self.claims.send_modify(|c| c.held += 1);
        Claim(self)
    }

    /// Wait for a slot, then take it, ahead of plain waiters.
    pub async fn acquire_claimed(&self, _claim: &Claim<'_>) {
        self.claims.send_modify(|c| c.waiting += 1);
        let _waiting = Waiting(self);
        while !self.take_when_due(|| true).await {}
    }

    /// Wait for a slot no claim wants (or, after the pacer's patience, one
    /// no claimed waiter is waiting for), then take it.
    pub async fn acquire(&self) {
        let mut claims = self.claims.subscribe();
        let yielding = tokio::time::sleep(self.patience);
        tokio::pin!(yielding);
        loop {
            if yielding.is_elapsed() {
                let _ = claims.wait_for(|c| c.waiting == 0).await;
            } else {
                tokio::select! {
                    _ = claims.wait_for(|c| c.held == 0 && c.waiting == 0) => {}
                    () = &mut yielding => continue,
                }
            }
            let patient = !yielding.is_elapsed();
            let free = || {
                let c = *self.claims.borrow();
                c.waiting == 0 && (!patient || c.held == 0)
            };
            if self.take_when_due(free).await {
                return;
            }
        }
    }

    /// Sleep until the next slot; take it if it is still free and `may`
    /// allows. Returns whether it was taken.
    async fn take_when_due(&self, may: impl Fn() -> bool) -> bool {
        let at = *self.next.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = at
            && at > Instant::now()
        {
            tokio::time::sleep_until(at).await;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if next.is_some_and(|n| n > now) || !may() {
            return false;
        }
        *next = Some(now + self.interval);
        true
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
        // And it does not wait longer than needed: 10 events at 3/s take 3 s
        // (and the timer's millisecond rounding, which each slot counts from).
        let took = times[9].duration_since(times[0]);
        assert!(
            took >= Duration::from_millis(2999) && took <= Duration::from_millis(3010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn claimed_slots_go_before_plain_ones_and_a_plain_waiter_is_patient_for_a_while() {
        let pacer = std::sync::Arc::new(Pacer::per_second(4));
        let start = Instant::now();
        // Two plain waiters first, then three claims (taken at once, as
        // connections do before connecting), acquired one after another.
        let mut plain = Vec::new();
        for _ in 0..2 {
            let p = pacer.clone();
            plain.push(tokio::spawn(async move {
                p.acquire().await;
                Instant::now()
            }));
        }
        tokio::task::yield_now().await;
        let p = pacer.clone();
        let claimed = tokio::spawn(async move {
            let claims: Vec<Claim<'_>> = (0..3).map(|_| p.claim()).collect();
            let mut times = Vec::new();
            for claim in claims {
                p.acquire_claimed(&claim).await;
                times.push(Instant::now());
                // A held claim keeps the plain waiters back: the next
                // claimed slot is not theirs.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            times
        });
        let claimed = claimed.await.unwrap();
        let mut plain: Vec<Instant> = futures_util::future::join_all(plain)
            .await
            .into_iter()
            .map(|t| t.unwrap())
            .collect();
        plain.sort();
        // The first plain waiter took the free slot at once (no claim was
        // held yet); every claimed slot then came before the other.
        assert_eq!(plain[0], start);
        assert!(claimed.iter().all(|c| *c < plain[1]), "{claimed:?} {plain:?}");
        // Evenly spaced throughout.
        let mut all: Vec<Instant> = claimed.iter().chain(plain.iter()).copied().collect();
        all.sort();
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(250), "{all:?}");
        }

        // A claim that is never used holds a plain waiter back only for the
        // pacer's patience.
        let held = pacer.claim();
        let waited = Instant::now();
        pacer.acquire().await;
        assert!(waited.elapsed() >= pacer.patience, "{:?}", waited.elapsed());
        drop(held);
    }
}
