//! A component that counts like the default one, but whose `import-state`
//! first spins a fixed number of steps (a few hundred milliseconds of a
//! core). A checkpoint built off the engine's thread imports the last one,
//! so every build takes at least that long: the engine test of a build that
//! falls behind the inputs. The engine's own calls never import (only a
//! rebuild after a fault or a swap's build would).

spot_rules::component! {
    name: "spot-test-slow-import",
    wit: "../../wit",
    element: spot_rules::render::element,
    ingest: spot_rules::handlers::ingest,
    import_state: import_state,
}

/// Steps spun before every import.
const SPIN: u64 = 200_000_000;

fn import_state(state: &[u8]) -> Result<(), String> {
    let mut x = 0u64;
    for i in 0..SPIN {
        // black_box: otherwise the loop is folded away.
        x = std::hint::black_box(x.wrapping_add(i));
    }
    std::hint::black_box(x);
    spot_rules::handlers::import_state(state)
}
