//! A shadow run: a candidate component fed the same inputs as the active one,
//! its candle updates and the elements it renders for them compared with the
//! active's, for a while. Nothing it produces goes anywhere; a confirm swaps
//! it in (a normal swap).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spot_wire::{Candle, Granularity, encode_all};

use super::EngineOutput;
use super::element;
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
    differing_elements: u64,
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
    /// Of the updates whose values agree, those whose rendered elements do
    /// not (an element-only change; a shadow element the check refuses
    /// counts too).
    pub differing_elements: u64,
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

/// Two elements in an example: each from a little before where they first
/// differ, shortened.
fn excerpts(a: &str, b: &str) -> (String, String) {
    const BEFORE: usize = 40;
    const MAX: usize = 200;
    let first = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let cut = |s: &str| {
        let mut start = first.saturating_sub(BEFORE).min(s.len());
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + MAX).min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let lead = if start > 0 { "…" } else { "" };
        let tail = if end < s.len() { "…" } else { "" };
        format!("{lead}{}{tail}", &s[start..end])
    };
    (cut(a), cut(b))
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
            differing_elements: 0,
            examples: Vec::new(),
            fault: None,
        }
    }

    /// Feed the shadow the input the active component just took, and compare
    /// its updates and their elements with what the active emitted.
    pub fn follow(&mut self, entry: &Entry, active: &[Arc<EngineOutput>], name: impl Fn(u32) -> String) {
        if Instant::now() >= self.until {
            // Time is up: free the instance, keep the findings.
            self.instance = None;
            return;
        }
        let Some(inst) = self.instance.as_mut() else { return };
        let theirs = match entry.apply(inst) {
            Ok(o) => o.map(|o| o.updates).unwrap_or_default(),
            Err(f) => return self.stop(f.to_string()),
        };
        // The shadow's elements for its own updates, as the active's were.
        let elements = if theirs.is_empty() {
            Vec::new()
        } else {
            match inst.render(&encode_all(&theirs)) {
                Ok(e) => e,
                Err(f) => return self.stop(f.to_string()),
            }
        };
        self.inputs += 1;
        let ours: HashMap<Key, (&Candle, &[u8])> = active
            .iter()
            .flat_map(|o| o.updates.iter())
            .map(|u| (key(&u.candle), (&u.candle, &u.element[..])))
            .collect();
        let theirs: HashMap<Key, (&Candle, &str)> = theirs
            .iter()
            .zip(&elements)
            .map(|(c, e)| (key(c), (c, e.as_str())))
            .collect();
        let mut keys: Vec<&Key> = ours.keys().chain(theirs.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            self.compared += 1;
            let (a, b) = (ours.get(k).copied(), theirs.get(k).copied());
            let what = format!("{} {} @{}", name(k.0), k.1.name(), k.2);
            match (a, b) {
                (Some((a, mine)), Some((b, element))) if same(a, b) => {
                    // The shadow's element as a viewer would get it: checked.
                    let product = name(k.0);
                    let shown = match element::check(element.as_bytes(), &product, k.1.name()) {
                        Ok(()) => element.to_string(),
                        Err(why) => format!("(refused by the element check: {why})"),
                    };
                    if shown.as_bytes() != mine {
                        self.differing_elements += 1;
                        let (active, shadow) = excerpts(&String::from_utf8_lossy(mine), &shown);
                        self.example(format!(
                            "{what}: same candle, other element: active {active}, shadow {shadow}"
                        ));
                    }
                }
                _ => {
                    self.differing += 1;
                    self.example(format!(
                        "{what}: active {}, shadow {}",
                        describe(a.map(|(c, _)| c)),
                        describe(b.map(|(c, _)| c))
                    ));
                }
            }
        }
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text);
        }
    }

    fn stop(&mut self, fault: String) {
        tracing::warn!(component = %self.component, fault = %fault, "the shadow faulted; it stops here");
        self.fault = Some(fault);
        self.instance = None;
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
            differing_elements: self.differing_elements,
            examples: self.examples.clone(),
            fault: self.fault.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_show_where_elements_differ() {
        let a = format!("<x {}data-close=\"1\"></x>", "data-p=\"v\" ".repeat(20));
        let b = format!(
            "<x {}data-close=\"1\" data-change=\"0\"></x>",
            "data-p=\"v\" ".repeat(20)
        );
        let (ea, eb) = excerpts(&a, &b);
        assert!(ea.starts_with('…') && ea.ends_with("data-close=\"1\"></x>"), "{ea}");
        assert!(eb.contains("data-change=\"0\""), "{eb}");
        assert_eq!(excerpts("<é>", "<é>"), ("<é>".to_string(), "<é>".to_string()));
    }
}
