//! `fleet_operations`, `fleet_votes` and `fleet_component`: a fleet-wide swap
//! or rollback as rows every instance reads, and the component the fleet runs.
//!
//! An operation is proposed to the instances alive at that moment
//! (`expected`); each writes one vote after validating the component; the
//! initiator decides (committed only when every expected instance accepted)
//! and, in the same transaction, makes the component the fleet's. Then each
//! instance writes what it did (`outcome`). Proposals and decisions are also
//! announced on [`CHANNEL`] (`propose ID`, `decided ID`), delivered at commit;
//! instances read the rows again on a timer, so a missed notification only
//! delays them.

use deadpool_postgres::GenericClient;

use super::StorageError;

/// The channel of fleet operations.
pub const CHANNEL: &str = "spot_control";

/// A fleet-wide operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: i64,
    /// `swap` or `rollback`.
    pub action: String,
    /// The component every instance is to run.
    pub sha256: String,
    pub initiator: String,
    /// The instances that must accept.
    pub expected: Vec<String>,
    /// `proposed`, `committed` or `aborted`.
    pub state: String,
    pub reason: Option<String>,
    /// Seconds since it was proposed.
    pub age_s: f64,
}

/// One instance's vote and, once decided, what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub instance: String,
    pub accepted: bool,
    /// Why it refused.
    pub reason: Option<String>,
    /// What it did once decided (`swapped`, `kept`, or the failure).
    pub outcome: Option<String>,
    /// The engine's pause of its swap, ns.
    pub pause_ns: Option<i64>,
}

/// The fleet's component.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetComponent {
    /// Counts the committed operations.
    pub generation: i64,
    pub sha256: String,
    /// What the fleet ran before (the target of a fleet rollback).
    pub previous_sha256: Option<String>,
    /// The `COMPONENT_PATH` component of the initiator: an instance deployed
    /// with another one runs its own (a deploy wins over an older swap).
    pub base_sha256: String,
    /// Unix seconds it became the fleet's.
    pub activated_at: i64,
}

/// What an instance has to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Vote on this proposal.
    Vote(Operation),
    /// It was decided after this instance voted: act on it.
    Act(Operation),
}

const OPERATION: &str = "SELECT id, action, sha256, initiator, expected, state, reason,
        extract(epoch FROM now() - created_at)::float8 FROM fleet_operations";

fn operation(r: &tokio_postgres::Row) -> Operation {
    Operation {
        id: r.get(0),
        action: r.get(1),
        sha256: r.get(2),
        initiator: r.get(3),
        expected: r.get(4),
        state: r.get(5),
        reason: r.get(6),
        age_s: r.get(7),
    }
}

/// Propose `action` to `sha256` to the `expected` instances. Proposals left
/// undecided for `abandon_s` seconds (an initiator that went away) are
/// aborted first. `None` when another one is open.
pub async fn propose(
    client: &mut deadpool_postgres::Client,
    action: &str,
    sha256: &str,
    initiator: &str,
    expected: &[String],
    abandon_s: f64,
) -> Result<Option<i64>, StorageError> {
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE fleet_operations SET state = 'aborted', decided_at = now(),
             reason = 'abandoned: no decision within ' || $1::float8 || ' s'
         WHERE state = 'proposed' AND created_at < now() - make_interval(secs => $1::float8)",
        &[&abandon_s],
    )
    .await?;
    let row = tx
        .query_opt(
            "INSERT INTO fleet_operations (action, sha256, initiator, expected)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT ((true)) WHERE state = 'proposed' DO NOTHING
             RETURNING id",
            &[&action, &sha256, &initiator, &expected],
        )
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(None);
    };
    let id: i64 = row.get(0);
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("propose {id}")])
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// `instance`'s vote on `operation` (the first one counts).
pub async fn vote<C: GenericClient>(
    client: &C,
    operation: i64,
    instance: &str,
    accepted: bool,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    client
        .execute(
            "INSERT INTO fleet_votes (operation, instance, accepted, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&operation, &instance, &accepted, &reason],
        )
        .await?;
    Ok(())
}

/// The votes on `operation`.
pub async fn votes<C: GenericClient>(client: &C, operation: i64) -> Result<Vec<Vote>, StorageError> {
    let rows = client
        .query(
            "SELECT instance, accepted, reason, outcome, COALESCE(pause_ns, pause_us * 1000) FROM fleet_votes
             WHERE operation = $1 ORDER BY instance",
            &[&operation],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Vote {
            instance: r.get(0),
            accepted: r.get(1),
            reason: r.get(2),
            outcome: r.get(3),
            pause_ns: r.get(4),
        })
        .collect())
}

/// Decide `operation` (still proposed): committed or aborted with `reason`.
/// A commit makes its component the fleet's in the same transaction (with
/// `current_sha256` as what ran before when the fleet had none recorded, and
/// `base_sha256`). False when it was decided already.
pub async fn decide(
    client: &mut deadpool_postgres::Client,
    operation: i64,
    commit: bool,
    reason: Option<&str>,
    current_sha256: &str,
    base_sha256: &str,
) -> Result<bool, StorageError> {
    let tx = client.transaction().await?;
    let state = if commit { "committed" } else { "aborted" };
    let row = tx
        .query_opt(
            "UPDATE fleet_operations SET state = $2, reason = $3, decided_at = now()
             WHERE id = $1 AND state = 'proposed' RETURNING sha256",
            &[&operation, &state, &reason],
        )
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(false);
    };
    if commit {
        let sha256: String = row.get(0);
        tx.execute(
            "INSERT INTO fleet_component (generation, sha256, previous_sha256, base_sha256)
             VALUES (1, $1, NULLIF($2, $1), $3)
             ON CONFLICT (fleet) DO UPDATE SET generation = fleet_component.generation + 1,
                 sha256 = EXCLUDED.sha256,
                 previous_sha256 = CASE WHEN fleet_component.sha256 = EXCLUDED.sha256
                     THEN fleet_component.previous_sha256 ELSE fleet_component.sha256 END,
                 base_sha256 = EXCLUDED.base_sha256, activated_at = now()",
            &[&sha256, &current_sha256, &base_sha256],
        )
        .await?;
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("decided {operation}")])
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// What `instance` did once `operation` was decided.
pub async fn outcome<C: GenericClient>(
    client: &C,
    operation: i64,
    instance: &str,
    outcome: &str,
    pause_ns: Option<i64>,
) -> Result<(), StorageError> {
    client
        .execute(
            "UPDATE fleet_votes SET outcome = $3, pause_ns = $4, done_at = now()
             WHERE operation = $1 AND instance = $2",
            &[&operation, &instance, &outcome, &pause_ns],
        )
        .await?;
    Ok(())
}

/// One operation.
pub async fn get<C: GenericClient>(client: &C, id: i64) -> Result<Option<Operation>, StorageError> {
    let row = client.query_opt(&format!("{OPERATION} WHERE id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(operation))
}

/// The newest operation.
pub async fn last<C: GenericClient>(client: &C) -> Result<Option<Operation>, StorageError> {
    let row = client
        .query_opt(&format!("{OPERATION} ORDER BY id DESC LIMIT 1"), &[])
        .await?;
    Ok(row.as_ref().map(operation))
}

/// What `instance` has to do: proposals expecting it that it has not voted
/// on, and decided operations it voted on without acting yet (oldest first).
pub async fn due<C: GenericClient>(client: &C, instance: &str) -> Result<Vec<Due>, StorageError> {
    let rows = client
        .query(
            &format!(
                "{OPERATION} o WHERE (o.state = 'proposed' AND $1 = ANY(o.expected)
                     AND NOT EXISTS (SELECT 1 FROM fleet_votes v WHERE v.operation = o.id AND v.instance = $1))
                  OR (o.state <> 'proposed' AND EXISTS (SELECT 1 FROM fleet_votes v
                     WHERE v.operation = o.id AND v.instance = $1 AND v.outcome IS NULL))
                 ORDER BY o.id"
            ),
            &[&instance],
        )
        .await?;
    Ok(rows
        .iter()
        .map(operation)
        .map(|o| {
            if o.state == "proposed" {
                Due::Vote(o)
            } else {
                Due::Act(o)
            }
        })
        .collect())
}

/// The fleet's component, if a fleet operation was ever committed.
pub async fn component<C: GenericClient>(client: &C) -> Result<Option<FleetComponent>, StorageError> {
    let row = client
        .query_opt(
            "SELECT generation, sha256, previous_sha256, base_sha256,
                    extract(epoch FROM activated_at)::int8 FROM fleet_component",
            &[],
        )
        .await?;
    Ok(row.map(|r| FleetComponent {
        generation: r.get(0),
        sha256: r.get(1),
        previous_sha256: r.get(2),
        base_sha256: r.get(3),
        activated_at: r.get(4),
    }))
}
