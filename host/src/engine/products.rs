//! `Products`: the host's product names and the ids that stand for them in
//! packed records. Ids are assigned once and never reused in a process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Name ↔ id map shared by the feed (names → ids) and consumers (ids → names).
#[derive(Default)]
pub struct Products {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Products {
    /// Ids for `names`, assigning new ones; also returns the (id, name) pairs
    /// that are new, which the component must be told about.
    pub fn register(&self, names: &[String]) -> (Vec<u32>, Vec<(u32, Arc<str>)>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        let ids = names
            .iter()
            .map(|n| {
                if let Some(&id) = inner.by_name.get(n.as_str()) {
                    return id;
                }
                let id = inner.names.len() as u32;
                let name: Arc<str> = Arc::from(n.as_str());
                inner.names.push(name.clone());
                inner.by_name.insert(name.clone(), id);
                fresh.push((id, name));
                id
            })
            .collect();
        (ids, fresh)
    }

    /// The id of a registered name.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(name)
            .copied()
    }

    /// The name of an id.
    pub fn name(&self, id: u32) -> Option<Arc<str>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .names
            .get(id as usize)
            .cloned()
    }

    /// Every registered (id, name).
    pub fn all(&self) -> Vec<(u32, Arc<str>)> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32, n.clone()))
            .collect()
    }
}
