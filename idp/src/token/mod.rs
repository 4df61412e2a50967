//! Token requests and responses: code exchange, refresh (RFC 6749 §4.1.3, §6,
//! RFC 7636, RFC 8707), client credentials (§4.4) and revocation (RFC 7009);
//! the grants made of assertions (RFC 7523, RFC 8693) in [`assertion`]; the
//! device authorization grant (RFC 8628) in [`device`].

use crate::client::{AuthMethod, Client};
use crate::discovery::read_json;
use crate::encoding::{basic_credentials, form};
use crate::error::{Error, OAuthError, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::secret::{AccessToken, AuthorizationCode, DpopKey, PkceVerifier, RefreshToken};
use serde::{Deserialize, Serialize};
use url::Url;

pub mod assertion;
pub mod device;
pub mod quirks;
pub mod refusal;
pub use assertion::{jwt_bearer, jwt_bearer_request, EnterpriseIdp, JWT_BEARER};
pub use quirks::{ResourceParam, TokenRules};
pub use refusal::Refusal;

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Tokens are refreshed when they expire within this many seconds (5 minutes).
pub const REFRESH_MARGIN_SECS: u64 = 300;

/// A token's fingerprint: base64url SHA-256, to name a token without sending
/// it (for example, which one a resource refused).
pub fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::encoding::base64url(&Sha256::digest(token.as_bytes()))
}

/// Tokens held for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// Expiry (seconds since the epoch), if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The scope granted, if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the token was received (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// The key the tokens are bound to, when the server issued DPoP tokens
    /// (RFC 9449): every request that carries them, and every refresh,
    /// sends a proof made with it ([`crate::dpop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<DpopKey>,
}

impl TokenSet {
    /// The `Authorization` header value: `Bearer` or, for a bound token,
    /// `DPoP` (RFC 9449 §7.1).
    pub fn authorization_header(&self) -> String {
        let scheme = if self.dpop.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        format!("{scheme} {}", self.access_token.secret())
    }

    /// Whether the token is expired or expires within [`REFRESH_MARGIN_SECS`]
    /// (or within half its lifetime, for tokens that live less than 10
    /// minutes, so a short-lived token is still used before it is refreshed).
    pub fn needs_refresh(&self, now: u64) -> bool {
        self.refresh_due_at().is_some_and(|due| due <= now)
    }

    /// When [`TokenSet::needs_refresh`] turns true (seconds since the
    /// epoch); `None` when the expiry is unknown.
    pub fn refresh_due_at(&self) -> Option<u64> {
        let expires_at = self.expires_at?;
        let lifetime = self.issued_at.map(|i| expires_at.saturating_sub(i));
        let margin = lifetime.map_or(REFRESH_MARGIN_SECS, |l| REFRESH_MARGIN_SECS.min(l / 2));
        Some(expires_at.saturating_sub(margin))
    }

    /// When a background pass should next refresh these tokens: their
    /// refresh margin ([`TokenSet::refresh_due_at`]), or sooner the
    /// keep-alive (`keep_alive` seconds after they were issued, for servers
    /// that expire refresh tokens left idle). `None` for tokens that say
    /// neither.
    pub fn background_due(&self, keep_alive: Option<u64>) -> Option<u64> {
        let keep = keep_alive.and_then(|k| self.issued_at.map(|i| i.saturating_add(k)));
        match (self.refresh_due_at(), keep) {
            (Some(d), Some(k)) => Some(d.min(k)),
            (d, k) => d.or(k),
        }
    }

    /// Whether the access token is still valid at `now` (some seconds to
    /// spare), though maybe inside the refresh margin: such a token is used
    /// when an early refresh fails for a passing reason.
    pub fn still_valid(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| t > now.saturating_add(2))
    }
}

fn with_client_auth(
    client: &Client,
    mut pairs: Vec<(&'static str, String)>,
) -> (Vec<(&'static str, String)>, Option<String>) {
    let secret = client
        .client_secret
        .as_ref()
        .map(|s| s.secret())
        .unwrap_or_default();
    match client.auth_method {
        AuthMethod::None => {
            pairs.push(("client_id", client.client_id.clone()));
            (pairs, None)
        }
        AuthMethod::ClientSecretPost => {
            pairs.push(("client_id", client.client_id.clone()));
            pairs.push(("client_secret", secret.to_owned()));
            (pairs, None)
        }
        // The client also names itself in the body (RFC 6749 §3.2.1 lets
        // it): servers built on the MCP Python SDK read `client_id` from
        // the form before anything else, Basic or not. The secret goes in
        // the header only.
        AuthMethod::ClientSecretBasic => {
            pairs.push(("client_id", client.client_id.clone()));
            (pairs, Some(basic_credentials(&client.client_id, secret)))
        }
        // The assertion of `Client::asserted`; without one the server
        // refuses the client, as it should.
        AuthMethod::PrivateKeyJwt => {
            pairs.push(("client_id", client.client_id.clone()));
            if let Some(assertion) = &client.assertion {
                pairs.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.into()));
                pairs.push(("client_assertion", assertion.secret().into()));
            }
            (pairs, None)
        }
    }
}

pub(crate) fn form_request(
    endpoint: &Url,
    client: &Client,
    pairs: Vec<(&'static str, String)>,
) -> HttpRequest {
    let (pairs, basic) = with_client_auth(client, pairs);
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut req = HttpRequest::post_form(endpoint.clone(), form(&borrowed));
    if let Some(b) = basic {
        req.headers.push(("authorization".into(), b));
    }
    req
}

/// What the authorization code exchange needs from a pending login
/// ([`PendingFlow::code_grant`](crate::authorize::PendingFlow::code_grant)).
#[derive(Debug, Clone, Copy)]
pub struct CodeGrant<'a> {
    /// The authorization server that issued the code (the audience of a
    /// `private_key_jwt` client's assertion).
    pub issuer: &'a str,
    /// Where the code is exchanged.
    pub token_endpoint: &'a Url,
    /// The client the code was issued to (a `private_key_jwt` client signs
    /// for each request it sends).
    pub client: &'a Client,
    /// The redirect URI of the authorization request.
    pub redirect_uri: &'a Url,
    /// The PKCE verifier.
    pub verifier: &'a PkceVerifier,
    /// The resource (RFC 8707).
    pub resource: &'a str,
    /// The server's token rules.
    pub rules: &'a TokenRules,
    /// The key the tokens are to be bound to (DPoP), if any.
    pub dpop: Option<&'a DpopKey>,
}

/// The authorization code exchange request: token endpoint, client,
/// verifier, redirect URI and resource.
pub fn exchange_request(grant: &CodeGrant<'_>, code: &AuthorizationCode) -> HttpRequest {
    let mut pairs = vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.secret().into()),
        ("redirect_uri", grant.redirect_uri.to_string()),
        ("code_verifier", grant.verifier.secret().into()),
    ];
    if grant.rules.resource_on_authorization() {
        pairs.push(("resource", grant.resource.to_owned()));
    }
    form_request(grant.token_endpoint, grant.client, pairs)
}

/// The refresh request. `scope`, when given, must not exceed what was granted.
pub fn refresh_request(
    token_endpoint: &Url,
    client: &Client,
    refresh_token: &RefreshToken,
    resource: Option<&str>,
    scope: Option<&str>,
) -> HttpRequest {
    let mut pairs = vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token.secret().into()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", r.into()));
    }
    if let Some(s) = scope {
        pairs.push(("scope", s.into()));
    }
    form_request(token_endpoint, client, pairs)
}

/// The client credentials request (RFC 6749 §4.4): the app asks for a
/// token as itself, with its client authentication, for `resource`
/// (RFC 8707) and `scope` when given.
pub fn client_credentials_request(
    token_endpoint: &Url,
    client: &Client,
    resource: Option<&str>,
    scope: Option<&str>,
) -> HttpRequest {
    let mut pairs = vec![("grant_type", "client_credentials".into())];
    if let Some(r) = resource {
        pairs.push(("resource", r.into()));
    }
    if let Some(s) = scope {
        pairs.push(("scope", s.into()));
    }
    form_request(token_endpoint, client, pairs)
}

/// Gets tokens with the client credentials grant
/// ([`client_credentials_request`] + [`parse_token_response`]).
pub async fn client_credentials(
    http: &impl HttpClient,
    token_endpoint: &Url,
    client: &Client,
    resource: Option<&str>,
    scope: Option<&str>,
    now: u64,
) -> Result<TokenSet> {
    let req = client_credentials_request(token_endpoint, client, resource, scope);
    let (url, resp) = send(http, req).await?;
    parse_token_response_with(&url, &resp, now, None, &TokenRules::default())
}

/// The RFC 7009 revocation request for a refresh or access token.
pub fn revocation_request(
    revocation_endpoint: &Url,
    client: &Client,
    token: &str,
    hint: &str,
) -> HttpRequest {
    form_request(
        revocation_endpoint,
        client,
        vec![("token", token.into()), ("token_type_hint", hint.into())],
    )
}

/// Reads a token response. `now` turns `expires_in` into an absolute expiry;
/// `previous_refresh` is kept when the server returns no new refresh token.
/// `token_type` must be Bearer (any case).
pub fn parse_token_response(
    url: &Url,
    resp: &HttpResponse,
    now: u64,
    previous_refresh: Option<&RefreshToken>,
) -> Result<TokenSet> {
    parse_token_response_with(url, resp, now, previous_refresh, &TokenRules::default())
}

/// [`parse_token_response`] under a server's [`TokenRules`], through every
/// rule of [`quirks`].
pub fn parse_token_response_with(
    url: &Url,
    resp: &HttpResponse,
    now: u64,
    previous_refresh: Option<&RefreshToken>,
    rules: &TokenRules,
) -> Result<TokenSet> {
    parse_bound(url, resp, now, previous_refresh, rules, None)
}

/// [`parse_token_response_with`] for a request that sent a DPoP proof made
/// with `dpop`: a `DPoP` token is bound to that key; a Bearer answer (a
/// server that ignored the proof) is used as Bearer.
pub(crate) fn parse_bound(
    url: &Url,
    resp: &HttpResponse,
    now: u64,
    previous_refresh: Option<&RefreshToken>,
    rules: &TokenRules,
    dpop: Option<&DpopKey>,
) -> Result<TokenSet> {
    if !resp.is_success() {
        let oauth = read_json::<OAuthError>(resp)
            .ok()
            .or_else(|| quirks::form_encoded(resp).and_then(|d| quirks::error_in_success(&d)));
        return Err(Error::Token {
            url: url.clone(),
            status: resp.status,
            oauth: oauth.map(Box::new),
        });
    }
    let invalid = |reason: String| Error::InvalidResponse {
        url: url.clone(),
        reason,
    };
    let doc = quirks::token_document(url, resp)?;
    let text = |k: &str| match doc.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let access_token = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("no access_token".into()))?;
    let mut bound = None;
    match text("token_type") {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(t) if t.eq_ignore_ascii_case("dpop") && dpop.is_some() => bound = dpop.cloned(),
        // A DPoP-bound token cannot be sent as a Bearer token, whatever a
        // profile says.
        Some(t) if rules.assume_bearer && !t.eq_ignore_ascii_case("dpop") => {}
        None if rules.assume_bearer => {}
        Some(t) => return Err(invalid(format!("token_type {t:?} is not Bearer"))),
        None => return Err(invalid("no token_type".into())),
    }
    // Some servers send expires_in as a string.
    let expires_in = match doc.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    Ok(TokenSet {
        access_token: AccessToken::new(access_token),
        refresh_token: text("refresh_token")
            .filter(|s| !s.is_empty())
            .map(RefreshToken::new)
            .or_else(|| previous_refresh.cloned()),
        expires_at: expires_in.map(|s| now.saturating_add(s)),
        scope: text("scope").map(|s| quirks::comma_scope(&s)),
        issued_at: Some(now),
        dpop: bound,
    })
}

pub(crate) async fn send(http: &impl HttpClient, req: HttpRequest) -> Result<(Url, HttpResponse)> {
    let url = req.url.clone();
    match http.send(req).await {
        Ok(r) => Ok((url, r)),
        Err(e) => Err(Error::Transport {
            url,
            message: e.message,
        }),
    }
}

/// Sends a token request that `build` makes for a client, signed for
/// `issuer` on each attempt (a `private_key_jwt` client's assertion has a
/// fresh `jti` each time: servers refuse one they have seen), with a DPoP
/// proof made with `dpop` when given (its `jti` fresh from `http`'s
/// randomness, the origin's nonce from its memory): a nonce the server
/// gives is kept, and a `use_dpop_nonce` refusal is answered once with a
/// new assertion and a proof that carries the nonce (RFC 9449 §8).
pub(crate) async fn send_signed(
    http: &impl HttpClient,
    client: &Client,
    issuer: &str,
    build: &(dyn Fn(&Client) -> HttpRequest + Sync),
    dpop: Option<&DpopKey>,
    now: u64,
) -> Result<(Url, HttpResponse)> {
    let request = || client.ready(issuer, now, http).map(|c| build(&c));
    let Some(key) = dpop else {
        return send(http, request()?).await;
    };
    let mut nonce = None;
    let mut retried = false;
    loop {
        let mut bound = request()?;
        if nonce.is_none() {
            nonce = http.dpop_nonces().and_then(|n| n.get(&bound.url, now));
        }
        let p = crate::dpop::Proof {
            method: "POST",
            url: &bound.url,
            iat: now,
            nonce: nonce.as_deref(),
            access_token: None,
        };
        if let Some(proof) = crate::dpop::proof(key, &p, crate::http::jti(http)?) {
            bound.headers.push(("dpop".into(), proof));
        }
        let (url, resp) = send(http, bound).await?;
        let given = resp.header(crate::dpop::NONCE_HEADER);
        if let (Some(n), Some(nonces)) = (given, http.dpop_nonces()) {
            nonces.keep(&url, n, now);
        }
        let asks_nonce = resp.status == 400
            && given.is_some()
            && given != nonce.as_deref()
            && read_json::<OAuthError>(&resp)
                .is_ok_and(|e| e.code() == crate::error::OAuthErrorCode::UseDpopNonce);
        if asks_nonce && !retried {
            retried = true;
            nonce = given.map(str::to_owned);
            continue;
        }
        return Ok((url, resp));
    }
}

/// Exchanges a code ([`exchange_request`] + [`parse_token_response`]),
/// with a DPoP proof when the grant has a key.
pub async fn exchange_code(
    http: &impl HttpClient,
    grant: &CodeGrant<'_>,
    code: &AuthorizationCode,
    now: u64,
) -> Result<TokenSet> {
    let build = |client: &Client| exchange_request(&CodeGrant { client, ..*grant }, code);
    let (url, resp) =
        send_signed(http, grant.client, grant.issuer, &build, grant.dpop, now).await?;
    parse_bound(&url, &resp, now, None, grant.rules, grant.dpop)
}

/// Refreshes ([`refresh_request`] + [`parse_token_response`]), keeping the old
/// refresh token when the server sends none.
pub async fn refresh(
    http: &impl HttpClient,
    token_endpoint: &Url,
    client: &Client,
    refresh_token: &RefreshToken,
    resource: &str,
    now: u64,
) -> Result<TokenSet> {
    refresh_with(
        http,
        token_endpoint,
        client,
        refresh_token,
        Some(resource),
        now,
        TokenRules::default(),
    )
    .await
}

/// [`refresh`] under a server's [`TokenRules`]; `resource` is sent when
/// given.
pub async fn refresh_with(
    http: &impl HttpClient,
    token_endpoint: &Url,
    client: &Client,
    refresh_token: &RefreshToken,
    resource: Option<&str>,
    now: u64,
    rules: TokenRules,
) -> Result<TokenSet> {
    let req = refresh_request(token_endpoint, client, refresh_token, resource, None);
    let (url, resp) = send(http, req).await?;
    parse_token_response_with(&url, &resp, now, Some(refresh_token), &rules)
}

/// Revokes a token (RFC 7009). A 200 means revoked or already invalid.
pub async fn revoke(
    http: &impl HttpClient,
    revocation_endpoint: &Url,
    client: &Client,
    token: &str,
    hint: &str,
) -> Result<()> {
    let (url, resp) = send(
        http,
        revocation_request(revocation_endpoint, client, token, hint),
    )
    .await?;
    if resp.is_success() {
        Ok(())
    } else {
        Err(Error::Token {
            url,
            status: resp.status,
            oauth: read_json::<OAuthError>(&resp).ok().map(Box::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn ep() -> Url {
        Url::parse("https://as.example/token").unwrap()
    }

    fn body(req: &HttpRequest) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect()
    }

    #[test]
    fn exchange_with_public_client() {
        let flow = crate::authorize::PendingFlow {
            state: crate::secret::FlowState::new("st"),
            verifier: crate::secret::PkceVerifier::from_random([3; 32]),
            resource_url: "https://api.example/v1/x".into(),
            resource: "https://api.example/v1".into(),
            issuer: "https://as.example".into(),
            iss_required: false,
            client: Client::public("c1"),
            token_endpoint: ep(),
            revocation_endpoint: None,
            redirect_uri: Url::parse("https://app.example/cb").unwrap(),
            scope: None,
            owner: "alice".into(),
            created_at: 0,
            rules: Default::default(),
            profile: None,
            dpop: None,
            refused: None,
            device: None,
            account: None,
        };
        let v = &flow.verifier;
        let req = exchange_request(&flow.code_grant(), &AuthorizationCode::new("the-code"));
        let b = body(&req);
        assert_eq!(b["grant_type"], "authorization_code");
        assert_eq!(b["code"], "the-code");
        assert_eq!(b["code_verifier"], v.secret());
        assert_eq!(b["redirect_uri"], "https://app.example/cb");
        assert_eq!(b["resource"], "https://api.example/v1");
        assert_eq!(b["client_id"], "c1");
        assert!(req.header("authorization").is_none());
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let dbg = format!("{req:?}");
        assert!(
            !dbg.contains("the-code") && !dbg.contains(v.secret()),
            "{dbg}"
        );
    }

    #[test]
    fn client_authentication_methods() {
        let rt = RefreshToken::new("rt");
        let basic = Client::confidential(
            "id one",
            ClientSecret::new("s:1"),
            AuthMethod::ClientSecretBasic,
        );
        let req = refresh_request(&ep(), &basic, &rt, Some("https://api.example"), None);
        assert_eq!(
            req.header("authorization"),
            Some(crate::encoding::basic_credentials("id one", "s:1").as_str())
        );
        let b = body(&req);
        // The client names itself in the body too; its secret stays in the header.
        assert_eq!(b["client_id"], "id one");
        assert!(!b.contains_key("client_secret"));
        assert_eq!(b["refresh_token"], "rt");
        assert_eq!(b["resource"], "https://api.example");

        let post = Client::confidential("c", ClientSecret::new("s"), AuthMethod::ClientSecretPost);
        let b = body(&refresh_request(&ep(), &post, &rt, Some("r"), Some("a b")));
        assert_eq!(
            (
                b["client_id"].as_str(),
                b["client_secret"].as_str(),
                b["scope"].as_str()
            ),
            ("c", "s", "a b")
        );
    }

    #[test]
    fn token_response_parsing() {
        let r = HttpResponse::new(
            200,
            r#"{"access_token":"at","token_type":"bearer","expires_in":3600,"scope":"read"}"#,
        );
        let old = RefreshToken::new("old-rt");
        let t = parse_token_response(&ep(), &r, 1000, Some(&old)).unwrap();
        assert_eq!(t.expires_at, Some(4600));
        assert_eq!(t.refresh_token.as_ref().unwrap().secret(), "old-rt");
        assert_eq!(t.authorization_header(), "Bearer at");
        assert!(!t.needs_refresh(1000));
        assert!(t.needs_refresh(4600 - REFRESH_MARGIN_SECS));

        let r = HttpResponse::new(
            200,
            r#"{"access_token":"at","token_type":"Bearer","refresh_token":"new","expires_in":"60"}"#,
        );
        let t = parse_token_response(&ep(), &r, 0, Some(&old)).unwrap();
        assert_eq!(t.refresh_token.unwrap().secret(), "new");
        assert_eq!(t.expires_at, Some(60));

        let short = parse_token_response(
            &ep(),
            &HttpResponse::new(
                200,
                r#"{"access_token":"a","token_type":"bearer","expires_in":60}"#,
            ),
            1000,
            None,
        )
        .unwrap();
        assert!(!short.needs_refresh(1000), "a 60 s token is used for 30 s");
        assert!(!short.needs_refresh(1029));
        assert!(short.needs_refresh(1030));

        let no_expiry = parse_token_response(
            &ep(),
            &HttpResponse::new(200, r#"{"access_token":"a","token_type":"BEARER"}"#),
            0,
            None,
        )
        .unwrap();
        assert!(!no_expiry.needs_refresh(u64::MAX));
    }

    #[test]
    fn token_errors_are_typed_and_never_quote_the_body() {
        let r = HttpResponse::new(
            400,
            r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
        );
        let e = parse_token_response(&ep(), &r, 0, None).unwrap_err();
        assert!(e.requires_reauthorization());
        assert!(
            matches!(&e, Error::Token { status: 400, oauth: Some(o), .. } if o.error == "invalid_grant")
        );

        let e = parse_token_response(
            &ep(),
            &HttpResponse::new(502, "<html>bad gateway</html>"),
            0,
            None,
        )
        .unwrap_err();
        assert!(e.is_retryable() && !e.requires_reauthorization());

        for bad in [
            r#"{"access_token":"SECRET-AT","token_type":"mac"}"#,
            r#"{"access_token":"","token_type":"bearer"}"#,
            r#"{"token_type":"bearer"}"#,
            "SECRET-AT not json",
        ] {
            let e = parse_token_response(&ep(), &HttpResponse::new(200, bad), 0, None).unwrap_err();
            assert!(!e.to_string().contains("SECRET-AT"), "{e}");
            assert!(!format!("{e:?}").contains("SECRET-AT"), "{e:?}");
        }
    }

    #[test]
    fn revocation_request_shape() {
        let req = revocation_request(
            &Url::parse("https://as.example/revoke").unwrap(),
            &Client::public("c"),
            "rt",
            "refresh_token",
        );
        let b = body(&req);
        assert_eq!(
            (
                b["token"].as_str(),
                b["token_type_hint"].as_str(),
                b["client_id"].as_str()
            ),
            ("rt", "refresh_token", "c")
        );
    }
}

#[cfg(all(test, feature = "signing"))]
mod signed {
    use crate::client::{AuthMethod, Client};
    use crate::secret::ClientSecret;

    #[test]
    fn a_private_key_jwt_request_carries_the_assertion_and_never_the_key() {
        use base64::Engine as _;
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "d": d}).to_string();
        let client = Client::confidential("app", ClientSecret::new(jwk), AuthMethod::PrivateKeyJwt);
        let url = url::Url::parse("https://as.example/token").unwrap();
        let signed = client
            .asserted("https://as.example", 1000, [1; 16])
            .unwrap();
        let req = super::client_credentials_request(&url, &signed, None, None);
        let body = String::from_utf8(req.body.clone()).unwrap();
        assert!(body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"), "{body}");
        assert!(body.contains("client_assertion=ey"), "{body}");
        assert!(!body.contains(&d), "the key itself is never sent");
        assert!(req.headers.iter().all(|(k, _)| k != "authorization"));
    }

    /// A bound token request of a `private_key_jwt` client to a server
    /// that wants a nonce: refused once, sent again with it, each proof and
    /// each client assertion with its own `jti` from the runtime (a server
    /// refuses an assertion it has seen); the runtime keeps the nonce, so
    /// its next request carries it at once, and another runtime starts
    /// without it. A client that draws no random numbers sends nothing.
    #[cfg(feature = "signing")]
    #[test]
    fn a_server_nonce_is_kept_by_the_runtime_and_every_jti_is_fresh() {
        use super::{form_request, send_signed};
        use crate::http::{HttpRequest, HttpResponse};
        use crate::testing::{block_on, Script};
        use crate::Error;
        use base64::Engine as _;
        let ep = || url::Url::parse("https://as.example/token").unwrap();
        let claims = |jws: &str| -> serde_json::Value {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jws.split('.').nth(1).unwrap())
                .unwrap();
            serde_json::from_slice(&b).unwrap()
        };
        let proof = |r: &HttpRequest| claims(r.header("dpop").unwrap());
        let assertion = |r: &HttpRequest| {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            claims(&form["client_assertion"])
        };
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "d": d}).to_string();
        let client = Client::confidential("app", ClientSecret::new(jwk), AuthMethod::PrivateKeyJwt);
        let key = crate::secret::DpopKey::generate([5; 32]).unwrap();
        let ask = || {
            HttpResponse::new(400, r#"{"error":"use_dpop_nonce"}"#)
                .with_header("content-type", "application/json")
                .with_header("DPoP-Nonce", "n-1")
        };
        let ok = || HttpResponse::new(200, r#"{"access_token":"AT","token_type":"DPoP"}"#);
        let build = |c: &Client| form_request(&ep(), c, vec![("grant_type", "x".into())]);
        let send = |http, now| {
            block_on(send_signed(
                http,
                &client,
                "https://as.example",
                &build,
                Some(&key),
                now,
            ))
        };
        let http = Script::new()
            .raw(ep().as_str(), ask())
            .raw(ep().as_str(), ok());
        let (_, resp) = send(&http, 100).unwrap();
        assert_eq!(resp.status, 200);
        let sent = http.requests();
        let (first, again) = (proof(&sent[0]), proof(&sent[1]));
        assert!(first.get("nonce").is_none());
        assert_eq!(again["nonce"], "n-1");
        assert_ne!(first["jti"], again["jti"]);
        let (a1, a2) = (assertion(&sent[0]), assertion(&sent[1]));
        assert_eq!(a1["aud"], "https://as.example");
        assert_ne!(a1["jti"], a2["jti"], "a new assertion for the retry");
        send(&http, 101).unwrap();
        assert_eq!(
            proof(&http.requests()[2])["nonce"],
            "n-1",
            "kept by the runtime"
        );
        assert_eq!(http.requests().len(), 3, "not refused this time");

        let other = Script::new().raw(ep().as_str(), ok());
        send(&other, 101).unwrap();
        assert!(proof(&other.requests()[0]).get("nonce").is_none());

        let sent = std::cell::Cell::new(0);
        let closure = |_: HttpRequest| {
            sent.set(sent.get() + 1);
            async { Ok(ok()) }
        };
        let e = send_closure(&closure, &client, &key).unwrap_err();
        assert!(matches!(e, Error::NoRandomness(_)), "{e}");
        assert_eq!(sent.get(), 0, "nothing sent without a jti");
    }

    #[cfg(feature = "signing")]
    fn send_closure(
        http: &impl crate::http::HttpClient,
        client: &Client,
        key: &crate::secret::DpopKey,
    ) -> crate::Result<(url::Url, crate::http::HttpResponse)> {
        let ep = url::Url::parse("https://as.example/token").unwrap();
        let build = |c: &Client| super::form_request(&ep, c, vec![("grant_type", "x".into())]);
        crate::testing::block_on(super::send_signed(
            http,
            client,
            "https://as.example",
            &build,
            Some(key),
            100,
        ))
    }
}
