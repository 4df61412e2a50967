//! The contract of a [`RefreshQueue`]: what is due when, one claim at a
//! time, retries, stops, and a schedule that starts over with new tokens.

use super::provider;
use crate::matching::ResourceKey;
use crate::store::{Due, Expect, Put, RefreshQueue, UserStore};

/// The owner and key of each claim, in order.
fn claimed(due: &[Due]) -> Vec<(&str, &str)> {
    due.iter()
        .map(|d| (d.owner.as_str(), d.key.as_str()))
        .collect()
}

/// How long a claim holds in the contract's checks (seconds).
const LEASE: u64 = 60;

/// Checks every rule of the [`RefreshQueue`] contract on `store`, which
/// must start empty. Panics with the broken rule.
pub async fn check_refresh_queue<S: UserStore + RefreshQueue>(store: &S) {
    let (a, due) = filled(store).await;
    claims_hold_for_their_lease(store, due).await;
    let retry = released_and_retried(store, &a, due).await;
    stopped_until_new_tokens(store, &a, retry).await;
    removed_grants_leave(store, &a).await;
}

/// Two grants due at the returned time (alice's `a`, bob's), and a public
/// resource and a grant without a refresh token, never due.
async fn filled<S: UserStore>(store: &S) -> (crate::store::Provider, u64) {
    let a = provider("https://a.example/api", "A");
    let b = provider("https://b.example/api", "B");
    let due = a.refresh_due().expect("the test grant can be refreshed");
    for (owner, p) in [("alice", &a), ("bob", &b)] {
        let put = store.put_provider(owner, p.clone(), Expect::Nothing).await;
        assert_eq!(put.expect("written"), Put::Written);
    }
    // A public resource, and a grant without a refresh token, are never due.
    let mut public = provider("https://public.example/", "P");
    public.grant = None;
    let mut stuck = provider("https://stuck.example/api", "S");
    if let Some(t) = stuck.grant.as_mut().and_then(|g| g.tokens.as_mut()) {
        t.refresh_token = None;
    }
    for p in [public, stuck] {
        let put = store.put_provider("alice", p, Expect::Nothing).await;
        assert_eq!(put.expect("written"), Put::Written);
    }
    (a, due)
}

async fn claims_hold_for_their_lease<S: RefreshQueue>(store: &S, due: u64) {
    let claim = |now, limit| store.claim_due(now, limit, LEASE);
    let none = claim(due - 1, 10).await.expect("claim");
    assert!(none.is_empty(), "claimed before due: {:?}", claimed(&none));
    // Up to the limit, oldest due first; each claim holds for its LEASE.
    let one = claim(due, 1).await.expect("claim");
    assert_eq!(one.len(), 1, "the limit is kept");
    assert_eq!(one[0].failures, 0);
    let other = claim(due, 10).await.expect("claim");
    assert_eq!(
        other.len(),
        1,
        "only the grant nobody holds: {:?}",
        claimed(&other)
    );
    assert_ne!(claimed(&one), claimed(&other), "a grant claimed twice");
    let held = claim(due + LEASE - 1, 10).await.expect("claim");
    assert!(held.is_empty(), "claimed while held: {:?}", claimed(&held));
    let again = claim(due + LEASE, 10).await.expect("claim");
    assert_eq!(again.len(), 2, "a LEASE that ended frees its grant");
}

async fn released_and_retried<S: RefreshQueue>(
    store: &S,
    a: &crate::store::Provider,
    due: u64,
) -> u64 {
    let claim = |now, limit| store.claim_due(now, limit, LEASE);
    // Released: claimable again while still due.
    let (alice, a_key) = ("alice", &a.key);
    store.release(alice, a_key).await.expect("release");
    let freed = claim(due + LEASE, 10).await.expect("claim");
    assert_eq!(
        claimed(&freed),
        [(alice, a_key.as_str())],
        "a released claim"
    );

    // A passing failure: due again at the retry time, with its count.
    let retry = due + 1_000;
    store.retry_at(alice, a_key, 2, retry).await.expect("retry");
    let early = claim(retry - 1, 10).await.expect("claim");
    assert!(
        !claimed(&early).contains(&(alice, a_key.as_str())),
        "claimed before its retry"
    );
    let retried = claim(retry, 10).await.expect("claim");
    assert_eq!(claimed(&retried), [(alice, a_key.as_str())]);
    assert_eq!(retried[0].failures, 2, "the failures so far");
    retry
}

async fn stopped_until_new_tokens<S: UserStore + RefreshQueue>(
    store: &S,
    a: &crate::store::Provider,
    retry: u64,
) {
    let claim = |now, limit| store.claim_due(now, limit, LEASE);
    let (alice, a_key) = ("alice", &a.key);
    // Stopped: never due, until new tokens are written.
    store.stop(alice, a_key).await.expect("stop");
    let later = retry + 100_000;
    let stopped = claim(later, 10).await.expect("claim");
    assert!(
        !claimed(&stopped).contains(&(alice, a_key.as_str())),
        "a stopped grant is never due"
    );
    let mut fresh = a.clone();
    let new_due = {
        let t = fresh
            .grant
            .as_mut()
            .and_then(|g| g.tokens.as_mut())
            .expect("tokens");
        t.issued_at = Some(later);
        t.expires_at = Some(later + 3_600);
        fresh.refresh_due().expect("due")
    };
    let put = store.put_provider(alice, fresh, Expect::Exactly(a)).await;
    assert_eq!(put.expect("written"), Put::Written);
    assert!(claim(new_due - 1, 10)
        .await
        .expect("claim")
        .iter()
        .all(|d| d.owner != alice));
    let renewed = claim(new_due, 10).await.expect("claim");
    assert_eq!(
        claimed(&renewed),
        [(alice, a_key.as_str())],
        "new tokens are due again"
    );
    assert_eq!(renewed[0].failures, 0, "new tokens start the count over");
}

async fn removed_grants_leave<S: UserStore + RefreshQueue>(store: &S, a: &crate::store::Provider) {
    let claim = |now, limit| store.claim_due(now, limit, LEASE);
    let (alice, a_key) = ("alice", &a.key);
    // Removed: gone from the queue.
    let bob_key = ResourceKey::parse("https://b.example/api").expect("key");
    store
        .remove_provider("bob", &bob_key)
        .await
        .expect("remove");
    store.remove_provider(alice, a_key).await.expect("remove");
    let gone = claim(u64::MAX / 2, 10).await.expect("claim");
    assert!(
        gone.is_empty(),
        "removed grants still due: {:?}",
        claimed(&gone)
    );
}

/// Checks that `store`, configured with a keep-alive of `keep_alive`
/// seconds (`with_keep_alive`), schedules a grant at that many seconds
/// after its tokens were issued when that comes before their refresh
/// margin, and at the margin otherwise. `store` must start empty.
pub async fn check_keep_alive<S: UserStore + RefreshQueue>(store: &S, keep_alive: u64) {
    let p = provider("https://kept.example/api", "K");
    let t = p.tokens().expect("the test grant has tokens");
    let issued = t.issued_at.expect("issued");
    let margin = t.refresh_due_at().expect("expires");
    assert!(
        issued + keep_alive < margin,
        "choose a keep-alive shorter than the test grant's life"
    );
    let put = store.put_provider("alice", p, Expect::Nothing).await;
    assert_eq!(put.expect("written"), Put::Written);
    let claim = |now| store.claim_due(now, 10, LEASE);
    let early = claim(issued + keep_alive - 1).await.expect("claim");
    assert!(
        early.is_empty(),
        "claimed before the keep-alive: {:?}",
        claimed(&early)
    );
    let kept = claim(issued + keep_alive).await.expect("claim");
    assert_eq!(
        claimed(&kept),
        [("alice", "https://kept.example/api")],
        "due at the keep-alive, before the refresh margin"
    );
}
