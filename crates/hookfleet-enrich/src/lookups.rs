//! Campaign and user lookups through a bounded in-memory cache.
//!
//! A hot campaign costs one query per TTL, not one per event. A row that
//! does not exist is cached too, for a shorter TTL, so a stream of events
//! naming an unknown campaign does not query each time, yet a row created
//! later is seen soon.
//!
//! A database error is returned to the caller and not cached: the event
//! is retried, never enriched with a silent gap.
//!
//! Known limit: concurrent misses for the same key each query the database
//! (no request coalescing). With one worker's concurrency and a TTL of a
//! minute that is a handful of queries per key per minute.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hookfleet_store::{Campaign, Store, StoreError, User};

use crate::cache::TtlCache;

/// Where cache misses are answered from: the [`Store`] in production, a
/// fake in tests.
pub trait LookupSource: Send + Sync + 'static {
    /// The campaign with this id, if any.
    fn campaign(
        &self,
        campaign_id: &str,
    ) -> impl Future<Output = Result<Option<Campaign>, StoreError>> + Send;

    /// The user with this id, if any.
    fn user_by_id(&self, id: &str)
    -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// The user with this referral token, if any.
    fn user_by_referral_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
}

impl LookupSource for Store {
    async fn campaign(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError> {
        Store::campaign(self, campaign_id).await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Store::user_by_id(self, id).await
    }

    async fn user_by_referral_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        Store::user_by_referral_token(self, token).await
    }
}

/// How the lookup caches are sized and how long answers live.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Entries per cache (campaigns, users by id, users by token), at most.
    pub capacity: usize,
    /// How long a found row is reused.
    pub ttl: Duration,
    /// How long "no such row" is reused.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
        }
    }
}

/// Cached lookups of campaigns and users. Share it behind an `Arc`.
pub struct Lookups<S = Store> {
    source: S,
    config: CacheConfig,
    campaigns: TtlCache<Option<Arc<Campaign>>>,
    users_by_id: TtlCache<Option<Arc<User>>>,
    users_by_token: TtlCache<Option<Arc<User>>>,
}

impl<S: LookupSource> Lookups<S> {
    /// Lookups answered from `source` on a cache miss.
    pub fn new(source: S, config: CacheConfig) -> Self {
        Self {
            campaigns: TtlCache::new(config.capacity),
            users_by_id: TtlCache::new(config.capacity),
            users_by_token: TtlCache::new(config.capacity),
            source,
            config,
        }
    }

    /// The source behind the cache.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The campaign with this id, if any.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<Arc<Campaign>>, StoreError> {
        if let Some(cached) = self.cached(&self.campaigns, "campaign", campaign_id) {
            return Ok(cached);
        }
        let found = self.source.campaign(campaign_id).await?.map(Arc::new);
        self.remember(&self.campaigns, campaign_id, found.clone());
        Ok(found)
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(cached) = self.cached(&self.users_by_id, "user_by_id", id) {
            return Ok(cached);
        }
        let found = self.source.user_by_id(id).await?.map(Arc::new);
        self.remember(&self.users_by_id, id, found.clone());
        Ok(found)
    }

    /// The user with this referral token, if any.
    pub async fn user_by_referral_token(
        &self,
        token: &str,
    ) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(cached) = self.cached(&self.users_by_token, "user_by_referral_token", token) {
            return Ok(cached);
        }
        let found = self
            .source
            .user_by_referral_token(token)
            .await?
            .map(Arc::new);
        self.remember(&self.users_by_token, token, found.clone());
        Ok(found)
    }

    fn cached<V: Clone>(
        &self,
        cache: &TtlCache<Option<V>>,
        table: &'static str,
        key: &str,
    ) -> Option<Option<V>> {
        let cached = cache.get(key);
        let result = if cached.is_some() { "hit" } else { "miss" };
        metrics::counter!(crate::metrics::CACHE_LOOKUPS, "table" => table, "result" => result)
            .increment(1);
        cached
    }

    fn remember<V: Clone>(&self, cache: &TtlCache<Option<V>>, key: &str, found: Option<V>) {
        let ttl = if found.is_some() {
            self.config.ttl
        } else {
            self.config.negative_ttl
        };
        cache.insert(key.to_owned(), found, ttl);
    }
}
