//! AFL target: see [`spot_fuzz::rest_products`].
fn main() {
    afl::fuzz!(|data: &[u8]| spot_fuzz::rest_products(data));
}
