// An API without discovery and its authorization server, bending the token
// answer the way real providers do, for the provider-profile tests, on
// 127.0.0.1 only.
//
// - GET /oauth/authorize: checks client_id, redirect_uri, S256 PKCE and
//   state, then redirects straight back with a code (no login page). The
//   scopes asked for (in `scope` or `user_scope`) and the last request's
//   parameters are recorded.
// - POST /oauth/token: `authorization_code` (checks the client secret in the
//   body and the PKCE verifier) and `refresh_token`. Answers per `format`:
//   "form" (application/x-www-form-urlencoded, comma-separated scope, errors
//   with HTTP 200, like GitHub), "slack" (the user's token under
//   `authed_user` with token_type "user", errors as `"ok": false`), "google"
//   (standard JSON), "json" (JSON without token_type). Access tokens live `expires_in` seconds (none
//   when null: no expires_in). With `refresh_without_rt` a refresh answer
//   carries no new refresh token; with `reject_resource_on_refresh` a refresh
//   that sends `resource` gets 400 invalid_target. With
//   `revoke_access_on_refresh` a successful refresh kills every access token
//   issued before it at once (as django-oauth-toolkit does).
// - POST /oauth/revoke: RFC 7009; the token stops working.
// - GET /api/...: 200 {"ok": true, "path"} with a live access token, else 401
//   with no challenge (like GitHub's API), or in "slack" format HTTP 200
//   {"ok": false, "error": "token_expired" | "invalid_auth"} (like Slack's).
//   With `api_delay_ms` the API checks the token only after that delay (a
//   call in flight while the token changes).
// - POST /__config merges JSON into the configuration; POST /__expire makes
//   every access token issued so far stop working; GET /__log returns
//   {"requests", "token_requests", "scopes", "revoked"}.
//
// Usage: node quirks.mjs [--port N]
// Prints one JSON line {"origin": ..., "port": ...} when ready.

import http from 'node:http';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;

const CLIENT_ID = 'quirks-app';
const CLIENT_SECRET = 'quirks-secret';
let config = { format: 'form', expires_in: 3600, refresh_without_rt: false, reject_resource_on_refresh: false };
const log = { requests: [], token_requests: [], scopes: [], revoked: 0 };
const codes = new Map(); // code -> { challenge, redirect_uri, scope }
const live = new Map(); // access token -> expires (ms) or null
const refresh = new Set();
let counter = 0;

const fresh = (prefix) => `${prefix}-${++counter}-${crypto.randomBytes(6).toString('hex')}`;

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// A refused code, as each provider names it: GitHub's
// `bad_verification_code` (HTTP 200), Slack's `invalid_code` (200, `ok:
// false`), RFC 6749's `invalid_grant` (400) elsewhere.
function badCode(res) {
  const name = { form: 'bad_verification_code', slack: 'invalid_code' }[config.format] ?? 'invalid_grant';
  return tokenError(res, name);
}

function tokenError(res, error) {
  if (config.format === 'form') {
    res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' });
    return res.end(new URLSearchParams({ error, error_description: 'refused' }).toString());
  }
  if (config.format === 'slack') return json(res, 200, { ok: false, error });
  return json(res, 400, { error });
}

function issue(res, scope, withRefresh) {
  const access = fresh('at');
  live.set(access, config.expires_in == null ? null : Date.now() + config.expires_in * 1000);
  const fields = { access_token: access, scope: scope.split(' ').join(',') };
  if (config.expires_in != null) fields.expires_in = config.expires_in;
  if (withRefresh) {
    const rt = fresh('rt');
    refresh.add(rt);
    fields.refresh_token = rt;
  }
  if (config.format === 'form') {
    res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
    return res.end(new URLSearchParams({ ...fields, token_type: 'bearer' }).toString());
  }
  if (config.format === 'slack') {
    return json(res, 200, { ok: true, app_id: 'A1', team: { id: 'T1' }, authed_user: { id: 'U1', token_type: 'user', ...fields } });
  }
  if (config.format === 'google') return json(res, 200, { ...fields, scope: scope, token_type: 'Bearer' });
  return json(res, 200, fields); // no token_type
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, origin);
  const path = url.pathname;
  if (path === '/__config' && req.method === 'POST') {
    config = { ...config, ...JSON.parse((await readBody(req)) || '{}') };
    return json(res, 200, config);
  }
  if (path === '/__expire' && req.method === 'POST') {
    for (const k of live.keys()) live.set(k, 0);
    return json(res, 200, { expired: live.size });
  }
  if (path === '/__log') return json(res, 200, log);
  log.requests.push(`${req.method} ${path}`);

  if (path === '/oauth/authorize') {
    const q = url.searchParams;
    const redirect = q.get('redirect_uri');
    if (q.get('client_id') !== CLIENT_ID || !redirect || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !q.get('state')) {
      return json(res, 400, { error: 'invalid_request' });
    }
    const scope = (q.get('user_scope') ?? q.get('scope') ?? '').split(/[ ,]/).filter(Boolean).join(' ');
    log.scopes.push(scope);
    log.authorize = Object.fromEntries(q);
    const code = fresh('code');
    codes.set(code, { challenge: q.get('code_challenge'), redirect_uri: redirect, scope });
    const back = new URL(redirect);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }

  if (path === '/oauth/token' && req.method === 'POST') {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    log.token_requests.push({ grant_type: form.grant_type, resource: form.resource ?? null });
    if (form.client_id !== CLIENT_ID || form.client_secret !== CLIENT_SECRET) return tokenError(res, 'invalid_client');
    if (form.grant_type === 'authorization_code') {
      const c = codes.get(form.code);
      codes.delete(form.code);
      const challenge = crypto.createHash('sha256').update(form.code_verifier ?? '').digest('base64url');
      if (!c || c.challenge !== challenge || c.redirect_uri !== form.redirect_uri) return badCode(res);
      return issue(res, c.scope, true);
    }
    if (form.grant_type === 'refresh_token') {
      if (config.reject_resource_on_refresh && form.resource) return json(res, 400, { error: 'invalid_target', error_description: 'resource is not supported' });
      if (!refresh.has(form.refresh_token)) return tokenError(res, 'invalid_grant');
      if (!config.refresh_without_rt) refresh.delete(form.refresh_token);
      if (config.revoke_access_on_refresh) for (const k of live.keys()) live.set(k, 0);
      return issue(res, 'repo user', !config.refresh_without_rt);
    }
    return tokenError(res, 'unsupported_grant_type');
  }

  if (path === '/oauth/revoke' && req.method === 'POST') {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    if (live.delete(form.token) || refresh.delete(form.token)) log.revoked += 1;
    res.writeHead(200);
    return res.end();
  }

  if (path.startsWith('/api')) {
    if (config.api_delay_ms) await new Promise((r) => setTimeout(r, config.api_delay_ms));
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const expires = m ? live.get(m[1]) : undefined;
    if (expires === undefined || (expires !== null && expires <= Date.now())) {
      // Slack's Web API refuses a token with HTTP 200.
      if (config.format === 'slack') return json(res, 200, { ok: false, error: expires === undefined ? 'invalid_auth' : 'token_expired' });
      return json(res, 401, { message: 'Bad credentials' });
    }
    return json(res, 200, { ok: true, path });
  }
  json(res, 404, { error: 'not_found' });
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.log(JSON.stringify({ origin, port }));
