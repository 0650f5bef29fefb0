//! The products the fleet serves: this instance's own, and every product an
//! ingesting instance of the fleet announced. Any instance's page, streams and
//! API accept any of them; the list grows as shards announce theirs, and a
//! stopped shard's products stay (its clients get no updates, not errors).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

/// A snapshot of the list.
#[derive(Debug, Default)]
pub struct Products {
    /// Sorted, without repeats.
    pub list: Vec<String>,
    set: HashSet<String>,
}

impl Products {
    fn of(mut list: Vec<String>) -> Self {
        list.sort();
        list.dedup();
        let set = list.iter().cloned().collect();
        Products { list, set }
    }

    /// Whether `product` is served.
    pub fn contains(&self, product: &str) -> bool {
        self.set.contains(product)
    }
}

/// The fleet's products, shared by HTTP and the listener.
pub struct Catalog {
    local: Vec<String>,
    current: RwLock<Arc<Products>>,
    changed: watch::Sender<()>,
}

impl Catalog {
    /// A catalog that starts with this instance's own products.
    pub fn new(local: &[String]) -> Arc<Self> {
        let (changed, _) = watch::channel(());
        Arc::new(Catalog {
            local: local.to_vec(),
            current: RwLock::new(Arc::new(Products::of(local.to_vec()))),
            changed,
        })
    }

    /// The products now.
    pub fn products(&self) -> Arc<Products> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `product` is served.
    pub fn contains(&self, product: &str) -> bool {
        self.products().contains(product)
    }

    /// Set the fleet's products (this instance's own always stay); wakes the
    /// watchers when the list changed.
    pub fn set_fleet(&self, fleet: impl IntoIterator<Item = String>) {
        let next = Products::of(self.local.iter().cloned().chain(fleet).collect());
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.list != next.list {
            *current = Arc::new(next);
            drop(current);
            self.changed.send_replace(());
        }
    }

    /// Told each time the list changes.
    pub fn watch(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_adds_to_the_local_products_and_says_when_it_changed() {
        let c = Catalog::new(&["B-USD".into(), "A-USD".into()]);
        let mut w = c.watch();
        assert_eq!(c.products().list, ["A-USD", "B-USD"]);
        c.set_fleet(["C-USD".to_string(), "A-USD".to_string()]);
        assert!(w.has_changed().unwrap());
        w.mark_unchanged();
        assert_eq!(c.products().list, ["A-USD", "B-USD", "C-USD"]);
        assert!(c.contains("C-USD") && !c.contains("D-USD"));
        c.set_fleet(["C-USD".to_string()]);
        assert!(!w.has_changed().unwrap(), "the same list is no change");
        c.set_fleet([]);
        assert_eq!(c.products().list, ["A-USD", "B-USD"], "its own products stay");
    }
}
