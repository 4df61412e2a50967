//! Profiles for common APIs without discovery. Each takes the client id and
//! the name of the Workers secret holding the client secret (never the
//! secret itself), and states the provider's documented endpoints and token
//! quirks. Adjust `scopes` to what your app needs.
//!
//! None of these was tried against the live provider here (the test machine
//! reaches no provider); each quirk they rely on is exercised against local
//! servers that behave the same way (`tests/servers/quirks.mjs`).

use super::{ProviderProfile, ScopeSeparator};
use crate::registration::AuthMethod;
use crate::token::{ResourceParam, TokenRules};
use url::Url;

fn url(s: &str) -> Url {
    Url::parse(s).expect("a built-in endpoint is a valid URL")
}

fn named(mut p: ProviderProfile, secret_name: &str) -> ProviderProfile {
    p.client_secret_name = Some(secret_name.to_owned());
    p
}

/// GitHub (OAuth apps and GitHub Apps acting for a user), for
/// `https://api.github.com`.
///
/// - Endpoints: `https://github.com/login/oauth/authorize` and
///   `https://github.com/login/oauth/access_token` (GitHub Docs,
///   "Authorizing OAuth apps"); PKCE S256 is supported (GitHub changelog,
///   2025-07-14).
/// - Token answers are form-encoded unless JSON is asked for, errors come
///   with HTTP 200, and `scope` is comma-separated (rules `form_encoded`,
///   `error_in_success`, `comma_scope`).
/// - OAuth app tokens do not expire and come with no refresh token; GitHub
///   App user tokens expire after 8 hours and come with a refresh token.
/// - No RFC 7009 revocation endpoint (GitHub revokes through its REST API
///   with the app's credentials): removal forgets the token only.
/// - `resource` is not sent.
/// - The device flow (RFC 8628) at `https://github.com/login/device/code`
///   (GitHub Docs, "Authorizing OAuth apps", device flow; enabled per app),
///   its polling errors with HTTP 200 like the rest.
pub fn github(client_id: &str, secret_name: &str) -> ProviderProfile {
    let mut p = ProviderProfile::new(
        "github",
        &["https://api.github.com"],
        "https://github.com",
        url("https://github.com/login/oauth/authorize"),
        url("https://github.com/login/oauth/access_token"),
        client_id,
    );
    p.scopes = vec!["read:user".into()];
    p.rules = TokenRules {
        assume_bearer: true,
        resource: ResourceParam::Nowhere,
    };
    p.device_authorization_endpoint = Some(url("https://github.com/login/device/code"));
    named(p, secret_name)
}

/// Google APIs (`https://www.googleapis.com` and the per-API hosts listed).
///
/// - Endpoints: `https://accounts.google.com/o/oauth2/v2/auth`,
///   `https://oauth2.googleapis.com/token`, revocation at
///   `https://oauth2.googleapis.com/revoke` (Google Identity, "Using OAuth
///   2.0 for Web Server Applications").
/// - A refresh token is issued only with `access_type=offline`, and again
///   for a user who already consented only with `prompt=consent`; a refresh
///   answer carries no new refresh token (the old one is kept).
/// - PKCE S256 is supported; `resource` is not sent.
pub fn google(client_id: &str, secret_name: &str) -> ProviderProfile {
    let mut p = ProviderProfile::new(
        "google",
        &[
            "https://www.googleapis.com",
            "https://gmail.googleapis.com",
            "https://people.googleapis.com",
            "https://sheets.googleapis.com",
            "https://docs.googleapis.com",
        ],
        "https://accounts.google.com",
        url("https://accounts.google.com/o/oauth2/v2/auth"),
        url("https://oauth2.googleapis.com/token"),
        client_id,
    );
    p.revocation_endpoint = Some(url("https://oauth2.googleapis.com/revoke"));
    p.scopes = vec!["openid".into(), "email".into()];
    p.authorization_params = vec![
        ("access_type".into(), "offline".into()),
        ("prompt".into(), "consent".into()),
    ];
    p.rules.resource = ResourceParam::Nowhere;
    named(p, secret_name)
}

/// Slack, acting as the user (user tokens), for `https://slack.com/api`.
///
/// - Endpoints: `https://slack.com/oauth/v2/authorize` (user scopes go in
///   `user_scope`) and `https://slack.com/api/oauth.v2.access` (Slack API
///   docs, "Installing with OAuth").
/// - The user's token is nested under `authed_user`, with `token_type`
///   `user`; failures are HTTP 200 with `"ok": false`; scopes are
///   comma-separated (rules `nested_user_token`, `ok_false`, `comma_scope`,
///   and `assume_bearer`).
/// - The Web API refuses a token with HTTP 200 and `"ok": false`, `error`
///   `invalid_auth`, `not_authed`, `token_expired`, `token_revoked` or
///   `account_inactive` (Slack API docs, each method's errors): read as a
///   401 (`refused`).
/// - Tokens expire (with a refresh token) only when the app turned on token
///   rotation. No RFC 7009 revocation endpoint (`auth.revoke` is an API
///   method): removal forgets the token only. `resource` is not sent.
pub fn slack(client_id: &str, secret_name: &str) -> ProviderProfile {
    let mut p = ProviderProfile::new(
        "slack",
        &["https://slack.com/api"],
        "https://slack.com",
        url("https://slack.com/oauth/v2/authorize"),
        url("https://slack.com/api/oauth.v2.access"),
        client_id,
    );
    p.scopes = vec!["users:read".into()];
    p.scope_separator = ScopeSeparator::Comma;
    p.scope_param = Some("user_scope".into());
    p.rules = TokenRules {
        assume_bearer: true,
        resource: ResourceParam::Nowhere,
    };
    p.refused = Some(crate::token::Refusal::json(
        &[200],
        "/error",
        &[
            "invalid_auth",
            "not_authed",
            "token_expired",
            "token_revoked",
            "account_inactive",
        ],
    ));
    named(p, secret_name)
}

/// Microsoft Graph through Microsoft Entra ID, for
/// `https://graph.microsoft.com`. `tenant` is `common`, `organizations`,
/// `consumers`, or a tenant id or domain.
///
/// - Endpoints: `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize`
///   and `.../token` (Microsoft identity platform, "OAuth 2.0 authorization
///   code flow"); the issuer is `https://login.microsoftonline.com/{tenant}/v2.0`.
/// - Scopes name the API (`https://graph.microsoft.com/User.Read`);
///   `offline_access` is needed for a refresh token. The v2.0 endpoints
///   take no `resource` parameter, so it is not sent.
/// - No RFC 7009 revocation endpoint: removal forgets the token only.
pub fn microsoft(tenant: &str, client_id: &str, secret_name: &str) -> ProviderProfile {
    let base = format!("https://login.microsoftonline.com/{tenant}");
    let mut p = ProviderProfile::new(
        "microsoft",
        &["https://graph.microsoft.com"],
        format!("{base}/v2.0"),
        url(&format!("{base}/oauth2/v2.0/authorize")),
        url(&format!("{base}/oauth2/v2.0/token")),
        client_id,
    );
    p.scopes = vec![
        "https://graph.microsoft.com/User.Read".into(),
        "offline_access".into(),
    ];
    p.auth_method = Some(AuthMethod::ClientSecretPost);
    p.rules.resource = ResourceParam::Nowhere;
    named(p, secret_name)
}

/// Linear, for `https://api.linear.app`.
///
/// - Endpoints: `https://linear.app/oauth/authorize`,
///   `https://api.linear.app/oauth/token`, revocation at
///   `https://api.linear.app/oauth/revoke` (Linear developers,
///   "OAuth 2.0 authentication").
/// - Scopes are comma-separated (`read`, `write`, ...). `resource` is not
///   sent.
pub fn linear(client_id: &str, secret_name: &str) -> ProviderProfile {
    let mut p = ProviderProfile::new(
        "linear",
        &["https://api.linear.app"],
        "https://linear.app",
        url("https://linear.app/oauth/authorize"),
        url("https://api.linear.app/oauth/token"),
        client_id,
    );
    p.revocation_endpoint = Some(url("https://api.linear.app/oauth/revoke"));
    p.scopes = vec!["read".into()];
    p.scope_separator = ScopeSeparator::Comma;
    p.rules.resource = ResourceParam::Nowhere;
    named(p, secret_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_is_valid_and_needs_its_secret() {
        for p in [
            github("id", "S"),
            google("id", "S"),
            slack("id", "S"),
            microsoft("common", "id", "S"),
            microsoft("contoso.onmicrosoft.com", "id", "S"),
            linear("id", "S"),
        ] {
            p.check().unwrap();
            assert!(p.needs_secret(), "{}", p.name);
            let e = p.client().unwrap_err().to_string();
            assert!(e.contains("\"S\"") && e.contains(&p.name), "{e}");
        }
    }
}
