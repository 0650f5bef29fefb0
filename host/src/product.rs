//! The product-id rule: what a Coinbase product id may look like before it
//! goes into a URL path, SQL or a page. The feed applies it to the exchange's
//! listing, the configuration to `PRODUCTS`, HTTP to every query string.
//! And what is known of a product beside its id ([`TradingPair`]).

/// A product as the exchange lists it (the `trading_pairs` row, the
/// `/api/products` item). Sizes are the exchange's decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TradingPair {
    pub product_id: String,
    pub base_currency: Option<String>,
    pub quote_currency: Option<String>,
    /// `online`, ...; `None` until the exchange listed it (`PRODUCTS` alone
    /// names no status).
    pub status: Option<String>,
    /// The smallest and largest order size, in the base currency.
    pub min_size: Option<String>,
    pub max_size: Option<String>,
}

impl TradingPair {
    /// A pair known only by its id (`BASE-QUOTE`), e.g. from `PRODUCTS`.
    pub fn from_id(id: &str) -> Self {
        let (base, quote) = match id.split_once('-') {
            Some((b, q)) => (Some(b.to_string()), Some(q.to_string())),
            None => (None, None),
        };
        TradingPair {
            product_id: id.to_string(),
            base_currency: base,
            quote_currency: quote,
            status: None,
            min_size: None,
            max_size: None,
        }
    }
}

/// `value` when it is a plain non-negative decimal (`0.00000001`, `3400`):
/// what may go into a `NUMERIC` column as it is.
pub fn decimal(value: &str) -> Option<&str> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (value.len() <= 40 && digits(whole) && digits(frac)).then_some(value)
}

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
    fn sizes_are_plain_decimals() {
        assert_eq!(decimal("0.00000001"), Some("0.00000001"));
        assert_eq!(decimal("3400"), Some("3400"));
        for bad in ["", "1e9", "-1", "1.", ".5", "NaN", "1,5", &"9".repeat(41)] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

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
