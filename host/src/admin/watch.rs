//! Swap by file: the component at `COMPONENT_PATH` is watched (polled: works
//! on every filesystem and for both ways of replacing a file). A change is
//! acted on once the file has stayed the same for `settle`; an atomic rename
//! settles at once, an in-place write once the writer is done. A half-written
//! file that is read anyway fails validation and is never swapped in; the
//! rest of the write changes the file again and it is tried again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::Admin;

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

fn fingerprint(path: &PathBuf) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        len: m.len(),
        modified: m.modified().ok(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&m),
    })
}

/// Watch `path` every `every`; install a version that stayed unchanged for `settle`.
pub fn spawn(admin: Arc<Admin>, path: PathBuf, every: Duration, settle: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = fingerprint(&path);
        let mut changed_at: Option<tokio::time::Instant> = None;
        let mut tried: Option<String> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&path);
            if now != seen {
                seen = now;
                changed_at = Some(tokio::time::Instant::now());
                continue;
            }
            let Some(at) = changed_at else { continue };
            if at.elapsed() < settle || seen.is_none() {
                continue;
            }
            changed_at = None;
            let read = path.clone();
            let bytes = match tokio::task::spawn_blocking(move || std::fs::read(read))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the changed component");
                    continue;
                }
            };
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            if sha == *admin.engine.active().borrow() || tried.as_deref() == Some(sha.as_str()) {
                continue;
            }
            tried = Some(sha.clone());
            tracing::info!(path = %path.display(), sha256 = %sha, "the component file changed; validating it");
            match admin.install(bytes).await {
                Ok(done) => {
                    tracing::info!(component = %done.component, pause_us = crate::engine::micros(done.swap.pause),
                    "swapped in the component from the file")
                }
                Err(e) => tracing::error!(path = %path.display(), error = %e,
                    "the changed component file was refused; the running component stays"),
            }
        }
    })
}
