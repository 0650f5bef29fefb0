//! AFL target: see [`spot_fuzz::request_head`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::request_head(data));
}
