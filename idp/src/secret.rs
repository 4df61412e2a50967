//! Secret values: tokens, client secrets, PKCE verifiers and flow state.
//!
//! Each secret is a newtype whose `Debug` prints `Name([redacted])`, which has no
//! `Display`, and whose value is read only through `.secret()`. They serialize
//! (a Durable Object or store must persist them) but never format.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident $(, $derive:ident)*) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, PartialEq, Eq $(, $derive)*)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Call this only where the value is sent to its
            /// intended recipient.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth access token.
    AccessToken,
    Clone
);
secret_type!(
    /// An OAuth refresh token.
    RefreshToken,
    Clone
);
secret_type!(
    /// A client secret issued at registration or configured in advance.
    ClientSecret,
    Clone
);
secret_type!(
    /// An RFC 7592 registration access token, to update a registration.
    RegistrationAccessToken,
    Clone
);
secret_type!(
    /// A signed assertion a token endpoint accepts as a grant (RFC 7523): a
    /// workload's identity token, or an identity assertion authorization
    /// grant.
    Assertion,
    Clone
);
secret_type!(
    /// A DPoP private key (RFC 9449): the P-256 scalar, base64url, that
    /// sender-constrains one grant's tokens ([`crate::dpop`]).
    DpopKey,
    Clone
);
secret_type!(
    /// An authorization code received at the callback.
    AuthorizationCode
);
secret_type!(
    /// A device code (RFC 8628): what the app polls the token endpoint
    /// with while a person approves the login elsewhere.
    DeviceCode,
    Clone
);
secret_type!(
    /// The `state` value binding a callback to its pending flow (at least 128
    /// random bits).
    FlowState,
    Clone
);
secret_type!(
    /// A PKCE code verifier (RFC 7636). Deliberately not `Clone`.
    PkceVerifier
);

impl FlowState {
    /// A state value from 32 random bytes (256 bits), base64url without padding.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(crate::encoding::base64url(&bytes))
    }

    /// Compares in time independent of where the values differ.
    pub fn matches(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }
}

impl std::hash::Hash for FlowState {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let values = [
            format!("{:?}", AccessToken::new("at-SECRET")),
            format!("{:?}", RefreshToken::new("rt-SECRET")),
            format!("{:?}", ClientSecret::new("cs-SECRET")),
            format!("{:?}", AuthorizationCode::new("code-SECRET")),
            format!("{:?}", FlowState::new("state-SECRET")),
            format!("{:?}", PkceVerifier::new("verifier-SECRET")),
            format!("{:?}", Some(AccessToken::new("nested-SECRET"))),
        ];
        for v in &values {
            assert!(!v.contains("SECRET"), "{v}");
            assert!(v.contains("[redacted]"), "{v}");
        }
        assert_eq!(values[0], "AccessToken([redacted])");
    }

    #[test]
    fn state_comparison() {
        let s = FlowState::from_random([7; 32]);
        assert_eq!(s.secret().len(), 43);
        assert!(s.matches(s.secret()));
        assert!(!s.matches("other"));
        assert!(!s.matches(""));
    }
}
