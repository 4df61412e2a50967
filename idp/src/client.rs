//! Who the app is at one authorization server: a client id, its secret for
//! a confidential client, and how it authenticates.

use crate::error::Result;
use crate::secret::{Assertion, ClientSecret};
use serde::{Deserialize, Serialize};

/// The device authorization grant's type (RFC 8628 §3.4). A login with no
/// browser has no redirect URI; its flow and the client registered for it
/// are kept under this URN in its place ([`device_redirect`]).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What stands for the redirect URI of a login with no browser: no callback
/// ever arrives there, so such a flow can only be finished by polling.
pub fn device_redirect() -> url::Url {
    url::Url::parse(DEVICE_CODE_GRANT).expect("a valid URN")
}

/// Whether `redirect_uri` is [`device_redirect`].
pub fn is_device_redirect(redirect_uri: &url::Url) -> bool {
    redirect_uri.as_str() == DEVICE_CODE_GRANT
}

/// How the client authenticates at the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-encoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A JWT the client signs with its private key (RFC 7523 §2.2): the
    /// client's secret is then that key, PEM or JWK (see [`crate::jws`]).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [
            Self::None,
            Self::ClientSecretBasic,
            Self::ClientSecretPost,
            Self::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }
}

/// A client identity usable at one authorization server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client id (for a metadata document client, its https URL).
    pub client_id: String,
    /// The secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// How to authenticate.
    pub auth_method: AuthMethod,
    /// For `private_key_jwt`, the signed assertion of the request being
    /// built ([`Client::asserted`]); never stored.
    #[serde(skip)]
    pub(crate) assertion: Option<Assertion>,
}

impl Client {
    /// A public client (auth method `none`).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            auth_method: AuthMethod::None,
            assertion: None,
        }
    }

    /// A confidential client with a secret.
    pub fn confidential(
        client_id: impl Into<String>,
        secret: ClientSecret,
        auth_method: AuthMethod,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: Some(secret),
            auth_method,
            assertion: None,
        }
    }

    /// This client ready for one request to `issuer`'s token endpoint: for
    /// `private_key_jwt`, with an assertion signed now (RFC 7523 §3: `iss`
    /// and `sub` the client id, `aud` the issuer, 60 seconds of life, `jti`
    /// the 16 random bytes `jti`, drawn by the runtime for this assertion);
    /// other clients as they are.
    pub fn asserted(&self, issuer: &str, now: u64, jti: [u8; 16]) -> Result<Client> {
        if self.auth_method != AuthMethod::PrivateKeyJwt {
            return Ok(self.clone());
        }
        let pem = self
            .client_secret
            .as_ref()
            .ok_or_else(|| crate::jws::unusable("the client has no private key"))?;
        let key = crate::jws::SigningKey::parse(pem.secret())?;
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": issuer,
            "iat": now,
            "exp": now + 60,
            "jti": crate::encoding::base64url(&jti),
        });
        let mut client = self.clone();
        client.assertion = Some(Assertion::new(key.sign("JWT", &claims)));
        Ok(client)
    }

    /// [`Client::asserted`] for a request sent through `http`, the `jti`
    /// drawn from its runtime's randomness (only when the client signs).
    pub(crate) fn ready(
        &self,
        issuer: &str,
        now: u64,
        http: &impl crate::http::HttpClient,
    ) -> Result<Client> {
        if self.auth_method != AuthMethod::PrivateKeyJwt {
            return Ok(self.clone());
        }
        self.asserted(issuer, now, crate::http::jti(http)?)
    }
}

#[cfg(all(test, feature = "signing"))]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn claims(assertion: &str) -> serde_json::Value {
        let payload = assertion.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn a_private_key_jwt_client_signs_a_fresh_assertion_for_each_request() {
        let d = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "d": d}).to_string();
        let client = Client::confidential("app", ClientSecret::new(jwk), AuthMethod::PrivateKeyJwt);
        let a = client
            .asserted("https://as.example", 1000, [1; 16])
            .unwrap();
        let b = client
            .asserted("https://as.example", 1000, [2; 16])
            .unwrap();
        let (a, b) = (a.assertion.unwrap(), b.assertion.unwrap());
        let (ca, cb) = (claims(a.secret()), claims(b.secret()));
        assert_eq!(ca["iss"], "app");
        assert_eq!(ca["sub"], "app");
        assert_eq!(ca["aud"], "https://as.example");
        assert_eq!(
            (ca["iat"].as_u64(), ca["exp"].as_u64()),
            (Some(1000), Some(1060))
        );
        assert_ne!(ca["jti"], cb["jti"], "the same second, another jti");
        assert_eq!(
            ca["jti"],
            crate::encoding::base64url(&[1; 16]).as_str(),
            "the jti is the randomness given and nothing else"
        );
        assert!(!format!("{client:?}").contains(&d), "the key never formats");

        let public = Client::public("app");
        assert_eq!(
            public.asserted("https://as.example", 1, [0; 16]).unwrap(),
            public
        );
        let keyless = Client {
            client_secret: None,
            ..client
        };
        assert!(keyless.asserted("https://as.example", 1, [0; 16]).is_err());
    }
}
