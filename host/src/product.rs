//! The product-id rule: what a Coinbase product id may look like before it
//! goes into a URL path, SQL or a page. The feed applies it to the exchange's
//! listing, the configuration to `PRODUCTS`, HTTP to every query string.

/// Longest product id accepted (Coinbase's are far shorter).
pub const MAX_PRODUCT_BYTES: usize = 32;

/// A string that is not a product id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("product must look like BASE-QUOTE (letters and digits)")]
pub struct InvalidProduct;

/// `value` when it is `BASE-QUOTE` of ASCII letters and digits, at most
/// [`MAX_PRODUCT_BYTES`] long.
pub fn valid(value: &str) -> Result<&str, InvalidProduct> {
    let ok = !value.is_empty()
        && value.len() <= MAX_PRODUCT_BYTES
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && value.split('-').count() == 2
        && value.split('-').all(|part| !part.is_empty());
    if ok { Ok(value) } else { Err(InvalidProduct) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_base_dash_quote() {
        assert!(valid("BTC-USD").is_ok());
        assert!(valid("1INCH-USDC").is_ok());
        for bad in [
            "",
            "BTC",
            "BTC-",
            "-USD",
            "BTC-USD-X",
            "<script>-USD",
            "BTC-US D",
            &"A".repeat(40),
        ] {
            assert!(valid(bad).is_err(), "{bad:?}");
        }
    }
}
