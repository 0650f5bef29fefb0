//! AFL target: see [`spot_fuzz::outcome`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::outcome(data));
}
