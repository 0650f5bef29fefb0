//! The command line of `spot-server`: every setting of SPEC §4 as a flag whose
//! environment variable is the seed's name, so `--help` documents the
//! environment too. Flags win over the environment; the values then go
//! through [`Config::from_lookup`], the one place that validates them.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};

/// Live OHLCV candles from Coinbase trades, aggregated by a sandboxed,
/// hot-swappable WebAssembly component, stored in PostgreSQL and streamed
/// to browsers over Datastar SSE.
#[derive(Debug, Parser)]
#[command(name = "spot-server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
    /// Log format: `human` (default) or `json` (one object per line). The
    /// level filter is `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

/// What `spot-server` does.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply the pending database migrations and exit.
    Migrate,
    /// Make live_candles a TimescaleDB hypertable (1-day chunks, rows kept), on a
    /// database migrated before TimescaleDB was loaded by the server; then exit.
    Timescaledb,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log collectors (Cloud Logging, Loki...).
    Json,
}

/// The settings of SPEC §4. Each is optional here; [`Config::from_lookup`]
/// applies the defaults and says what is missing or wrong. Values from the
/// environment are never echoed by `--help` (keys and tokens live there).
#[derive(Debug, Default, Args)]
pub struct Settings {
    /// Address to listen on, admin included [default: 0.0.0.0]
    #[arg(long, env = "HOST", hide_env_values = true)]
    pub host: Option<String>,
    /// HTTP port [default: 8080]
    #[arg(long, env = "PORT", hide_env_values = true)]
    pub port: Option<String>,
    /// PostgreSQL URL (required; `make run` starts a local one when unset)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Market-data WebSocket [default: wss://advanced-trade-ws.coinbase.com]
    #[arg(long, env = "COINBASE_WS_URL", hide_env_values = true)]
    pub coinbase_ws_url: Option<String>,
    /// REST base for the product list and repair candles [default: https://api.coinbase.com]
    #[arg(long, env = "COINBASE_REST_URL", hide_env_values = true)]
    pub coinbase_rest_url: Option<String>,
    /// CDP API key name (`organizations/…/apiKeys/…`); with the private key, subscribes carry a JWT
    #[arg(long, env = "COINBASE_API_KEY", hide_env_values = true)]
    pub coinbase_api_key: Option<String>,
    /// CDP private key: ES256 PEM (SEC1 or PKCS#8, `\n` escapes allowed) or Ed25519 (base64 or PEM)
    #[arg(long, env = "COINBASE_PRIVATE_KEY", hide_env_values = true)]
    pub coinbase_private_key: Option<String>,
    /// Comma-separated products (BTC-USD,ETH-USD) [default: every online spot product from REST]
    #[arg(long, env = "PRODUCTS", hide_env_values = true)]
    pub products: Option<String>,
    /// This instance's shard of the products, below SHARD_COUNT [default: 0]
    #[arg(long, env = "SHARD_INDEX", hide_env_values = true)]
    pub shard_index: Option<String>,
    /// Number of shards the products are split into [default: 1]
    #[arg(long, env = "SHARD_COUNT", hide_env_values = true)]
    pub shard_count: Option<String>,
    /// Most products on one WebSocket connection [default: 100]
    #[arg(long, env = "PRODUCTS_PER_CONNECTION", hide_env_values = true)]
    pub products_per_connection: Option<String>,
    /// The aggregation component (.wasm), loaded at start and watched for changes
    /// [default: target/wasm32-wasip2/component/spot_guest.wasm]
    #[arg(long, env = "COMPONENT_PATH", hide_env_values = true)]
    pub component_path: Option<String>,
    /// Bearer token of /admin/* (component upload, rollback); admin is off when unset
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where the page loads the Datastar client from [default: the official CDN]
    #[arg(long, env = "DATASTAR_URL", hide_env_values = true)]
    pub datastar_url: Option<String>,
    /// Local data (the compiled-component cache) [default: data]
    #[arg(long, env = "SPOT_DATA_DIR", hide_env_values = true)]
    pub data_dir: Option<String>,
    /// UTC days kept, counted, backfilled and served, the current one included [default: 2]
    #[arg(long, env = "HISTORY_DAYS", hide_env_values = true)]
    pub history_days: Option<String>,
    /// REST requests per second for the whole process: repairs, then backfill, then audit [default: 8]
    #[arg(long, env = "COINBASE_REST_RATE", hide_env_values = true)]
    pub coinbase_rest_rate: Option<String>,
    /// Compare the stored candles with Coinbase's own (on/off) [default: on]
    #[arg(long, env = "AUDIT", hide_env_values = true)]
    pub audit: Option<String>,
    /// ingest: feed, writer and history for this shard's products; replica: no feed and
    /// no writer, serves every product of the fleet from PostgreSQL [default: ingest]
    #[arg(long, env = "ROLE", hide_env_values = true)]
    pub role: Option<String>,
    /// Linear memory cap of each component instance, MiB (16 to 16384) [default: 1024]
    #[arg(long, env = "COMPONENT_MEMORY_MB", hide_env_values = true)]
    pub component_memory_mb: Option<String>,
    /// Other origins that may open /stream and read /api/*, comma-separated (`*`: any) [default: none]
    #[arg(long, env = "ALLOWED_ORIGINS", hide_env_values = true)]
    pub allowed_origins: Option<String>,
}

impl Settings {
    /// The value of an environment variable name, as given by flag or environment.
    pub fn get(&self, var: &str) -> Option<String> {
        self.field(var).and_then(Clone::clone)
    }

    /// The field that holds variable `var`; `None` for a name with no flag.
    fn field(&self, var: &str) -> Option<&Option<String>> {
        Some(match var {
            "HOST" => &self.host,
            "PORT" => &self.port,
            "DATABASE_URL" => &self.database_url,
            "COINBASE_WS_URL" => &self.coinbase_ws_url,
            "COINBASE_REST_URL" => &self.coinbase_rest_url,
            "COINBASE_API_KEY" => &self.coinbase_api_key,
            "COINBASE_PRIVATE_KEY" => &self.coinbase_private_key,
            "PRODUCTS" => &self.products,
            "SHARD_INDEX" => &self.shard_index,
            "SHARD_COUNT" => &self.shard_count,
            "PRODUCTS_PER_CONNECTION" => &self.products_per_connection,
            "COMPONENT_PATH" => &self.component_path,
            "ADMIN_TOKEN" => &self.admin_token,
            "DATASTAR_URL" => &self.datastar_url,
            "SPOT_DATA_DIR" => &self.data_dir,
            "HISTORY_DAYS" => &self.history_days,
            "COINBASE_REST_RATE" => &self.coinbase_rest_rate,
            "AUDIT" => &self.audit,
            "ROLE" => &self.role,
            "COMPONENT_MEMORY_MB" => &self.component_memory_mb,
            "ALLOWED_ORIGINS" => &self.allowed_origins,
            _ => return None,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_lookup(|var| self.get(var))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("spot-server").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_reach_the_config() {
        let cli = parse(&[
            "--database-url",
            "postgresql://h/db",
            "--host",
            "127.0.0.1",
            "--port",
            "9000",
            "--products",
            "btc-usd,eth-usd",
            "--shard-index",
            "1",
            "--shard-count",
            "2",
            "--log-format",
            "json",
            "migrate",
        ]);
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.log_format, LogFormat::Json);
        let c = cli.settings.config().unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.database_url, "postgresql://h/db");
        assert_eq!(c.products.unwrap(), ["BTC-USD", "ETH-USD"]);
        assert_eq!((c.shard_index, c.shard_count), (1, 2));
    }

    #[test]
    fn every_variable_the_config_reads_has_a_flag() {
        // Settings::get is the server's only lookup: a variable that Config
        // reads but that has no flag would be silently ignored.
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|var| {
            asked.borrow_mut().push(var.to_string());
            (var == "DATABASE_URL").then(|| "postgresql://h/db".to_string())
        })
        .unwrap();
        let settings = Settings::default();
        let asked = asked.into_inner();
        assert!(asked.len() >= 14, "{asked:?}");
        for var in &asked {
            assert!(settings.field(var).is_some(), "{var} has no flag");
        }
        assert!(settings.field("NOT_A_SETTING").is_none());
    }

    #[test]
    fn help_names_every_variable_and_hides_values() {
        let help = Cli::try_parse_from(["spot-server", "--help"]).unwrap_err().to_string();
        for var in [
            "HOST",
            "PORT",
            "DATABASE_URL",
            "COINBASE_WS_URL",
            "COINBASE_REST_URL",
            "COINBASE_API_KEY",
            "COINBASE_PRIVATE_KEY",
            "PRODUCTS",
            "SHARD_INDEX",
            "SHARD_COUNT",
            "COMPONENT_PATH",
            "ADMIN_TOKEN",
            "LOG_FORMAT",
            "HISTORY_DAYS",
            "COINBASE_REST_RATE",
            "AUDIT",
            "ROLE",
        ] {
            assert!(help.contains(&format!("env: {var}")), "--help lacks {var}:\n{help}");
        }
    }
}
