//! The floor of the ingest boundary, for the engine bench: the default rules
//! count every trade exactly as the default component does, but `ingest`
//! returns only the counters, no candle update. The bench's ratio for this
//! component is the least any component returning updates could reach: what
//! is left is the call itself, the trades crossing in, and cranelift's code
//! against LLVM's.

use spot_wire::{Candle, Gap, Outcome, OutcomeSink};

spot_rules::component! {
    name: "spot-ingest-floor",
    wit: "../../wit",
    element: spot_rules::render::element,
    ingest: ingest,
}

/// Counts what an outcome would carry, and drops the candles.
#[derive(Default)]
struct Counters(Outcome);

impl OutcomeSink for Counters {
    fn push_update(&mut self, c: &Candle) {
        // Keep the candle "used", so the optimiser cannot drop the work behind it.
        std::hint::black_box(c);
    }
    fn push_gap(&mut self, g: Gap) {
        self.0.push_gap(g);
    }
    fn count_duplicate(&mut self) {
        self.0.count_duplicate();
    }
    fn count_ignored(&mut self) {
        self.0.count_ignored();
    }
}

fn ingest(trades: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Counters::default();
    spot_rules::handlers::ingest_into(trades, &mut out)?;
    Ok(out.0.encode())
}
