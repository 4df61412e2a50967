//! A login with a provider profile: the pending flow and the authorization
//! URL, from the profile's endpoints, client, scopes and parameters.

use super::{Entropy, LoginRequest, Settings};
use crate::authorize::{self, AuthorizationParams, PendingFlow};
use crate::error::Result;
use crate::matching::ResourceKey;
use crate::profile::ProviderProfile;
use crate::scope::Scope;
use crate::secret::{FlowState, PkceVerifier};
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
    let client = profile.client()?;
    let scopes = Scope::from_values(profile.scopes.iter().map(String::as_str))
        .union(&Scope::parse_list(scope.unwrap_or_default()));
    let scope = (!scopes.is_empty()).then(|| profile.scope_separator.join(scopes.values()));
    let redirect_uri = crate::callback::redirect_uri(&settings.callback_base, &profile.name);
    let flow = PendingFlow {
        state: FlowState::from_random(entropy.state),
        verifier: PkceVerifier::from_random(entropy.verifier),
        resource_url: resource_url.to_string(),
        resource: key.to_string(),
        issuer: profile.issuer.clone(),
        iss_required: false,
        client,
        token_endpoint: profile.token_endpoint.clone(),
        revocation_endpoint: profile.revocation_endpoint.clone(),
        redirect_uri,
        scope,
        owner: owner.to_owned(),
        created_at: now,
        rules: profile.rules,
        profile: Some(profile.name.clone()),
    };
    let mut url = authorize::authorization_url(
        &AuthorizationParams {
            authorization_endpoint: &profile.authorization_endpoint,
            client: &flow.client,
            redirect_uri: &flow.redirect_uri,
            resource: flow
                .rules
                .resource_on_authorization()
                .then_some(flow.resource.as_str()),
            scope: flow
                .scope
                .as_deref()
                .filter(|_| profile.scope_param.is_none()),
        },
        &flow.state,
        &flow.verifier,
    );
    if let (Some(param), Some(scope)) = (&profile.scope_param, &flow.scope) {
        url.query_pairs_mut().append_pair(param, scope);
    }
    for (k, v) in &profile.authorization_params {
        url.query_pairs_mut().append_pair(k, v);
    }
    Ok((flow, url))
}
