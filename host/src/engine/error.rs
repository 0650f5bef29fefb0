//! What can go wrong when loading or running a component.

use std::fmt;

/// A component that cannot become active. The running one is untouched.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read component {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("refusing precompiled bytes: upload the .wasm component, not a .cwasm artefact")]
    Precompiled,
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("component does not implement {expected} (it exports: {found})")]
    MissingContract { expected: String, found: String },
    #[error(
        "component implements spot:candles@{found}, but this host speaks spot:candles@{expected} (a different major version of the contract)"
    )]
    IncompatibleContract { found: String, expected: String },
    #[error("component imports `{0}`, which spot does not provide (components get no capabilities)")]
    ForbiddenImport(String),
    #[error("component exports do not match the contract: {0}")]
    Exports(String),
    #[error("component failed its first call: {0}")]
    Smoke(Fault),
}

/// Why one call into a component failed. A fault costs the component: the
/// instance is discarded and rebuilt, the host carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It ran past its CPU deadline (epoch interruption).
    Timeout,
    /// It tried to grow memory past the cap.
    OutOfMemory(String),
    /// Its call stack overflowed.
    StackOverflow,
    /// It aborted (a Rust panic, a failed allocation, `unreachable`).
    Aborted,
    /// It called a capability the sandbox denies (WASI clocks, environment, ...).
    Denied(String),
    /// Any other trap.
    Trap(String),
    /// It returned an error for this input.
    Refused(String),
    /// Its output does not decode or does not match the input.
    Malformed(String),
    /// It was entered after an earlier trap (a host bug if ever seen).
    Poisoned,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout => write!(f, "timed out (CPU deadline)"),
            Fault::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Fault::StackOverflow => write!(f, "stack overflow"),
            Fault::Aborted => write!(f, "aborted (panic or failed allocation)"),
            Fault::Denied(m) => write!(f, "called a denied capability: {m}"),
            Fault::Trap(m) => write!(f, "trapped: {m}"),
            Fault::Refused(m) => write!(f, "refused the input: {m}"),
            Fault::Malformed(m) => write!(f, "malformed output: {m}"),
            Fault::Poisoned => write!(f, "instance already trapped"),
        }
    }
}

impl std::error::Error for Fault {}

impl Fault {
    /// A short stable label, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Timeout => "timeout",
            Fault::OutOfMemory(_) => "out_of_memory",
            Fault::StackOverflow => "stack_overflow",
            Fault::Aborted => "aborted",
            Fault::Denied(_) => "denied",
            Fault::Trap(_) => "trap",
            Fault::Refused(_) => "refused",
            Fault::Malformed(_) => "malformed",
            Fault::Poisoned => "poisoned",
        }
    }

    /// Classify an error returned by wasmtime for a call.
    pub fn from_wasmtime(e: &wasmtime::Error) -> Fault {
        use wasmtime::Trap;
        if let Some(trap) = e.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => Fault::Timeout,
                Trap::StackOverflow => Fault::StackOverflow,
                Trap::UnreachableCodeReached => Fault::Aborted,
                Trap::CannotEnterComponent => Fault::Poisoned,
                other => Fault::Trap(other.to_string()),
            };
        }
        // The top-level message is a wasm backtrace; the cause is further down.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        let find = |needle: &str| chain.iter().find(|c| c.contains(needle)).map(|c| first_line(c));
        if let Some(m) = find("growing memory").or_else(|| find("memory size")) {
            Fault::OutOfMemory(m)
        } else if let Some(m) = find("unknown import") {
            Fault::Denied(m)
        } else {
            Fault::Trap(chain.last().map(|c| first_line(c)).unwrap_or_default())
        }
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.chars().take(300).collect()
}

/// The engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("component {component} {fault}")]
    Fault { component: String, fault: Fault },
    #[error("the engine has stopped")]
    Stopped,
    #[error("busy: {0}")]
    Busy(String),
    #[error("no working component: {0}")]
    Broken(String),
}
