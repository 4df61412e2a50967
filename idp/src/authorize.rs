//! The authorization request and its callback (RFC 6749 §4.1, RFC 7636, RFC 8707,
//! RFC 9207).
//!
//! [`crate::flow::authorize`] returns the URL to send the person to and a [`PendingFlow`] that
//! the caller keeps server-side, keyed by its state. [`validate_callback`] checks
//! the redirect back against that flow.

use crate::client::Client;
use crate::error::{CallbackProblem, Error, OAuthError, Result};
use crate::secret::{AuthorizationCode, FlowState, PkceVerifier};
use serde::{Deserialize, Serialize};
use url::Url;

/// How long a pending flow stays valid: 10 minutes.
pub const FLOW_LIFETIME_SECS: u64 = 600;

/// Everything needed to finish an authorization, kept server-side and never put
/// in a URL or cookie. Single use: the store removes it when it is taken.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingFlow {
    /// The `state` sent with the request.
    pub state: FlowState,
    /// The PKCE verifier.
    pub verifier: PkceVerifier,
    /// The URL the person asked to connect.
    pub resource_url: String,
    /// The canonical resource URI sent as `resource`.
    pub resource: String,
    /// The issuer the request went to.
    pub issuer: String,
    /// Whether the issuer promised an `iss` parameter (RFC 9207).
    pub iss_required: bool,
    /// The client used.
    pub client: Client,
    /// Token endpoint, to exchange the code.
    pub token_endpoint: Url,
    /// Revocation endpoint, kept with the provider later.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// The redirect URI sent.
    pub redirect_uri: Url,
    /// The scope requested, if any.
    pub scope: Option<String>,
    /// Who started the flow, as the caller names them (user id).
    pub owner: String,
    /// When the flow began (seconds since the epoch).
    pub created_at: u64,
    /// What is known about the server's token answers (from a profile).
    #[serde(default, skip_serializing_if = "crate::token::TokenRules::is_standard")]
    pub rules: crate::token::TokenRules,
    /// The provider profile used, if any ([`crate::profile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The key the grant's tokens are bound to (DPoP, RFC 9449), when the
    /// server takes proofs; its thumbprint goes with the authorization
    /// request as `dpop_jkt`, so the code is bound to it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<crate::secret::DpopKey>,
    /// How the API says a token is refused, from the profile, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<crate::token::Refusal>,
    /// For a login with no browser (RFC 8628): the codes and the polling
    /// schedule. Its `redirect_uri` is then
    /// [`device_redirect`](crate::client::device_redirect), so no callback
    /// can take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::token::device::DeviceWait>,
    /// The account this login connects, when one was named
    /// ([`crate::flow::accounts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl PendingFlow {
    /// What the code exchange needs from this login.
    pub fn code_grant(&self) -> crate::token::CodeGrant<'_> {
        crate::token::CodeGrant {
            issuer: &self.issuer,
            token_endpoint: &self.token_endpoint,
            client: &self.client,
            redirect_uri: &self.redirect_uri,
            verifier: &self.verifier,
            resource: &self.resource,
            rules: &self.rules,
            dpop: self.dpop.as_ref(),
        }
    }

    /// Whether the flow has outlived [`FLOW_LIFETIME_SECS`] at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now >= self.created_at.saturating_add(FLOW_LIFETIME_SECS)
            || now < self.created_at.saturating_sub(60)
    }
}

/// What an authorization request is built from.
#[derive(Debug)]
pub struct AuthorizationParams<'a> {
    /// The server's authorization endpoint.
    pub authorization_endpoint: &'a Url,
    /// The client.
    pub client: &'a Client,
    /// The callback URL.
    pub redirect_uri: &'a Url,
    /// The canonical resource URI (RFC 8707), unless the server refuses it.
    pub resource: Option<&'a str>,
    /// The scope, from [`crate::scope::choose_scope`].
    pub scope: Option<&'a str>,
}

/// The authorization URL for a state and verifier.
pub fn authorization_url(
    p: &AuthorizationParams<'_>,
    state: &FlowState,
    verifier: &PkceVerifier,
) -> Url {
    let mut url = p.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &p.client.client_id)
            .append_pair("redirect_uri", p.redirect_uri.as_str())
            .append_pair("code_challenge", &verifier.s256_challenge())
            .append_pair("code_challenge_method", crate::pkce::S256)
            .append_pair("state", state.secret());
        if let Some(resource) = p.resource {
            q.append_pair("resource", resource);
        }
        if let Some(scope) = p.scope {
            q.append_pair("scope", scope);
        }
    }
    url
}

/// The authorization request of a pending flow, as a builder: the flow
/// gives client, redirect URI, PKCE S256, state, `resource` (unless its
/// rules say the server refuses it) and scope; a provider may want the
/// scope under another parameter name and extra parameters.
///
/// ```
/// # fn f(flow: &idp::authorize::PendingFlow, endpoint: &url::Url) {
/// use idp::authorize::AuthorizationRequest;
/// let url = AuthorizationRequest::new(endpoint, flow)
///     .param("access_type", "offline")
///     .url();
/// assert!(url.query().unwrap().contains("code_challenge_method=S256"));
/// # }
/// ```
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    endpoint: &'a Url,
    flow: &'a PendingFlow,
    scope_param: Option<&'a str>,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> AuthorizationRequest<'a> {
    /// The request for `flow` at the server's authorization `endpoint`.
    pub fn new(endpoint: &'a Url, flow: &'a PendingFlow) -> Self {
        Self {
            endpoint,
            flow,
            scope_param: None,
            extra: Vec::new(),
        }
    }

    /// Sends the scope under `name` instead of `scope` (a provider quirk).
    pub fn scope_param(mut self, name: &'a str) -> Self {
        self.scope_param = Some(name);
        self
    }

    /// Adds a parameter after the standard ones.
    pub fn param(mut self, name: &'a str, value: &'a str) -> Self {
        self.extra.push((name, value));
        self
    }

    /// The URL to send the person to.
    pub fn url(&self) -> Url {
        let flow = self.flow;
        let mut url = authorization_url(
            &AuthorizationParams {
                authorization_endpoint: self.endpoint,
                client: &flow.client,
                redirect_uri: &flow.redirect_uri,
                resource: flow
                    .rules
                    .resource_on_authorization()
                    .then_some(flow.resource.as_str()),
                scope: flow.scope.as_deref().filter(|_| self.scope_param.is_none()),
            },
            &flow.state,
            &flow.verifier,
        );
        {
            let mut q = url.query_pairs_mut();
            if let (Some(name), Some(scope)) = (self.scope_param, &flow.scope) {
                q.append_pair(name, scope);
            }
            for (k, v) in &self.extra {
                q.append_pair(k, v);
            }
            if let Some(jkt) = flow.dpop.as_ref().and_then(|k| k.thumbprint()) {
                q.append_pair("dpop_jkt", &jkt);
            }
        }
        url
    }
}

/// The parameters of a redirect back to the app.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackParams {
    /// `code`.
    pub code: Option<AuthorizationCode>,
    /// `state`.
    pub state: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// `error`, `error_description`, `error_uri`.
    pub error: Option<OAuthError>,
}

impl CallbackParams {
    /// Reads the callback's query string. Repeated parameters keep the first.
    pub fn from_query(query: &str) -> Self {
        let mut p = CallbackParams::default();
        let mut description = None;
        let mut error_uri = None;
        let mut error = None;
        for (k, v) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "code" if p.code.is_none() => p.code = Some(AuthorizationCode::new(v)),
                "state" if p.state.is_none() => p.state = Some(v),
                "iss" if p.iss.is_none() => p.iss = Some(v),
                "error" if error.is_none() => error = Some(v),
                "error_description" if description.is_none() => description = Some(v),
                "error_uri" if error_uri.is_none() => error_uri = Some(v),
                _ => {}
            }
        }
        p.error = error.map(|error| OAuthError {
            error,
            error_description: description,
            error_uri,
        });
        p
    }
}

/// Checks a callback against the flow its state named (the caller looked the
/// flow up by state and removed it). Returns the code to exchange.
///
/// Order: expiry, state, issuer (RFC 9207: when `iss` is present it must equal
/// the issuer; when the server advertises it, it must be present), then the
/// server's `error`, then `code`.
pub fn validate_callback(
    params: CallbackParams,
    flow: &PendingFlow,
    now: u64,
) -> Result<AuthorizationCode> {
    let state = params
        .state
        .as_deref()
        .ok_or(Error::Callback(CallbackProblem::MissingState))?;
    if !flow.state.matches(state) {
        return Err(Error::Callback(CallbackProblem::UnknownState));
    }
    if flow.expired(now) {
        return Err(Error::Callback(CallbackProblem::Expired));
    }
    match &params.iss {
        // RFC 9207 §2.4: simple string comparison, no normalization.
        Some(iss) if *iss != flow.issuer => {
            return Err(Error::Callback(CallbackProblem::IssuerMismatch {
                expected: flow.issuer.clone(),
                found: iss.clone(),
            }))
        }
        None if flow.iss_required => return Err(Error::Callback(CallbackProblem::MissingIssuer)),
        _ => {}
    }
    if let Some(e) = params.error {
        return Err(Error::AuthorizationDenied(e));
    }
    params
        .code
        .ok_or(Error::Callback(CallbackProblem::MissingCode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(now: u64) -> PendingFlow {
        PendingFlow {
            state: FlowState::new("st"),
            verifier: PkceVerifier::from_random([1; 32]),
            resource_url: "https://api.example/v1/x".into(),
            resource: "https://api.example/v1".into(),
            issuer: "https://as.example".into(),
            iss_required: true,
            client: Client::public("c1"),
            token_endpoint: Url::parse("https://as.example/token").unwrap(),
            revocation_endpoint: None,
            redirect_uri: Url::parse("https://app.example/oauth/callback").unwrap(),
            scope: Some("read".into()),
            owner: "alice".into(),
            created_at: now,
            rules: Default::default(),
            profile: None,
            dpop: None,
            refused: None,
            device: None,
            account: None,
        }
    }

    #[test]
    fn authorization_url_parameters() {
        let f = flow(0);
        let url = authorization_url(
            &AuthorizationParams {
                authorization_endpoint: &Url::parse("https://as.example/authorize?prompt=consent")
                    .unwrap(),
                client: &f.client,
                redirect_uri: &f.redirect_uri,
                resource: Some(&f.resource),
                scope: f.scope.as_deref(),
            },
            &f.state,
            &f.verifier,
        );
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "c1");
        assert_eq!(q["redirect_uri"], "https://app.example/oauth/callback");
        assert_eq!(q["code_challenge"], f.verifier.s256_challenge());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "st");
        assert_eq!(q["resource"], "https://api.example/v1");
        assert_eq!(q["scope"], "read");
        assert!(!url.as_str().contains(f.verifier.secret()));
    }

    #[test]
    fn callback_checks() {
        let f = flow(1000);
        let ok = |q: &str| validate_callback(CallbackParams::from_query(q), &f, 1000);
        assert_eq!(
            ok("code=abc&state=st&iss=https%3A%2F%2Fas.example")
                .unwrap()
                .secret(),
            "abc"
        );
        assert_eq!(
            ok("code=abc&state=st").unwrap_err(),
            Error::Callback(CallbackProblem::MissingIssuer)
        );
        assert!(matches!(
            ok("code=abc&state=st&iss=https%3A%2F%2Fevil.example").unwrap_err(),
            Error::Callback(CallbackProblem::IssuerMismatch { .. })
        ));
        // Compared as text (RFC 9207 §2.4): a variant that only matches
        // after URL normalization is a mismatch, and the response's `error`
        // is not believed.
        for variant in [
            "https://as.example/",
            "HTTPS://as.example",
            "https://as.example:443",
        ] {
            let q = String::from_utf8(crate::encoding::form(&[
                ("error", "access_denied"),
                ("state", "st"),
                ("iss", variant),
            ]))
            .unwrap();
            assert!(
                matches!(
                    ok(&q).unwrap_err(),
                    Error::Callback(CallbackProblem::IssuerMismatch { .. })
                ),
                "{variant}"
            );
        }
        assert_eq!(
            ok("code=abc&state=zz&iss=https://as.example").unwrap_err(),
            Error::Callback(CallbackProblem::UnknownState)
        );
        assert_eq!(
            ok("code=abc&iss=https://as.example").unwrap_err(),
            Error::Callback(CallbackProblem::MissingState)
        );
        assert_eq!(
            ok("state=st&iss=https://as.example").unwrap_err(),
            Error::Callback(CallbackProblem::MissingCode)
        );
        let denied =
            ok("error=access_denied&error_description=no+thanks&state=st&iss=https://as.example")
                .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "the authorization server answered: access_denied (no thanks)"
        );
        let late = validate_callback(
            CallbackParams::from_query("code=abc&state=st&iss=https://as.example"),
            &f,
            1000 + FLOW_LIFETIME_SECS,
        );
        assert_eq!(late.unwrap_err(), Error::Callback(CallbackProblem::Expired));

        let mut lax = flow(1000);
        lax.iss_required = false;
        assert!(
            validate_callback(CallbackParams::from_query("code=abc&state=st"), &lax, 1001).is_ok()
        );
    }

    #[test]
    fn pending_flow_debug_hides_secrets() {
        let f = flow(0);
        let d = format!("{f:?}");
        assert!(!d.contains(f.verifier.secret()), "{d}");
        assert!(d.contains("PkceVerifier([redacted])"));
    }
}
