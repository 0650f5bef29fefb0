//! Loading a component: hash, compile (or reuse the cached artefact), check the
//! contract and the imports, type-check the exports, and smoke-test `info`.
//!
//! All of it runs off the engine's hot path (on the caller's thread); only a
//! [`LoadedComponent`] that passed every step reaches the engine.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::AggregationComponentPre;
use super::error::LoadError;
use super::instance::Instance;
use super::sandbox::{HostState, Sandbox};

/// The contract this host speaks (the version of `wit/spot.wit`).
pub const CONTRACT_VERSION: &str = "0.1.0";
const CONTRACT_EXPORT: &str = "spot:candles/aggregator";
const TYPES_IMPORT: &str = "spot:candles/types";

/// A compiled component that passed every check, ready to instantiate.
pub struct LoadedComponent {
    /// Lowercase hex sha256 of the `.wasm` bytes.
    pub sha256: String,
    /// What the component says it is.
    pub name: String,
    pub version: String,
    /// Size of the `.wasm`, bytes.
    pub size: usize,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Compile time (zero when the cached artefact was used).
    pub compile_time: Duration,
    /// The compiled artefact came from the cache.
    pub from_cache: bool,
    pub(crate) pre: AggregationComponentPre<HostState>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, &self.sha256[..12])
    }
}

impl std::fmt::Display for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// Compiles and checks components, caching compiled artefacts on disk.
#[derive(Clone)]
pub struct Loader {
    sandbox: Arc<Sandbox>,
    cache_dir: Option<PathBuf>,
}

impl Loader {
    /// A loader; `cache_dir` (created if missing) keeps compiled artefacts.
    pub fn new(sandbox: Arc<Sandbox>, cache_dir: Option<PathBuf>) -> Self {
        Loader { sandbox, cache_dir }
    }

    /// The sandbox components are loaded into.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Load a `.wasm` component file.
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedComponent>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_bytes(&bytes)
    }

    /// Load a component from its `.wasm` bytes.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        if Engine::detect_precompiled(bytes).is_some() {
            // Deserializing is unsafe for bytes we did not produce ourselves.
            return Err(LoadError::Precompiled);
        }
        let sha256 = hex(&Sha256::digest(bytes));
        let engine = self.sandbox.engine();
        let started = Instant::now();
        let (component, from_cache) = self.compile(engine, bytes, &sha256)?;
        let compile_time = if from_cache { Duration::ZERO } else { started.elapsed() };

        check_contract(engine, &component)?;
        check_imports(engine, &component)?;
        let mut linker = Linker::<HostState>::new(engine);
        // Only `wasi:` imports remain (check_imports); each becomes a trap.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| LoadError::Exports(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Exports(format!("{e:#}")))?;
        let pre = AggregationComponentPre::new(pre).map_err(|e| LoadError::Exports(format!("{e:#}")))?;

        let mut loaded = LoadedComponent {
            sha256,
            name: String::new(),
            version: String::new(),
            size: bytes.len(),
            loaded_at: SystemTime::now(),
            compile_time,
            from_cache,
            pre,
        };
        let mut probe = Instance::new(&self.sandbox, &loaded).map_err(LoadError::Smoke)?;
        let info = probe.info().map_err(LoadError::Smoke)?;
        loaded.name = info.name.chars().take(100).collect();
        loaded.version = info.version.chars().take(50).collect();
        Ok(Arc::new(loaded))
    }

    fn compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<(Component, bool), LoadError> {
        let cached = self.cache_dir.as_ref().map(|dir| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
        });
        if let Some(path) = &cached
            && path.exists()
        {
            // Read into memory rather than mmap: a file truncated under a live
            // mapping would crash the process (SIGBUS).
            let artefact = std::fs::read(path).map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
            // SAFETY: the file is an artefact this process family wrote with
            // `Component::serialize` under a name keyed by the wasm's hash and the
            // engine's compatibility hash; wasmtime re-checks the header.
            match unsafe { Component::deserialize(engine, &artefact) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached artefact");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        if let Some(path) = &cached
            && let Err(e) = write_atomically(path, &component)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
        }
        Ok((component, false))
    }
}

fn write_atomically(path: &Path, component: &Component) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The version part of `name@version`, if the name is `prefix@version`.
fn versioned<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)?.strip_prefix('@')
}

/// Semver compatibility: same major, or same minor while major is 0.
fn compatible(found: &str, expected: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .take(2)
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect()
    };
    let (f, e) = (parts(found), parts(expected));
    match (f.as_slice(), e.as_slice()) {
        ([0, fm, ..], [0, em, ..]) => fm == em,
        ([fmaj, ..], [emaj, ..]) => fmaj == emaj && *fmaj != 0,
        _ => false,
    }
}

fn check_contract(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    match exports.iter().find_map(|n| versioned(n, CONTRACT_EXPORT)) {
        Some(v) if compatible(v, CONTRACT_VERSION) => Ok(()),
        Some(v) => Err(LoadError::IncompatibleContract {
            found: v.to_string(),
            expected: CONTRACT_VERSION.into(),
        }),
        None => Err(LoadError::MissingContract {
            expected: format!("{CONTRACT_EXPORT}@{CONTRACT_VERSION}"),
            found: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        }),
    }
}

fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    for (name, _) in component.component_type().imports(engine) {
        let allowed =
            name.starts_with("wasi:") || versioned(name, TYPES_IMPORT).is_some_and(|v| compatible(v, CONTRACT_VERSION));
        if !allowed {
            return Err(LoadError::ForbiddenImport(name.to_string()));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_follow_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.7", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("garbage", "0.1.0"));
        assert_eq!(
            versioned("spot:candles/aggregator@0.1.0", CONTRACT_EXPORT),
            Some("0.1.0")
        );
        assert_eq!(versioned("spot:candles/aggregatorx@0.1.0", CONTRACT_EXPORT), None);
    }
}
