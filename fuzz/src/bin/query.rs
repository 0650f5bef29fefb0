//! AFL target: see [`spot_fuzz::query`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::query(data));
}
