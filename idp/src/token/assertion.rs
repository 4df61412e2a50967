//! Grants made of signed assertions: the JWT bearer grant (RFC 7523 §2.1),
//! which presents a workload's identity token or an identity assertion
//! authorization grant (ID-JAG) at an authorization server, and the token
//! exchange (RFC 8693) at the enterprise's identity provider that turns a
//! person's ID token into an ID-JAG for one authorization server and
//! resource (the MCP enterprise-managed authorization extension).

use super::{form_request, parse_token_response_with, send, TokenRules, TokenSet};
use crate::client::Client;
use crate::discovery::read_json;
use crate::error::{Error, OAuthError, Result};
use crate::http::{HttpClient, HttpRequest};
use crate::secret::Assertion;
use serde::{Deserialize, Serialize};
use url::Url;

/// The grant type of RFC 7523's JWT bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The grant type of RFC 8693's token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an OpenID Connect ID token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The token type of an identity assertion authorization grant.
pub const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// The JWT bearer grant request: `assertion` as the grant, the client
/// identified and authenticated as it is configured (a public client sends
/// its `client_id`), for `resource` (RFC 8707) and `scope` when given.
pub fn jwt_bearer_request(
    token_endpoint: &Url,
    client: &Client,
    assertion: &Assertion,
    resource: Option<&str>,
    scope: Option<&str>,
) -> HttpRequest {
    let mut pairs = vec![
        ("grant_type", JWT_BEARER.into()),
        ("assertion", assertion.secret().into()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", r.into()));
    }
    if let Some(s) = scope {
        pairs.push(("scope", s.into()));
    }
    form_request(token_endpoint, client, pairs)
}

/// Gets tokens with the JWT bearer grant ([`jwt_bearer_request`] +
/// [`super::parse_token_response`]).
pub async fn jwt_bearer(
    http: &impl HttpClient,
    token_endpoint: &Url,
    client: &Client,
    assertion: &Assertion,
    resource: Option<&str>,
    scope: Option<&str>,
    now: u64,
) -> Result<TokenSet> {
    let req = jwt_bearer_request(token_endpoint, client, assertion, resource, scope);
    let (url, resp) = send(http, req).await?;
    parse_token_response_with(&url, &resp, now, None, &TokenRules::default())
}

/// The enterprise's identity provider, where the app's users sign in: it
/// issues identity assertion authorization grants for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseIdp {
    /// Its issuer identifier.
    pub issuer: String,
    /// Its token endpoint, where ID tokens are exchanged.
    pub token_endpoint: Url,
    /// The app's client there (the one the ID tokens were issued to).
    pub client: Client,
}

/// What the token exchange asks for: an ID-JAG for `audience` (the
/// authorization server's issuer) and `resource`.
#[derive(Debug, Clone, Copy)]
pub struct IdJagRequest<'a> {
    /// The person's ID token from the identity provider.
    pub id_token: &'a Assertion,
    /// The issuer of the authorization server the grant is for.
    pub audience: &'a str,
    /// The resource the grant is for (RFC 8707).
    pub resource: &'a str,
    /// The scope asked for, if any.
    pub scope: Option<&'a str>,
}

impl EnterpriseIdp {
    /// The token exchange request (RFC 8693 §2.1) for an ID-JAG.
    pub fn id_jag_request(&self, ask: &IdJagRequest<'_>) -> HttpRequest {
        let mut pairs = vec![
            ("grant_type", TOKEN_EXCHANGE.into()),
            ("requested_token_type", ID_JAG_TYPE.into()),
            ("subject_token", ask.id_token.secret().into()),
            ("subject_token_type", ID_TOKEN_TYPE.into()),
            ("audience", ask.audience.into()),
            ("resource", ask.resource.into()),
        ];
        if let Some(s) = ask.scope {
            pairs.push(("scope", s.into()));
        }
        form_request(&self.token_endpoint, &self.client, pairs)
    }

    /// Exchanges the person's ID token for an ID-JAG, the app's client
    /// authenticating as at any token endpoint (a `private_key_jwt` client
    /// with an assertion signed at `now`, audience the identity provider).
    /// The answer must say it issued one (`issued_token_type`); an error
    /// answer is the provider's refusal, as [`Error::Token`].
    pub async fn id_jag(
        &self,
        http: &impl HttpClient,
        ask: &IdJagRequest<'_>,
        now: u64,
    ) -> Result<Assertion> {
        let asserted = Self {
            client: self.client.ready(&self.issuer, now, http)?,
            ..self.clone()
        };
        let (url, resp) = send(http, asserted.id_jag_request(ask)).await?;
        if !resp.is_success() {
            return Err(Error::Token {
                url,
                status: resp.status,
                oauth: read_json::<OAuthError>(&resp).ok().map(Box::new),
            });
        }
        #[derive(Deserialize)]
        struct Issued {
            access_token: String,
            issued_token_type: String,
        }
        let issued: Issued = read_json(&resp).map_err(|e| Error::InvalidResponse {
            url: url.clone(),
            reason: format!("not a token exchange answer: {e}"),
        })?;
        if issued.issued_token_type != ID_JAG_TYPE || issued.access_token.is_empty() {
            return Err(Error::InvalidResponse {
                url,
                reason: format!(
                    "the token exchange issued {:?}, not an identity assertion authorization grant",
                    issued.issued_token_type
                ),
            });
        }
        Ok(Assertion::new(issued.access_token))
    }
}

#[cfg(all(test, feature = "signing"))]
mod tests {
    use super::*;
    use crate::client::AuthMethod;
    use crate::testing::{block_on, Script};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    /// A `private_key_jwt` client authenticates at the enterprise's
    /// identity provider with an assertion for it, as at any token
    /// endpoint.
    #[test]
    fn a_keyed_client_authenticates_at_the_identity_provider() {
        const IDP_TOKEN: &str = "https://idp.example/token";
        let d = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "d": d}).to_string();
        let idp = EnterpriseIdp {
            issuer: "https://idp.example".into(),
            token_endpoint: Url::parse(IDP_TOKEN).unwrap(),
            client: Client::confidential(
                "app-at-idp",
                crate::secret::ClientSecret::new(jwk),
                AuthMethod::PrivateKeyJwt,
            ),
        };
        let script = Script::new().json(
            IDP_TOKEN,
            200,
            serde_json::json!({"access_token": "jag", "issued_token_type": ID_JAG_TYPE}),
        );
        let id_token = Assertion::new("eyJ.person.id-token");
        let ask = IdJagRequest {
            id_token: &id_token,
            audience: "https://as.example",
            resource: "https://api.example",
            scope: None,
        };
        let jag = block_on(idp.id_jag(&script, &ask, 1000)).unwrap();
        assert_eq!(jag.secret(), "jag");
        let body = String::from_utf8(script.requests()[0].body.clone()).unwrap();
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            form.get("client_assertion_type").map(String::as_str),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let assertion = form.get("client_assertion").expect("an assertion");
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(assertion.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (claims["iss"].as_str(), claims["aud"].as_str()),
            (Some("app-at-idp"), Some("https://idp.example"))
        );
    }
}
