//! Discovery as the MCP specification of 2025-03-26 had it, for resources
//! that publish no protected resource metadata.

use super::{
    check_server_metadata, read_json, server_metadata_urls, AuthorizationServer, ServerMetadata,
};
use crate::error::{Attempt, Error, Outcome, Result};
use crate::http::{HttpClient, HttpRequest};
use crate::pkce::S256;
use crate::policy::Policy;
use url::Url;

/// Authorization server discovery for a resource without protected resource
/// metadata, as the MCP specification of 2025-03-26 had it: the resource's
/// origin is the authorization server. Its metadata is looked up as usual;
/// an `issuer` on the same origin with a path (a server mounted under a
/// prefix) is accepted, since that origin speaks for itself here; when no
/// metadata exists at all, the default endpoints `{origin}/authorize`,
/// `/token` and `/register` are used, with PKCE S256, which that
/// specification requires of every server.
pub async fn discover_legacy_authorization_server(
    http: &impl HttpClient,
    policy: &Policy,
    origin: &Url,
) -> Result<AuthorizationServer> {
    policy.check(origin)?;
    let mut attempts = Vec::new();
    let mut all_missing = true;
    for url in server_metadata_urls(origin) {
        let outcome = match http.send(HttpRequest::get_json(url.clone())).await {
            Err(e) => Outcome::Transport(e.message),
            Ok(resp) if !resp.is_success() => Outcome::Status(resp.status),
            Ok(resp) => match read_json::<ServerMetadata>(&resp).and_then(|doc| {
                let declared = crate::issuer::Issuer::parse(&doc.issuer)
                    .map_err(|e| format!("its issuer is not a URL ({e})"))?;
                if declared.url().origin() != origin.origin() {
                    return Err(format!(
                        "its issuer {:?} is not on {}",
                        doc.issuer,
                        origin.origin().ascii_serialization()
                    ));
                }
                check_server_metadata(doc, &declared, policy)
            }) {
                Ok(server) => return Ok(server),
                Err(reason) => Outcome::Refused(reason),
            },
        };
        all_missing &= matches!(outcome, Outcome::Status(404));
        attempts.push(Attempt { url, outcome });
    }
    if !all_missing {
        return Err(Error::AuthorizationServer { attempts });
    }
    let base = origin.origin().ascii_serialization();
    let endpoint = |path: &str| policy.parse(&format!("{base}{path}"));
    let metadata = ServerMetadata {
        issuer: base.clone(),
        authorization_endpoint: format!("{base}/authorize"),
        token_endpoint: format!("{base}/token"),
        registration_endpoint: Some(format!("{base}/register")),
        revocation_endpoint: None,
        scopes_supported: None,
        code_challenge_methods_supported: Some(vec![S256.to_owned()]),
        token_endpoint_auth_methods_supported: None,
        revocation_endpoint_auth_methods_supported: None,
        device_authorization_endpoint: None,
        grant_types_supported: None,
        authorization_response_iss_parameter_supported: false,
        client_id_metadata_document_supported: false,
        dpop_signing_alg_values_supported: None,
    };
    Ok(AuthorizationServer {
        issuer: base.clone(),
        authorization_endpoint: endpoint("/authorize")?,
        token_endpoint: endpoint("/token")?,
        registration_endpoint: Some(endpoint("/register")?),
        revocation_endpoint: None,
        metadata,
    })
}
