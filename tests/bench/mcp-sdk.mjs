// The comparison row of the benchmark: the MCP TypeScript SDK's client auth
// (`auth()` and the `withOAuth` fetch wrapper, with an in-memory client
// provider), run against the same local authorization server and API.
//
// Usage: node mcp-sdk.mjs --issuer URL --origin URL --short-issuer URL --short-origin URL
//          [--calls 50] [--seconds 4]
// Prints one JSON object: outbound requests for a first and a repeat login;
// the per-call cost of `withOAuth` (8 callers back to back against the API,
// interleaved with the same requests carrying the same token set by hand);
// and for concurrent calls on an expired token: token requests, successes
// and whether the grant survived.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { auth, extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { withOAuth } from '@modelcontextprotocol/sdk/client/middleware.js';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    origin: { type: 'string' },
    'short-issuer': { type: 'string' },
    'short-origin': { type: 'string' },
    calls: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '4' },
  },
});
const REDIRECT = 'http://127.0.0.1:9/callback';

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.lastAuthorizationUrl = undefined;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: 'mcp sdk bench',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  redirectToAuthorization(url) { this.lastAuthorizationUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

// A browser stand-in: follows redirects by hand with a cookie jar.
async function browse(start) {
  const jar = new Map();
  let url = new URL(start);
  for (let i = 0; i < 20; i += 1) {
    if (url.href.startsWith(REDIRECT)) return url;
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`${url} answered ${res.status} without a redirect`);
    url = new URL(location, url);
  }
  throw new Error('too many redirects');
}

async function stats(base, reset = false) {
  const res = await fetch(`${base}/__stats`, { method: reset ? 'POST' : 'GET' });
  return res.json();
}

// Requests the client made: everything at the API, and at the authorization
// server everything but the pages the person's browser loads.
function clientRequests(as, rs) {
  const browser = new Set(['GET /auth', 'GET /auth/:uid', 'GET /interaction']);
  const atAs = Object.entries(as).filter(([k]) => !browser.has(k)).reduce((n, [, v]) => n + v, 0);
  const atRs = Object.values(rs.requests).reduce((n, v) => n + v, 0);
  return atAs + atRs;
}

async function login(provider, resource) {
  const first = await fetch(resource);
  const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(first);
  let result = await auth(provider, { serverUrl: resource, resourceMetadataUrl, scope });
  if (result !== 'REDIRECT') throw new Error(`expected a redirect, got ${result}`);
  const back = await browse(provider.lastAuthorizationUrl);
  const code = back.searchParams.get('code');
  result = await auth(provider, { serverUrl: resource, resourceMetadataUrl, scope, authorizationCode: code });
  if (result !== 'AUTHORIZED') throw new Error(`expected AUTHORIZED, got ${result}`);
}

async function countedLogin(provider, issuer, origin, resource) {
  await stats(issuer, true);
  await stats(origin, true);
  await login(provider, resource);
  return clientRequests(await stats(issuer), await stats(origin));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const provider = new MemoryProvider();
const firstLogin = await countedLogin(provider, args.issuer, args.origin, `${args.origin}/api`);
// A repeat login: another resource on the same issuer, keeping the client
// registration (tokens are per resource).
provider.saved = undefined;
const repeatLogin = await countedLogin(provider, args.issuer, args.origin, `${args.origin}/v1`);

// Per-call cost of the fetch wrapper: `withOAuth` against the same request
// with the same token attached by hand (equal work at the API).
async function closedLoop(call, callers, ms) {
  const latencies = [];
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const res = await call();
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`a call answered ${res.status}`);
      latencies.push(performance.now() - t);
    }
  }));
  return latencies;
}
const p50 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const callProvider = new MemoryProvider();
const callApi = `${args.origin}/api`;
await login(callProvider, callApi);
const wrapped = withOAuth(callProvider, callApi)(fetch);
const byHand = () => fetch(`${callApi}/items`, {
  headers: { authorization: `Bearer ${callProvider.saved.access_token}` },
});
const rounds = 4;
const slice = (Number(args.seconds) * 1000) / rounds / 2;
const [viaWrapper, viaHand] = [[], []];
await closedLoop(() => wrapped(`${callApi}/items`), 2, 300);
for (let i = 0; i < rounds; i += 1) {
  viaWrapper.push(...(await closedLoop(() => wrapped(`${callApi}/items`), 8, slice)));
  viaHand.push(...(await closedLoop(byHand, 8, slice)));
}
const perCall = {
  callers: 8,
  with_oauth_p50_ms: p50(viaWrapper),
  by_hand_p50_ms: p50(viaHand),
  p50_ratio: p50(viaWrapper) / p50(viaHand),
  requests: viaWrapper.length + viaHand.length,
};

// Concurrent calls on an expired token, through the SDK's fetch wrapper.
const shortProvider = new MemoryProvider();
const api = `${args['short-origin']}/api`;
await login(shortProvider, api);
const authedFetch = withOAuth(shortProvider, api)(fetch);
const ttlWait = 11000; // the short-lived issuer's tokens live 10 s
await sleep(ttlWait);
await stats(args['short-issuer'], true);
const n = Number(args.calls);
const results = await Promise.allSettled(Array.from({ length: n }, () => authedFetch(`${api}/items`)));
const succeeded = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200).length;
const tokenRequests = (await stats(args['short-issuer']))['POST /token'] ?? 0;
// Did the grant survive? Let the token expire and try once more.
await sleep(ttlWait);
let survived = false;
try {
  const res = await authedFetch(`${api}/items`);
  survived = res.status === 200;
} catch {
  survived = false;
}

console.log(JSON.stringify({
  first_login: firstLogin,
  repeat_login: repeatLogin,
  per_call: perCall,
  concurrent: { calls: n, token_requests: tokenRequests, succeeded, grant_survived: survived },
}));
