// The same conformance scenarios run with the MCP TypeScript SDK's client
// (@modelcontextprotocol/sdk from the repository's package-lock.json), for
// the side-by-side figures in README.md: its Streamable HTTP transport with
// an in-memory OAuth client provider; the person's browser is a redirect
// follower. Connects, lists tools and calls each, authorizing at most three
// times.
//
// Usage (by the suite): node sdk-client.mjs <server URL>

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const serverUrl = new URL(process.argv.at(-1));
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}');
const REDIRECT = 'http://127.0.0.1:9/callback';
const CIMD = 'https://conformance-test.local/client-metadata.json';

class MemoryProvider {
  constructor() {
    this.client = context.client_id
      ? { client_id: context.client_id, client_secret: context.client_secret }
      : undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadataUrl() { return CIMD; }
  get clientMetadata() {
    return {
      client_name: 'mcp sdk conformance',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: context.client_secret ? 'client_secret_basic' : 'none',
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

async function codeFrom(start) {
  let url = new URL(start);
  for (let i = 0; i < 10; i += 1) {
    if (url.href.startsWith(REDIRECT)) return url.searchParams.get('code');
    const res = await fetch(url, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (!location) throw new Error(`${url} answered ${res.status} without a redirect`);
    url = new URL(location, url);
  }
  throw new Error('too many redirects');
}

const provider = new MemoryProvider();
let authorizations = 0;
async function withAuth(step) {
  for (;;) {
    try {
      return await step();
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || authorizations >= 3 || !provider.authorizationUrl) throw e;
      authorizations += 1;
      const code = await codeFrom(provider.authorizationUrl);
      provider.authorizationUrl = undefined;
      await transport.finishAuth(code);
    }
  }
}

let transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
const client = new Client({ name: 'mcp-sdk-conformance', version: '1.0.0' });
try {
  await withAuth(async () => {
    transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    await client.connect(transport);
  });
  const { tools } = await withAuth(() => client.listTools());
  for (const tool of tools) {
    await withAuth(() => client.callTool({ name: tool.name, arguments: {} }));
  }
  await client.close();
  process.exit(0);
} catch (e) {
  console.error('failed:', e.message);
  process.exit(1);
}
