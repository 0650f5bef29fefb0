//! Which products this instance serves, and how they spread over connections.
//!
//! A product belongs to shard `fnv1a64(product_id) % SHARD_COUNT`: a stable
//! hash of the id alone, so listing or delisting other products never moves it
//! to another instance (unlike splitting a sorted list into ranges).

/// 64-bit FNV-1a: fixed, documented, identical on every build and platform
/// (std's `DefaultHasher` promises none of that).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The shard of `product` among `count`.
pub fn shard_of(product: &str, count: u32) -> u32 {
    (fnv1a64(product.as_bytes()) % count.max(1) as u64) as u32
}

/// The products of shard `index` of `count`, sorted.
pub fn select(products: &[String], index: u32, count: u32) -> Vec<String> {
    let mut mine: Vec<String> = products
        .iter()
        .filter(|p| shard_of(p, count) == index)
        .cloned()
        .collect();
    mine.sort();
    mine.dedup();
    mine
}

/// Spread `products` over `ceil(n / per_connection)` connections, round-robin,
/// so the connections carry about the same number of products.
pub fn spread(products: &[String], per_connection: usize) -> Vec<Vec<String>> {
    let per = per_connection.max(1);
    let n = products.len().div_ceil(per);
    let mut out = vec![Vec::new(); n];
    for (i, p) in products.iter().enumerate() {
        out[i % n].push(p.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("P{i}-USD")).collect()
    }

    #[test]
    fn the_hash_is_the_published_fnv1a() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn shards_partition_and_stay_put_when_the_listing_changes() {
        let all = names(900);
        let shards: Vec<Vec<String>> = (0..4).map(|i| select(&all, i, 4)).collect();
        let total: usize = shards.iter().map(Vec::len).sum();
        assert_eq!(total, 900);
        for s in &shards {
            assert!(s.len() > 150, "unbalanced: {}", s.len());
        }
        // Delist a third, list new ones: nobody that stays changes shard.
        let mut changed: Vec<String> = all.iter().skip(300).cloned().collect();
        changed.extend((0..100).map(|i| format!("NEW{i}-USD")));
        for (i, before) in shards.iter().enumerate() {
            let after = select(&changed, i as u32, 4);
            for p in after.iter().filter(|p| all.contains(p)) {
                assert!(before.contains(p), "{p} moved");
            }
        }
    }

    #[test]
    fn spread_respects_the_cap_and_balances() {
        let conns = spread(&names(250), 100);
        assert_eq!(conns.len(), 3);
        assert!(conns.iter().all(|c| c.len() <= 100 && c.len() >= 83));
        assert_eq!(conns.iter().map(Vec::len).sum::<usize>(), 250);
        assert!(spread(&[], 100).is_empty());
    }
}
