//! The request policy of an authed call, with no I/O: which header goes to
//! which hop, how each answer is read, when to refresh and retry, and when the
//! person must (re-)authorize. Both runtimes' `AuthedFetch` drive it
//! (`workers::AuthedFetch`, `native::AuthedFetch`).
//!
//! An [`Exchange`] starts from what the store gave for the URL (an
//! [`Authorization`], or nothing: [`Exchange::new`]), or from the store's
//! answer as it came, error included ([`Exchange::start`]). The runtime sends
//! [`Exchange::hop`], reports each answer to [`Exchange::answer`] and each
//! refresh to [`Exchange::refreshed`] as it came, and does what [`Next`]
//! says; which errors mean "connect again" is the exchange's to decide
//! ([`GrantFailure`]), so a runtime only performs I/O:
//!
//! - the token goes only to hops under the provider's prefix; the caller's own
//!   credential headers never follow a redirect to another origin;
//! - redirects are followed by hand (at most [`MAX_REDIRECTS`]), 303 and a
//!   POST's 301/302 become a GET without body;
//! - a 401 on a hop that carried the token asks for one refresh
//!   ([`Next::Refresh`]), then the request is retried once from the start;
//!   a second 401 means the grant no longer works; a DPoP-bound token
//!   refused by a resource that challenges only in the Bearer scheme (it
//!   takes no bound tokens) is not refreshed: the person connects again
//!   for an unbound one ([`Reason::BoundTokenRefused`]);
//! - a 403 `insufficient_scope`, or a 401 whose challenge asks for scope the
//!   token does not hold, is a step-up for the union of held and required
//!   scopes, unless the token holds them all already (then asking again
//!   cannot help and the answer is returned as it is);
//! - a 401 with a Bearer challenge on a hop without a token means "never
//!   connected";
//! - an API whose profile states how it refuses a token otherwise (Slack's
//!   HTTP 200 `"error": "invalid_auth"`, [`crate::token::Refusal`]) has
//!   such an answer read as a 401 ([`Next::Inspect`] when the body says it);
//! - a DPoP-bound token goes as `Authorization: DPoP` with a fresh proof
//!   for each hop ([`Exchange::proof`]); a 401 `use_dpop_nonce` with the
//!   server's `DPoP-Nonce` is answered by sending the hop once more, the
//!   nonce in its proof (RFC 9449 §9), and the nonce is kept for the next
//!   requests to that origin.
//!
//! ```
//! use idp::fetch::{Exchange, Next, Reason};
//!
//! // Nothing connected; the resource challenges.
//! let mut ex = Exchange::new("GET", "https://api.example.com/v1/items", None)?;
//! assert_eq!(ex.hop().authorization, None);
//! let next = ex.answer(401, None, Some(r#"Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#))?;
//! let Next::Reauthorize(r) = next else { panic!("{next:?}") };
//! assert_eq!(r.reason, Reason::NeverConnected);
//! assert_eq!(r.resource, "https://api.example.com/v1/items");
//! # Ok::<(), idp::Error>(())
//! ```

use crate::challenge::BearerChallenge;
use crate::dpop::Nonces;
use crate::error::{Error, OAuthErrorCode, Result};
pub use crate::error::{Reason, Reauthorize};

mod drive;
use crate::flow::Authorization;
use crate::policy::Policy;
use crate::scope::{scopes_cover, union_scopes};
pub use drive::{drive, Answered, CallIo};
use url::Url;

/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// Credential headers a redirect to another origin drops, as browsers do.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// One request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop<'a> {
    /// Where.
    pub url: &'a Url,
    /// The method (upper case).
    pub method: &'a str,
    /// Whether to send the request's body (false after a 303 or a POST's
    /// 301/302 turned it into a GET).
    pub body: bool,
    /// The `Authorization` header the SDK sets; the caller's own is never sent.
    pub authorization: Option<&'a str>,
    /// Whether the caller's `Cookie` and `Proxy-Authorization` may go (only to
    /// the request's own origin).
    pub caller_credentials: bool,
}

impl Hop<'_> {
    /// Whether the caller's header `name` goes with this hop: never its own
    /// `Authorization` or `DPoP` (the SDK sets those).
    pub fn forwards(&self, name: &str) -> bool {
        if name.eq_ignore_ascii_case("authorization")
            || name.eq_ignore_ascii_case(crate::dpop::HEADER)
        {
            return false;
        }
        self.caller_credentials
            || !CREDENTIAL_HEADERS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
    }
}

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send [`Exchange::hop`] (a redirect to follow, or the retry).
    Send,
    /// The resource refused the token: refresh the provider under
    /// [`Exchange::authorization`] (single-flight, with
    /// [`Exchange::rejected_token`] as the failed token), then report the
    /// result to [`Exchange::refreshed`].
    Refresh,
    /// Hand the last answer to the caller as it is.
    Done,
    /// Read the last answer's body and report it to [`Exchange::inspect`]
    /// (the API may say there that the token is refused, its profile's
    /// rule); hand the caller that answer, with that body, if it says
    /// [`Next::Done`].
    Inspect,
    /// The person must (re-)authorize.
    Reauthorize(Reauthorize),
}

/// An error of a runtime's store or refresher, as the exchange reads it:
/// whether it means the person must connect again (the grant expired with no
/// refresh token, was revoked, or is sealed under a retired key), and for
/// which resource. Any other error ends the call as it is.
pub trait GrantFailure {
    /// Why the person must connect again, and the resource the error names,
    /// when it means that.
    fn reauthorization(&self) -> Option<(Reason, Option<String>)>;
}

impl GrantFailure for crate::error::ErrorReport {
    fn reauthorization(&self) -> Option<(Reason, Option<String>)> {
        crate::error::ErrorReport::reauthorization(self).map(|r| (r, self.resource.clone()))
    }
}

impl GrantFailure for Error {
    fn reauthorization(&self) -> Option<(Reason, Option<String>)> {
        GrantFailure::reauthorization(&self.report())
    }
}

/// A bare reason always means "connect again".
impl GrantFailure for Reason {
    fn reauthorization(&self) -> Option<(Reason, Option<String>)> {
        Some((*self, None))
    }
}

/// One authed call in progress. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Exchange {
    url: Url,
    method: String,
    auth: Option<Authorization>,
    hop_url: Url,
    hop_method: String,
    body: bool,
    redirects: usize,
    retried: bool,
    nonce_retried: bool,
    nonce: Option<String>,
    policy: Option<Policy>,
}

/// An answer to one hop, as [`Exchange::reply`] reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reply<'a> {
    /// The status.
    pub status: u16,
    /// The `Location` header.
    pub location: Option<&'a str>,
    /// The `WWW-Authenticate` header.
    pub www_authenticate: Option<&'a str>,
    /// The `DPoP-Nonce` header (RFC 9449 §9). The exchange uses it for its
    /// next proof; the runtime also keeps it in its
    /// [`Nonces`] for the next calls.
    pub dpop_nonce: Option<&'a str>,
}

impl Exchange {
    /// A call of `method` to `url`, with what the store gave for it.
    pub fn new(method: &str, url: &str, auth: Option<Authorization>) -> Result<Self> {
        // Parsed once: every hop and check below uses this value.
        let url = Url::parse(url).map_err(|e| Error::InvalidUrl {
            input: url.to_owned(),
            reason: e.to_string(),
        })?;
        let method = method.to_ascii_uppercase();
        Ok(Self {
            hop_url: url.clone(),
            hop_method: method.clone(),
            url,
            method,
            auth,
            body: true,
            redirects: 0,
            retried: false,
            nonce_retried: false,
            nonce: None,
            policy: None,
        })
    }

    /// A call of `method` to `url`, from the store's answer for it as it
    /// came: [`Next::Send`] to go on, [`Next::Reauthorize`] when the answer
    /// says the grant cannot be used, the error when it is another failure.
    pub fn start<E: GrantFailure + From<Error>>(
        method: &str,
        url: &str,
        found: std::result::Result<Option<Authorization>, E>,
        policy: Policy,
    ) -> std::result::Result<(Self, Next), E> {
        let (auth, next) = match found {
            Ok(auth) => (auth, Next::Send),
            Err(e) => {
                let Some((reason, resource)) = e.reauthorization() else {
                    return Err(e);
                };
                let resource = resource.unwrap_or_else(|| url.to_owned());
                let next = Next::Reauthorize(Reauthorize {
                    resource,
                    scope: None,
                    reason,
                });
                (None, next)
            }
        };
        Ok((Self::new(method, url, auth)?.with_policy(policy)?, next))
    }

    /// Holds every hop, the first one and each redirect, to `policy`
    /// ([`Policy::check`]): a hop it refuses ends the call with its error
    /// before anything is sent there. Both runtimes set their deployment's
    /// policy.
    pub fn with_policy(mut self, policy: Policy) -> Result<Self> {
        policy.check(&self.url)?;
        self.policy = Some(policy);
        Ok(self)
    }

    /// The authorization in use.
    pub fn authorization(&self) -> Option<&Authorization> {
        self.auth.as_ref()
    }

    /// The access token a [`Next::Refresh`] reports as refused.
    pub fn rejected_token(&self) -> Option<&str> {
        let h = self.auth.as_ref()?.header.as_deref()?;
        Some(
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("DPoP "))
                .unwrap_or(h),
        )
    }

    /// The `DPoP` header for the current hop: a fresh proof when it carries
    /// a DPoP-bound token, over its method and URL, the token's hash and the
    /// origin's nonce (the one this exchange was given, else the runtime's
    /// `nonces`), at `now`, its `jti` the runtime's fresh random bytes.
    pub fn proof(&self, now: u64, jti: [u8; 16], nonces: &Nonces) -> Option<String> {
        let key = self.auth.as_ref()?.dpop.as_ref()?;
        self.hop_authorization()?;
        let url = &self.hop_url;
        let nonce = self.nonce.clone().or_else(|| nonces.get(url, now));
        let p = crate::dpop::Proof {
            method: &self.hop_method,
            url,
            iat: now,
            nonce: nonce.as_deref(),
            access_token: self.rejected_token(),
        };
        crate::dpop::proof(key, &p, jti)
    }

    fn bound(&self) -> bool {
        self.auth.as_ref().is_some_and(|a| a.dpop.is_some())
    }

    /// Whether the current hop needs a proof ([`Exchange::proof`]): it
    /// carries a DPoP-bound token. A runtime draws the proof's randomness
    /// only then.
    pub fn wants_proof(&self) -> bool {
        self.bound() && self.hop_authorization().is_some()
    }

    /// The request to send now.
    pub fn hop(&self) -> Hop<'_> {
        Hop {
            url: &self.hop_url,
            method: &self.hop_method,
            body: self.body,
            authorization: self.hop_authorization(),
            caller_credentials: self.hop_url.origin() == self.url.origin(),
        }
    }

    /// The header for the current hop: only under the provider's prefix.
    fn hop_authorization(&self) -> Option<&str> {
        self.auth.as_ref().and_then(|a| {
            let h = a.header.as_deref()?;
            a.key.covers_request(self.hop_url.as_str()).then_some(h)
        })
    }

    /// Reads the answer to [`Exchange::hop`]: its status, `Location` and
    /// `WWW-Authenticate` headers ([`Exchange::reply`] with no nonce).
    pub fn answer(
        &mut self,
        status: u16,
        location: Option<&str>,
        www_authenticate: Option<&str>,
    ) -> Result<Next> {
        self.reply(Reply {
            status,
            location,
            www_authenticate,
            dpop_nonce: None,
        })
    }

    /// Reads the answer to [`Exchange::hop`].
    pub fn reply(&mut self, reply: Reply<'_>) -> Result<Next> {
        let Reply {
            status,
            location,
            www_authenticate,
            dpop_nonce,
        } = reply;
        let authorized = self.hop_authorization().is_some();
        let bound = authorized && self.bound();
        if let (true, Some(n)) = (bound, dpop_nonce) {
            self.nonce = Some(n.to_owned());
        }
        if let (301 | 302 | 303 | 307 | 308, Some(loc)) = (status, location) {
            return self.redirect(status, loc);
        }
        let scheme = if bound { "DPoP" } else { "Bearer" };
        let challenge = www_authenticate.and_then(|v| {
            let all = crate::challenge::parse([v]).ok()?;
            BearerChallenge::find_preferring(&all, scheme)
        });
        let code = challenge
            .as_ref()
            .and_then(|c| c.error.as_deref())
            .map(OAuthErrorCode::parse);
        if status == 401
            && bound
            && dpop_nonce.is_some()
            && code == Some(OAuthErrorCode::UseDpopNonce)
            && !self.nonce_retried
        {
            self.nonce_retried = true;
            return Ok(Next::Send);
        }
        let refusal = self.auth.as_ref().and_then(|a| a.refused.as_ref());
        if let (true, Some(rule)) = (authorized, refusal) {
            if rule.refuses_status(status) {
                return Ok(self.token_refused());
            }
            if rule.reads_body(status) {
                return Ok(Next::Inspect);
            }
        }
        match status {
            401 if authorized => Ok(self.unauthorized(challenge.as_ref(), bound)),
            401 if !self.retried && challenge.is_some() => {
                let resource = match &self.auth {
                    Some(a) if self.hop_url == self.url => a.key.to_string(),
                    _ => self.hop_url.to_string(),
                };
                Ok(Next::Reauthorize(Reauthorize {
                    resource,
                    scope: None,
                    reason: Reason::NeverConnected,
                }))
            }
            403 if authorized => match &challenge {
                Some(c)
                    if c.error.as_deref().map(OAuthErrorCode::parse)
                        == Some(OAuthErrorCode::InsufficientScope) =>
                {
                    Ok(self.step_up(c))
                }
                _ => Ok(Next::Done),
            },
            _ => Ok(Next::Done),
        }
    }

    /// A 401 to a hop that carried the token, with `challenge`: a step-up
    /// when it asks for more scope, a new login when a bound token meets a
    /// Bearer-only resource, else a refresh.
    fn unauthorized(&mut self, challenge: Option<&BearerChallenge>, bound: bool) -> Next {
        let Some(c) = challenge else {
            return self.token_refused();
        };
        let held = self.auth.as_ref().and_then(|a| a.scope.as_deref());
        let asks_more =
            c.scope.is_some() && held.is_some() && !scopes_cover(held, c.scope.as_deref());
        let insufficient = c.error.as_deref().map(OAuthErrorCode::parse)
            == Some(OAuthErrorCode::InsufficientScope);
        if insufficient || asks_more {
            return self.step_up(c);
        }
        // A bound token refused by a resource that challenges in no `DPoP`
        // scheme: it takes Bearer tokens only, and a refresh would bring
        // another bound token. A new login asks for an unbound one
        // (`DpopUse::Accepted`).
        if bound && c.dpop_algs.is_none() {
            return Next::Reauthorize(self.reauthorize(None, Reason::BoundTokenRefused));
        }
        self.token_refused()
    }

    /// Reports the refresh asked for by [`Next::Refresh`] as it came: the
    /// new authorization (the request is sent once more, from the start), or
    /// the error, which ends the call with [`Next::Reauthorize`] when it
    /// means the grant cannot be refreshed, and as it is otherwise.
    pub fn refreshed<E: GrantFailure>(
        &mut self,
        result: std::result::Result<Authorization, E>,
    ) -> std::result::Result<Next, E> {
        match result {
            Ok(auth) => {
                if let Some(old) = &self.auth {
                    debug_assert_eq!(auth.key, old.key);
                }
                self.auth = Some(auth);
                self.retried = true;
                self.nonce_retried = false;
                self.hop_url = self.url.clone();
                self.hop_method = self.method.clone();
                self.body = true;
                self.redirects = 0;
                Ok(Next::Send)
            }
            Err(e) => match e.reauthorization() {
                Some((reason, _)) => Ok(Next::Reauthorize(self.reauthorize(None, reason))),
                None => Err(e),
            },
        }
    }

    fn redirect(&mut self, status: u16, location: &str) -> Result<Next> {
        if self.redirects == MAX_REDIRECTS {
            return Err(Error::InvalidResponse {
                url: self.url.clone(),
                reason: format!("more than {MAX_REDIRECTS} redirects"),
            });
        }
        let next = self
            .hop_url
            .join(location)
            .map_err(|e| Error::InvalidResponse {
                url: self.hop_url.clone(),
                reason: format!("unusable redirect Location: {e}"),
            })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(Error::InvalidResponse {
                url: self.hop_url.clone(),
                reason: format!("redirect to a {} URL", next.scheme()),
            });
        }
        if let Some(policy) = &self.policy {
            policy.check(&next)?;
        }
        if status == 303 || (matches!(status, 301 | 302) && self.hop_method == "POST") {
            self.hop_method = "GET".into();
            self.body = false;
        }
        self.redirects += 1;
        if self.hop_url.origin() != next.origin() {
            // A nonce belongs to the server that gave it.
            self.nonce = None;
        }
        self.hop_url = next;
        Ok(Next::Send)
    }

    /// Reads the body of the answer [`Next::Inspect`] asked for: whether
    /// the API says there (by its profile's [`Refusal`](crate::token::Refusal))
    /// that the token is refused, which is read as a 401.
    pub fn inspect(&mut self, body: &[u8]) -> Next {
        let refused = self
            .auth
            .as_ref()
            .and_then(|a| a.refused.as_ref())
            .is_some_and(|r| r.refuses(body));
        if refused {
            self.token_refused()
        } else {
            Next::Done
        }
    }

    /// The resource refused the token: refresh once, then re-authorize.
    fn token_refused(&self) -> Next {
        if self.retried {
            Next::Reauthorize(self.reauthorize(None, Reason::Revoked))
        } else {
            Next::Refresh
        }
    }

    fn step_up(&self, c: &BearerChallenge) -> Next {
        let held = self.auth.as_ref().and_then(|a| a.scope.as_deref());
        if scopes_cover(held, c.scope.as_deref()) {
            return Next::Done;
        }
        Next::Reauthorize(self.reauthorize(
            union_scopes(held, c.scope.as_deref()),
            Reason::InsufficientScope,
        ))
    }

    fn reauthorize(&self, scope: Option<String>, reason: Reason) -> Reauthorize {
        Reauthorize {
            resource: self
                .auth
                .as_ref()
                .map_or_else(|| self.url.to_string(), |a| a.key.to_string()),
            scope,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::ResourceKey;

    const API: &str = "https://api.example.com/v1";

    fn auth(token: &str, scope: Option<&str>) -> Option<Authorization> {
        Some(Authorization {
            key: ResourceKey::parse(API).unwrap(),
            header: Some(format!("Bearer {token}")),
            scope: scope.map(str::to_owned),
            expires_at: None,
            narrower: Vec::new(),
            dpop: None,
            refused: None,
        })
    }

    fn ex(a: Option<Authorization>) -> Exchange {
        Exchange::new("get", &format!("{API}/items"), a).unwrap()
    }

    #[test]
    fn attaches_the_token_under_the_prefix_only() {
        let e = ex(auth("t1", None));
        assert_eq!(e.hop().authorization, Some("Bearer t1"));
        assert_eq!(e.hop().method, "GET");
        let mut e = Exchange::new("GET", "https://api.example.com/v2/x", auth("t1", None)).unwrap();
        assert_eq!(e.hop().authorization, None);
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Done);
    }

    /// A bound token: `DPoP` scheme, a proof per hop over that hop (with
    /// the token's hash and the origin's nonce), none where the token does
    /// not go; one resend on `use_dpop_nonce`, then the usual refresh.
    #[cfg(feature = "signing")]
    #[test]
    fn a_dpop_bound_token_goes_with_a_fresh_proof_and_takes_one_nonce() {
        use base64::Engine as _;
        let claims = |p: &str| -> serde_json::Value {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.split('.').nth(1).unwrap())
                .unwrap();
            serde_json::from_slice(&b).unwrap()
        };
        let mut a = auth("t1", None).unwrap();
        a.header = Some("DPoP t1".into());
        a.dpop = crate::secret::DpopKey::generate([9; 32]);
        let url = "https://dpop-rs.example/v1/items";
        let mut a2 = a.clone();
        a2.key = ResourceKey::parse("https://dpop-rs.example/v1").unwrap();
        let mut e = Exchange::new("post", url, Some(a2)).unwrap();
        assert_eq!(e.hop().authorization, Some("DPoP t1"));
        assert!(e.wants_proof());
        let nonces = Nonces::default();
        let first = claims(&e.proof(100, [1; 16], &nonces).unwrap());
        assert_eq!(first["htm"], "POST");
        assert_eq!(first["htu"], url);
        assert!(first.get("nonce").is_none());
        assert_eq!(first["ath"], crate::token::fingerprint("t1").as_str());
        let challenge = r#"DPoP error="use_dpop_nonce", algs="ES256""#;
        let nonced = Reply {
            status: 401,
            location: None,
            www_authenticate: Some(challenge),
            dpop_nonce: Some("n-42"),
        };
        assert_eq!(e.reply(nonced).unwrap(), Next::Send, "sent again");
        let again = claims(&e.proof(101, [2; 16], &nonces).unwrap());
        assert_eq!(again["nonce"], "n-42");
        assert_ne!(again["jti"], first["jti"]);
        assert_eq!(e.reply(nonced).unwrap(), Next::Refresh, "only once");
        assert_eq!(e.rejected_token(), Some("t1"));
        // The runtime keeps the nonce for the origin's next requests.
        let e = Exchange::new(
            "GET",
            "https://dpop-rs.example/v1/other?q=1",
            e.auth.clone(),
        )
        .unwrap();
        assert!(claims(&e.proof(102, [3; 16], &nonces).unwrap())
            .get("nonce")
            .is_none());
        nonces.keep(&Url::parse(url).unwrap(), "n-42", 101);
        let next = claims(&e.proof(102, [3; 16], &nonces).unwrap());
        assert_eq!(
            (next["nonce"].as_str(), next["htu"].as_str()),
            (Some("n-42"), Some("https://dpop-rs.example/v1/other"))
        );
        // No proof where the token does not go, nor for a Bearer token.
        let mut e = Exchange::new("GET", url, Some(a.clone())).unwrap();
        e.answer(302, Some("https://elsewhere.example/x"), None)
            .unwrap();
        assert_eq!(e.proof(103, [4; 16], &nonces), None);
        assert!(!e.wants_proof());
        assert_eq!(ex(auth("t1", None)).proof(103, [5; 16], &nonces), None);
        assert!(!ex(auth("t1", None)).wants_proof());
    }

    /// A bound token refused by a resource that challenges only in the
    /// Bearer scheme: connect again (a refresh would bring another bound
    /// token); refused in the DPoP scheme, or with no challenge: the usual
    /// refresh. A Bearer token refused in the Bearer scheme: refresh.
    #[cfg(feature = "signing")]
    #[test]
    fn a_bound_token_refused_by_a_bearer_only_resource_asks_to_connect_again() {
        let mut a = auth("t1", None).unwrap();
        a.header = Some("DPoP t1".into());
        a.dpop = crate::secret::DpopKey::generate([9; 32]);
        let bearer_only =
            r#"Bearer error="invalid_token", error_description="expected 'Bearer TOKEN'""#;
        let mut e = ex(Some(a.clone()));
        let Next::Reauthorize(r) = e.answer(401, None, Some(bearer_only)).unwrap() else {
            panic!("expected a re-authorization")
        };
        assert_eq!(
            (r.reason, r.resource.as_str()),
            (Reason::BoundTokenRefused, API)
        );
        for takes_dpop in [
            Some(r#"Bearer error="invalid_token", DPoP algs="ES256", error="invalid_token""#),
            Some(r#"DPoP error="invalid_token""#),
            None,
        ] {
            let mut e = ex(Some(a.clone()));
            assert_eq!(
                e.answer(401, None, takes_dpop).unwrap(),
                Next::Refresh,
                "{takes_dpop:?}"
            );
        }
        let mut e = ex(auth("t1", None));
        assert_eq!(
            e.answer(401, None, Some(bearer_only)).unwrap(),
            Next::Refresh
        );
    }

    /// A profile's refusal rule: a 200 whose body says the token is refused
    /// is a 401 (one refresh, then re-authorization); other bodies, and
    /// hops without the token, are answers.
    #[test]
    fn an_api_that_refuses_with_a_200_is_read_by_its_rule() {
        let mut a = auth("t1", None).unwrap();
        a.refused = Some(crate::token::Refusal::json(
            &[200],
            "/error",
            &["invalid_auth"],
        ));
        let mut e = ex(Some(a.clone()));
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Inspect);
        assert_eq!(e.inspect(br#"{"ok":true}"#), Next::Done);
        let mut e = ex(Some(a.clone()));
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Inspect);
        let refused = br#"{"ok":false,"error":"invalid_auth"}"#;
        assert_eq!(e.inspect(refused), Next::Refresh);
        e.refreshed::<Reason>(Ok(a.clone())).unwrap();
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Inspect);
        let Next::Reauthorize(r) = e.inspect(refused) else {
            panic!()
        };
        assert_eq!(r.reason, Reason::Revoked);
        // Other statuses, and a hop the token does not go to: as they are.
        assert_eq!(
            ex(Some(a.clone())).answer(500, None, None).unwrap(),
            Next::Done
        );
        let mut e = Exchange::new("GET", "https://elsewhere.example/x", Some(a)).unwrap();
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Done);
    }

    #[test]
    fn the_store_and_refresher_answers_are_read_by_the_exchange() {
        use crate::error::{ErrorKind, ErrorReport};
        let dead = ErrorReport {
            resource: Some(API.to_owned()),
            reauthorize: true,
            ..ErrorReport::new(ErrorKind::Expired, "expired, no refresh token", false)
        };
        let url = format!("{API}/items");
        let policy = Policy::default();
        let (e, next) = Exchange::start("GET", &url, Err(dead.clone()), policy).unwrap();
        let Next::Reauthorize(r) = next else {
            panic!("{next:?}")
        };
        assert_eq!((r.resource.as_str(), r.reason), (API, Reason::Expired));
        assert_eq!(e.hop().authorization, None);
        // Any other failure is the caller's, as it came.
        let down = ErrorReport::new(ErrorKind::Storage, "storage is down", true);
        let err = Exchange::start("GET", &url, Err(down.clone()), policy).unwrap_err();
        assert_eq!(err, down);
        let (mut e, next) =
            Exchange::start::<ErrorReport>("GET", &url, Ok(auth("t1", None)), policy).unwrap();
        assert_eq!(next, Next::Send);
        assert_eq!(e.answer(401, None, Some("Bearer")).unwrap(), Next::Refresh);
        assert_eq!(e.refreshed(Err(down.clone())).unwrap_err(), down);
        let Next::Reauthorize(r) = e.refreshed(Err(dead)).unwrap() else {
            panic!()
        };
        assert_eq!(r.reason, Reason::Expired);
    }

    #[test]
    fn refreshes_once_then_gives_up() {
        let mut e = ex(auth("t1", None));
        assert_eq!(e.answer(401, None, Some("Bearer")).unwrap(), Next::Refresh);
        assert_eq!(e.rejected_token(), Some("t1"));
        assert_eq!(
            e.refreshed::<Reason>(Ok(auth("t2", None).unwrap()))
                .unwrap(),
            Next::Send
        );
        assert_eq!(e.hop().authorization, Some("Bearer t2"));
        let Next::Reauthorize(r) = e.answer(401, None, None).unwrap() else {
            panic!()
        };
        assert_eq!((r.resource.as_str(), r.reason), (API, Reason::Revoked));
        let mut e = ex(auth("t1", None));
        e.answer(401, None, None).unwrap();
        assert_eq!(
            e.refreshed(Err(Reason::Expired)).unwrap(),
            Next::Reauthorize(Reauthorize {
                resource: API.into(),
                scope: None,
                reason: Reason::Expired
            })
        );
        // A retry that succeeds is handed back.
        let mut e = ex(auth("t1", None));
        e.answer(401, None, None).unwrap();
        e.refreshed::<Reason>(Ok(auth("t2", None).unwrap()))
            .unwrap();
        assert_eq!(e.answer(200, None, None).unwrap(), Next::Done);
    }

    #[test]
    fn steps_up_for_the_union_of_scopes_without_refreshing() {
        for (status, challenge) in [
            (403, r#"Bearer error="insufficient_scope", scope="write""#),
            (401, r#"Bearer scope="write""#),
        ] {
            let mut e = ex(auth("t1", Some("read")));
            let Next::Reauthorize(r) = e.answer(status, None, Some(challenge)).unwrap() else {
                panic!("{status}")
            };
            assert_eq!(r.reason, Reason::InsufficientScope);
            assert_eq!(r.scope.as_deref(), Some("read write"));
        }
        // Already held: asking again cannot help.
        let mut e = ex(auth("t1", Some("read write")));
        let c = r#"Bearer error="insufficient_scope", scope="write""#;
        assert_eq!(e.answer(403, None, Some(c)).unwrap(), Next::Done);
        // A 403 on a hop without the token is not ours to read.
        let mut e = ex(None);
        assert_eq!(e.answer(403, None, Some(c)).unwrap(), Next::Done);
    }

    #[test]
    fn never_connected_names_the_url_or_the_hop_that_challenged() {
        let mut e = ex(None);
        assert_eq!(
            e.answer(401, None, None).unwrap(),
            Next::Done,
            "no challenge"
        );
        let mut e = ex(None);
        let Next::Reauthorize(r) = e.answer(401, None, Some("Bearer")).unwrap() else {
            panic!()
        };
        assert_eq!(r.resource, format!("{API}/items"));
        let mut e = ex(auth("t1", None));
        e.answer(302, Some("https://other.example/x"), None)
            .unwrap();
        let Next::Reauthorize(r) = e.answer(401, None, Some("Bearer")).unwrap() else {
            panic!()
        };
        assert_eq!(r.resource, "https://other.example/x");
    }

    #[test]
    fn redirects_keep_the_token_inside_the_prefix_and_credentials_inside_the_origin() {
        let mut e = Exchange::new("POST", &format!("{API}/items"), auth("t1", None)).unwrap();
        assert_eq!(e.answer(307, Some("/v1/other"), None).unwrap(), Next::Send);
        let hop = e.hop();
        assert_eq!(
            (hop.authorization, hop.method, hop.body),
            (Some("Bearer t1"), "POST", true)
        );
        assert!(hop.forwards("cookie") && !hop.forwards("Authorization") && !hop.forwards("dpop"));
        e.answer(302, Some("https://evil.example/steal"), None)
            .unwrap();
        let hop = e.hop();
        assert_eq!(
            (hop.authorization, hop.method, hop.body),
            (None, "GET", false)
        );
        assert!(!hop.forwards("Cookie") && !hop.forwards("proxy-authorization"));
        assert!(hop.forwards("accept"));
        // A 401 there is not a reason to refresh our token.
        assert_eq!(e.answer(401, None, None).unwrap(), Next::Done);
    }

    #[test]
    fn refuses_redirect_loops_and_odd_locations() {
        let mut e = ex(None);
        for _ in 0..MAX_REDIRECTS {
            assert_eq!(e.answer(302, Some("/v1/again"), None).unwrap(), Next::Send);
        }
        let err = e.answer(302, Some("/v1/again"), None).unwrap_err();
        assert!(err.to_string().contains("redirects"), "{err}");
        let mut e = ex(None);
        assert!(e.answer(302, Some("javascript:alert(1)"), None).is_err());
        // A 3xx without Location is an answer.
        let mut e = ex(None);
        assert_eq!(e.answer(304, None, None).unwrap(), Next::Done);
    }

    /// With the deployment's policy, no hop goes to a private or metadata
    /// address, the first one or a redirect, however it is spelt.
    #[test]
    fn every_hop_passes_the_address_policy() {
        let strict = Policy::STRICT;
        let mut e = ex(auth("t", None)).with_policy(strict).unwrap();
        for to in [
            "https://169.254.169.254/latest/meta-data/",
            "https://2852039166/",
            "https://[::ffff:10.0.0.1]/",
            "http://127.0.0.1:8080/",
        ] {
            let err = e.answer(302, Some(to), None).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BlockedAddress { .. } | Error::InsecureUrl { .. }
                ),
                "{to}: {err:?}"
            );
        }
        assert!(e
            .answer(302, Some("https://api.example.com/v1/next"), None)
            .is_ok());
        let first = Exchange::new("GET", "https://10.0.0.7/admin", None).unwrap();
        assert!(matches!(
            first.with_policy(strict),
            Err(Error::BlockedAddress { .. })
        ));
    }
}
