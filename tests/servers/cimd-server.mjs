// An honest authorization server that identifies clients only by client ID
// metadata documents (no registration endpoint), with the API it protects,
// on 127.0.0.1 only. What the MCP specification's servers do since
// 2025-11-25, as far as a client can see it:
//
// - GET /authorize fetches the document at `client_id` (an http URL only on
//   loopback), and refuses, with 400 and nothing sent anywhere, a
//   `redirect_uri` the document does not list. Otherwise it logs the person
//   in, consents and redirects with a code (and RFC 9207 `iss` with --iss).
// - POST /token checks the code's client, redirect URI and PKCE S256
//   verifier, and answers a token for the `resource` asked for.
// - GET /api/...: the protected API; 200 {"authorization": true} with a token
//   this server issued for it, else 401 with a `resource_metadata` challenge.
// - RFC 9728 metadata for /api and RFC 8414 metadata naming
//   `client_id_metadata_document_supported` (and
//   `authorization_response_iss_parameter_supported` with --iss).
// - GET /__log: {"authorizations": [{client_id, redirect_uri, refused}],
//   "tokens": N}.
//
// Usage: node cimd-server.mjs [--port N] [--iss]
// Prints one JSON line {"issuer": ..., "origin": ..., "port": ...} when ready.

import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '0' }, iss: { type: 'boolean', default: false } },
});

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const codes = new Map();
const tokens = new Map();
const log = { authorizations: [], tokens: 0 };

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const random = () => crypto.randomBytes(24).toString('base64url');
const s256 = (v) => crypto.createHash('sha256').update(v).digest('base64url');

async function clientDocument(clientId) {
  let url;
  try { url = new URL(clientId); } catch { return null; }
  if (url.protocol !== 'https:' && url.hostname !== '127.0.0.1') return null;
  const resp = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(5000) }).catch(() => null);
  if (!resp?.ok) return null;
  const doc = await resp.json().catch(() => null);
  return doc?.client_id === clientId ? doc : null;
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, origin);
  const path = url.pathname;
  if (path === '/__log') return send(res, 200, log);
  if (path === '/.well-known/oauth-authorization-server') {
    return send(res, 200, {
      issuer: origin,
      authorization_endpoint: `${origin}/authorize`,
      token_endpoint: `${origin}/token`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      client_id_metadata_document_supported: true,
      authorization_response_iss_parameter_supported: args.iss,
    });
  }
  if (path === '/.well-known/oauth-protected-resource/api') {
    return send(res, 200, { resource: `${origin}/api`, authorization_servers: [origin] });
  }
  if (path === '/authorize') {
    const q = url.searchParams;
    const entry = { client_id: q.get('client_id'), redirect_uri: q.get('redirect_uri'), refused: null };
    log.authorizations.push(entry);
    const doc = await clientDocument(q.get('client_id') ?? '');
    if (!doc) entry.refused = 'the client ID metadata document could not be fetched';
    else if (!(doc.redirect_uris ?? []).includes(q.get('redirect_uri'))) entry.refused = 'redirect_uri is not in the client ID metadata document';
    else if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) entry.refused = 'PKCE S256 is required';
    if (entry.refused) return send(res, 400, { error: 'invalid_request', error_description: entry.refused });
    const code = random();
    codes.set(code, {
      client_id: q.get('client_id'),
      redirect_uri: q.get('redirect_uri'),
      challenge: q.get('code_challenge'),
      resource: q.get('resource'),
    });
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', code);
    if (q.get('state')) back.searchParams.set('state', q.get('state'));
    if (args.iss) back.searchParams.set('iss', origin);
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (path === '/token' && req.method === 'POST') {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    const grant = codes.get(form.code);
    codes.delete(form.code);
    if (!grant || form.grant_type !== 'authorization_code' || grant.client_id !== form.client_id
      || grant.redirect_uri !== form.redirect_uri || s256(form.code_verifier ?? '') !== grant.challenge) {
      return send(res, 400, { error: 'invalid_grant' });
    }
    const token = `cimd-at-${random()}`;
    tokens.set(token, grant.resource);
    log.tokens += 1;
    return send(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600 });
  }
  if (path === '/api' || path.startsWith('/api/')) {
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    if (token && tokens.has(token) && tokens.get(token) === `${origin}/api`) {
      return send(res, 200, { authorization: true, path });
    }
    return send(res, 401, { error: 'invalid_token' }, {
      'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/api"`,
    });
  }
  return send(res, 404, { error: 'not_found' });
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.log(JSON.stringify({ issuer: origin, origin, port }));
