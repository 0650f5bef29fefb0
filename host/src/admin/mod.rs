//! Hot swap for operators: a new component is compiled, checked against the
//! contract, put through the golden run on a fresh instance, kept in the
//! database, and only then swapped in (the engine hands the state over
//! between two inputs). Rollback returns to the previous component. The
//! active component is recorded per shard, so a restart keeps it.
//! [`watch`] does the same for a new file at `COMPONENT_PATH`; [`fleet`]
//! does it for every instance of the fleet at once, or for none.

pub mod fleet;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest, Sha256};

use crate::engine::{EngineError, EngineHandle, LoadedComponent, Loader, SwapReport, smoke};
use crate::storage::components::ComponentStore;

/// Why a component was not swapped in.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The component failed validation; nothing changed.
    #[error("component refused: {0}")]
    Refused(String),
    /// The engine could not do it (another swap running, no previous, a fault
    /// while taking the state); the running component is untouched.
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("the validation task failed: {0}")]
    Task(String),
    /// A fleet operation was aborted (a refusal, or an instance silent):
    /// no instance changed its component.
    #[error("fleet operation aborted: {}", .0.reason.as_deref().unwrap_or("no reason given"))]
    Fleet(Box<fleet::FleetReport>),
}

/// The admin side of the engine.
pub struct Admin {
    /// sha256 of `ADMIN_TOKEN` (`None`: no request is authorized).
    token: Option<[u8; 32]>,
    loader: Loader,
    engine: EngineHandle,
    store: ComponentStore,
    /// The sha256 of the component at `COMPONENT_PATH`.
    base_sha256: String,
    one_at_a_time: tokio::sync::Mutex<()>,
    last_error: std::sync::Mutex<Option<String>>,
    /// Components refused by validation.
    pub refused: AtomicU64,
    /// Writes every change of the active component (ends with the engine).
    recorder: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This instance in fleet operations.
    fleet: fleet::FleetMember,
    fleet_one_at_a_time: tokio::sync::Mutex<()>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(r) = self.recorder.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            r.abort();
        }
    }
}

/// What a successful swap reports.
#[derive(Debug, Clone)]
pub struct Installed {
    pub component: Arc<LoadedComponent>,
    pub swap: SwapReport,
}

impl Admin {
    /// Admin with bearer `token` (`None`: only the file watcher installs);
    /// records every change of the active component.
    pub fn new(
        token: Option<&str>,
        loader: Loader,
        engine: EngineHandle,
        store: ComponentStore,
        base_sha256: String,
        fleet: fleet::FleetMember,
    ) -> Self {
        let mut active = engine.active();
        let (rec_store, base, rec_engine) = (store.clone(), base_sha256.clone(), engine.clone());
        // Every change of the active component (swap, rollback, the engine's
        // own rollback after a fault) is recorded with the one a rollback
        // returns to, so a restart runs the same and can still roll back.
        let recorder = tokio::spawn(async move {
            while active.changed().await.is_ok() {
                let sha = active.borrow_and_update().clone();
                record(&rec_store, &rec_engine, &sha, &base).await;
            }
        });
        Admin {
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            loader,
            engine,
            store,
            base_sha256,
            one_at_a_time: tokio::sync::Mutex::new(()),
            last_error: std::sync::Mutex::new(None),
            refused: AtomicU64::new(0),
            recorder: std::sync::Mutex::new(Some(recorder)),
            fleet,
            fleet_one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// After the engine has stopped: wait until the recorder has written the
    /// last active component (an automatic rollback just before a stop must
    /// not be forgotten, or the restart would run the faulty component again).
    pub async fn finish(&self) {
        let recorder = self.recorder.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut r) = recorder
            && tokio::time::timeout(std::time::Duration::from_secs(2), &mut r)
                .await
                .is_err()
        {
            r.abort();
            tracing::warn!("the active component was not recorded before the stop");
        }
    }

    /// Whether `presented` is the token. Compares digests in constant time, so
    /// neither the token's length nor a matching prefix shows in the timing.
    pub fn authorized(&self, presented: &str) -> bool {
        let Some(token) = &self.token else { return false };
        let p: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        p.iter().zip(token).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The last refusal or failure, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fail(&self, e: AdminError) -> AdminError {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        e
    }

    /// Validate `wasm` and swap it in. Nothing changes unless every check passes.
    pub async fn install(&self, wasm: Vec<u8>) -> Result<Installed, AdminError> {
        let _one = self.one_at_a_time.lock().await;
        let component = self.validate(wasm).await?;
        self.swap_in(component).await
    }

    /// Validate `wasm` and run it beside the active component for `run_for`
    /// (nothing it produces is used); [`Admin::confirm_shadow`] swaps it in.
    pub async fn shadow(&self, wasm: Vec<u8>, run_for: std::time::Duration) -> Result<Installed, AdminError> {
        let _one = self.one_at_a_time.lock().await;
        let component = self.validate(wasm).await?;
        let swap = self
            .engine
            .shadow(component.clone(), run_for)
            .await
            .map_err(|e| self.fail(e.into()))?;
        Ok(Installed { component, swap })
    }

    /// Swap in the component of the shadow run.
    pub async fn confirm_shadow(&self) -> Result<Installed, AdminError> {
        let _one = self.one_at_a_time.lock().await;
        let Some(component) = self.engine.end_shadow().await? else {
            return Err(AdminError::Engine(EngineError::Busy(
                "there is no shadow run to confirm".into(),
            )));
        };
        self.swap_in(component).await
    }

    /// Stop the shadow run without swapping; whether there was one.
    pub async fn discard_shadow(&self) -> Result<bool, AdminError> {
        Ok(self.engine.end_shadow().await?.is_some())
    }

    async fn swap_in(&self, component: Arc<LoadedComponent>) -> Result<Installed, AdminError> {
        let swap = self
            .engine
            .swap(component.clone())
            .await
            .map_err(|e| self.fail(e.into()))?;
        self.record().await;
        tracing::info!(component = %component, sha256 = %component.sha256,
            pause_us = crate::engine::micros(swap.pause), "component installed");
        Ok(Installed { component, swap })
    }

    /// Compile, check, golden-run, and keep the `.wasm` in the database.
    async fn validate(&self, wasm: Vec<u8>) -> Result<Arc<LoadedComponent>, AdminError> {
        let (component, wasm) = self.checked(wasm).await?;
        if let Err(e) = self
            .store
            .keep(&component.sha256, &component.name, &component.version, &wasm)
            .await
        {
            // Swapping anyway would leave a restart unable to find it.
            return Err(self.fail(AdminError::Refused(format!(
                "cannot keep the component in the database: {e}"
            ))));
        }
        Ok(component)
    }

    /// Compile, check and golden-run (what every instance does before a swap).
    async fn check(&self, wasm: Vec<u8>) -> Result<Arc<LoadedComponent>, AdminError> {
        Ok(self.checked(wasm).await?.0)
    }

    async fn checked(&self, wasm: Vec<u8>) -> Result<(Arc<LoadedComponent>, Vec<u8>), AdminError> {
        let loader = self.loader.clone();
        tokio::task::spawn_blocking(move || {
            let c = loader
                .load_bytes(&wasm)
                .map_err(|e| AdminError::Refused(e.to_string()))?;
            smoke::golden_run(loader.sandbox(), &c).map_err(|e| AdminError::Refused(format!("golden run: {e}")))?;
            Ok::<_, AdminError>((c, wasm))
        })
        .await
        .map_err(|e| self.fail(AdminError::Task(e.to_string())))?
        .inspect_err(|_| {
            self.refused.fetch_add(1, Relaxed);
        })
        .map_err(|e| self.fail(e))
    }

    /// Return to the previous component with the current state.
    pub async fn rollback(&self) -> Result<SwapReport, AdminError> {
        let _one = self.one_at_a_time.lock().await;
        let report = self.engine.rollback().await.map_err(|e| self.fail(e.into()))?;
        self.record().await;
        Ok(report)
    }

    /// Record the active component now (the recorder does it too, later).
    async fn record(&self) {
        let sha = self.engine.active().borrow().clone();
        record(&self.store, &self.engine, &sha, &self.base_sha256).await;
    }
}

/// Record `sha` as the shard's component, with the engine's previous one.
async fn record(store: &ComponentStore, engine: &EngineHandle, sha: &str, base: &str) {
    let previous = engine.status().await.ok().and_then(|s| s.previous).map(|p| p.sha256);
    if let Err(e) = store.set_active(sha, base, previous.as_deref()).await {
        tracing::error!(error = %e, sha256 = %sha, "cannot record the active component; a restart may run another");
    }
}

/// At start: the component to run, the fleet's generation seen, and the
/// component a rollback returns to (the one before the restart's, when it
/// was recorded over the same `COMPONENT_PATH` component).
///
/// The newest of two records wins, when it was activated over the same
/// `COMPONENT_PATH` component and still passes every check: this shard's
/// own (a swap here) and the fleet's (a fleet swap, which an instance that
/// was down or is new missed). Otherwise `base` (a deploy with a new
/// component wins).
pub async fn startup_component(
    loader: &Loader,
    store: &ComponentStore,
    base: Arc<LoadedComponent>,
    base_wasm: &[u8],
) -> anyhow::Result<(Arc<LoadedComponent>, Option<i64>, Option<Arc<LoadedComponent>>)> {
    let (component, generation, previous) = choose_component(loader, store, base, base_wasm).await?;
    let previous = match previous.filter(|p| *p != component.sha256) {
        None => None,
        Some(sha) => match store.get(&sha).await? {
            Some(kept) => {
                let loader = loader.clone();
                match tokio::task::spawn_blocking(move || loader.load_bytes(&kept.wasm)).await? {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, sha256 = %sha, "the previous component no longer loads; no rollback");
                        None
                    }
                }
            }
            None => None,
        },
    };
    Ok((component, generation, previous))
}

/// [`startup_component`]'s choice, and the previous component's sha256.
async fn choose_component(
    loader: &Loader,
    store: &ComponentStore,
    base: Arc<LoadedComponent>,
    base_wasm: &[u8],
) -> anyhow::Result<(Arc<LoadedComponent>, Option<i64>, Option<String>)> {
    store.keep(&base.sha256, &base.name, &base.version, base_wasm).await?;
    let client = store.pool().get().await?;
    let fleet = crate::storage::fleet_ops::component(&client).await?;
    drop(client);
    let generation = fleet.as_ref().map(|f| f.generation);
    let own = store.active().await?;
    // What a rollback returned to before the restart (recorded over the same
    // COMPONENT_PATH component).
    let previous = own
        .as_ref()
        .filter(|a| a.base_sha256 == base.sha256)
        .and_then(|a| a.previous_sha256.clone());
    let mut candidates: Vec<(i64, String, &str)> = Vec::new();
    if let Some(a) = &own {
        if a.base_sha256 == base.sha256 {
            candidates.push((a.activated_at, a.sha256.clone(), "swapped in here before the restart"));
        } else if a.sha256 != base.sha256 {
            tracing::info!(recorded = %a.sha256, "COMPONENT_PATH changed since the last swap: running it");
        }
    }
    if let Some(f) = &fleet {
        if f.base_sha256 == base.sha256 {
            candidates.push((f.activated_at, f.sha256.clone(), "the fleet's"));
        } else if f.sha256 != base.sha256 {
            tracing::info!(fleet = %f.sha256, "COMPONENT_PATH differs from the fleet's base: running it");
        }
    }
    let Some((_, sha256, why)) = candidates.into_iter().max_by_key(|(at, _, _)| *at) else {
        return Ok((base, generation, previous));
    };
    if sha256 == base.sha256 {
        return Ok((base, generation, previous));
    }
    let Some(kept) = store.get(&sha256).await? else {
        tracing::error!(sha256 = %sha256, "the recorded component is not in the database; running COMPONENT_PATH");
        return Ok((base, generation, previous));
    };
    let loader = loader.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let c = loader.load_bytes(&kept.wasm).map_err(|e| e.to_string())?;
        smoke::golden_run(loader.sandbox(), &c)?;
        Ok::<_, String>(c)
    })
    .await?;
    match checked {
        Ok(c) => {
            tracing::info!(component = %c, sha256 = %c.sha256, "running the component {why}");
            Ok((c, generation, previous))
        }
        Err(e) => {
            tracing::error!(error = %e, "the recorded component no longer passes its checks; running COMPONENT_PATH");
            Ok((base, generation, previous))
        }
    }
}

/// How long an upload may be.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Why an upload is refused before wasmtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    #[error("a component is at most 64 MiB")]
    TooLarge,
    #[error("the body is not WebAssembly")]
    NotWasm,
}

/// Check the bytes of an upload received so far (`complete`: all of it):
/// refused past [`MAX_COMPONENT_BYTES`], and as soon as its first four bytes
/// are in and are not WebAssembly's magic (`\0asm`), so that 64 MiB of
/// something else is not read first.
pub fn check_upload(received: &[u8], complete: bool) -> Result<(), UploadRefusal> {
    if received.len() > MAX_COMPONENT_BYTES {
        return Err(UploadRefusal::TooLarge);
    }
    if (complete || received.len() >= 4) && !received.starts_with(b"\0asm") {
        return Err(UploadRefusal::NotWasm);
    }
    Ok(())
}
