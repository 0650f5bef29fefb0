//! A component that counts like the default one but holds a 96 MiB table once
//! it renders (a large lookup table, say). An instance whose component memory
//! cap (`COMPONENT_MEMORY_MB`) is smaller refuses it at the golden run; the
//! others take it: the fleet test's "one instance refuses".

use std::sync::OnceLock;

use spot_wire::Candle;

spot_rules::component! {
    name: "spot-test-hungry",
    wit: "../../wit",
    element: element,
}

/// Megabytes held.
const TABLE_MB: usize = 96;

static TABLE: OnceLock<Vec<u8>> = OnceLock::new();

fn element(c: &Candle, product: &str) -> String {
    // black_box: otherwise the optimiser folds the allocation away.
    let table = TABLE.get_or_init(|| std::hint::black_box(vec![1u8; TABLE_MB << 20]));
    let mut s = String::new();
    spot_rules::render::open_element(&mut s, c, product);
    s.push_str(&format!(" data-table-mb=\"{}\"></spot-candle>", table.len() >> 20));
    s
}
