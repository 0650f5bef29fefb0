//! A shadow run: a candidate component fed the same inputs as the active one,
//! its candle updates compared with the active's, for a while. Nothing it
//! produces goes anywhere; a confirm swaps it in (a normal swap).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spot_wire::{Candle, Granularity, Outcome};

use super::instance::Instance;
use super::journal::Entry;
use super::loader::LoadedComponent;
use super::stats::ComponentSummary;

/// Differences kept as examples.
const EXAMPLES: usize = 5;

/// The running shadow.
pub(crate) struct Shadow {
    pub component: Arc<LoadedComponent>,
    instance: Option<Instance>,
    started: Instant,
    until: Instant,
    inputs: u64,
    compared: u64,
    differing: u64,
    examples: Vec<String>,
    fault: Option<String>,
}

/// What a shadow run found so far.
#[derive(Debug, Clone)]
pub struct ShadowReport {
    pub component: ComponentSummary,
    /// Still comparing.
    pub running: bool,
    pub elapsed: Duration,
    pub remaining: Duration,
    /// Inputs both components took.
    pub inputs: u64,
    /// Candle updates compared, and those that differ (value, completeness, or
    /// one side reporting a bucket the other does not).
    pub compared: u64,
    pub differing: u64,
    /// A few differences, described.
    pub examples: Vec<String>,
    /// The shadow faulted (it stopped there).
    pub fault: Option<String>,
}

type Key = (u32, Granularity, i64);

fn key(c: &Candle) -> Key {
    (c.product, c.granularity, c.start)
}

fn same(a: &Candle, b: &Candle) -> bool {
    (a.open, a.high, a.low, a.close, a.volume, a.complete) == (b.open, b.high, b.low, b.close, b.volume, b.complete)
}

fn describe(c: Option<&Candle>) -> String {
    match c {
        None => "nothing".into(),
        Some(c) => format!(
            "o {} h {} l {} c {} v {}{}",
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            if c.complete { " complete" } else { "" }
        ),
    }
}

impl Shadow {
    /// A shadow of `component` with its caught-up `instance`, for `run_for`.
    pub fn new(component: Arc<LoadedComponent>, instance: Instance, run_for: Duration) -> Self {
        let now = Instant::now();
        Shadow {
            component,
            instance: Some(instance),
            started: now,
            until: now + run_for,
            inputs: 0,
            compared: 0,
            differing: 0,
            examples: Vec::new(),
            fault: None,
        }
    }

    /// Feed the shadow the input the active component just took, and compare.
    pub fn follow(&mut self, entry: &Entry, active: Option<&Outcome>, name: impl Fn(u32) -> String) {
        if Instant::now() >= self.until {
            // Time is up: free the instance, keep the findings.
            self.instance = None;
            return;
        }
        let Some(inst) = self.instance.as_mut() else { return };
        let theirs = match entry.apply(inst) {
            Ok(o) => o,
            Err(f) => {
                tracing::warn!(component = %self.component, fault = %f, "the shadow faulted; it stops here");
                self.fault = Some(f.to_string());
                self.instance = None;
                return;
            }
        };
        self.inputs += 1;
        let ours: HashMap<Key, &Candle> = active
            .map(|o| o.updates.iter().map(|c| (key(c), c)).collect())
            .unwrap_or_default();
        let theirs: HashMap<Key, &Candle> = theirs
            .as_ref()
            .map(|o| o.updates.iter().map(|c| (key(c), c)).collect())
            .unwrap_or_default();
        let mut keys: Vec<&Key> = ours.keys().chain(theirs.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            self.compared += 1;
            let (a, b) = (ours.get(k).copied(), theirs.get(k).copied());
            let equal = matches!((a, b), (Some(a), Some(b)) if same(a, b));
            if !equal {
                self.differing += 1;
                if self.examples.len() < EXAMPLES {
                    self.examples.push(format!(
                        "{} {} @{}: active {}, shadow {}",
                        name(k.0),
                        k.1.name(),
                        k.2,
                        describe(a),
                        describe(b)
                    ));
                }
            }
        }
    }

    /// The findings so far.
    pub fn report(&self) -> ShadowReport {
        let now = Instant::now();
        ShadowReport {
            component: ComponentSummary::of(&self.component),
            running: self.instance.is_some() && now < self.until,
            elapsed: now.duration_since(self.started),
            remaining: self.until.saturating_duration_since(now),
            inputs: self.inputs,
            compared: self.compared,
            differing: self.differing,
            examples: self.examples.clone(),
            fault: self.fault.clone(),
        }
    }
}
