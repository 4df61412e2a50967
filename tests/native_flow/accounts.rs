//! Several accounts of one user at one API natively.

use super::*;

/// Connects `url` for `owner` (a user, or a user's account) as the person
/// `person` at oidc-provider, in a browser of their own.
async fn connect_as(
    idp: &NativeIdp,
    owner: &idp::flow::accounts::Owner,
    url: &str,
    person: &str,
) -> idp::store::Provider {
    let LoginStart::Redirect(mut to) = idp.connect(owner, url, None).await.unwrap() else {
        panic!("{url} is public");
    };
    to.query_pairs_mut().append_pair("login_hint", person);
    let back = Browser::new().follow_until(to.as_str(), REDIRECT).await;
    idp.callback(owner, &back).await.unwrap()
}

/// Two accounts of one person at one API, for an API served by a provider
/// profile and for one found by discovery: each call goes to the account
/// asked for (the API answers whose token it got), a call naming no account
/// uses the first connected, connecting an account again replaces it, and
/// removing one keeps the other.
#[tokio::test(flavor = "current_thread")]
async fn two_accounts_at_one_api_are_kept_apart_natively() {
    use idp::flow::accounts::Owner;
    let servers = Servers::start(Default::default());
    let (origin, issuer) = (&servers.origin, &servers.issuer);
    let mut settings = settings();
    // The profile-served API: oidc-provider's endpoints stated by hand, and
    // a client registered in advance for the profile's callback.
    let client = servers.register_client(&format!("{REDIRECT}/demo")).await;
    let v1 = format!("{origin}/v1");
    let mut profile = idp::profile::ProviderProfile::new(
        "demo",
        &[&v1],
        issuer.as_str(),
        Url::parse(&format!("{issuer}/auth")).unwrap(),
        Url::parse(&format!("{issuer}/token")).unwrap(),
        client,
    );
    profile.scopes = vec!["api:read".into()];
    settings.profiles = vec![profile];
    let idp = NativeIdp::new(settings);
    // The discovered API, at a server of its own (at the profile's, its
    // metadata would name the profile's issuer, whose client serves only
    // the profile's resources).
    let discovered = Servers::start(Default::default());
    let api = format!("{}/api", discovered.origin);
    let work = Owner::account("alice", "work").unwrap();
    let home = Owner::account("alice", "home").unwrap();

    for (base, start) in [(&v1, format!("{v1}/start")), (&api, format!("{api}/start"))] {
        let first = connect_as(&idp, &work, &start, "work-person").await;
        assert_eq!(first.account.as_deref(), Some("work"));
        let second = connect_as(&idp, &home, &start, "home-person").await;
        assert_eq!(second.account.as_deref(), Some("home"));
        let items = format!("{base}/items");
        assert_eq!(
            sub_of(idp.fetch("alice").account("work"), &items).await,
            "work-person"
        );
        assert_eq!(
            sub_of(idp.fetch("alice").account("home"), &items).await,
            "home-person"
        );
        assert_eq!(
            sub_of(idp.fetch("alice"), &items).await,
            "work-person",
            "the first is the default"
        );
        // The same account again: replaced, not duplicated.
        connect_as(&idp, &home, &start, "home-person").await;
        let key = idp::matching::ResourceKey::parse(base).unwrap();
        let mut rows = Vec::new();
        for owner in ["alice", home.as_str()] {
            let list = idp.store().providers(owner).await.unwrap();
            rows.push(list.iter().filter(|p| p.key == key).count());
        }
        assert_eq!(rows, [1, 1]);
        // Removing home keeps work.
        idp.remove(&home, &items).await.unwrap();
        let e = idp
            .fetch("alice")
            .account("home")
            .get(&items)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AuthorizationRequired(_)), "{e}");
        assert_eq!(
            sub_of(idp.fetch("alice").account("work"), &items).await,
            "work-person"
        );
        assert_eq!(sub_of(idp.fetch("alice"), &items).await, "work-person");
    }
    // A label that could name another user's account is refused.
    let e = idp
        .fetch("alice")
        .account("a\u{1f}b")
        .get(&api)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::InvalidAccount, "{e}");
    // A user id that names alice's work account (another user of the app
    // who picked it as their id) is nobody: refused before anything is read
    // or sent, on every way in; alice's account keeps its grant.
    let forged = format!("alice{}work", idp::flow::accounts::SEPARATOR);
    let items = format!("{api}/items");
    let before = discovered.resource_stats().await["requests"].clone();
    let e = idp.fetch(forged.as_str()).get(&items).await.unwrap_err();
    assert_eq!(e.kind(), idp::error::ErrorKind::InvalidAccount, "{e}");
    assert!(idp.authorization(&forged, &api).await.is_err());
    assert!(idp.remove(&forged, &api).await.is_err());
    assert!(idp.connect(forged.as_str(), &api, None).await.is_err());
    assert_eq!(
        discovered.resource_stats().await["requests"],
        before,
        "nothing sent"
    );
    assert!(
        idp.authorization(&work, &api).await.unwrap().is_some(),
        "alice kept it"
    );
}

/// Whose token the API got: its answer names the token's subject.
async fn sub_of(fetch: idp::native::AuthedFetch<'_>, url: &str) -> String {
    let resp = fetch.get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let body: serde_json::Value = resp.json().await.unwrap();
    body["sub"].as_str().unwrap().to_owned()
}
