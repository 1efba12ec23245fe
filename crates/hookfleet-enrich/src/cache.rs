//! A small bounded cache whose entries expire.
//!
//! Why not a cache crate: the lookups need little (string keys, a TTL per
//! entry so that "not found" can expire sooner, a size bound), and the
//! tests need to move time by hand. The clock here is tokio's, so
//! `tokio::time::pause()` and `advance()` drive expiry deterministically.
//!
//! Eviction is first-in, first-out among live entries once `capacity` is
//! reached. With a TTL, a hot key is fetched again after each expiry
//! anyway, so FIFO costs at most one extra query per TTL for a key that
//! was evicted early; it needs no bookkeeping on a hit.
//!
//! The lock is a plain mutex taken for a hash-map operation and never held
//! across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A bounded map from `String` to `V` with a time to live per entry.
pub(crate) struct TtlCache<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    /// Keys in insertion order, with the generation they were inserted
    /// with; a key re-inserted since has a newer generation, so its old
    /// place in the queue is skipped.
    order: VecDeque<(String, u64)>,
    next_generation: u64,
}

struct Entry<V> {
    value: V,
    expires_at: Instant,
    generation: u64,
}

impl<V: Clone> TtlCache<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_generation: 0,
            }),
        }
    }

    /// The live value for `key`, if any. An expired entry is removed.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(entry) if entry.expires_at > now => Some(entry.value.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `key` for `ttl`, evicting the oldest entries if
    /// the cache is full.
    pub(crate) fn insert(&self, key: String, value: V, ttl: Duration) {
        let expires_at = Instant::now() + ttl;
        let mut inner = self.lock();
        let generation = inner.next_generation;
        inner.next_generation += 1;

        if !inner.entries.contains_key(&key) {
            while inner.entries.len() >= self.capacity {
                inner.evict_oldest();
            }
        }
        inner.order.push_back((key.clone(), generation));
        inner.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                generation,
            },
        );

        // Re-inserted and expired keys leave stale places in the queue;
        // sweep them when they outnumber the live ones.
        if inner.order.len() > 2 * self.capacity {
            inner.compact();
        }
    }

    /// Live and expired-but-not-yet-removed entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters to a cache: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V> Inner<V> {
    fn evict_oldest(&mut self) {
        while let Some((key, generation)) = self.order.pop_front() {
            let current = self.entries.get(&key).map(|e| e.generation);
            if current == Some(generation) {
                self.entries.remove(&key);
                return;
            }
        }
        // The queue always holds every live key, so this is unreachable
        // with entries left; clearing keeps the bound regardless.
        self.entries.clear();
    }

    fn compact(&mut self) {
        let entries = &self.entries;
        self.order.retain(|(key, generation)| {
            entries.get(key).map(|e| e.generation) == Some(*generation)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new(10);
        cache.insert("a".into(), 1, MINUTE);
        cache.insert("b".into(), 2, Duration::from_secs(5));

        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(cache.get("b"), Some(2));

        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get("b"), None, "expired at exactly its TTL");
        assert_eq!(cache.get("a"), Some(1));

        tokio::time::advance(MINUTE).await;
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.len(), 0, "expired entries are removed when read");
    }

    #[tokio::test(start_paused = true)]
    async fn full_cache_evicts_the_oldest_insert() {
        let cache = TtlCache::new(2);
        cache.insert("a".into(), 1, MINUTE);
        cache.insert("b".into(), 2, MINUTE);
        cache.insert("c".into(), 3, MINUTE);

        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), Some(2));
        assert_eq!(cache.get("c"), Some(3));
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reinserting_a_key_renews_it_without_growing() {
        let cache = TtlCache::new(2);
        cache.insert("a".into(), 1, MINUTE);
        cache.insert("b".into(), 2, MINUTE);
        cache.insert("a".into(), 10, MINUTE);
        assert_eq!(cache.len(), 2);

        // "b" is now the oldest live insert.
        cache.insert("c".into(), 3, MINUTE);
        assert_eq!(cache.get("a"), Some(10));
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("c"), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_order_queue_stays_bounded() {
        let cache = TtlCache::new(3);
        for round in 0..1000 {
            cache.insert(format!("k{}", round % 3), round, MINUTE);
        }
        let inner = cache.lock();
        assert!(inner.order.len() <= 6, "{}", inner.order.len());
        assert_eq!(inner.entries.len(), 3);
    }
}
