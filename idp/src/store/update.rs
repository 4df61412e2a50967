//! The one way a provider row is changed after it was read: a decision over
//! the row as it is now, written by compare-and-swap
//! ([`UserStore::put_provider`]) and decided again over what another writer
//! left when the row changed meanwhile. Every path that stores a grant or
//! changes a row (a login, a device login, a machine grant, a refresh, a
//! public resource, the Workers object's naming hook) goes through
//! [`update_provider`], so none can overwrite what it did not see.
//!
//! ```
//! use idp::matching::ResourceKey;
//! use idp::store::update::{update_provider, Change};
//! use idp::store::{Provider, UserStore};
//!
//! /// Renames the row as it is now; a removed row stays removed.
//! async fn rename(store: &impl UserStore, key: &ResourceKey) -> idp::Result<Option<Provider>> {
//!     update_provider(store, "alice", key, "it was renamed", |now| match now {
//!         Some(p) => Change::Write(Box::new(Provider { name: "API".into(), ..p.clone() })),
//!         None => Change::Keep,
//!     })
//!     .await
//! }
//! ```

use super::{Provider, Put, UserStore};
use crate::error::{Error, Result, StorageCause};
use crate::matching::ResourceKey;

/// What an update makes of a provider row, decided over the row as it is.
#[derive(Debug)]
pub enum Change {
    /// Write this provider in the row's place.
    Write(Box<Provider>),
    /// Leave the row as it is.
    Keep,
}

/// How many times [`update_provider`] decides and writes before it reports
/// that the row kept changing.
pub const UPDATE_TRIES: usize = 3;

/// Reads `owner`'s row under `key` and applies `decide` to it
/// ([`update_provider_from`]).
pub async fn update_provider<S: UserStore + ?Sized>(
    store: &S,
    owner: &str,
    key: &ResourceKey,
    what: &str,
    decide: impl FnMut(Option<&Provider>) -> Change,
) -> Result<Option<Provider>> {
    let current = store.provider(owner, key).await?;
    update_provider_from(store, owner, key, current, what, decide).await
}

/// Applies `decide` to `owner`'s row under `key`, starting from `current`
/// (the row as the caller read it, or `None` for no row): what it says to
/// write is written only over that row (compare-and-swap); when another
/// writer changed it meanwhile, `decide` is asked again over the row as it
/// is then, [`UPDATE_TRIES`] times at most. The row as it is afterwards:
/// the one written, or the one `decide` kept (`None` when there is none).
/// `what` names the change in the error when the row kept changing.
pub async fn update_provider_from<S: UserStore + ?Sized>(
    store: &S,
    owner: &str,
    key: &ResourceKey,
    mut current: Option<Provider>,
    what: &str,
    mut decide: impl FnMut(Option<&Provider>) -> Change,
) -> Result<Option<Provider>> {
    for _ in 0..UPDATE_TRIES {
        let next = match decide(current.as_ref()) {
            Change::Keep => return Ok(current),
            Change::Write(next) => *next,
        };
        debug_assert_eq!(&next.key, key, "an update writes its own row");
        match store
            .put_provider(owner, next.clone(), current.as_ref().into())
            .await?
        {
            Put::Written => return Ok(Some(next)),
            Put::Conflict(now) => current = now.map(|p| *p),
        }
    }
    Err(Error::storage(
        StorageCause::Conflict,
        format!("the provider {key} kept changing while {what}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, Bent};

    fn row(name: &str) -> Provider {
        let key = ResourceKey::parse("https://api.example/v1").unwrap();
        Provider {
            name: name.into(),
            resource_url: key.to_string(),
            resource: key.to_string(),
            key,
            metadata: serde_json::Value::Null,
            grant: None,
            created_at: 0,
            account: None,
        }
    }

    /// A store where another writer gets in between each read and write:
    /// the first `races` compare-and-swaps find the row changed.
    fn racing(races: std::rc::Rc<std::cell::Cell<usize>>) -> Bent {
        Bent {
            before_put: Some(Box::new(move |inner, owner, mine| {
                if races.get() > 0 {
                    races.set(races.get() - 1);
                    // The other writer: a new grant's row under the same key.
                    let theirs = row(&format!("theirs-{}", races.get()));
                    let now = block_on(inner.provider(owner, &mine.key)).unwrap();
                    let put = inner.put_provider(owner, theirs, now.as_ref().into());
                    assert_eq!(block_on(put).unwrap(), Put::Written);
                }
                false
            })),
            ..Bent::default()
        }
    }

    #[test]
    fn racing_writers_each_decide_over_what_the_other_wrote() {
        let key = row("").key;
        let races = std::rc::Rc::new(std::cell::Cell::new(1));
        let store = racing(races.clone());
        let mut seen = Vec::new();
        let out = block_on(update_provider(&store, "alice", &key, "named", |now| {
            seen.push(now.map(|p| p.name.clone()));
            Change::Write(Box::new(row(&format!(
                "mine over {:?}",
                now.map(|p| p.name.clone())
            ))))
        }))
        .unwrap()
        .unwrap();
        assert_eq!(seen, [None, Some("theirs-0".to_owned())]);
        assert_eq!(out.name, r#"mine over Some("theirs-0")"#);
        let stored = block_on(store.inner.provider("alice", &key))
            .unwrap()
            .unwrap();
        assert_eq!(stored, out);

        // A writer that keeps what it did not expect keeps theirs.
        races.set(1);
        let expected = stored.clone();
        let out = block_on(update_provider(
            &store,
            "alice",
            &key,
            "kept",
            |now| match now {
                Some(p) if *p == expected => Change::Write(Box::new(row("mine"))),
                _ => Change::Keep,
            },
        ))
        .unwrap();
        assert_eq!(out.map(|p| p.name), Some("theirs-0".to_owned()));

        // A row that never settles.
        races.set(UPDATE_TRIES);
        let e = block_on(update_provider(&store, "alice", &key, "busy", |_| {
            Change::Write(Box::new(row("mine")))
        }))
        .unwrap_err();
        assert!(e.to_string().contains("kept changing while busy"), "{e}");
    }
}
