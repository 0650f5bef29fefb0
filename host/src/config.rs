//! The server's configuration, from the environment (SPEC §4; the seed's names).

use std::path::PathBuf;

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT`: the HTTP port (8080).
    pub port: u16,
    /// `DATABASE_URL` (required).
    pub database_url: String,
    /// `COMPONENT_PATH`: the aggregation component loaded at start.
    pub component_path: PathBuf,
    /// `PRODUCTS`: comma-separated; `None` means discover them.
    pub products: Option<Vec<String>>,
    /// Where compiled components are cached (`SPOT_DATA_DIR`/component-cache).
    pub cache_dir: PathBuf,
    /// `DATASTAR_URL`: where the page loads the Datastar client from.
    pub datastar_url: String,
}

/// The default component, as `make run` and the container build it.
pub const DEFAULT_COMPONENT: &str = "target/wasm32-wasip2/component/spot_guest.wasm";

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = match get("PORT") {
            None => 8080,
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "PORT",
                reason: "not a port number".into(),
            })?,
        };
        let database_url = get("DATABASE_URL")
            .filter(|u| !u.trim().is_empty())
            .ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let products = match get("PRODUCTS") {
            None => None,
            Some(list) => Some(parse_products(&list)?),
        };
        let data_dir = PathBuf::from(get("SPOT_DATA_DIR").unwrap_or_else(|| "data".into()));
        Ok(Config {
            port,
            database_url,
            component_path: PathBuf::from(get("COMPONENT_PATH").unwrap_or_else(|| DEFAULT_COMPONENT.into())),
            products,
            cache_dir: data_dir.join("component-cache"),
            datastar_url: get("DATASTAR_URL")
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| crate::http::page::DATASTAR_CDN.into()),
        })
    }
}

/// `BTC-USD, eth-usd` → `["BTC-USD", "ETH-USD"]`, validated, without repeats.
fn parse_products(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = p.to_ascii_uppercase();
        crate::http::query::product(&p).map_err(|e| ConfigError::Invalid {
            var: "PRODUCTS",
            reason: e.message.to_string(),
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Invalid {
            var: "PRODUCTS",
            reason: "set but lists no product".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_required() {
        assert!(matches!(config(&[]), Err(ConfigError::Missing("DATABASE_URL"))));
        let c = config(&[("DATABASE_URL", "postgresql://x/y")]).unwrap();
        assert_eq!(c.port, 8080);
        assert!(c.products.is_none());
        assert_eq!(c.component_path, PathBuf::from(DEFAULT_COMPONENT));
    }

    #[test]
    fn products_are_normalised_and_checked() {
        let c = config(&[("DATABASE_URL", "u"), ("PRODUCTS", " btc-usd,ETH-USD,,BTC-USD ")]).unwrap();
        assert_eq!(c.products.unwrap(), vec!["BTC-USD", "ETH-USD"]);
        assert!(config(&[("DATABASE_URL", "u"), ("PRODUCTS", "BTC-USD,<b>")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("PRODUCTS", " , ")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("PORT", "http")]).is_err());
    }
}
