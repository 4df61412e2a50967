//! Several accounts at one API (a person's work and personal GitHub, two
//! Google accounts). Each connection may carry an account label. A user's
//! first connection to an API is their default there (what a call without
//! an account uses), whatever its label; each further account is kept under
//! the store owner [`owner_of`]`(user, label)`, so every store, lock and
//! refresh works per account as it does per user. [`placement`] says where
//! a new grant goes, [`resolve`] which store owner serves a call.
//!
//! ```
//! use idp::flow::accounts::{owner_of, split};
//! assert_eq!(owner_of("alice", None)?, "alice");
//! let work = owner_of("alice", Some("work"))?;
//! assert_eq!(split(&work), ("alice", Some("work")));
//! assert!(owner_of("alice", Some("two words")).is_err());
//! # Ok::<(), idp::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::matching::ResourceKey;
use crate::store::{Provider, UserStore};

/// What separates a user from an account label in a store owner: a control
/// character, which neither a label nor (checked by [`check_user`]) a user
/// id may contain.
pub const SEPARATOR: char = '\u{1f}';

/// The longest account label.
pub const MAX_LABEL_LEN: usize = 64;

/// Checks an account label: 1 to 64 ASCII letters, digits or `.`, `_`,
/// `-`, `+`, `@` (room for an email address or a login).
pub fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidAccount {
            label: label.chars().take(MAX_LABEL_LEN).collect(),
        })
    }
}

/// Checks a user id: it must not contain [`SEPARATOR`] (it would name
/// another user's account).
pub fn check_user(user: &str) -> Result<()> {
    if user.contains(SEPARATOR) || user.is_empty() {
        return Err(Error::InvalidAccount {
            label: user.replace(SEPARATOR, "\u{fffd}"),
        });
    }
    Ok(())
}

/// The store owner of `user`'s account `label` (`user` itself for none).
pub fn owner_of(user: &str, label: Option<&str>) -> Result<String> {
    check_user(user)?;
    match label {
        None => Ok(user.to_owned()),
        Some(l) => {
            check_label(l)?;
            Ok(format!("{user}{SEPARATOR}{l}"))
        }
    }
}

/// The store owner a call made as `owner` acts as with `label`: `owner`
/// itself without one (a user, or already one of their accounts), else the
/// user's account `label`.
pub fn acting(owner: &str, label: Option<&str>) -> Result<String> {
    match label {
        None => Ok(owner.to_owned()),
        label => owner_of(owner, label),
    }
}

/// A store owner, checked once where it comes in: a user, or one of a
/// user's accounts. A user id never contains [`SEPARATOR`], so no user id
/// names another user's account.
///
/// ```
/// use idp::flow::accounts::Owner;
/// let work = Owner::account("alice", "work")?;
/// assert_eq!((work.user_id(), work.label()), ("alice", Some("work")));
/// assert_eq!(Owner::user("alice")?.as_str(), "alice");
/// assert!(Owner::user("alice\u{1f}work").is_err(), "not bob's way into alice's account");
/// # Ok::<(), idp::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// A user, by an id of the app's that does not contain [`SEPARATOR`].
    pub fn user(user: &str) -> Result<Self> {
        check_user(user)?;
        Ok(Self(user.to_owned()))
    }

    /// The user's account `label` ([`check_label`]).
    pub fn account(user: &str, label: &str) -> Result<Self> {
        owner_of(user, Some(label)).map(Self)
    }

    /// As the store keys it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user.
    pub fn user_id(&self) -> &str {
        split(&self.0).0
    }

    /// The account label, if it is one of the user's accounts.
    pub fn label(&self) -> Option<&str> {
        split(&self.0).1
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (user, label) = split(&self.0);
        match label {
            Some(l) => write!(f, "{user} (account {l})"),
            None => f.write_str(user),
        }
    }
}

/// What the native API takes as an owner: a user id (`&str`, `String`),
/// checked as [`Owner::user`] (so a string with [`SEPARATOR`] is
/// refused, never read as an account), or an [`Owner`].
pub trait IntoOwner {
    /// The owner, or why the value is none.
    fn into_owner(self) -> Result<Owner>;
}

impl IntoOwner for &str {
    fn into_owner(self) -> Result<Owner> {
        Owner::user(self)
    }
}

impl IntoOwner for &String {
    fn into_owner(self) -> Result<Owner> {
        Owner::user(self)
    }
}

impl IntoOwner for String {
    fn into_owner(self) -> Result<Owner> {
        Owner::user(&self)
    }
}

impl IntoOwner for Owner {
    fn into_owner(self) -> Result<Owner> {
        Ok(self)
    }
}

impl IntoOwner for &Owner {
    fn into_owner(self) -> Result<Owner> {
        Ok(self.clone())
    }
}

/// The user and account label of a store owner.
pub fn split(owner: &str) -> (&str, Option<&str>) {
    match owner.split_once(SEPARATOR) {
        Some((user, label)) => (user, Some(label)),
        None => (owner, None),
    }
}

/// Where a new grant of `user`'s account `label` for `key` is stored: the
/// user's own row when it has none for `key` yet (the first account is the
/// default) or when that row is the same account; otherwise the account's.
pub async fn placement(
    store: &impl UserStore,
    user: &str,
    label: Option<&str>,
    key: &ResourceKey,
) -> Result<String> {
    let Some(l) = label else {
        return owner_of(user, None);
    };
    let account = owner_of(user, Some(l))?;
    if store.provider(&account, key).await?.is_some() {
        return Ok(account);
    }
    match store.provider(user, key).await? {
        Some(default) if default.account.as_deref() != Some(l) => Ok(account),
        _ => Ok(user.to_owned()),
    }
}

/// Which store owner serves `user`'s account `label` for a request under
/// `url`: the account's own rows, or the user's default when it is that
/// account. Without a label, the user's default.
pub async fn resolve(
    store: &impl UserStore,
    user: &str,
    label: Option<&str>,
    url: &ResourceKey,
) -> Result<String> {
    let Some(l) = label else {
        return owner_of(user, None);
    };
    let account = owner_of(user, Some(l))?;
    if store.provider_for(&account, url).await?.is_some() {
        return Ok(account);
    }
    match store.provider_for(user, url).await? {
        Some(default) if default.account.as_deref() == Some(l) => Ok(user.to_owned()),
        _ => Ok(account),
    }
}

/// The store owner a connection of `user` just stored (by
/// [`super::finish_login`] or a device login) is kept under.
pub async fn holder(store: &impl UserStore, user: &str, provider: &Provider) -> Result<String> {
    if let Some(l) = provider.account.as_deref() {
        let account = owner_of(user, Some(l))?;
        if store.provider(&account, &provider.key).await?.is_some() {
            return Ok(account);
        }
    }
    owner_of(user, None)
}

/// The store owner serving a call made as `owner` (a user, or a user's
/// account as [`owner_of`] names it) for `url`: [`resolve`] of its parts.
/// A user's own call costs nothing here (no parse, no lookup): it is on
/// every authed call's path.
pub async fn serving(store: &impl UserStore, owner: &str, url: &str) -> Result<String> {
    match split(owner) {
        (_, None) => Ok(owner.to_owned()),
        (user, label) => resolve(store, user, label, &ResourceKey::parse(url)?).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Expect;
    use crate::testing::block_on;

    fn row(key: &str, account: Option<&str>) -> Provider {
        let key = ResourceKey::parse(key).unwrap();
        Provider {
            name: "api".into(),
            resource_url: key.to_string(),
            resource: key.to_string(),
            key,
            metadata: serde_json::Value::Null,
            grant: None,
            created_at: 0,
            account: account.map(str::to_owned),
        }
    }

    #[test]
    fn the_first_account_is_the_default_and_others_are_kept_apart() {
        let store = MemoryStore::default();
        let key = ResourceKey::parse("https://api.example").unwrap();
        let url = ResourceKey::parse("https://api.example/items").unwrap();
        let place = |l| block_on(placement(&store, "alice", l, &key)).unwrap();
        assert_eq!(place(Some("work")), "alice", "the first is the default");
        let put = block_on(store.put_provider(
            "alice",
            row("https://api.example", Some("work")),
            Expect::Nothing,
        ))
        .unwrap();
        assert_eq!(put, crate::store::Put::Written);
        assert_eq!(place(Some("work")), "alice", "the same account replaces it");
        assert_eq!(place(None), "alice");
        let home = owner_of("alice", Some("home")).unwrap();
        assert_eq!(place(Some("home")), home);
        let find = |l| block_on(resolve(&store, "alice", l, &url)).unwrap();
        assert_eq!(find(Some("work")), "alice");
        assert_eq!(find(Some("home")), home, "not connected yet: its own rows");
        let put = block_on(store.put_provider(
            &home,
            row("https://api.example", Some("home")),
            Expect::Nothing,
        ))
        .unwrap();
        assert_eq!(put, crate::store::Put::Written);
        assert_eq!(find(Some("home")), home);
        assert_eq!(place(Some("home")), home);
        assert_eq!(find(None), "alice");
    }

    #[test]
    fn labels_and_users_that_could_name_another_are_refused() {
        for bad in ["", "a b", "x\u{1f}y", "é", &"a".repeat(65)] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
        for good in ["work", "me@example.com", "octo-cat_2", "a+b"] {
            assert!(check_label(good).is_ok(), "{good}");
        }
        assert!(owner_of("alice\u{1f}work", None).is_err());
        assert_eq!(split("alice"), ("alice", None));
    }
}
