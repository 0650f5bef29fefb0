//! The fleet-wide swap: one upload to any instance changes the component of
//! every live instance, or of none.
//!
//! The initiator validates the component, keeps it in `components`, and
//! proposes it (`storage::fleet_ops`) to the instances alive at that moment.
//! Every instance's [`agent`] (the initiator's too) loads it from the
//! database, puts it through the same checks and golden run, and votes. Only
//! when every expected instance accepted does the initiator commit, which
//! makes the component the fleet's in the same transaction; then each agent
//! hands its own state over (the single-instance swap) and writes what it did.
//! One refusal, or an instance silent past `vote_timeout`, aborts: nobody
//! swaps, and the answer says who refused and why. A fleet rollback is the
//! same operation towards the fleet's previous component. An instance that
//! missed an operation (down, or started since) runs the fleet's component
//! when it sees the fleet's generation move without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::{Admin, AdminError};
use crate::engine::{EngineError, LoadedComponent};
use crate::storage::fleet_ops::{self, Due, Operation};
use crate::storage::{StorageError, instances};

/// How long the initiator waits.
#[derive(Debug, Clone)]
pub struct FleetTiming {
    /// Instances not heard from for this long are not asked (they are stale).
    pub stale_after: Duration,
    /// Every expected instance votes within this, or the operation aborts.
    pub vote_timeout: Duration,
    /// How long the answer waits for every instance to say it swapped.
    pub outcome_timeout: Duration,
    /// How often the agent looks for work without being told.
    pub agent_every: Duration,
}

impl Default for FleetTiming {
    fn default() -> Self {
        FleetTiming {
            stale_after: Duration::from_secs(10),
            vote_timeout: Duration::from_secs(30),
            outcome_timeout: Duration::from_secs(30),
            agent_every: Duration::from_secs(2),
        }
    }
}

/// This instance as a member of the fleet's swaps.
#[derive(Debug, Clone)]
pub struct FleetMember {
    pub instance: Arc<str>,
    pub timing: FleetTiming,
}

/// What a fleet operation came to.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub operation: i64,
    pub action: String,
    pub sha256: String,
    /// `committed`, `aborted` (or `proposed` when read mid-way).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub instances: Vec<InstanceOutcome>,
}

/// One instance's part in an operation.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceOutcome {
    pub instance: String,
    /// `None`: it has not voted.
    pub accepted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it did once decided (`swapped`, `kept`, a failure), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The engine's pause of its swap, µs (ns resolution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_us: Option<f64>,
}

fn db(e: StorageError) -> AdminError {
    AdminError::Engine(EngineError::Busy(format!("the fleet's database: {e}")))
}

impl Admin {
    /// Validate `wasm` here, then have every live instance swap to it, or none.
    pub async fn install_fleet(&self, wasm: Vec<u8>) -> Result<FleetReport, AdminError> {
        let _one = self.fleet_one_at_a_time.lock().await;
        let component = self.validate(wasm).await?;
        self.operate("swap", &component.sha256).await
    }

    /// Have every live instance go back to the fleet's previous component.
    pub async fn rollback_fleet(&self) -> Result<FleetReport, AdminError> {
        let _one = self.fleet_one_at_a_time.lock().await;
        let client = self.store.pool().get().await.map_err(|e| db(e.into()))?;
        let previous = fleet_ops::component(&client)
            .await
            .map_err(db)?
            .and_then(|c| c.previous_sha256)
            .ok_or_else(|| {
                AdminError::Engine(EngineError::Busy(
                    "the fleet has no previous component to roll back to".into(),
                ))
            })?;
        drop(client);
        self.operate("rollback", &previous).await
    }

    /// Propose, collect the votes, decide, and collect what each did.
    async fn operate(&self, action: &str, sha256: &str) -> Result<FleetReport, AdminError> {
        let timing = &self.fleet.timing;
        let me = self.fleet.instance.to_string();
        let mut client = self.store.pool().get().await.map_err(|e| db(e.into()))?;
        let mut expected = instances::live(&client, timing.stale_after.as_secs_f64())
            .await
            .map_err(db)?;
        if !expected.contains(&me) {
            expected.push(me.clone());
        }
        let abandon = (timing.vote_timeout + timing.outcome_timeout).as_secs_f64() * 2.0;
        let Some(id) = fleet_ops::propose(&mut client, action, sha256, &me, &expected, abandon)
            .await
            .map_err(db)?
        else {
            return Err(AdminError::Engine(EngineError::Busy(
                "another fleet operation is in progress".into(),
            )));
        };
        tracing::info!(
            operation = id,
            action,
            sha256,
            instances = expected.len(),
            "fleet operation proposed"
        );
        // Votes: every expected instance, or the first refusal, or the timeout.
        let deadline = tokio::time::Instant::now() + timing.vote_timeout;
        let (commit, reason) = loop {
            let votes = fleet_ops::votes(&client, id).await.map_err(db)?;
            let refused: Vec<String> = votes
                .iter()
                .filter(|v| !v.accepted)
                .map(|v| format!("{}: {}", v.instance, v.reason.as_deref().unwrap_or("refused")))
                .collect();
            if !refused.is_empty() {
                break (false, Some(format!("refused by {}", refused.join("; "))));
            }
            let silent: Vec<&String> = expected
                .iter()
                .filter(|e| !votes.iter().any(|v| &v.instance == *e))
                .collect();
            if silent.is_empty() {
                break (true, None);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<&str> = silent.iter().map(|s| s.as_str()).collect();
                break (
                    false,
                    Some(format!(
                        "no answer within {:?} from {}",
                        timing.vote_timeout,
                        names.join(", ")
                    )),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let current = self.engine.active().borrow().clone();
        fleet_ops::decide(&mut client, id, commit, reason.as_deref(), &current, &self.base_sha256)
            .await
            .map_err(db)?;
        tracing::info!(
            operation = id,
            committed = commit,
            reason = reason.as_deref().unwrap_or(""),
            "fleet operation decided"
        );
        if commit {
            // What each instance did (the answer waits for all, within limits).
            let deadline = tokio::time::Instant::now() + timing.outcome_timeout;
            loop {
                let votes = fleet_ops::votes(&client, id).await.map_err(db)?;
                if votes.iter().all(|v| v.outcome.is_some()) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let report = report(&client, id).await.map_err(db)?;
        if !commit {
            return Err(AdminError::Fleet(Box::new(report)));
        }
        Ok(report)
    }

    /// The fleet's component, the newest operation with each instance's part,
    /// and every instance not stopped with its active component (as of its
    /// last heartbeat).
    pub async fn fleet_status(&self) -> Result<serde_json::Value, AdminError> {
        let client = self.store.pool().get().await.map_err(|e| db(e.into()))?;
        let component = fleet_ops::component(&client).await.map_err(db)?;
        let last = match fleet_ops::last(&client).await.map_err(db)? {
            Some(op) => Some(report(&client, op.id).await.map_err(db)?),
            None => None,
        };
        let stale = self.fleet.timing.stale_after.as_secs_f64();
        let instances: Vec<serde_json::Value> = instances::list(&client)
            .await
            .map_err(db)?
            .into_iter()
            .filter(|m| !m.stopped)
            .map(|m| {
                serde_json::json!({
                    "instance": m.instance,
                    "role": m.role,
                    "shard": m.shard,
                    "component": m.component,
                    "sha256": m.component_sha256,
                    "live": m.heartbeat_age_s <= stale,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "instance": &*self.fleet.instance,
            "component": component.map(|c| serde_json::json!({
                "sha256": c.sha256,
                "previous_sha256": c.previous_sha256,
                "generation": c.generation,
                "activated_at": c.activated_at,
            })),
            "last_operation": last,
            "instances": instances,
        }))
    }

    /// Load and check a kept component (the agent's golden run).
    async fn check_kept(&self, sha256: &str) -> Result<Arc<LoadedComponent>, String> {
        let kept = self
            .store
            .get(sha256)
            .await
            .map_err(|e| format!("cannot read the component: {e}"))?
            .ok_or_else(|| format!("component {sha256} is not in the database"))?;
        self.check(kept.wasm).await.map_err(|e| e.to_string())
    }
}

/// An operation and every expected instance's part in it.
async fn report(client: &deadpool_postgres::Client, id: i64) -> Result<FleetReport, StorageError> {
    let op = fleet_ops::get(client, id)
        .await?
        .ok_or_else(|| StorageError::BadRow(format!("fleet operation {id} is gone")))?;
    let votes = fleet_ops::votes(client, id).await?;
    let instances = op
        .expected
        .iter()
        .map(|i| match votes.iter().find(|v| &v.instance == i) {
            Some(v) => InstanceOutcome {
                instance: i.clone(),
                accepted: Some(v.accepted),
                reason: v.reason.clone(),
                outcome: v.outcome.clone(),
                pause_us: v
                    .pause_ns
                    .map(|ns| crate::engine::micros(std::time::Duration::from_nanos(ns.max(0) as u64))),
            },
            None => InstanceOutcome {
                instance: i.clone(),
                accepted: None,
                reason: None,
                outcome: None,
                pause_us: None,
            },
        })
        .collect();
    Ok(FleetReport {
        operation: op.id,
        action: op.action,
        sha256: op.sha256,
        state: op.state,
        reason: op.reason,
        instances,
    })
}

/// Every instance's side of fleet operations: woken by the control channel's
/// notifications (and every `agent_every`), it votes on proposals expecting
/// it, acts on decided ones it voted on, and runs the fleet's component when
/// the fleet's generation moved past `seen` without it. Ends at `stop`.
pub async fn agent(
    admin: Arc<Admin>,
    mut control: mpsc::UnboundedReceiver<String>,
    mut seen: Option<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut prepared: HashMap<i64, Arc<LoadedComponent>> = HashMap::new();
    let mut tick = tokio::time::interval(admin.fleet.timing.agent_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            message = control.recv() => if message.is_none() { return },
            _ = tick.tick() => {}
        }
        // Several notifications at once: one look.
        while control.try_recv().is_ok() {}
        if let Err(e) = work(&admin, &mut prepared, &mut seen).await {
            tracing::debug!(error = %e, "fleet agent: the database did not answer; trying again");
        }
    }
}

async fn work(
    admin: &Admin,
    prepared: &mut HashMap<i64, Arc<LoadedComponent>>,
    seen: &mut Option<i64>,
) -> Result<(), StorageError> {
    let me = admin.fleet.instance.clone();
    let client = admin.store.pool().get().await?;
    for due in fleet_ops::due(&client, &me).await? {
        match due {
            Due::Vote(op) => {
                let (accepted, reason) = match admin.check_kept(&op.sha256).await {
                    Ok(c) => {
                        prepared.insert(op.id, c);
                        (true, None)
                    }
                    Err(why) => {
                        tracing::warn!(operation = op.id, reason = %why, "fleet operation refused here");
                        (false, Some(why))
                    }
                };
                fleet_ops::vote(&client, op.id, &me, accepted, reason.as_deref()).await?;
            }
            Due::Act(op) => {
                let (outcome, pause) = act(admin, &op, prepared.remove(&op.id)).await;
                fleet_ops::outcome(&client, op.id, &me, &outcome, pause).await?;
                if op.state == "committed" {
                    *seen = fleet_ops::component(&client).await?.map(|c| c.generation).or(*seen);
                }
            }
        }
    }
    // An operation this instance was not part of (down, or not yet started).
    let Some(fleet) = fleet_ops::component(&client).await? else {
        return Ok(());
    };
    if seen.is_some_and(|s| s >= fleet.generation) {
        return Ok(());
    }
    *seen = Some(fleet.generation);
    let active = admin.engine.active().borrow().clone();
    if active == fleet.sha256 {
        return Ok(());
    }
    if fleet.base_sha256 != admin.base_sha256 {
        tracing::info!(fleet = %fleet.sha256, "the fleet's component was chosen over another COMPONENT_PATH: running this deploy's");
        return Ok(());
    }
    match admin.check_kept(&fleet.sha256).await {
        Ok(c) => match admin.swap_in(c).await {
            Ok(done) => tracing::info!(component = %done.component, generation = fleet.generation,
                "running the fleet's component (decided while this instance was not part of it)"),
            Err(e) => tracing::error!(error = %e, "cannot run the fleet's component; keeping this one"),
        },
        Err(why) => tracing::error!(reason = %why, "the fleet's component is refused here; keeping this one"),
    }
    Ok(())
}

/// Carry out a decided operation: swap to the prepared (or re-checked)
/// component when committed; keep what runs when aborted.
async fn act(admin: &Admin, op: &Operation, prepared: Option<Arc<LoadedComponent>>) -> (String, Option<i64>) {
    let running = admin.engine.active().borrow().clone();
    if op.state != "committed" {
        return (format!("kept {running}"), None);
    }
    if running == op.sha256 {
        return ("swapped (already running it)".into(), Some(0));
    }
    let component = match prepared {
        Some(c) => c,
        None => match admin.check_kept(&op.sha256).await {
            Ok(c) => c,
            Err(why) => return (format!("failed: {why}"), None),
        },
    };
    match admin.swap_in(component).await {
        Ok(done) => ("swapped".into(), Some(done.swap.pause.as_nanos() as i64)),
        Err(e) => (format!("failed: {e}"), None),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
