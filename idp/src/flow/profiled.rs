//! A login with a provider profile: the profile resolves into what a
//! discovered server would have given (endpoints, client, scopes, token
//! rules, extra parameters), and the flow builds the pending login from it
//! as for any server ([`Resolved::pending`]).

use super::{Resolved, Route, Settings, Via};
use crate::error::Result;
use crate::matching::ResourceKey;
use crate::profile::ProviderProfile;
use crate::scope::Scope;

/// What connecting a resource under `key` with `profile` resolves to, for
/// `scope` asked beyond the profile's.
pub(super) fn resolve(
    settings: &Settings,
    profile: &ProviderProfile,
    key: &ResourceKey,
    scope: Option<&str>,
    via: Via,
) -> Result<Route> {
    for endpoint in [&profile.authorization_endpoint, &profile.token_endpoint]
        .into_iter()
        .chain(profile.revocation_endpoint.as_ref())
        .chain(profile.device_authorization_endpoint.as_ref())
    {
        settings.policy.check(endpoint)?;
    }
    let scopes = Scope::from_values(profile.scopes.iter().map(String::as_str))
        .union(&Scope::parse_list(scope.unwrap_or_default()));
    let redirect_uri = match via {
        Via::Browser => crate::callback::redirect_uri(&settings.callback_base, &profile.name),
        Via::Device => crate::client::device_redirect(),
    };
    let resolved = Resolved {
        issuer: profile.issuer.clone(),
        iss_required: false,
        client: profile.client()?,
        token_endpoint: profile.token_endpoint.clone(),
        revocation_endpoint: profile.revocation_endpoint.clone(),
        redirect_uri,
        resource: key.to_string(),
        scope: (!scopes.is_empty()).then(|| profile.scope_separator.join(scopes.values())),
        rules: profile.rules,
        profile: Some(profile.name.clone()),
        dpop: false,
        refused: profile.refused.clone(),
    };
    Ok(Route {
        resolved,
        authorization_endpoint: profile.authorization_endpoint.clone(),
        device_authorization_endpoint: profile.device_authorization_endpoint.clone(),
        profile: Some(profile.clone()),
    })
}
