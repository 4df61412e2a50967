// The client command for the MCP conformance suite: an MCP client made of
// the example app. It signs in to the app (running in workerd), connects the
// scenario's server through the app's OAuth routes like a browser would,
// then agrees on a revision (`server/discover`, else `initialize`), lists
// tools and calls each one through `/api/mcp`,
// following `authorization_required` answers (re-authorization, step-up) at
// most twice per call.
//
// Usage (by the suite): node client.mjs <server URL>
// Environment: IDP_APP_ORIGIN (the app), MCP_CONFORMANCE_SCENARIO,
// MCP_CONFORMANCE_CONTEXT (JSON, per scenario). Exits non-zero on failure.
//
// A scenario whose context holds a pre-registered client (client_id and
// client_secret) gets its own instance of the app, started with that client
// in its configuration (`IDP_PRE_REGISTERED`, the secret in a variable named
// there), for the issuer the server's resource metadata names.

import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const serverUrl = process.argv.at(-1);
let app = process.env.IDP_APP_ORIGIN;
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? 'unknown';
if (!app || !serverUrl?.startsWith('http')) {
  console.error('usage: IDP_APP_ORIGIN=<app> node client.mjs <server URL>');
  process.exit(2);
}
// Authorizations after the first connection, per call: at most three in all.
const MAX_AUTHORIZATIONS = 2;
const log = (...a) => console.error(`[${scenario}]`, ...a);

let cookie = '';
let session = null;

async function appFetch(path, init = {}) {
  const headers = { ...(init.headers ?? {}), cookie, 'sec-fetch-site': 'same-origin' };
  return fetch(path.startsWith('http') ? path : `${app}${path}`, { ...init, headers, redirect: 'manual' });
}

// Signs in as `as`, or as a fresh user of this scenario.
async function signIn(as) {
  const user = as ?? `conf-${scenario.replace(/[^A-Za-z0-9]/g, '-')}-${Date.now()}`.slice(0, 64);
  const resp = await fetch(`${app}/signin?user=${encodeURIComponent(user)}`, { redirect: 'manual' });
  const set = resp.headers.get('set-cookie') ?? '';
  cookie = set.split(';')[0];
  if (!cookie.startsWith('idp_session=')) throw new Error(`sign-in failed: ${resp.status}`);
}

// Opens a URL of the app and follows redirects like a browser (the app's
// cookie only to the app) until a page answers; returns its status and text.
async function browse(url) {
  let current = url;
  for (let hop = 0; hop < 12; hop++) {
    const onApp = current.startsWith(app);
    const resp = onApp ? await appFetch(current) : await fetch(current, { redirect: 'manual' });
    const location = resp.headers.get('location');
    if (resp.status >= 300 && resp.status < 400 && location) {
      current = new URL(location, current).toString();
      continue;
    }
    return { status: resp.status, text: await resp.text() };
  }
  throw new Error(`too many redirects from ${url}`);
}

async function connect(loginUrl) {
  const { status, text } = await browse(loginUrl);
  if (status !== 200 || !text.includes('Connected')) {
    throw new Error(`connecting failed (${status}): ${text.replace(/<[^>]+>/g, ' ').trim().slice(0, 300)}`);
  }
  log('connected');
}

let nextId = 1;
async function mcp(method, params, { notification = false } = {}) {
  const message = { jsonrpc: '2.0', method, ...(params && { params }) };
  if (!notification) message.id = nextId++;
  for (let attempt = 0; ; attempt++) {
    const headers = { 'content-type': 'application/json' };
    if (session) headers['mcp-session-id'] = session;
    const resp = await appFetch(`/api/mcp?url=${encodeURIComponent(serverUrl)}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(message),
    });
    const sid = resp.headers.get('mcp-session-id');
    if (sid) session = sid;
    if (resp.status === 202) return null;
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401 && body.error === 'authorization_required') {
      if (attempt >= MAX_AUTHORIZATIONS) {
        throw new Error(`${method}: still unauthorized after ${attempt} authorizations (${body.reason})`);
      }
      log(`${method}: authorization required (${body.reason}); authorizing`);
      await connect(body.reauthorize_url);
      continue;
    }
    if (resp.status !== 200) throw new Error(`${method}: HTTP ${resp.status} ${JSON.stringify(body)}`);
    if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
    return body.result;
  }
}

// What the client answers a server's input request (multi-round-trip
// requests): accept an elicitation with values for its schema, list no
// roots, answer a sampling with a fixed text.
function answerInput(request) {
  switch (request?.method) {
    case 'elicitation/create':
      return { action: 'accept', content: argumentsFor({ inputSchema: request.params?.requestedSchema }) };
    case 'roots/list':
      return { roots: [] };
    case 'sampling/createMessage':
      return { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'conformance' };
    default:
      return {};
  }
}

// tools/call, answering what the server asks first: the retry is a new
// request with the answers and the server's requestState as received.
async function callTool(send, tool) {
  const params = { name: tool.name, arguments: argumentsFor(tool) };
  let result = await send('tools/call', params);
  for (let round = 0; round < 3 && result?.resultType === 'input_required'; round++) {
    const inputResponses = Object.fromEntries(
      Object.entries(result.inputRequests ?? {}).map(([key, req]) => [key, answerInput(req)]));
    const retry = { ...params, inputResponses };
    if ('requestState' in result) retry.requestState = result.requestState;
    result = await send('tools/call', retry);
  }
  return result;
}

function argumentsFor(tool) {
  const props = tool.inputSchema?.properties ?? {};
  const args = {};
  for (const [name, schema] of Object.entries(props)) {
    args[name] = schema.type === 'number' || schema.type === 'integer' ? 1 : schema.type === 'boolean' ? true : 'x';
  }
  return args;
}

const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}');
let ownApp = null;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// The issuer named by the server's resource metadata (from the challenge
// to an unauthenticated initialize, else the well-known locations).
async function issuerOf(url) {
  const init = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} }),
  });
  const challenge = init.headers.get('www-authenticate') ?? '';
  const u = new URL(url);
  const candidates = [
    /resource_metadata="([^"]+)"/.exec(challenge)?.[1],
    `${u.origin}/.well-known/oauth-protected-resource${u.pathname}`,
    `${u.origin}/.well-known/oauth-protected-resource`,
  ].filter(Boolean);
  for (const c of candidates) {
    const r = await fetch(c);
    if (r.ok) return (await r.json()).authorization_servers[0];
  }
  throw new Error(`no resource metadata for ${url}`);
}

// The operator's token of a scenario's own app (its /admin/app routes act
// as the app itself, with no person).
const ADMIN_TOKEN = `conformance-operator-${'x'.repeat(32)}`;

async function startOwnApp(issuer, extra = {}, vars = []) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const port = await freePort();
  const entry = {
    issuer,
    client_id: context.client_id,
    client_secret_name: 'CONFORMANCE_CLIENT_SECRET',
    // The app's client serves only the resources named for it: here the
    // scenario's server, whose metadata may name its origin or a path.
    resources: [new URL(serverUrl).origin],
    ...extra,
  };
  const child = spawn(process.execPath, [
    path.join(root, 'node_modules/wrangler/bin/wrangler.js'), 'dev',
    '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', '0',
    '--show-interactive-dev-session=false',
    '--persist-to', mkdtempSync(path.join(os.tmpdir(), 'idp-conformance-')),
    '--var', `IDP_PRE_REGISTERED:${JSON.stringify([entry])}`,
    '--var', `CONFORMANCE_CLIENT_SECRET:${context.client_secret ?? ''}`,
    '--var', `IDP_CLIENT_METADATA_URL:${process.env.IDP_CLIENT_METADATA_URL ?? ''}`,
    '--var', `IDP_METADATA_DOCUMENT_WITHOUT_ISS:${process.env.IDP_METADATA_DOCUMENT_WITHOUT_ISS ?? ''}`,
    '--var', `IDP_ADMIN_TOKEN:${ADMIN_TOKEN}`,
    ...vars.flatMap((v) => ['--var', v]),
  ], { cwd: root, stdio: 'ignore', detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' } });
  ownApp = child;
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    try {
      const r = await fetch(`${origin}/api/providers`);
      if (r.status === 401) return origin;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('the scenario\'s own app did not start');
}

function stopOwnApp() {
  if (ownApp) {
    try { process.kill(-ownApp.pid, 'SIGTERM'); } catch {}
  }
}

// The client credentials scenarios: the app connects the server as itself
// (`POST /admin/app/connect`), then talks MCP as itself
// (`POST /admin/app/mcp`), with no person and no browser.
async function asApp(connectBody) {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const connected = await fetch(`${app}/admin/app/connect?url=${encodeURIComponent(serverUrl)}`, {
    method: 'POST',
    headers: connectBody ? { ...auth, 'content-type': 'application/json' } : auth,
    body: connectBody ? JSON.stringify(connectBody) : undefined,
  });
  const text = await connected.text();
  if (connected.status !== 200) throw new Error(`connecting as the app failed (${connected.status}): ${text}`);
  log('connected as the app');
  let version = null;
  const call = async (method, params) => {
    const headers = { ...auth, 'content-type': 'application/json' };
    if (version) headers['mcp-protocol-version'] = version;
    if (session) headers['mcp-session-id'] = session;
    const resp = await fetch(`${app}/admin/app/mcp?url=${encodeURIComponent(serverUrl)}`, {
      method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    });
    version = resp.headers.get('mcp-protocol-version') ?? version;
    session = resp.headers.get('mcp-session-id') ?? session;
    const body = await resp.json().catch(() => ({}));
    if (resp.status !== 200 || body.error) throw new Error(`${method}: HTTP ${resp.status} ${JSON.stringify(body)}`);
    return body.result;
  };
  const discovered = await call('server/discover', {}).catch(() => null);
  if (!discovered) {
    await call('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'idp-conformance-client', version: '0.1.0' } });
  }
  const { tools = [] } = (await call('tools/list', {})) ?? {};
  for (const tool of tools) await callTool(call, tool);
  log('called', tools.length, 'tools as the app');
}

try {
  // private_key_jwt: the app's client signs its assertions with the key
  // the scenario hands over (kept, as a deployment would, in a secret).
  const keyed = scenario === 'auth/client-credentials-jwt' && context.private_key_pem;
  if (scenario.startsWith('auth/client-credentials') && (context.client_secret || keyed)) {
    const vars = keyed ? [`CONFORMANCE_CLIENT_SECRET:${context.private_key_pem}`] : [];
    const method = keyed ? 'private_key_jwt' : 'client_secret_basic';
    app = await startOwnApp(await issuerOf(serverUrl), { auth_method: method }, vars);
    log('own app with the machine client at', app);
    await asApp();
    stopOwnApp();
    process.exit(0);
  }
  // Workload identity federation: the app's public client at the issuer,
  // and the workload's identity token the scenario hands over, presented
  // with the JWT bearer grant.
  if (scenario === 'auth/wif-jwt-bearer' && context.valid_jwt) {
    app = await startOwnApp(await issuerOf(serverUrl), { client_secret_name: undefined });
    log('own app with the workload client at', app);
    await asApp({ workload_token: context.valid_jwt });
    stopOwnApp();
    process.exit(0);
  }
  // Enterprise-managed authorization: the app knows the enterprise's
  // identity provider, and the person's ID token from it (here handed over
  // by the scenario) is exchanged for an ID-JAG, with no browser.
  const enterprise = scenario === 'auth/enterprise-managed-authorization' && context.idp_id_token;
  const vars = enterprise
    ? [`IDP_ENTERPRISE_IDP:${JSON.stringify({
      issuer: context.idp_issuer,
      token_endpoint: context.idp_token_endpoint,
      client_id: context.idp_client_id,
    })}`]
    : [];
  if (context.client_id && context.client_secret) {
    app = await startOwnApp(await issuerOf(serverUrl), {}, vars);
    log('own app with the pre-registered client at', app);
  }
  // The app takes an ID token only from the person it names (its `sub` is
  // the signed-in user id): sign in as the scenario's person.
  const subject = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()).sub;
  await signIn(enterprise ? subject(context.idp_id_token) : undefined);
  if (enterprise) {
    const resp = await appFetch(`/api/connect/enterprise?url=${encodeURIComponent(serverUrl)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id_token: context.idp_id_token }),
    });
    const text = await resp.text();
    if (resp.status !== 200) throw new Error(`enterprise connection failed (${resp.status}): ${text}`);
    log('connected with the enterprise ID token');
  } else {
    await connect(`${app}/oauth/login?url=${encodeURIComponent(serverUrl)}`);
  }
  // Revision 2026-07-28 first (`server/discover`, no session); a server
  // of an earlier revision answers it with an error: `initialize` then.
  const discovered = await mcp('server/discover', {}).catch((e) => {
    log('server/discover:', e.message, '- initializing');
    return null;
  });
  if (discovered) {
    log('discovered', discovered?._meta?.['io.modelcontextprotocol/serverInfo']?.name ?? '');
  } else {
    const init = await mcp('initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'idp-conformance-client', version: '0.1.0' },
    });
    log('initialized', init?.serverInfo?.name ?? '');
    await mcp('notifications/initialized', undefined, { notification: true });
  }
  const { tools = [] } = (await mcp('tools/list', {})) ?? {};
  log('tools', tools.map((t) => t.name).join(', '));
  // A scenario that names the calls to make (with their arguments, some of
  // them null or unsafe for a header) gets exactly those.
  if (Array.isArray(context.toolCalls)) {
    for (const { name, arguments: args } of context.toolCalls) {
      if (!tools.some((t) => t.name === name)) continue;
      await mcp('tools/call', { name, arguments: args ?? {} });
      log('called', name, 'as the scenario asked');
    }
    stopOwnApp();
    process.exit(0);
  }
  for (const tool of tools) {
    // A tool that echoes a schema gets another tool's inputSchema, as this
    // client received it (JSON Schema 2020-12 preservation).
    const echo = tool.name === 'json_schema_echo' && tools.find((t) => t.name !== tool.name);
    if (echo) {
      await mcp('tools/call', { name: tool.name, arguments: { schema: echo.inputSchema } });
      log('called', tool.name, 'with', echo.name, 'schema');
      continue;
    }
    await callTool(mcp, tool);
    log('called', tool.name);
  }
  stopOwnApp();
  process.exit(0);
} catch (e) {
  log('failed:', e.message);
  stopOwnApp();
  process.exit(1);
}
