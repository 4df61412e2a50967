//! A login with a provider profile: the profile resolves into what a
//! discovered server would have given (endpoints, client, scopes, token
//! rules, extra parameters), and the flow builds the pending login from it
//! as for any server ([`Resolved::pending`]).

use super::{Entropy, LoginRequest, Resolved, Settings};
use crate::authorize::{AuthorizationRequest, PendingFlow};
use crate::error::Result;
use crate::matching::ResourceKey;
use crate::profile::ProviderProfile;
use crate::scope::Scope;
use url::Url;

/// The pending flow and authorization URL for connecting `resource_url`
/// with `profile`, whose prefix `key` covers it.
pub(super) fn start(
    settings: &Settings,
    profile: &ProviderProfile,
    key: &ResourceKey,
    req: LoginRequest<'_>,
    resource_url: &Url,
    now: u64,
    entropy: Entropy,
) -> Result<(PendingFlow, Url)> {
    let LoginRequest { owner, scope } = req;
    for endpoint in [&profile.authorization_endpoint, &profile.token_endpoint]
        .into_iter()
        .chain(profile.revocation_endpoint.as_ref())
    {
        settings.policy.check(endpoint)?;
    }
    let scopes = Scope::from_values(profile.scopes.iter().map(String::as_str))
        .union(&Scope::parse_list(scope.unwrap_or_default()));
    let flow = Resolved {
        issuer: profile.issuer.clone(),
        iss_required: false,
        client: profile.client()?,
        token_endpoint: profile.token_endpoint.clone(),
        revocation_endpoint: profile.revocation_endpoint.clone(),
        redirect_uri: crate::callback::redirect_uri(&settings.callback_base, &profile.name),
        resource: key.to_string(),
        scope: (!scopes.is_empty()).then(|| profile.scope_separator.join(scopes.values())),
        rules: profile.rules,
        profile: Some(profile.name.clone()),
        dpop: false,
        refused: profile.refused.clone(),
    }
    .pending(owner, resource_url, now, entropy);
    let mut request = AuthorizationRequest::new(&profile.authorization_endpoint, &flow);
    if let Some(name) = &profile.scope_param {
        request = request.scope_param(name);
    }
    for (k, v) in &profile.authorization_params {
        request = request.param(k, v);
    }
    let url = request.url();
    Ok((flow, url))
}
