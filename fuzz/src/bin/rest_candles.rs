//! AFL target: see [`spot_fuzz::rest_candles`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::rest_candles(data));
}
