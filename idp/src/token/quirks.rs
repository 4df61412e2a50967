//! Token answers as servers really send them. Each departure from RFC 6749
//! §5.1 is one named rule here, applied to every answer (a standard answer
//! passes through unchanged), never a special case in the flow:
//!
//! | rule | seen at |
//! |---|---|
//! | [`form_encoded`]: `application/x-www-form-urlencoded` body | GitHub without `Accept: application/json` |
//! | [`error_in_success`]: HTTP 200 carrying `{"error": ...}` | GitHub |
//! | [`ok_false`]: `{"ok": false, "error": ...}` | Slack |
//! | [`nested_user_token`]: the user's token under `authed_user` | Slack `oauth.v2.access` |
//! | [`comma_scope`]: `scope` separated by commas | GitHub, Slack, Linear |
//! | [`TokenRules::assume_bearer`]: no `token_type`, or another word for Bearer | servers a profile says are Bearer-only (Slack's `user`) |
//!
//! A missing `expires_in` means the expiry is unknown: no proactive refresh,
//! the token is refreshed when a resource refuses it. A refresh answer
//! without `refresh_token` keeps the old one.

use crate::error::{Error, OAuthError, Result};
use crate::http::HttpResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

/// Where RFC 8707 `resource` is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceParam {
    /// On the authorization request and every token request.
    #[default]
    Everywhere,
    /// On the authorization request and the code exchange, not on refresh
    /// (servers that refuse it there).
    NotOnRefresh,
    /// Nowhere (servers that refuse the parameter).
    Nowhere,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a flow or grant knows about its server's token answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRules {
    /// The server's tokens are Bearer tokens whatever `token_type` says, or
    /// when it is missing (Slack's user tokens say `user`); never assumed
    /// otherwise, and never for `DPoP`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub assume_bearer: bool,
    /// Where `resource` is sent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resource: ResourceParam,
}

impl TokenRules {
    /// Whether these are the standard rules (nothing to record).
    pub fn is_standard(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `resource` goes on a refresh.
    pub fn resource_on_refresh(&self) -> bool {
        self.resource == ResourceParam::Everywhere
    }

    /// Whether `resource` goes on the authorization request and the code
    /// exchange.
    pub fn resource_on_authorization(&self) -> bool {
        self.resource != ResourceParam::Nowhere
    }
}

fn oauth_error(doc: &Map<String, Value>) -> Option<OAuthError> {
    let error = doc.get("error")?.as_str()?.to_owned();
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(OAuthError {
        error,
        error_description: text("error_description"),
        error_uri: text("error_uri"),
    })
}

/// Rule: a body sent as `application/x-www-form-urlencoded` is read as the
/// same fields.
pub fn form_encoded(resp: &HttpResponse) -> Option<Map<String, Value>> {
    let form = resp.header("content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !form {
        return None;
    }
    Some(
        url::form_urlencoded::parse(&resp.body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

/// Rule: a successful status carrying `error` is that error.
pub fn error_in_success(doc: &Map<String, Value>) -> Option<OAuthError> {
    if doc.contains_key("access_token") {
        return None;
    }
    oauth_error(doc)
}

/// Rule: `"ok": false` is an error, named by `error`.
pub fn ok_false(doc: &Map<String, Value>) -> Option<OAuthError> {
    if doc.get("ok") != Some(&Value::Bool(false)) {
        return None;
    }
    Some(oauth_error(doc).unwrap_or(OAuthError {
        error: "server_error".into(),
        error_description: Some("the server answered ok: false".into()),
        error_uri: None,
    }))
}

/// Rule: with no top-level `access_token`, a user's token nested under
/// `authed_user` is the answer.
pub fn nested_user_token(doc: Map<String, Value>) -> Map<String, Value> {
    if doc.contains_key("access_token") {
        return doc;
    }
    match doc.get("authed_user") {
        Some(Value::Object(user)) if user.contains_key("access_token") => user.clone(),
        _ => doc,
    }
}

/// Rule: `scope` separated by commas (with or without spaces) becomes
/// space-separated.
pub fn comma_scope(scope: &str) -> String {
    scope
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The token answer's fields after every rule, or the error it carries.
pub(super) fn token_document(url: &Url, resp: &HttpResponse) -> Result<Map<String, Value>> {
    let invalid = |reason: String| Error::InvalidResponse {
        url: url.clone(),
        reason,
    };
    let doc = match form_encoded(resp) {
        Some(doc) => doc,
        None => match crate::discovery::read_json::<Value>(resp).map_err(invalid)? {
            Value::Object(doc) => doc,
            _ => return Err(invalid("the token answer is not a JSON object".into())),
        },
    };
    if let Some(e) = ok_false(&doc).or_else(|| error_in_success(&doc)) {
        return Err(Error::Token {
            url: url.clone(),
            status: resp.status,
            oauth: Some(Box::new(e)),
        });
    }
    Ok(nested_user_token(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_token_response_with;

    fn url() -> Url {
        Url::parse("https://as.example/token").unwrap()
    }

    fn json(status: u16, body: Value) -> HttpResponse {
        HttpResponse::new(status, body.to_string()).with_header("content-type", "application/json")
    }

    fn parse(resp: &HttpResponse, rules: TokenRules) -> Result<crate::token::TokenSet> {
        parse_token_response_with(&url(), resp, 100, None, &rules)
    }

    #[test]
    fn a_form_encoded_answer_is_read() {
        let resp = HttpResponse::new(
            200,
            "access_token=gho_1&scope=repo%2Cuser&token_type=bearer",
        )
        .with_header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        let t = parse(&resp, TokenRules::default()).unwrap();
        assert_eq!(t.access_token.secret(), "gho_1");
        assert_eq!(t.scope.as_deref(), Some("repo user"), "comma_scope too");
        assert_eq!(t.expires_at, None, "no expires_in: expiry unknown");
    }

    #[test]
    fn an_error_sent_with_200_is_the_servers_error() {
        for body in [
            serde_json::json!({"error": "bad_verification_code", "error_description": "expired"}),
            serde_json::json!({"ok": false, "error": "invalid_refresh_token"}),
        ] {
            let e = parse(&json(200, body.clone()), TokenRules::default()).unwrap_err();
            let Error::Token {
                oauth: Some(o),
                status: 200,
                ..
            } = &e
            else {
                panic!("{body}: {e:?}")
            };
            assert!(o.error == "bad_verification_code" || o.error == "invalid_refresh_token");
        }
        // The server's verdict on the grant counts as such.
        let dead = json(200, serde_json::json!({"error": "invalid_grant"}));
        assert!(parse(&dead, TokenRules::default())
            .unwrap_err()
            .requires_reauthorization());
        let form_error = HttpResponse::new(200, "error=bad_verification_code")
            .with_header("content-type", "application/x-www-form-urlencoded");
        assert!(matches!(
            parse(&form_error, TokenRules::default()),
            Err(Error::Token { .. })
        ));
    }

    #[test]
    fn a_user_token_nested_under_authed_user_is_used() {
        let body = serde_json::json!({
            "ok": true, "app_id": "A1", "team": {"id": "T1"},
            "authed_user": {"id": "U1", "scope": "chat:write,channels:read", "access_token": "xoxp-1",
                            "token_type": "user", "refresh_token": "xoxe-1", "expires_in": 43200}
        });
        let rules = TokenRules {
            assume_bearer: true,
            ..Default::default()
        };
        let t = parse(&json(200, body), rules).unwrap();
        assert_eq!(t.access_token.secret(), "xoxp-1");
        assert_eq!(t.refresh_token.unwrap().secret(), "xoxe-1");
        assert_eq!(t.scope.as_deref(), Some("chat:write channels:read"));
        assert_eq!(t.expires_at, Some(100 + 43200));
    }

    #[test]
    fn token_type_is_any_case_and_missing_only_when_the_profile_says_bearer() {
        let upper = json(
            200,
            serde_json::json!({"access_token": "a", "token_type": "BEARER"}),
        );
        assert!(parse(&upper, TokenRules::default()).is_ok());
        let missing = json(200, serde_json::json!({"access_token": "a"}));
        let e = parse(&missing, TokenRules::default()).unwrap_err();
        assert!(e.to_string().contains("token_type"), "{e}");
        let rules = TokenRules {
            assume_bearer: true,
            ..Default::default()
        };
        assert!(parse(&missing, rules).is_ok());
        // Another declared type is refused unless the profile says Bearer;
        // a DPoP-bound token always.
        let user = json(
            200,
            serde_json::json!({"access_token": "a", "token_type": "user"}),
        );
        assert!(parse(&user, TokenRules::default()).is_err());
        assert!(parse(&user, rules).is_ok());
        let dpop = json(
            200,
            serde_json::json!({"access_token": "a", "token_type": "DPoP"}),
        );
        assert!(parse(&dpop, rules).is_err());
    }

    #[test]
    fn a_standard_answer_passes_unchanged() {
        let body = serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 60, "scope": "x y"});
        let t = parse(&json(200, body), TokenRules::default()).unwrap();
        assert_eq!((t.scope.as_deref(), t.expires_at), (Some("x y"), Some(160)));
    }
}
