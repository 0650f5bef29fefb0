//! `spot-dev-postgres [DIR] [PORT]`: make sure the local development cluster
//! (default `data/postgres`, port 5433) exists and runs, then print its URL.
//! `make run` uses it when `DATABASE_URL` is unset; the server keeps running
//! (stop it with `pg_ctl stop -D data/postgres/data`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "data/postgres".into()));
    let port = match args.next().map(|p| p.parse::<u16>()) {
        None => 5433,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("spot-dev-postgres: bad port: {e}");
            return ExitCode::FAILURE;
        }
    };
    match spot_testkit::pg::Cluster::persistent(&dir, port) {
        Ok(cluster) => {
            println!("{}", cluster.url("postgres"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spot-dev-postgres: {e}");
            ExitCode::FAILURE
        }
    }
}
