//! Dynamic client registration (RFC 7591) and its management (RFC 7592):
//! the request, its answer, and sending it.

use super::*;

/// The RFC 7591 registration request.
pub fn registration_request(
    endpoint: &Url,
    info: &ClientInfo,
    redirect_uri: &Url,
    auth_method: AuthMethod,
    scope: Option<&str>,
) -> HttpRequest {
    let mut body = serde_json::json!({
        "redirect_uris": [redirect_uri.as_str()],
        "application_type": application_type(redirect_uri),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method.as_str(),
        "client_name": info.name,
        "software_version": info.version,
    });
    // A client for logins with no browser (RFC 8628): no redirect URI
    // (RFC 7591 asks for them only of clients that use redirection).
    if crate::client::is_device_redirect(redirect_uri) {
        if let Some(doc) = body.as_object_mut() {
            doc.remove("redirect_uris");
        }
        body["application_type"] = "native".into();
        body["grant_types"] =
            serde_json::json!([crate::client::DEVICE_CODE_GRANT, "refresh_token"]);
        body["response_types"] = serde_json::json!([]);
    }
    if let Some(uri) = &info.uri {
        body["client_uri"] = uri.as_str().into();
    }
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    HttpRequest::post_json(endpoint.clone(), &body)
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    registration_client_uri: Option<Url>,
    #[serde(default)]
    registration_access_token: Option<String>,
}

/// Reads a registration response, honouring the auth method, secret and secret
/// expiry the server assigned.
pub fn parse_registration(
    endpoint: &Url,
    resp: &HttpResponse,
    issuer: &str,
    redirect_uri: &Url,
    asked_scope: Option<&str>,
) -> Result<Registration> {
    if !resp.is_success() {
        return Err(Error::Registration {
            url: endpoint.clone(),
            status: resp.status,
            oauth: read_json::<OAuthError>(resp).ok().map(Box::new),
        });
    }
    let r: RegistrationResponse = read_json(resp).map_err(|reason| Error::InvalidResponse {
        url: endpoint.clone(),
        reason,
    })?;
    if r.client_id.is_empty() {
        return Err(Error::InvalidResponse {
            url: endpoint.clone(),
            reason: "empty client_id".into(),
        });
    }
    let secret = r
        .client_secret
        .filter(|s| !s.is_empty())
        .map(ClientSecret::new);
    let auth_method = match r.token_endpoint_auth_method.as_deref() {
        // A registered client's key is the app's own, never the server's
        // answer: `private_key_jwt` is for clients configured in advance.
        Some(name) => AuthMethod::from_name(name)
            .filter(|m| *m != AuthMethod::PrivateKeyJwt)
            .ok_or_else(|| Error::InvalidResponse {
                url: endpoint.clone(),
                reason: format!("unsupported token_endpoint_auth_method {name:?}"),
            })?,
        None if secret.is_some() => AuthMethod::ClientSecretBasic,
        None => AuthMethod::None,
    };
    if auth_method != AuthMethod::None && secret.is_none() {
        return Err(Error::InvalidResponse {
            url: endpoint.clone(),
            reason: format!(
                "auth method {} without a client_secret",
                auth_method.as_str()
            ),
        });
    }
    Ok(Registration {
        issuer: issuer.to_owned(),
        redirect_uri: redirect_uri.to_string(),
        client: Client {
            client_id: r.client_id,
            client_secret: secret,
            auth_method,
            assertion: None,
        },
        secret_expires_at: r.client_secret_expires_at.filter(|t| *t != 0),
        scope: r.scope.or_else(|| asked_scope.map(str::to_owned)),
        // Only on the registration endpoint's own origin: a server cannot
        // have the client's secret and the token sent anywhere else.
        management: match (r.registration_client_uri, r.registration_access_token) {
            (Some(uri), Some(token)) if !token.is_empty() && uri.origin() == endpoint.origin() => {
                Some(Management {
                    uri,
                    access_token: crate::secret::RegistrationAccessToken::new(token),
                })
            }
            _ => None,
        },
    })
}

/// The JSON body of a registration request this module built (`null` if
/// it is not JSON).
pub(super) fn request_json(body: &[u8]) -> serde_json::Value {
    crate::encoding::json_from_bytes(body).unwrap_or_default()
}

pub(super) async fn send_registration(
    http: &impl HttpClient,
    req: HttpRequest,
    issuer: &str,
    redirect_uri: &Url,
) -> Result<Registration> {
    let asked = request_json(&req.body)["scope"].as_str().map(str::to_owned);
    let url = req.url.clone();
    let resp = http.send(req).await.map_err(|e| Error::Transport {
        url: url.clone(),
        message: e.message,
    })?;
    parse_registration(&url, &resp, issuer, redirect_uri, asked.as_deref())
}
