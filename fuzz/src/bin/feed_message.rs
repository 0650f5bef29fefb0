//! AFL target: see [`spot_fuzz::feed_message`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::feed_message(data));
}
