// A protected API for tests and the demo, on 127.0.0.1 only.
//
// - /api/...      needs a JWT access token from the issuer whose audience is
//                 <origin>/api; otherwise 401 with
//                 WWW-Authenticate: Bearer resource_metadata="...".
// - /v1/...       the same for resource <origin>/v1 (metadata at its own path).
// - /scoped/...   like /api, but answers 403 insufficient_scope without api:write
//                 (401 for paths ending in /write401).
// - /, /public/..., /v2/...  answer 200 to anyone.
// - /bad-metadata/... and /other-resource/...: 401 whose metadata is not JSON,
//                 or names another resource.
// - /api/redirect?to=URL answers 302 to URL (after checking the token like /api).
// - POST /mcp:     an MCP server (Streamable HTTP) for resource <origin>/mcp,
//                 protected like /api (even `initialize`): tools `echo` and
//                 `whoami`; `initialize` assigns an Mcp-Session-Id that later
//                 requests must carry; `tools/call` answers as an event stream.
// - POST /v2026/mcp: the same tools as an MCP server of revision 2026-07-28
//                 (stateless; resource <origin>/v2026): no `initialize` or session; every request
//                 must carry MCP-Protocol-Version equal to its
//                 `_meta["io.modelcontextprotocol/protocolVersion"]`,
//                 `clientCapabilities` in `_meta`, and Mcp-Method (and
//                 Mcp-Name for tools/call) equal to the body's, or it
//                 answers 400; `server/discover` names the revision.
// - POST /__revoke-tokens: every access token accepted so far is refused from
//   now on (as a resource server learns of revocation, e.g. by introspection).
// - /.well-known/oauth-protected-resource/<prefix>: RFC 9728 metadata.
// It takes DPoP-bound tokens and says so: a `DPoP algs="ES256"` challenge
// beside the Bearer one, and `dpop_signing_alg_values_supported` in its
// metadata (RFC 9449 §7.1, RFC 9728 §2).
// A token bound to a key (DPoP, RFC 9449: `cnf.jkt`) is taken only as
// `Authorization: DPoP` with a valid proof in `DPoP` (signature by the bound
// key, htm, htu, iat within 5 minutes, ath, a jti never seen before); a bound
// token sent as Bearer, or with a bad proof, is refused as invalid_token.
// Every protected response also reports whether an Authorization header came.
// GET /__stats returns request counts, the Authorization presence of the
// last request per path and the DPoP proofs taken; POST /__stats resets.
//
// Usage: node resource-server.mjs --issuer URL [--port N]
// Prints one JSON line {"origin": ..., "port": ...} when ready.

import http from 'node:http';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { jwtVerify, createRemoteJWKSet, decodeProtectedHeader, importJWK, calculateJwkThumbprint } from 'jose';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    issuer: { type: 'string' },
  },
});
if (!args.issuer) {
  console.error('--issuer is required');
  process.exit(2);
}
const issuer = args.issuer;
const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;

const PROTECTED = ['api', 'v1', 'scoped', 'bad-metadata', 'other-resource', 'mcp', 'v2026'];
const stats = { requests: {}, last_authorization: {}, dpop_proofs: 0 };
const proofJtis = new Set();

// The DPoP proof of a request that presents `token`, bound to `jkt`: null
// when it holds, else why not.
async function proofProblem(req, token, jkt) {
  const proof = req.headers.dpop;
  if (typeof proof !== 'string' || proof.includes(',')) return 'one DPoP proof is required';
  try {
    const header = decodeProtectedHeader(proof);
    if (header.typ !== 'dpop+jwt' || !header.jwk || header.jwk.d !== undefined) return 'bad proof header';
    const key = await importJWK(header.jwk, header.alg);
    const { payload } = await jwtVerify(proof, key, { typ: 'dpop+jwt' });
    const url = new URL(req.url, origin);
    if (payload.htm !== req.method) return 'htm';
    if (payload.htu !== `${origin}${url.pathname}`) return 'htu';
    if (Math.abs(Date.now() / 1000 - payload.iat) > 300) return 'iat';
    if (payload.ath !== createHash('sha256').update(token).digest('base64url')) return 'ath';
    if ((await calculateJwkThumbprint(header.jwk)) !== jkt) return 'the proof key is not the bound key';
    if (typeof payload.jti !== 'string' || proofJtis.has(payload.jti)) return 'jti replayed';
    proofJtis.add(payload.jti);
  } catch (err) {
    return `proof: ${err.code ?? err.message}`;
  }
  stats.dpop_proofs += 1;
  return null;
}
const seenJti = new Set();
const revokedJti = new Set();

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(status === 204 ? undefined : JSON.stringify(body));
}

function metadataFor(prefix) {
  if (prefix === 'other-resource') {
    return { resource: `${origin}/somewhere-else`, authorization_servers: [issuer] };
  }
  return {
    resource: `${origin}/${prefix}`,
    authorization_servers: [issuer],
    scopes_supported: ['api:read'],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: ['ES256'],
    resource_name: `Demo API /${prefix}`,
  };
}

async function verify(req, prefix) {
  const header = req.headers.authorization ?? '';
  const match = /^(Bearer|DPoP)\s+(.+)$/i.exec(header);
  if (!match) return { error: null };
  try {
    const { payload } = await jwtVerify(match[2], jwks, { issuer, audience: `${origin}/${prefix}` });
    const jkt = payload.cnf?.jkt;
    const dpop = match[1].toLowerCase() === 'dpop';
    if (jkt && !dpop) return { error: 'a DPoP-bound token sent as Bearer' };
    if (dpop && !jkt) return { error: 'a Bearer token sent as DPoP' };
    if (jkt) {
      const problem = await proofProblem(req, match[2], jkt);
      if (problem) return { error: `DPoP: ${problem}` };
    }
    if (revokedJti.has(payload.jti)) return { error: 'revoked' };
    seenJti.add(payload.jti);
    return { payload };
  } catch (err) {
    return { error: err.code ?? 'invalid_token' };
  }
}

server.on('request', async (req, res) => {
  const url = new URL(req.url, origin);
  const path = url.pathname;
  if (path === '/__stats') {
    if (req.method === 'POST') {
      stats.requests = {};
      stats.last_authorization = {};
      stats.dpop_proofs = 0;
    }
    return send(res, 200, stats);
  }
  if (path === '/__revoke-tokens' && req.method === 'POST') {
    for (const jti of seenJti) revokedJti.add(jti);
    return send(res, 200, { revoked: revokedJti.size });
  }
  stats.requests[path] = (stats.requests[path] ?? 0) + 1;
  stats.last_authorization[path] = Boolean(req.headers.authorization);

  const wellKnown = '/.well-known/oauth-protected-resource/';
  if (path.startsWith(wellKnown)) {
    const prefix = path.slice(wellKnown.length);
    if (prefix === 'bad-metadata') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<html>this is not metadata</html>');
    }
    if (!PROTECTED.includes(prefix)) return send(res, 404, { error: 'not_found' });
    return send(res, 200, metadataFor(prefix));
  }

  const seen = { path, method: req.method, authorization: Boolean(req.headers.authorization) };
  if (path === '/' || path === '/public' || path.startsWith('/public/') || path.startsWith('/v2/')) {
    return send(res, 200, { ...seen, public: true });
  }
  if (path === '/echo') return send(res, 200, { ...seen, headers: req.headers });

  const prefix = path.split('/')[1];
  if (!PROTECTED.includes(prefix)) return send(res, 404, { error: 'not_found' });
  const resourceMetadata = `${origin}${wellKnown}${prefix}`;
  const { payload, error } = await verify(req, prefix);
  if (!payload) {
    const parts = [];
    if (error !== null) parts.push('error="invalid_token"', `error_description="${error}"`);
    parts.push(`resource_metadata="${resourceMetadata}"`);
    // It takes DPoP-bound tokens, and says so (RFC 9449 §7.1).
    const dpop = `DPoP algs="ES256"${error !== null ? ', error="invalid_token"' : ''}`;
    return send(res, 401, { error: 'unauthorized' }, { 'www-authenticate': `Bearer ${parts.join(', ')}, ${dpop}` });
  }
  if (prefix === 'mcp') return mcp(req, res, payload);
  if (path === '/v2026/mcp') return mcp2026(req, res, payload);
  const scopes = String(payload.scope ?? '').split(' ');
  if (prefix === 'scoped' && !scopes.includes('api:write')) {
    // /scoped/.../write401 says so with a 401, as some servers do.
    const status = path.endsWith('/write401') ? 401 : 403;
    return send(res, status, { error: 'insufficient_scope' }, {
      'www-authenticate': `Bearer error="insufficient_scope", scope="api:read api:write", resource_metadata="${resourceMetadata}"`,
    });
  }
  if (path === '/api/redirect') {
    const to = url.searchParams.get('to') ?? '/';
    res.writeHead(302, { location: to });
    return res.end();
  }
  return send(res, 200, { ...seen, ok: true, sub: payload.sub, scope: payload.scope, aud: payload.aud });
});

const mcpSessions = new Set();
const TOOLS = [
  { name: 'echo', description: 'Echoes its text', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
  { name: 'whoami', description: 'The token subject', inputSchema: { type: 'object' } },
];

// The result of a tool call, or null for an unknown tool.
function callTool(name, args, payload) {
  if (name === 'echo') return { content: [{ type: 'text', text: String(args.text ?? '') }] };
  if (name === 'whoami') return { content: [{ type: 'text', text: String(payload.sub) }] };
  return null;
}

// The JSON-RPC message of a POST, or null once a 405 or a parse error has
// been answered.
async function readMessage(req, res) {
  if (req.method !== 'POST') {
    send(res, 405, { error: 'method_not_allowed' });
    return null;
  }
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    send(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
    return null;
  }
}

async function mcp(req, res, payload) {
  const msg = await readMessage(req, res);
  if (!msg) return;
  const reply = (result) => ({ jsonrpc: '2.0', id: msg.id, result });
  if (msg.method === 'initialize') {
    const sid = `s-${mcpSessions.size + 1}-${Date.now()}`;
    mcpSessions.add(sid);
    return send(res, 200, reply({
      protocolVersion: msg.params?.protocolVersion ?? '2025-11-25',
      serverInfo: { name: 'Demo MCP', version: '1.2.3' },
      capabilities: { tools: {} },
    }), { 'mcp-session-id': sid });
  }
  if (!mcpSessions.has(req.headers['mcp-session-id'])) {
    return send(res, 400, { jsonrpc: '2.0', id: msg.id ?? null, error: { code: -32000, message: 'missing or unknown Mcp-Session-Id' } });
  }
  if (msg.id === undefined) {
    res.writeHead(202);
    return res.end();
  }
  if (msg.method === 'tools/list') return send(res, 200, reply({ tools: TOOLS }));
  if (msg.method === 'tools/call') {
    const { name, arguments: args = {} } = msg.params ?? {};
    const result = callTool(name, args, payload);
    if (!result) return send(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32602, message: `unknown tool ${name}` } });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } })}\n\n`);
    res.write(`event: message\ndata: ${JSON.stringify(reply(result))}\n\n`);
    return res.end();
  }
  return send(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `no method ${msg.method}` } });
}

const STATELESS = '2026-07-28';
async function mcp2026(req, res, payload) {
  const msg = await readMessage(req, res);
  if (!msg) return;
  const fail = (code, message) => send(res, 400, { jsonrpc: '2.0', id: msg.id ?? null, error: { code, message } });
  const version = req.headers['mcp-protocol-version'];
  const meta = msg.params?._meta ?? {};
  if (!version) return fail(-32020, 'Missing MCP-Protocol-Version header');
  if (meta['io.modelcontextprotocol/protocolVersion'] !== version) return fail(-32020, 'MCP-Protocol-Version does not match _meta');
  if (!meta['io.modelcontextprotocol/clientCapabilities']) return fail(-32602, 'missing _meta clientCapabilities');
  if (version !== STATELESS) return fail(-32022, 'Unsupported protocol version');
  if (req.headers['mcp-method'] !== msg.method) return fail(-32001, 'Mcp-Method does not match the body');
  if (req.headers['mcp-session-id']) return fail(-32001, 'no sessions in this revision');
  const reply = (result) => send(res, 200, { jsonrpc: '2.0', id: msg.id, result: { resultType: 'complete', ...result } });
  if (msg.method === 'server/discover') {
    return reply({
      supportedVersions: [STATELESS],
      capabilities: { tools: {} },
      _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'Demo MCP 2026', version: '2.0.0' } },
    });
  }
  if (msg.method === 'tools/list') return reply({ tools: TOOLS });
  if (msg.method === 'tools/call') {
    const { name, arguments: args = {} } = msg.params ?? {};
    if (req.headers['mcp-name'] !== name) return fail(-32001, 'Mcp-Name does not match the tool');
    const result = callTool(name, args, payload);
    if (result) return reply(result);
    return send(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32602, message: `unknown tool ${name}` } });
  }
  return send(res, 200, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: `no method ${msg.method}` } });
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
console.log(JSON.stringify({ origin, port }));
