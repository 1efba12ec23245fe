//! Choosing and opening the backend.

use std::time::Duration;

use hookfleet_store::{BackendKind, SQLITE_FILE_NAME, Store, StoreError, StoreOptions};

use crate::support::event;

#[tokio::test]
async fn unset_url_opens_sqlite_file_in_data_dir_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");

    let store = Store::connect(None, &data_dir).await.unwrap();

    assert_eq!(store.kind(), BackendKind::Sqlite);
    assert!(data_dir.join(SQLITE_FILE_NAME).exists());
    store.close().await;
}

#[tokio::test]
async fn empty_url_means_unset() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(Some(""), dir.path()).await.unwrap();
    assert_eq!(store.kind(), BackendKind::Sqlite);
}

#[tokio::test]
async fn sqlite_url_names_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let url = format!("sqlite://{}", path.display());

    let store = Store::connect(Some(&url), dir.path()).await.unwrap();

    assert_eq!(store.kind(), BackendKind::Sqlite);
    assert!(path.exists());
    assert!(!dir.path().join(SQLITE_FILE_NAME).exists());
}

#[tokio::test]
async fn sqlite_file_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(None, dir.path()).await.unwrap();
    store
        .insert_events(&[event(
            "a",
            None,
            "link.clicked",
            time::OffsetDateTime::now_utc(),
        )])
        .await
        .unwrap();

    let wal = dir.path().join(format!("{SQLITE_FILE_NAME}-wal"));
    assert!(wal.exists(), "expected {} in WAL mode", wal.display());
}

#[tokio::test]
async fn reopening_keeps_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let at = time::OffsetDateTime::now_utc();
    let first = Store::connect(None, dir.path()).await.unwrap();
    first
        .insert_events(&[event("kept", None, "link.clicked", at)])
        .await
        .unwrap();
    first.close().await;

    let second = Store::connect(None, dir.path()).await.unwrap();

    assert!(second.event("kept").await.unwrap().is_some());
    let again = second
        .insert_events(&[event("kept", None, "link.clicked", at)])
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
}

#[tokio::test]
async fn unknown_url_scheme_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = Store::connect(Some("mysql://localhost/db"), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("DATABASE_URL"), "{error}");
}

#[tokio::test]
async fn in_memory_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["sqlite::memory:", "sqlite://events.db?mode=memory"] {
        let error = Store::connect(Some(url), dir.path()).await.unwrap_err();
        assert!(matches!(error, StoreError::Config(_)), "{url}: {error:?}");
    }
}

#[tokio::test]
async fn unusable_data_dir_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();

    let error = Store::connect(None, &file.join("data")).await.unwrap_err();

    assert!(matches!(error, StoreError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("HOOKFLEET_DATA_DIR"), "{error}");
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_and_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    // Port 1 on loopback: nothing listens, the connection is refused.
    let url = Some("postgres://postgres@127.0.0.1:1/test");
    let error = Store::connect_with(url, dir.path(), &options)
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn postgres_refusing_data_is_invalid_and_stores_nothing() {
    let Some(db) = hookfleet_store::testing::postgres("invalid_data").await else {
        return;
    };
    let at = time::OffsetDateTime::now_utc();
    // PostgreSQL text cannot hold a NUL character: the database refuses
    // the value, whatever the retry.
    let batch = [
        event("good", Some("c"), "link.clicked", at),
        event("bad", Some("c"), "link\0clicked", at),
    ];

    let error = db.store().insert_events(&batch).await.unwrap_err();

    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        db.store().count_events().await.unwrap(),
        0,
        "all or nothing"
    );
    assert!(db.store().minute_counts("c").await.unwrap().is_empty());
    db.drop().await;
}

#[tokio::test]
async fn postgres_pool_closed_is_retryable() {
    let Some(db) = hookfleet_store::testing::postgres("closed_pool").await else {
        return;
    };
    db.store().close().await;
    let at = time::OffsetDateTime::now_utc();

    let error = db
        .store()
        .insert_events(&[event("a", None, "link.clicked", at)])
        .await
        .unwrap_err();

    assert!(error.is_retryable(), "{error:?}");
    db.drop().await;
}

#[tokio::test]
async fn postgres_schemas_are_isolated_and_migrations_are_idempotent() {
    let Some(one) = hookfleet_store::testing::postgres("isolated").await else {
        return;
    };
    let Some(two) = hookfleet_store::testing::postgres("isolated").await else {
        return;
    };
    let at = time::OffsetDateTime::now_utc();
    one.store()
        .insert_events(&[event("only-in-one", None, "link.clicked", at)])
        .await
        .unwrap();

    assert!(two.store().event("only-in-one").await.unwrap().is_none());
    // Connecting again to an existing, migrated schema is fine.
    let again = Store::connect_postgres_schema(one.url(), one.schema())
        .await
        .unwrap();
    assert!(again.event("only-in-one").await.unwrap().is_some());
    again.close().await;

    one.drop().await;
    two.drop().await;
}
