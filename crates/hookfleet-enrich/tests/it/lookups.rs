//! The lookup cache: hits, expiry, negative caching, errors, bounds.
//! Time is tokio's paused clock, moved by hand.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookfleet_enrich::{CacheConfig, LookupSource, Lookups};
use hookfleet_store::{Campaign, StoreError, User};

const TTL: Duration = Duration::from_secs(60);
const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// An in-memory directory that counts the queries it answers.
#[derive(Default)]
struct CountingDirectory {
    campaigns: Mutex<HashMap<String, Campaign>>,
    users: Mutex<Vec<User>>,
    down: Mutex<bool>,
    queries: AtomicUsize,
}

impl CountingDirectory {
    fn with_campaign(self, id: &str) -> Self {
        self.add_campaign(id);
        self
    }

    fn add_campaign(&self, id: &str) {
        self.campaigns.lock().unwrap().insert(
            id.to_owned(),
            Campaign {
                campaign_id: id.to_owned(),
                channel: Some("email".into()),
                budget: None,
                target_audience: None,
            },
        );
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn query(&self) -> Result<(), StoreError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        if *self.down.lock().unwrap() {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

impl LookupSource for CountingDirectory {
    async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.query()?;
        Ok(self.campaigns.lock().unwrap().get(id).cloned())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.query()?;
        Ok(self
            .users
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.id == id)
            .cloned())
    }

    async fn user_by_referral_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        self.query()?;
        let users = self.users.lock().unwrap();
        Ok(users
            .iter()
            .find(|u| u.referral_token.as_deref() == Some(token))
            .cloned())
    }
}

fn lookups(directory: CountingDirectory) -> Lookups<CountingDirectory> {
    Lookups::new(
        directory,
        CacheConfig {
            capacity: 100,
            ttl: TTL,
            negative_ttl: NEGATIVE_TTL,
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_hit_does_not_query_again() {
    let lookups = lookups(CountingDirectory::default().with_campaign("spring"));

    let first = lookups.campaign("spring").await.unwrap().unwrap();
    for _ in 0..100 {
        let again = lookups.campaign("spring").await.unwrap().unwrap();
        assert_eq!(again, first);
    }

    assert_eq!(lookups.source().queries(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_entry_is_queried_again_after_its_ttl() {
    let lookups = lookups(CountingDirectory::default().with_campaign("spring"));
    lookups.campaign("spring").await.unwrap();

    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    lookups.campaign("spring").await.unwrap();
    assert_eq!(
        lookups.source().queries(),
        1,
        "still fresh just before the TTL"
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    lookups.campaign("spring").await.unwrap();
    assert_eq!(lookups.source().queries(), 2, "expired at the TTL");
}

#[tokio::test(start_paused = true)]
async fn a_missing_row_is_cached_for_the_shorter_ttl() {
    let lookups = lookups(CountingDirectory::default());

    assert_eq!(lookups.campaign("autumn").await.unwrap(), None);
    assert_eq!(lookups.campaign("autumn").await.unwrap(), None);
    assert_eq!(lookups.source().queries(), 1, "not found is cached too");

    // The campaign is created; it shows once the negative entry expires,
    // well before the positive TTL would have passed.
    lookups.source().add_campaign("autumn");
    tokio::time::advance(NEGATIVE_TTL - Duration::from_millis(1)).await;
    assert_eq!(lookups.campaign("autumn").await.unwrap(), None);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(lookups.campaign("autumn").await.unwrap().is_some());
    assert_eq!(lookups.source().queries(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_error_is_returned_and_not_cached() {
    let lookups = lookups(CountingDirectory::default().with_campaign("spring"));
    *lookups.source().down.lock().unwrap() = true;

    let error = lookups.campaign("spring").await.unwrap_err();
    assert!(error.is_retryable());

    *lookups.source().down.lock().unwrap() = false;
    assert!(lookups.campaign("spring").await.unwrap().is_some());
    assert_eq!(
        lookups.source().queries(),
        2,
        "the failure was not remembered"
    );
}

#[tokio::test(start_paused = true)]
async fn users_are_cached_by_id_and_by_token_separately() {
    let directory = CountingDirectory::default();
    directory.users.lock().unwrap().push(User {
        id: "usr_ada".into(),
        email: Some("ada@example.com".into()),
        name: Some("Ada".into()),
        referral_token: Some("ref_ada".into()),
    });
    let lookups = lookups(directory);

    let by_token = lookups
        .user_by_referral_token("ref_ada")
        .await
        .unwrap()
        .unwrap();
    let by_id = lookups.user_by_id("usr_ada").await.unwrap().unwrap();
    assert_eq!(by_token, by_id);
    lookups.user_by_referral_token("ref_ada").await.unwrap();
    lookups.user_by_id("usr_ada").await.unwrap();
    assert_eq!(lookups.source().queries(), 2);

    assert_eq!(
        lookups.user_by_id("ref_ada").await.unwrap(),
        None,
        "keys do not mix"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_is_bounded() {
    let directory = CountingDirectory::default()
        .with_campaign("a")
        .with_campaign("b")
        .with_campaign("c");
    let lookups = Lookups::new(
        directory,
        CacheConfig {
            capacity: 2,
            ..CacheConfig::default()
        },
    );

    for id in ["a", "b", "c"] {
        lookups.campaign(id).await.unwrap();
    }
    lookups.campaign("c").await.unwrap();
    lookups.campaign("b").await.unwrap();
    assert_eq!(lookups.source().queries(), 3, "b and c are still cached");

    lookups.campaign("a").await.unwrap();
    assert_eq!(
        lookups.source().queries(),
        4,
        "a was evicted to make room for c"
    );
}
