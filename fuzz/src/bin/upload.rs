//! AFL target: see [`spot_fuzz::upload`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::upload(data));
}
