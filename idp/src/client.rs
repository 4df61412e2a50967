//! Who the app is at one authorization server: a client id, its secret for
//! a confidential client, and how it authenticates.

use crate::secret::ClientSecret;
use serde::{Deserialize, Serialize};

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
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Self::None, Self::ClientSecretBasic, Self::ClientSecretPost]
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
}

impl Client {
    /// A public client (auth method `none`).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            auth_method: AuthMethod::None,
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
        }
    }
}
