//! What a login resolves to before its pending flow is built: the server,
//! the client and what to ask for ([`Resolved`]), with the endpoints and
//! request shape it is sent with ([`Route`]), from discovery ([`route`]) or
//! a provider profile (`profiled`), for a browser or a device ([`Via`]).

use super::*;

/// How the person answers a login: in a browser that comes back to the
/// server's callback, or on another device while the app polls (RFC 8628).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// A browser that comes back to the server's callback.
    Browser,
    /// Another device, while the app polls (RFC 8628).
    Device,
}

impl Via {
    /// The redirect URI the login's flow and client are kept under.
    pub(super) fn redirect_uri(self, settings: &Settings, issuer: &str) -> Url {
        match self {
            Via::Browser => settings.redirect_uri_for(issuer),
            Via::Device => crate::client::device_redirect(),
        }
    }
}

/// Where a login goes: what it resolved to, and the endpoints and request
/// shape (a profile's) it is sent with.
pub(super) struct Route {
    pub(super) resolved: Resolved,
    pub(super) authorization_endpoint: Url,
    pub(super) device_authorization_endpoint: Option<Url>,
    /// The profile that shapes the authorization request, if any.
    pub(super) profile: Option<crate::profile::ProviderProfile>,
}

impl Route {
    /// The pending login of `req` for `resource_url` and the
    /// authorization request's URL that starts it.
    pub(super) fn login(
        self,
        req: LoginRequest<'_>,
        resource_url: &Url,
        now: u64,
        entropy: Entropy,
    ) -> (PendingFlow, Url) {
        let flow = self.resolved.pending(req, resource_url, now, entropy);
        let mut request = AuthorizationRequest::new(&self.authorization_endpoint, &flow);
        if let Some(profile) = &self.profile {
            if let Some(name) = &profile.scope_param {
                request = request.scope_param(name);
            }
            for (k, v) in &profile.authorization_params {
                request = request.param(k, v);
            }
        }
        let url = request.url();
        (flow, url)
    }
}

/// Discovers the authorization server of a resource known to need
/// authorization and gets a client there: what every login with discovery
/// resolves to.
pub(super) async fn route<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    req: LoginRequest<'_>,
    resource_url: &Url,
    challenge: Option<&crate::challenge::BearerChallenge>,
    via: Via,
) -> Result<Route> {
    let settings = cx.settings;
    let (found, server) = discover(cx, resource_url, challenge).await?;
    let device_authorization_endpoint = device_endpoint(settings, &server)?;
    // The app's own clients (a profile's, a pre-registered one) serve only
    // the resources the app named for them: a resource whose metadata names
    // their issuer does not borrow them.
    let connected = [resource_url.as_str(), found.resource.as_str()];
    let refuse = || Error::ClientNotAllowedForResource {
        resource: resource_url.to_string(),
        issuer: server.issuer.clone(),
    };
    // A discovered server a profile names by issuer (one that publishes
    // metadata but offers no registration): the profile's client, scopes,
    // parameters and token rules, with the discovered endpoints.
    if let Some(known) = settings.profiles.iter().find(|p| p.issuer == server.issuer) {
        if !registration::client_allows(&known.resources, known.any_resource, &connected) {
            return Err(refuse());
        }
        let device = device_authorization_endpoint;
        return discovered_profile(
            settings,
            known,
            &server,
            device,
            found.resource,
            req.scope,
            via,
        );
    }
    let own = settings.clients.pre_registered_for(&server.issuer);
    if own.is_some_and(|own| !own.allows(&connected)) {
        return Err(refuse());
    }
    if via == Via::Browser {
        settings.clients.check_pkce(&server)?;
    }
    let redirect_uri = via.redirect_uri(settings, &server.issuer);
    let scope = crate::scope::choose_scope(
        req.scope,
        challenge.and_then(|c| c.scope.as_deref()),
        found
            .metadata
            .as_ref()
            .and_then(|m| m.scopes_supported.as_deref()),
    );
    let client = client_at(cx, &server, &redirect_uri, scope.as_deref()).await?;
    let dpop = settings.dpop_for(&found.resource).wanted(
        server.metadata.dpop_signing_alg_values_supported.as_deref(),
        resource_dpop(challenge, found.metadata.as_ref()),
    );
    let resolved = Resolved {
        issuer: server.issuer.clone(),
        iss_required: server
            .metadata
            .authorization_response_iss_parameter_supported,
        client,
        token_endpoint: server.token_endpoint.clone(),
        revocation_endpoint: server.revocation_endpoint.clone(),
        redirect_uri,
        resource: found.resource,
        scope,
        rules: Default::default(),
        profile: None,
        dpop,
        refused: None,
    };
    Ok(Route {
        resolved,
        authorization_endpoint: server.authorization_endpoint,
        device_authorization_endpoint,
        profile: None,
    })
}

/// The server's device authorization endpoint, when it lists one, held to
/// the address policy.
fn device_endpoint(
    settings: &Settings,
    server: &crate::discovery::AuthorizationServer,
) -> Result<Option<Url>> {
    let listed = server.metadata.device_authorization_endpoint.as_deref();
    listed.map(|e| settings.policy.parse(e)).transpose()
}

/// The route through a profile that names a discovered server by issuer
/// (the profile given the server's endpoints, its device endpoint when it
/// lists one): for `resource`, with `iss` as the server promises it.
fn discovered_profile(
    settings: &Settings,
    known: &crate::profile::ProviderProfile,
    server: &crate::discovery::AuthorizationServer,
    device_authorization_endpoint: Option<Url>,
    resource: String,
    scope: Option<&str>,
    via: Via,
) -> Result<Route> {
    let mut profile = known.clone();
    profile.authorization_endpoint = server.authorization_endpoint.clone();
    profile.token_endpoint = server.token_endpoint.clone();
    profile.revocation_endpoint = server.revocation_endpoint.clone();
    if device_authorization_endpoint.is_some() {
        profile.device_authorization_endpoint = device_authorization_endpoint;
    }
    let key = ResourceKey::parse(&resource)?;
    let mut route = profiled::resolve(settings, &profile, &key, scope, via)?;
    route.resolved.resource = resource;
    route.resolved.iss_required = server
        .metadata
        .authorization_response_iss_parameter_supported;
    Ok(route)
}

/// The app's client at `server` for `redirect_uri`: the one kept, or one
/// obtained now (pre-registered, metadata document, registration), a new
/// registration kept for next time. A registration that hands out a
/// client id the app holds at another server is refused.
async fn client_at<H: HttpClient, S: Store>(
    cx: &Engine<'_, H, S>,
    server: &crate::discovery::AuthorizationServer,
    redirect_uri: &Url,
    scope: Option<&str>,
) -> Result<crate::client::Client> {
    let (store, settings) = (cx.store, cx.settings);
    let cached = store
        .registration(&server.issuer, redirect_uri.as_str())
        .await?;
    let (client, fresh) = registration::obtain_client(
        cx.http,
        server,
        &settings.clients,
        &settings.client_info,
        &registration::ClientRequest {
            cached: cached.as_ref(),
            redirect_uri,
            scope,
        },
        cx.now,
    )
    .await?;
    if let Some(r) = fresh {
        // A server that hands out a client id the app holds at another
        // server (a profile's, a pre-registered one) would have the person
        // approve the app there, for a token sent here.
        if let Some(holder) = settings.holder_of(&client.client_id) {
            return Err(Error::InvalidResponse {
                url: server
                    .registration_endpoint
                    .clone()
                    .unwrap_or_else(|| server.token_endpoint.clone()),
                reason: format!(
                    "the registration answered with the client id the app holds at {holder}; refused"
                ),
            });
        }
        store.put_registration(r).await?;
    }
    Ok(client)
}

/// What the resource said about DPoP: in the challenge the login started
/// from, and in its metadata.
fn resource_dpop<'a>(
    challenge: Option<&'a crate::challenge::BearerChallenge>,
    metadata: Option<&'a discovery::ProtectedResourceMetadata>,
) -> crate::settings::ResourceDpop<'a> {
    crate::settings::ResourceDpop {
        challenge: challenge.and_then(|c| c.dpop_algs.as_deref()),
        metadata: metadata.and_then(|m| m.dpop_signing_alg_values_supported.as_deref()),
        required: metadata.is_some_and(|m| m.dpop_bound_access_tokens_required),
    }
}

/// What a login resolved to, from discovery or a provider profile: the
/// server, the client, and what to ask for. The pending login is built from
/// it in one place.
pub(super) struct Resolved {
    pub(super) issuer: String,
    pub(super) iss_required: bool,
    pub(super) client: crate::client::Client,
    pub(super) token_endpoint: Url,
    pub(super) revocation_endpoint: Option<Url>,
    pub(super) redirect_uri: Url,
    pub(super) resource: String,
    pub(super) scope: Option<String>,
    pub(super) rules: token::TokenRules,
    pub(super) profile: Option<String>,
    /// Whether the grant's tokens are bound to a key of their own (DPoP).
    pub(super) dpop: bool,
    /// How the API says a token is refused (a profile's rule).
    pub(super) refused: Option<token::Refusal>,
}

impl Resolved {
    /// The pending login of `req` for `resource_url`, with fresh state
    /// and PKCE verifier from `entropy`.
    pub(super) fn pending(
        self,
        req: LoginRequest<'_>,
        resource_url: &Url,
        now: u64,
        entropy: Entropy,
    ) -> PendingFlow {
        PendingFlow {
            state: FlowState::from_random(entropy.state),
            verifier: PkceVerifier::from_random(entropy.verifier),
            resource_url: resource_url.to_string(),
            resource: self.resource,
            issuer: self.issuer,
            iss_required: self.iss_required,
            client: self.client,
            token_endpoint: self.token_endpoint,
            revocation_endpoint: self.revocation_endpoint,
            redirect_uri: self.redirect_uri,
            scope: self.scope,
            owner: req.owner.to_owned(),
            created_at: now,
            rules: self.rules,
            profile: self.profile,
            dpop: self
                .dpop
                .then(|| crate::secret::DpopKey::generate(entropy.dpop))
                .flatten(),
            refused: self.refused,
            device: None,
            account: req.account.map(str::to_owned),
        }
    }
}
