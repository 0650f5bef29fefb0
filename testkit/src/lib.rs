//! Real parts for spot's tests and local runs.
//!
//! - [`pg`]: a PostgreSQL cluster from the installed server binaries, throwaway
//!   for tests, persistent for `make run`.

pub mod pg;
