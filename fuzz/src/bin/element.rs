//! AFL target: see [`spot_fuzz::element`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::element(data));
}
