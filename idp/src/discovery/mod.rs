//! Finding who protects a resource: RFC 9728 protected resource metadata, then
//! RFC 8414 / OpenID Connect Discovery authorization server metadata.
//!
//! The URL lists and document checks are plain functions; [`discover_resource`]
//! and [`discover_authorization_server`] walk them over an [`HttpClient`].

mod legacy;
pub use legacy::discover_legacy_authorization_server;

use crate::challenge::BearerChallenge;
use crate::error::{Attempt, Error, Outcome, Result};
use crate::http::{HttpClient, HttpRequest, HttpResponse, MAX_BODY_BYTES};
use crate::issuer::Issuer;
use crate::matching::ResourceKey;
use crate::pkce::S256;
use crate::policy::Policy;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

/// An RFC 9728 protected resource metadata document (the fields a client uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier.
    pub resource: String,
    /// Issuers that can grant access to it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// A display name for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// The DPoP proof algorithms the resource takes (RFC 9728 §2): it
    /// takes DPoP-bound tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// Whether the resource takes DPoP-bound tokens only (RFC 9728 §2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
}

/// What discovery learned about a protected resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDiscovery {
    /// The canonical resource URI to send as RFC 8707 `resource`: the metadata's
    /// `resource`, or the normalised URL when there is no metadata.
    pub resource: String,
    /// The metadata document, if one was found.
    pub metadata: Option<ProtectedResourceMetadata>,
    /// Candidate issuers, in the order to try them, as the metadata gives
    /// them.
    pub authorization_servers: Vec<Issuer>,
}

/// The metadata URLs to try for a resource, in order: the challenge's
/// `resource_metadata`, then `/.well-known/oauth-protected-resource` with the
/// resource's path appended, then the same at the root.
pub fn resource_metadata_urls(resource: &ResourceKey, from_challenge: Option<&Url>) -> Vec<Url> {
    let mut out: Vec<Url> = from_challenge.into_iter().cloned().collect();
    let origin = resource.origin();
    let path = &resource.as_str()[origin.len()..];
    let mut push = |s: String| {
        if let Ok(u) = Url::parse(&s) {
            if !out.contains(&u) {
                out.push(u);
            }
        }
    };
    if !path.is_empty() {
        push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    push(format!("{origin}/.well-known/oauth-protected-resource"));
    out
}

/// The metadata URL RFC 9728 §3.1 forms from a resource identifier: the
/// well-known prefix inserted before its path.
pub fn own_metadata_url(resource: &ResourceKey) -> String {
    let origin = resource.origin();
    let path = &resource.as_str()[origin.len()..];
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

/// Checks a protected resource metadata document, fetched from `fetched_from`,
/// against the resource being accessed. Its `resource` must be the accessed
/// resource, or a broader one (same origin, parent path) whose own metadata
/// URL is `fetched_from` (RFC 9728 §3.3: the identifier the well-known URL was
/// formed from). [`Policy::allow_broader_resource`] lifts the second rule.
pub fn check_resource_metadata(
    doc: &ProtectedResourceMetadata,
    accessed: &ResourceKey,
    fetched_from: &Url,
    policy: &Policy,
) -> std::result::Result<(), String> {
    let declared = ResourceKey::parse(&doc.resource)
        .map_err(|e| format!("its resource is not a usable URL ({e})"))?;
    if !declared.covers(accessed) {
        return Err(format!(
            "it describes resource {:?}, which does not cover {}",
            doc.resource, accessed
        ));
    }
    let own = Url::parse(&own_metadata_url(&declared)).ok();
    if declared != *accessed && own.as_ref() != Some(fetched_from) && !policy.allow_broader_resource
    {
        return Err(format!(
            "it describes resource {:?}, broader than {accessed}, but was not served at that resource's own metadata URL {} (RFC 9728 §3.3); a broader resource would receive tokens for every path under it",
            doc.resource,
            own_metadata_url(&declared)
        ));
    }
    Ok(())
}

/// Reads a JSON body, refusing oversized or non-JSON bodies. The reason never
/// quotes the body.
pub(crate) fn read_json<T: DeserializeOwned>(
    resp: &HttpResponse,
) -> std::result::Result<T, String> {
    if resp.body.len() > MAX_BODY_BYTES {
        return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    // `from_str`, like every other JSON read in the crate: one instance of
    // the parser and of each type's decoder in the bundle.
    let text = std::str::from_utf8(&resp.body).map_err(|_| {
        let ct = resp.header("content-type").unwrap_or("none");
        format!(
            "body is not UTF-8 JSON (content-type {ct}, {} bytes)",
            resp.body.len()
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        let ct = resp.header("content-type").unwrap_or("none");
        if e.is_data() {
            format!("JSON does not have the expected fields ({e})")
        } else {
            format!(
                "body is not JSON (content-type {ct}, {} bytes)",
                resp.body.len()
            )
        }
    })
}

/// Finds and checks the protected resource metadata for `resource_url`.
///
/// Tries [`resource_metadata_urls`] in order. A 4xx moves on to the next URL; a
/// document that is not JSON or describes another resource stops discovery with
/// [`Error::ResourceMetadata`]. With no document anywhere, the resource's origin
/// is taken as the authorization server. When a server failed (5xx, network)
/// and nothing was found, the result is [`Error::DiscoveryUnavailable`].
pub async fn discover_resource(
    http: &impl HttpClient,
    policy: &Policy,
    resource_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<ResourceDiscovery> {
    let key = ResourceKey::from_url(resource_url)?;
    let mut attempts = Vec::new();
    let from_challenge = match challenge.and_then(|c| c.resource_metadata.as_deref()) {
        Some(s) => match Url::parse(s) {
            Ok(u) => Some(u),
            Err(e) => {
                return Err(Error::InvalidUrl {
                    input: s.to_owned(),
                    reason: format!("resource_metadata in the challenge: {e}"),
                })
            }
        },
        None => None,
    };
    let mut server_failed = false;
    for url in resource_metadata_urls(&key, from_challenge.as_ref()) {
        if let Err(e) = policy.check(&url) {
            attempts.push(Attempt {
                url,
                outcome: Outcome::Skipped(e.to_string()),
            });
            continue;
        }
        let resp = match http.send(HttpRequest::get_json(url.clone())).await {
            Ok(r) => r,
            Err(e) => {
                server_failed = true;
                attempts.push(Attempt {
                    url,
                    outcome: Outcome::Transport(e.message),
                });
                continue;
            }
        };
        if !resp.is_success() {
            server_failed |= resp.status >= 500;
            attempts.push(Attempt {
                url,
                outcome: Outcome::Status(resp.status),
            });
            continue;
        }
        return found_at(&resp, &key, url, policy);
    }
    if server_failed {
        return Err(Error::DiscoveryUnavailable {
            resource: resource_url.clone(),
            attempts,
        });
    }
    Ok(ResourceDiscovery {
        resource: key.as_str().to_owned(),
        metadata: None,
        authorization_servers: vec![Issuer::parse(key.origin()).map_err(|e| {
            Error::InvalidUrl {
                input: key.origin().to_owned(),
                reason: e.to_string(),
            }
        })?],
    })
}

/// The resource metadata `resp` carries from `url`, checked: it describes
/// the resource (`key`) and lists authorization servers that are URLs.
fn found_at(
    resp: &HttpResponse,
    key: &ResourceKey,
    url: Url,
    policy: &Policy,
) -> Result<ResourceDiscovery> {
    let refused = |reason: String| Error::ResourceMetadata {
        url: url.clone(),
        reason,
    };
    let doc: ProtectedResourceMetadata = read_json(resp).map_err(refused)?;
    check_resource_metadata(&doc, key, &url, policy).map_err(refused)?;
    let mut servers = Vec::new();
    for s in &doc.authorization_servers {
        match Issuer::parse(s) {
            Ok(u) => servers.push(u),
            Err(e) => {
                return Err(refused(format!(
                    "authorization server {s:?} is not a URL ({e})"
                )))
            }
        }
    }
    if servers.is_empty() {
        return Err(refused("it lists no authorization_servers".into()));
    }
    Ok(ResourceDiscovery {
        resource: doc.resource.clone(),
        metadata: Some(doc),
        authorization_servers: servers,
    })
}

/// An authorization server metadata document (RFC 8414 §2), as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// Where to send the person.
    pub authorization_endpoint: String,
    /// Where to exchange codes and refresh tokens.
    pub token_endpoint: String,
    /// RFC 7591 registration endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 device authorization endpoint: logins with no browser
    /// callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Scopes the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// PKCE methods; absent means unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The grant types the server offers (RFC 8414; absent: the server did
    /// not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// RFC 9207: the server sends `iss` on the authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// RFC 9449: the algorithms the server takes DPoP proofs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// The server accepts an https URL of a client ID metadata document as `client_id`.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// A checked authorization server: metadata whose issuer matched and whose
/// endpoints passed the [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServer {
    /// The issuer, as the document states it.
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: Url,
    /// Token endpoint.
    pub token_endpoint: Url,
    /// Registration endpoint.
    pub registration_endpoint: Option<Url>,
    /// Revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// The whole document, for the remaining fields.
    pub metadata: ServerMetadata,
}

/// The metadata URLs to try for an issuer (RFC 8414 §3.1, OpenID Connect
/// Discovery §4, and the path-insertion variant real servers use).
///
/// With a path (`https://as/tenant`): OAuth path insertion, OIDC path insertion,
/// OIDC path appending. At the root: OAuth, then OIDC.
pub fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    candidates
        .iter()
        .filter_map(|s| Url::parse(s).ok())
        .collect()
}

/// Checks a served document for the issuer it was fetched for: its
/// `issuer` must be that identifier exactly (RFC 8414 §3.3).
pub fn check_server_metadata(
    doc: ServerMetadata,
    issuer: &Issuer,
    policy: &Policy,
) -> std::result::Result<AuthorizationServer, String> {
    if !issuer.is(&doc.issuer) {
        return Err(format!(
            "its issuer is {:?}, not the {:?} it was fetched for",
            doc.issuer,
            issuer.as_str()
        ));
    }
    if let Some(methods) = &doc.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == S256) {
            return Err(format!(
                "it does not support PKCE S256 (code_challenge_methods_supported: {methods:?})"
            ));
        }
    }
    let endpoint = |name: &str, v: &str| policy.parse(v).map_err(|e| format!("{name}: {e}"));
    let optional =
        |name: &str, v: &Option<String>| v.as_deref().map(|s| endpoint(name, s)).transpose();
    Ok(AuthorizationServer {
        issuer: doc.issuer.clone(),
        authorization_endpoint: endpoint("authorization_endpoint", &doc.authorization_endpoint)?,
        token_endpoint: endpoint("token_endpoint", &doc.token_endpoint)?,
        registration_endpoint: optional("registration_endpoint", &doc.registration_endpoint)?,
        revocation_endpoint: optional("revocation_endpoint", &doc.revocation_endpoint)?,
        metadata: doc,
    })
}

/// How many of a resource's listed authorization servers are tried: a hostile
/// resource cannot make the app fetch an unbounded list.
pub const MAX_AUTHORIZATION_SERVERS: usize = 3;

/// Fetches metadata for each issuer in turn (the first
/// [`MAX_AUTHORIZATION_SERVERS`]) until one passes [`check_server_metadata`].
/// The error lists every URL tried and its outcome.
pub async fn discover_authorization_server(
    http: &impl HttpClient,
    policy: &Policy,
    issuers: &[Issuer],
) -> Result<AuthorizationServer> {
    let mut attempts = Vec::new();
    for issuer in issuers.iter().take(MAX_AUTHORIZATION_SERVERS) {
        if let Err(e) = policy.check(issuer.url()) {
            attempts.push(Attempt {
                url: issuer.url().clone(),
                outcome: Outcome::Skipped(e.to_string()),
            });
            continue;
        }
        for url in server_metadata_urls(issuer.url()) {
            let outcome = match http.send(HttpRequest::get_json(url.clone())).await {
                Err(e) => Outcome::Transport(e.message),
                Ok(resp) if !resp.is_success() => Outcome::Status(resp.status),
                Ok(resp) => match read_json::<ServerMetadata>(&resp)
                    .and_then(|doc| check_server_metadata(doc, issuer, policy))
                {
                    Ok(server) => return Ok(server),
                    Err(reason) => Outcome::Refused(reason),
                },
            };
            attempts.push(Attempt { url, outcome });
        }
    }
    Err(Error::AuthorizationServer { attempts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, Script};

    fn issuer(s: &str) -> Issuer {
        Issuer::parse(s).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn resource_metadata_url_order() {
        let key = ResourceKey::parse("https://api.example.com/v1/mcp/").unwrap();
        let got = resource_metadata_urls(&key, Some(&url("https://api.example.com/prm")));
        let got: Vec<&str> = got.iter().map(Url::as_str).collect();
        assert_eq!(
            got,
            [
                "https://api.example.com/prm",
                "https://api.example.com/.well-known/oauth-protected-resource/v1/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ]
        );
        let root = ResourceKey::parse("https://api.example.com").unwrap();
        assert_eq!(resource_metadata_urls(&root, None).len(), 1);
    }

    #[test]
    fn server_metadata_url_order() {
        let with_path: Vec<String> = server_metadata_urls(&url("https://as.example/realms/x/"))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            with_path,
            [
                "https://as.example/.well-known/oauth-authorization-server/realms/x",
                "https://as.example/.well-known/openid-configuration/realms/x",
                "https://as.example/realms/x/.well-known/openid-configuration",
            ]
        );
        let root: Vec<String> = server_metadata_urls(&url("https://as.example"))
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            root,
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
    }

    fn as_doc(issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "registration_endpoint": format!("{issuer}/register"),
            "code_challenge_methods_supported": ["S256"],
        })
    }

    #[test]
    fn challenge_metadata_then_server() {
        let script = Script::new()
            .json(
                "https://api.example.com/prm",
                200,
                serde_json::json!({
                    "resource": "https://api.example.com/v1",
                    "authorization_servers": ["https://as.example/tenant"],
                    "scopes_supported": ["read"],
                }),
            )
            .status(
                "https://as.example/.well-known/oauth-authorization-server/tenant",
                404,
            )
            .json(
                "https://as.example/.well-known/openid-configuration/tenant",
                200,
                as_doc("https://as.example/tenant"),
            );
        let challenge = BearerChallenge {
            resource_metadata: Some("https://api.example.com/prm".into()),
            ..Default::default()
        };
        // `/prm` is not `/v1`'s own metadata URL (RFC 9728 §3.3): a broader
        // resource from it is refused unless the policy allows it.
        let e = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1/users/1"),
            Some(&challenge),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("RFC 9728"), "{e}");
        let broad = Policy {
            allow_broader_resource: true,
            ..Policy::STRICT
        };
        let d = block_on(discover_resource(
            &script,
            &broad,
            &url("https://api.example.com/v1/users/1"),
            Some(&challenge),
        ))
        .unwrap();
        assert_eq!(d.resource, "https://api.example.com/v1");
        // Accessing the resource itself needs no exception.
        let d = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            Some(&challenge),
        ))
        .unwrap();
        assert_eq!(d.resource, "https://api.example.com/v1");
        let s = block_on(discover_authorization_server(
            &script,
            &Policy::STRICT,
            &d.authorization_servers,
        ))
        .unwrap();
        assert_eq!(s.token_endpoint.as_str(), "https://as.example/tenant/token");
        assert_eq!(script.requests().len(), 5);
    }

    #[test]
    fn falls_back_to_well_known_then_origin() {
        let script = Script::new()
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource/v1",
                404,
            )
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource",
                404,
            );
        let d = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            None,
        ))
        .unwrap();
        assert_eq!(d.metadata, None);
        assert_eq!(d.resource, "https://api.example.com/v1");
        assert_eq!(d.authorization_servers, [issuer("https://api.example.com")]);
    }

    #[test]
    fn root_metadata_found_second() {
        let script = Script::new()
            .status("https://api.example.com/.well-known/oauth-protected-resource/v1", 404)
            .json(
                "https://api.example.com/.well-known/oauth-protected-resource",
                200,
                serde_json::json!({"resource": "https://api.example.com/", "authorization_servers": ["https://as.example"]}),
            );
        let d = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            None,
        ))
        .unwrap();
        assert_eq!(d.resource, "https://api.example.com/");
    }

    #[test]
    fn metadata_for_another_resource_is_refused() {
        for declared in [
            "https://api.example.com/v2",
            "https://evil.example.com/v1",
            "https://api.example.com/v10",
            "not a url",
        ] {
            let script = Script::new().json(
                "https://api.example.com/.well-known/oauth-protected-resource/v1",
                200,
                serde_json::json!({"resource": declared, "authorization_servers": ["https://as.example"]}),
            );
            let e = block_on(discover_resource(
                &script,
                &Policy::STRICT,
                &url("https://api.example.com/v1"),
                None,
            ))
            .unwrap_err();
            assert!(
                matches!(e, Error::ResourceMetadata { .. }),
                "{declared}: {e}"
            );
        }
    }

    #[test]
    fn non_json_and_huge_metadata_are_refused() {
        let script = Script::new().raw(
            "https://api.example.com/.well-known/oauth-protected-resource/v1",
            HttpResponse::new(200, "<html>hi</html>").with_header("content-type", "text/html"),
        );
        let e = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            None,
        ))
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("not JSON") && m.contains("text/html") && !m.contains("<html>"),
            "{m}"
        );

        let script = Script::new().raw(
            "https://api.example.com/.well-known/oauth-protected-resource/v1",
            HttpResponse::new(200, vec![b' '; MAX_BODY_BYTES + 1]),
        );
        let e = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            None,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn http_metadata_url_in_challenge_is_not_fetched() {
        let script = Script::new()
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource/v1",
                404,
            )
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource",
                404,
            );
        let challenge = BearerChallenge {
            resource_metadata: Some("http://evil.example/prm".into()),
            ..Default::default()
        };
        block_on(discover_resource(
            &script,
            &Policy::LOOPBACK_DEV,
            &url("https://api.example.com/v1"),
            Some(&challenge),
        ))
        .unwrap();
        assert!(script.requests().iter().all(|r| r.url.scheme() == "https"));
    }

    #[test]
    fn server_failure_is_retryable_not_a_fallback() {
        let script = Script::new()
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource/v1",
                503,
            )
            .status(
                "https://api.example.com/.well-known/oauth-protected-resource",
                404,
            );
        let e = block_on(discover_resource(
            &script,
            &Policy::STRICT,
            &url("https://api.example.com/v1"),
            None,
        ))
        .unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("HTTP 503"), "{e}");
    }

    #[test]
    fn issuer_mismatch_and_missing_s256_try_next_server() {
        let mut wrong = as_doc("https://as.example");
        wrong["issuer"] = "https://evil.example".into();
        let mut no_s256 = as_doc("https://as2.example");
        no_s256["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        let script = Script::new()
            .json(
                "https://as.example/.well-known/oauth-authorization-server",
                200,
                wrong,
            )
            .raw(
                "https://as.example/.well-known/openid-configuration",
                HttpResponse::new(200, "nope"),
            )
            .json(
                "https://as2.example/.well-known/oauth-authorization-server",
                200,
                no_s256,
            )
            .status("https://as2.example/.well-known/openid-configuration", 500)
            .json(
                "https://as3.example/.well-known/oauth-authorization-server",
                200,
                as_doc("https://as3.example"),
            );
        let issuers = [
            issuer("https://as.example"),
            issuer("https://as2.example"),
            issuer("https://as3.example"),
        ];
        let s = block_on(discover_authorization_server(
            &script,
            &Policy::STRICT,
            &issuers,
        ))
        .unwrap();
        assert_eq!(s.issuer, "https://as3.example");

        let e = block_on(discover_authorization_server(
            &script,
            &Policy::STRICT,
            &issuers[..2],
        ))
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("evil.example"), "{m}");
        assert!(m.contains("S256"), "{m}");
        assert!(m.contains("not JSON"), "{m}");
        assert!(m.contains("HTTP 500"), "{m}");
    }

    #[test]
    fn insecure_endpoints_and_missing_fields_are_refused() {
        let mut doc = as_doc("https://as.example");
        doc["token_endpoint"] = "http://as.example/token".into();
        let e = check_server_metadata(
            serde_json::from_value(doc).unwrap(),
            &issuer("https://as.example"),
            &Policy::STRICT,
        )
        .unwrap_err();
        assert!(e.contains("token_endpoint") && e.contains("https"), "{e}");

        let script = Script::new().json(
            "https://as.example/.well-known/oauth-authorization-server",
            200,
            serde_json::json!({"issuer": "https://as.example"}),
        );
        let e = block_on(discover_authorization_server(
            &script,
            &Policy::STRICT,
            &[issuer("https://as.example")],
        ))
        .unwrap_err();
        assert!(e.to_string().contains("authorization_endpoint"), "{e}");

        let e = block_on(discover_authorization_server(
            &script,
            &Policy::STRICT,
            &[issuer("http://as.example")],
        ))
        .unwrap_err();
        assert!(e.to_string().contains("must use https"), "{e}");
        assert_eq!(
            script.requests().len(),
            2,
            "the http issuer is never fetched"
        );
    }

    #[test]
    fn absent_pkce_list_is_accepted_and_loopback_allowed_in_dev() {
        let mut doc = as_doc("http://127.0.0.1:9000");
        doc.as_object_mut()
            .unwrap()
            .remove("code_challenge_methods_supported");
        let s = check_server_metadata(
            serde_json::from_value(doc).unwrap(),
            &issuer("http://127.0.0.1:9000"),
            &Policy::LOOPBACK_DEV,
        )
        .unwrap();
        assert_eq!(s.issuer, "http://127.0.0.1:9000");
    }

    #[test]
    fn legacy_discovery_accepts_a_prefixed_issuer_on_the_origin_and_falls_back() {
        let origin = url("https://mcp.example");
        let urls = server_metadata_urls(&origin);
        let mut prefixed = Script::new();
        prefixed = prefixed.json(
            urls[0].as_str(),
            200,
            serde_json::json!({
                "issuer": "https://mcp.example/oauth",
                "authorization_endpoint": "https://mcp.example/oauth/authorize",
                "token_endpoint": "https://mcp.example/oauth/token",
                "code_challenge_methods_supported": ["S256"],
            }),
        );
        let s = block_on(discover_legacy_authorization_server(
            &prefixed,
            &Policy::STRICT,
            &origin,
        ))
        .unwrap();
        assert_eq!(s.issuer, "https://mcp.example/oauth");

        let elsewhere = Script::new().json(
            urls[0].as_str(),
            200,
            serde_json::json!({
                "issuer": "https://evil.example",
                "authorization_endpoint": "https://evil.example/authorize",
                "token_endpoint": "https://evil.example/token",
            }),
        );
        let mut elsewhere = elsewhere;
        for u in &urls[1..] {
            elsewhere = elsewhere.status(u.as_str(), 404);
        }
        assert!(block_on(discover_legacy_authorization_server(
            &elsewhere,
            &Policy::STRICT,
            &origin
        ))
        .is_err());

        let mut none = Script::new();
        for u in &urls {
            none = none.status(u.as_str(), 404);
        }
        let s = block_on(discover_legacy_authorization_server(
            &none,
            &Policy::STRICT,
            &origin,
        ))
        .unwrap();
        assert_eq!(s.token_endpoint.as_str(), "https://mcp.example/token");
        assert_eq!(
            s.registration_endpoint.as_ref().map(Url::as_str),
            Some("https://mcp.example/register")
        );
        // A server error is not "no metadata": no fallback.
        let mut down = Script::new();
        for u in &urls {
            down = down.status(u.as_str(), 503);
        }
        assert!(block_on(discover_legacy_authorization_server(
            &down,
            &Policy::STRICT,
            &origin
        ))
        .is_err());
    }
}
