//! Query strings: parsed once, validated with short, fixed messages. Raw input
//! is never echoed back (it could end up in a page).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use spot_wire::Granularity;

/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 4096;

/// A client error: a status and a fixed plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub status: StatusCode,
    pub message: &'static str,
}

impl BadRequest {
    pub const fn new(status: StatusCode, message: &'static str) -> Self {
        BadRequest { status, message }
    }
    const fn bad(message: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// The decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decode a raw query string (absent = empty).
    pub fn parse(raw: Option<&str>) -> Result<Self, BadRequest> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return Err(BadRequest::new(StatusCode::URI_TOO_LONG, "query string too long"));
        }
        Ok(Params(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The one value of `name`: `None` when absent, an error when repeated.
    pub fn one<'a>(&'a self, name: &'a str, repeated: &'static str) -> Result<Option<&'a str>, BadRequest> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(BadRequest::bad(repeated));
        }
        Ok(first)
    }
}

/// The answer for a product that is not served, whatever its shape: one
/// rule for `NOPE` and `NOPE-USD`.
pub const UNKNOWN_PRODUCT: BadRequest =
    BadRequest::new(StatusCode::NOT_FOUND, "unknown product (GET /api/products lists them)");

/// A served product in Coinbase's spelling: ids are matched in any case
/// (`btc-usd` is `BTC-USD`); one that is not a product id
/// ([`crate::product::valid`]) or not `served` is [`UNKNOWN_PRODUCT`].
pub fn served_product(value: &str, served: &dyn Fn(&str) -> bool) -> Result<String, BadRequest> {
    let id = value.to_ascii_uppercase();
    match crate::product::valid(&id) {
        Ok(id) if served(id) => Ok(id.to_string()),
        _ => Err(UNKNOWN_PRODUCT),
    }
}

/// A granularity by its seed name (`ONE_MINUTE`, ...).
pub fn granularity(value: &str) -> Result<Granularity, BadRequest> {
    Granularity::from_name(value).ok_or(BadRequest::bad(
        "granularity must be one of ONE_MINUTE, FIVE_MINUTES, FIFTEEN_MINUTES, THIRTY_MINUTES, ONE_HOUR, TWO_HOURS, SIX_HOURS, ONE_DAY",
    ))
}

/// Every `granularity` value, without repeats, in the order given; all eight
/// when none is given.
pub fn granularities(p: &Params) -> Result<Vec<Granularity>, BadRequest> {
    let mut out = Vec::new();
    for value in p.all("granularity") {
        let g = granularity(value)?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    if out.is_empty() {
        out = Granularity::ALL.to_vec();
    }
    Ok(out)
}

/// Unix seconds from 1970 to 9999.
pub fn unix_seconds(value: &str, message: &'static str) -> Result<i64, BadRequest> {
    match value.parse::<i64>() {
        Ok(v) if (0..=253_402_300_799).contains(&v) => Ok(v),
        _ => Err(BadRequest::bad(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_oversized_queries_are_refused() {
        let p = Params::parse(Some("product=A-B&product=C-D&x=%3C")).unwrap();
        assert!(p.one("product", "one product").is_err());
        assert_eq!(p.one("x", "one x").unwrap(), Some("<"));
        assert_eq!(p.one("y", "one y").unwrap(), None);
        let long = "a=".to_string() + &"b".repeat(MAX_QUERY_BYTES);
        assert_eq!(Params::parse(Some(&long)).unwrap_err().status, StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn products_match_in_any_case_and_one_rule_refuses_the_rest() {
        let served = |p: &str| p == "BTC-USD";
        assert_eq!(served_product("btc-usd", &served).unwrap(), "BTC-USD");
        assert_eq!(served_product("BTC-USD", &served).unwrap(), "BTC-USD");
        for other in ["NOPE", "NOPE-USD", "<b>-USD", ""] {
            assert_eq!(
                served_product(other, &served).unwrap_err(),
                UNKNOWN_PRODUCT,
                "{other:?}"
            );
        }
    }

    #[test]
    fn times_are_bounded_unix_seconds() {
        assert_eq!(unix_seconds("1704567600", "t").unwrap(), 1704567600);
        for bad in ["-1", "1e9", "", "253402300800", "99999999999999999999"] {
            assert!(unix_seconds(bad, "t").is_err(), "{bad:?}");
        }
    }
}
