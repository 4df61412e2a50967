//! The servers the tests run against: oidc-provider and the test API, an MCP server that takes Bearer tokens only.

use super::*;

/// Options for the authorization server.
#[derive(Debug, Clone, Default)]
pub struct AuthServerOptions {
    /// Access token lifetime in seconds (default 3600).
    pub access_ttl: Option<u64>,
    /// Behave like a server without RFC 9207: no `iss` on the callback.
    pub no_iss: bool,
    /// Offer no RFC 7592 registration management.
    pub no_registration_management: bool,
}

/// A running authorization server (oidc-provider) and protected API.
#[derive(Debug)]
pub struct Servers {
    /// The authorization server process.
    pub auth: Process,
    /// The protected resource process.
    pub resource: Process,
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The resource server's origin (`http://127.0.0.1:PORT`).
    pub origin: String,
}

impl Servers {
    /// Starts both servers on free loopback ports.
    pub fn start(opts: AuthServerOptions) -> Servers {
        require_node_modules();
        let ttl = opts.access_ttl.unwrap_or(3600).to_string();
        let mut args = vec!["tests/servers/auth-server.mjs", "--access-ttl", &ttl];
        if opts.no_iss {
            args.push("--no-iss");
        }
        if opts.no_registration_management {
            args.push("--no-registration-management");
        }
        let auth = Process::start("auth-server", "node", &args);
        let issuer = auth.field("issuer");
        let resource = Process::start(
            "resource-server",
            "node",
            &["tests/servers/resource-server.mjs", "--issuer", &issuer],
        );
        let origin = resource.field("origin");
        Servers {
            auth,
            resource,
            issuer,
            origin,
        }
    }

    /// Request counts seen by the authorization server, by "METHOD path".
    pub async fn auth_stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.issuer)).await
    }

    /// Makes the authorization server's token endpoint answer the next
    /// `count` requests with `status`.
    pub async fn fail_token(&self, count: u32, status: u16) {
        let url = format!("{}/__fail-token?count={count}&status={status}", self.issuer);
        let sent = reqwest::Client::new().post(url).send().await;
        assert!(
            sent.is_ok_and(|r| r.status().is_success()),
            "failing the token endpoint"
        );
    }

    /// How many requests the authorization server saw for "METHOD path".
    pub async fn auth_count(&self, key: &str) -> u64 {
        self.auth_stats().await[key].as_u64().unwrap_or(0)
    }

    /// How many authorization server metadata documents were fetched (either
    /// well-known location).
    pub async fn metadata_fetches(&self) -> u64 {
        self.auth_count("GET /.well-known/oauth-authorization-server")
            .await
            + self
                .auth_count("GET /.well-known/openid-configuration")
                .await
    }

    /// Registers a public client at the authorization server (RFC 7591)
    /// for `redirect_uri`, as an operator registers the app in advance;
    /// returns its client id.
    pub async fn register_client(&self, redirect_uri: &str) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app, registered in advance",
                "redirect_uris": [redirect_uri],
                "application_type": "native",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// Registers a client with `metadata` (RFC 7591): the server's answer.
    async fn register(&self, metadata: serde_json::Value) -> serde_json::Value {
        let meta = get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await;
        let endpoint = meta["registration_endpoint"]
            .as_str()
            .expect("registration endpoint");
        let resp = reqwest::Client::new()
            .post(endpoint)
            .json(&metadata)
            .send()
            .await
            .expect("registration endpoint reachable");
        assert_eq!(resp.status().as_u16(), 201, "registration");
        resp.json().await.expect("registration answer")
    }

    /// Registers a machine client (the client credentials grant,
    /// `client_secret_basic`), as an operator would in advance: its id and
    /// secret.
    pub async fn register_machine_client(&self) -> (String, String) {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app itself",
                "redirect_uris": [],
                "response_types": [],
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "api:read",
            }))
            .await;
        (
            body["client_id"].as_str().expect("client_id").to_owned(),
            body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        )
    }

    /// Registers a machine client that authenticates with `private_key_jwt`
    /// (RFC 7523), its public key given as a JWK set, as an operator would
    /// in advance: its id.
    pub async fn register_keyed_machine_client(&self, key: &KeyPair) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app itself, with a key",
                "redirect_uris": [],
                "response_types": [],
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": key.alg,
                "jwks": { "keys": [key.public_jwk] },
                "scope": "api:read",
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// Registers a client for people that authenticates with
    /// `private_key_jwt` (its public key as a JWK set), with `redirect_uri`
    /// and refresh tokens, as an operator would in advance: its id.
    pub async fn register_keyed_client(&self, key: &KeyPair, redirect_uri: &str) -> String {
        let body = self
            .register(serde_json::json!({
                "client_name": "the app, with a key",
                "redirect_uris": [redirect_uri],
                "application_type": "native",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": key.alg,
                "jwks": { "keys": [key.public_jwk] },
            }))
            .await;
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// What the resource server saw.
    pub async fn resource_stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.origin)).await
    }
}

/// An MCP server that takes Bearer tokens only, as the MCP TypeScript
/// SDK's documentation builds one (its `requireBearerAuth` middleware and
/// metadata router, `tests/servers/bearer-mcp.mjs`), for `issuer`.
#[derive(Debug)]
pub struct BearerMcp {
    /// The server process.
    pub process: Process,
    /// Its origin (`http://127.0.0.1:PORT`); the MCP server is `{origin}/mcp`.
    pub origin: String,
}

impl BearerMcp {
    /// Starts it on a free loopback port.
    pub fn start(issuer: &str) -> BearerMcp {
        require_node_modules();
        let process = Process::start(
            "bearer-mcp",
            "node",
            &["tests/servers/bearer-mcp.mjs", "--issuer", issuer],
        );
        let origin = process.field("origin");
        BearerMcp { process, origin }
    }

    /// The `Authorization` schemes it saw (`{"Bearer": n, "DPoP": m,
    /// "none": k}`) and the statuses it answered (`{"200": n, ...}`).
    pub async fn stats(&self) -> serde_json::Value {
        get_json(&format!("{}/__stats", self.origin)).await
    }
}

pub(crate) async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}
