//! The server's configuration (SPEC §4; the seed's names), validated in one place.

use std::path::PathBuf;
use std::sync::Arc;

use crate::feed::Credentials;
use crate::fleet::Role;

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
    /// `HOST`: the address HTTP listens on, admin routes included
    /// (`0.0.0.0`, every interface; `127.0.0.1` keeps it on this machine).
    pub host: std::net::IpAddr,
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
    /// `COINBASE_WS_URL`: the market-data WebSocket.
    pub coinbase_ws_url: String,
    /// `COINBASE_REST_URL`: the REST base (products, candles for repairs).
    pub coinbase_rest_url: String,
    /// `COINBASE_API_KEY` + `COINBASE_PRIVATE_KEY`: sign subscribes with a JWT.
    pub credentials: Option<Arc<Credentials>>,
    /// `SHARD_INDEX` / `SHARD_COUNT`: this instance's share of the products.
    pub shard_index: u32,
    pub shard_count: u32,
    /// `PRODUCTS_PER_CONNECTION`: the cap of products on one WebSocket.
    pub products_per_connection: usize,
    /// `ADMIN_TOKEN`: bearer token of `/admin/*`; `None` turns admin off.
    pub admin_token: Option<String>,
    /// `HISTORY_DAYS`: the UTC days kept, counted and served (2: the
    /// current and the previous one).
    pub history_days: u32,
    /// `COINBASE_REST_RATE`: REST requests per second for the whole process
    /// (Coinbase allows about 10 per IP).
    pub rest_rate: f64,
    /// `AUDIT`: compare the stored candles with the exchange's (`on`).
    pub audit: bool,
    /// `ROLE`: `ingest` (feed, writer, history for this shard) or `replica`
    /// (serves every product of the fleet from PostgreSQL).
    pub role: Role,
    /// `COMPONENT_MEMORY_MB`: the linear memory cap of each component
    /// instance, bytes (`None`: the sandbox's default, 1 GiB).
    pub component_memory: Option<usize>,
    /// `ALLOWED_ORIGINS`: other origins that may open `/stream` and read
    /// `/api/*` (none by default).
    pub allowed_origins: crate::http::cors::Cors,
}

/// Coinbase's market-data WebSocket (`COINBASE_WS_URL`'s default): anything
/// else is a stand-in exchange, and the page says so.
pub const COINBASE_WS: &str = "wss://advanced-trade-ws.coinbase.com";

/// The default component, as `make run` and the container build it.
pub const DEFAULT_COMPONENT: &str = "target/wasm32-wasip2/component/spot_guest.wasm";

impl Config {
    /// Read the configuration through `get`: the binary passes its flags
    /// and environment ([`crate::cli::Settings::get`]), tests pass a map.
    ///
    /// A variable set to nothing but blanks counts as unset: `docker compose`
    /// passes `VAR: ${VAR:-}` as an empty value, and an empty `PRODUCTS` or
    /// `SHARD_INDEX` there means "not given", not "malformed".
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        let port = match get("PORT") {
            None => 8080,
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "PORT",
                reason: "not a port number".into(),
            })?,
        };
        let host = match get("HOST") {
            None => std::net::IpAddr::from([0, 0, 0, 0]),
            Some(h) => h.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "HOST",
                reason: "an IP address to listen on (0.0.0.0, 127.0.0.1, ::)".into(),
            })?,
        };
        let database_url = get("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let products = match get("PRODUCTS") {
            None => None,
            Some(list) => Some(parse_products(&list)?),
        };
        let data_dir = PathBuf::from(get("SPOT_DATA_DIR").unwrap_or_else(|| "data".into()));
        let credentials = match (get("COINBASE_API_KEY"), get("COINBASE_PRIVATE_KEY")) {
            (None, None) => None,
            (Some(name), Some(key)) => Some(Arc::new(Credentials::new(&name, &key).map_err(|e| {
                ConfigError::Invalid {
                    var: "COINBASE_PRIVATE_KEY",
                    reason: e.to_string(),
                }
            })?)),
            (Some(_), None) => return Err(ConfigError::Missing("COINBASE_PRIVATE_KEY (COINBASE_API_KEY is set)")),
            (None, Some(_)) => return Err(ConfigError::Missing("COINBASE_API_KEY (COINBASE_PRIVATE_KEY is set)")),
        };
        let shard_count = number(&get, "SHARD_COUNT", 1)?;
        let shard_index = number(&get, "SHARD_INDEX", 0)?;
        if shard_count == 0 || shard_index >= shard_count {
            return Err(ConfigError::Invalid {
                var: "SHARD_INDEX",
                reason: format!("must be below SHARD_COUNT ({shard_count}), and SHARD_COUNT at least 1"),
            });
        }
        let products_per_connection = number(&get, "PRODUCTS_PER_CONNECTION", 100)?;
        if products_per_connection == 0 {
            return Err(ConfigError::Invalid {
                var: "PRODUCTS_PER_CONNECTION",
                reason: "must be at least 1".into(),
            });
        }
        let history_days = number(&get, "HISTORY_DAYS", 2)?;
        if !(1..=crate::horizon::MAX_DAYS as usize).contains(&history_days) {
            return Err(ConfigError::Invalid {
                var: "HISTORY_DAYS",
                reason: format!("must be from 1 to {}", crate::horizon::MAX_DAYS),
            });
        }
        let rest_rate = match get("COINBASE_REST_RATE") {
            None => 8.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000.0 => r,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "COINBASE_REST_RATE",
                        reason: "requests per second: a number above 0".into(),
                    });
                }
            },
        };
        let audit = match get("AUDIT").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("on" | "true" | "1") => true,
            Some("off" | "false" | "0") => false,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: "AUDIT",
                    reason: "on or off".into(),
                });
            }
        };
        let role = match get("ROLE") {
            None => Role::Ingest,
            Some(v) => Role::from_name(&v.trim().to_ascii_lowercase()).ok_or_else(|| ConfigError::Invalid {
                var: "ROLE",
                reason: "ingest or replica".into(),
            })?,
        };
        let component_memory = match get("COMPONENT_MEMORY_MB") {
            None => None,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(mb) if (16..=16_384).contains(&mb) => Some(mb << 20),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "COMPONENT_MEMORY_MB",
                        reason: "MiB from 16 to 16384".into(),
                    });
                }
            },
        };
        let allowed_origins =
            crate::http::cors::Cors::parse(&get("ALLOWED_ORIGINS").unwrap_or_default()).map_err(|e| {
                ConfigError::Invalid {
                    var: "ALLOWED_ORIGINS",
                    reason: e.to_string(),
                }
            })?;
        let url = |var: &'static str, default: &str, schemes: &[&str]| -> Result<String, ConfigError> {
            let v = get(var).unwrap_or_else(|| default.into());
            let v = v.trim().trim_end_matches('/').to_string();
            if schemes.iter().any(|s| v.starts_with(&format!("{s}://"))) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    var,
                    reason: format!("must start with {}", schemes.join(":// or ") + "://"),
                })
            }
        };
        Ok(Config {
            host,
            port,
            database_url,
            component_path: PathBuf::from(get("COMPONENT_PATH").unwrap_or_else(|| DEFAULT_COMPONENT.into())),
            products,
            cache_dir: data_dir.join("component-cache"),
            datastar_url: get("DATASTAR_URL").unwrap_or_else(|| crate::http::page::DATASTAR_CDN.into()),
            coinbase_ws_url: url("COINBASE_WS_URL", COINBASE_WS, &["wss", "ws"])?,
            coinbase_rest_url: url("COINBASE_REST_URL", "https://api.coinbase.com", &["https", "http"])?,
            credentials,
            shard_index: shard_index as u32,
            shard_count: shard_count as u32,
            products_per_connection,
            admin_token: get("ADMIN_TOKEN").map(|t| t.trim().to_string()),
            history_days: history_days as u32,
            rest_rate,
            audit,
            role,
            component_memory,
            allowed_origins,
        })
    }
}

/// An unsigned number variable, `default` when unset.
fn number(get: &impl Fn(&str) -> Option<String>, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            var,
            reason: "not a non-negative integer".into(),
        }),
    }
}

/// `BTC-USD, eth-usd` → `["BTC-USD", "ETH-USD"]`, validated, without repeats.
fn parse_products(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = p.to_ascii_uppercase();
        crate::product::valid(&p).map_err(|e| ConfigError::Invalid {
            var: "PRODUCTS",
            reason: e.to_string(),
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
        assert_eq!(c.host, std::net::IpAddr::from([0, 0, 0, 0]));
        assert!(c.products.is_none());
        assert_eq!(c.component_path, PathBuf::from(DEFAULT_COMPONENT));
    }

    #[test]
    fn an_empty_variable_is_an_unset_one() {
        // What `docker compose` passes for `VAR: ${VAR:-}`.
        let blank = [
            "HOST",
            "PORT",
            "PRODUCTS",
            "SHARD_INDEX",
            "SHARD_COUNT",
            "PRODUCTS_PER_CONNECTION",
            "COINBASE_WS_URL",
            "COINBASE_REST_URL",
            "COINBASE_API_KEY",
            "COINBASE_PRIVATE_KEY",
            "ADMIN_TOKEN",
            "COMPONENT_PATH",
            "DATASTAR_URL",
            "SPOT_DATA_DIR",
            "HISTORY_DAYS",
            "COINBASE_REST_RATE",
            "AUDIT",
            "ROLE",
            "COMPONENT_MEMORY_MB",
            "ALLOWED_ORIGINS",
        ];
        let mut vars = vec![("DATABASE_URL", "postgresql://x/y")];
        vars.extend(blank.iter().map(|v| (*v, " ")));
        let c = config(&vars).unwrap();
        assert_eq!(c.port, 8080);
        assert!(c.products.is_none());
        assert!(c.admin_token.is_none());
        assert!(c.credentials.is_none());
        assert_eq!(c.component_path, PathBuf::from(DEFAULT_COMPONENT));
        assert_eq!(c.cache_dir, PathBuf::from("data/component-cache"));
        assert_eq!(c.coinbase_ws_url, "wss://advanced-trade-ws.coinbase.com");
        assert!(matches!(
            config(&[("DATABASE_URL", "")]),
            Err(ConfigError::Missing("DATABASE_URL"))
        ));
    }

    #[test]
    fn products_are_normalised_and_checked() {
        let c = config(&[("DATABASE_URL", "u"), ("PRODUCTS", " btc-usd,ETH-USD,,BTC-USD ")]).unwrap();
        assert_eq!(c.products.unwrap(), vec!["BTC-USD", "ETH-USD"]);
        assert!(config(&[("DATABASE_URL", "u"), ("PRODUCTS", "BTC-USD,<b>")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("PRODUCTS", " , ")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("PORT", "http")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("HOST", "localhost")]).is_err());
        assert!(config(&[("DATABASE_URL", "u"), ("ALLOWED_ORIGINS", "example.com")]).is_err());
        let c = config(&[("DATABASE_URL", "u"), ("HOST", " 127.0.0.1 ")]).unwrap();
        assert_eq!(c.host, std::net::IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn feed_settings_are_validated() {
        let c = config(&[("DATABASE_URL", "u")]).unwrap();
        assert_eq!(c.coinbase_ws_url, "wss://advanced-trade-ws.coinbase.com");
        assert_eq!(c.coinbase_rest_url, "https://api.coinbase.com");
        assert_eq!((c.shard_index, c.shard_count), (0, 1));
        assert!(c.credentials.is_none());
        assert_eq!((c.history_days, c.rest_rate, c.audit), (2, 8.0, true));
        let c = config(&[
            ("DATABASE_URL", "u"),
            ("HISTORY_DAYS", "1"),
            ("COINBASE_REST_RATE", "2.5"),
            ("AUDIT", "off"),
        ])
        .unwrap();
        assert_eq!((c.history_days, c.rest_rate, c.audit), (1, 2.5, false));
        assert_eq!(c.role, Role::Ingest);
        let c = config(&[("DATABASE_URL", "u"), ("ROLE", " Replica ")]).unwrap();
        assert_eq!(c.role, Role::Replica);
        assert_eq!(c.component_memory, None);
        let c = config(&[("DATABASE_URL", "u"), ("COMPONENT_MEMORY_MB", "64")]).unwrap();
        assert_eq!(c.component_memory, Some(64 << 20));
        let c = config(&[("DATABASE_URL", "u"), ("SHARD_INDEX", "2"), ("SHARD_COUNT", "3")]).unwrap();
        assert_eq!((c.shard_index, c.shard_count), (2, 3));
        for bad in [
            &[("SHARD_INDEX", "3"), ("SHARD_COUNT", "3")][..],
            &[("SHARD_COUNT", "0")],
            &[("SHARD_INDEX", "-1")],
            &[("COINBASE_WS_URL", "http://x")],
            &[("COINBASE_REST_URL", "ftp://x")],
            &[("PRODUCTS_PER_CONNECTION", "0")],
            &[("HISTORY_DAYS", "0")],
            &[("HISTORY_DAYS", "50")],
            &[("COINBASE_REST_RATE", "0")],
            &[("COINBASE_REST_RATE", "fast")],
            &[("AUDIT", "maybe")],
            &[("ROLE", "leader")],
            &[("COMPONENT_MEMORY_MB", "8")],
            &[("COMPONENT_MEMORY_MB", "lots")],
            &[("COINBASE_API_KEY", "organizations/o/apiKeys/k")],
            &[("COINBASE_API_KEY", "k"), ("COINBASE_PRIVATE_KEY", "not a key")],
        ] {
            let mut vars = vec![("DATABASE_URL", "u")];
            vars.extend_from_slice(bad);
            let e = config(&vars).expect_err(&format!("{bad:?}"));
            assert!(!e.to_string().contains("not a key"), "the key never appears in errors");
        }
    }
}
