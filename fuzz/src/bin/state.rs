//! AFL target: see [`spot_fuzz::state`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::state(data));
}
