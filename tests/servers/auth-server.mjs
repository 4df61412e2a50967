// A real OAuth 2 / OpenID Connect authorization server for tests and the demo:
// oidc-provider with dynamic registration, PKCE required, resource indicators
// (JWT access tokens whose audience is the resource), rotating refresh tokens
// with reuse detection, revocation and RFC 9207 `iss`.
//
// Login and consent complete without a person: the interaction route logs in
// the account named by `login_hint` (default "demo-user") and grants what was
// asked. Listens on 127.0.0.1 only.
//
// With --no-iss it behaves like the many servers without RFC 9207: the
// callback carries no `iss` and the metadata does not promise one.
//
// Usage: node auth-server.mjs [--port N] [--key-file PATH] [--access-ttl SECONDS] [--no-iss]
//        [--no-registration-management] (no RFC 7592: registrations cannot be updated)
// Prints one JSON line {"issuer": ..., "port": ...} when ready.
// GET /__stats returns request counts by "METHOD path"; POST /__stats clears them.
// POST /__revoke-grants revokes every grant issued so far, with its tokens.
// POST /__fail-token?count=N&status=S answers the next N token requests with
// HTTP S (a server having a bad moment).
// GET /__issued lists every token the token endpoint answered (for tests that
// search stored state for them).

import http from 'node:http';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'key-file': { type: 'string' },
    'access-ttl': { type: 'string', default: '3600' },
    'no-iss': { type: 'boolean', default: false },
    'no-registration-management': { type: 'boolean', default: false },
  },
});
const accessTtl = Number(args['access-ttl']);

async function signingKey() {
  const file = args['key-file'];
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  if (file) fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [await signingKey()] },
  cookies: { keys: ['local-test-cookie-key'] },
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    // Machine clients (the app as itself): tokens for a `resource`, JWTs
    // with that audience, as for people.
    clientCredentials: { enabled: true },
    // Logins with no browser callback (RFC 8628): the device pages are
    // oidc-provider's own, with their xsrf-protected forms.
    deviceFlow: { enabled: true },
    registration: { enabled: true, initialAccessToken: false },
    registrationManagement: { enabled: !args['no-registration-management'], rotateRegistrationAccessToken: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => ({
        scope: 'api:read api:write',
        audience: indicator,
        accessTokenTTL: accessTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { Session: 3600, Interaction: 600, Grant: 86400, RefreshToken: 86400, AuthorizationCode: 60 },
});

const stats = new Map();
const grantIds = new Set();
const count = (key) => stats.set(key, (stats.get(key) ?? 0) + 1);

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const accountId = params.login_hint || 'demo-user';
    if (accountId === 'deny') {
      return provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'the person declined',
      });
    }
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }
  const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  const grant = existing ?? new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  grantIds.add(grantId);
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// --no-iss: drop `iss` from redirects and its promise from the metadata.
function withoutIss(req, res, path) {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name, value) => {
    const n = name.toLowerCase();
    if (n === 'location' && typeof value === 'string' && value.includes('iss=')) {
      const u = new URL(value);
      u.searchParams.delete('iss');
      value = u.toString();
    }
    if (n === 'content-length' && path.startsWith('/.well-known/')) return res;
    return setHeader(name, value);
  };
  if (path.startsWith('/.well-known/')) {
    const end = res.end.bind(res);
    res.end = (body, ...rest) => {
      if (body && res.statusCode === 200) {
        const doc = JSON.parse(body.toString());
        delete doc.authorization_response_iss_parameter_supported;
        body = JSON.stringify(doc);
      }
      return end(body, ...rest);
    };
  }
}

const issued = [];
let failToken = { count: 0, status: 503 };
function recordIssued(res) {
  const end = res.end.bind(res);
  res.end = (body, ...rest) => {
    try {
      const doc = JSON.parse(body.toString());
      for (const k of ['access_token', 'refresh_token', 'id_token']) if (doc[k]) issued.push(doc[k]);
    } catch {}
    return end(body, ...rest);
  };
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (args['no-iss']) withoutIss(req, res, path);
  if (path === '/__issued') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify(issued));
  }
  if (path === '/__fail-token' && req.method === 'POST') {
    const q = new URL(req.url, issuer).searchParams;
    failToken = { count: Number(q.get('count') ?? 1), status: Number(q.get('status') ?? 503) };
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify(failToken));
  }
  if (path === '/token' && req.method === 'POST' && failToken.count > 0) {
    failToken.count -= 1;
    count('POST /token (failed)');
    res.statusCode = failToken.status;
    res.setHeader('content-type', 'text/plain');
    return res.end('temporarily unavailable');
  }
  if (path === '/token' && req.method === 'POST') recordIssued(res);
  if (path === '/__stats') {
    if (req.method === 'POST') stats.clear();
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify(Object.fromEntries(stats)));
  }
  if (path === '/__revoke-grants' && req.method === 'POST') {
    for (const id of grantIds) {
      await provider.RefreshToken.revokeByGrantId(id);
      await provider.AccessToken.revokeByGrantId(id);
      await provider.Grant.adapter.destroy(id);
    }
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ revoked: grantIds.size }));
  }
  count(`${req.method} ${path.startsWith('/interaction/') ? '/interaction' : path.replace(/^\/auth\/.+/, '/auth/:uid').replace(/^\/reg\/.+/, '/reg/:id')}`);
  if (req.method === 'GET' && path.startsWith('/interaction/')) {
    try {
      return await interaction(req, res);
    } catch (err) {
      res.statusCode = 400;
      return res.end(`interaction failed: ${err.message}`);
    }
  }
  return callback(req, res);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.log(JSON.stringify({ issuer, port }));
