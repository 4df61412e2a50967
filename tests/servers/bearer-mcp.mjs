// An MCP server that takes Bearer tokens only, built the way the MCP
// TypeScript SDK's documentation builds one: its `requireBearerAuth`
// middleware in front of a Streamable HTTP server, its
// `mcpAuthMetadataRouter` serving RFC 9728 metadata that names the
// authorization server (oidc-provider, which offers DPoP). Nothing here says
// DPoP: a token sent as `Authorization: DPoP` is refused by the middleware
// (401, `WWW-Authenticate: Bearer error="invalid_token", ...`).
//
// - POST /mcp: the MCP server (stateless), tool `whoami` (the token's sub).
// - GET /mcp/whoami: the same behind the same middleware, as plain JSON.
// - GET /__stats: the Authorization schemes seen and the answers given;
//   POST /__stats resets them.
//
// Access tokens are checked as a resource server does: a JWT from the issuer
// (its JWKS), with the resource as audience, not expired, and not bound to a
// key (a bound token sent as Bearer is refused, RFC 9449 §7.2).
//
// Usage: node bearer-mcp.mjs --issuer URL [--port N]
// Prints one JSON line {"origin": ..., "port": ...} when ready; 127.0.0.1 only.

import { parseArgs } from 'node:util';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import {
  mcpAuthMetadataRouter,
  getOAuthProtectedResourceMetadataUrl,
} from '@modelcontextprotocol/sdk/server/auth/router.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '0' }, issuer: { type: 'string' } },
});
if (!args.issuer) {
  console.error('--issuer is required');
  process.exit(2);
}
const issuer = args.issuer;
const oauthMetadata = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const jwks = createRemoteJWKSet(new URL(oauthMetadata.jwks_uri));

const app = express();
const server = app.listen(Number(args.port), '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const resource = new URL(`${origin}/mcp`);

const stats = { schemes: {}, statuses: {} };
const countOf = (map, key) => (map[key] = (map[key] ?? 0) + 1);

const verifier = {
  async verifyAccessToken(token) {
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience: resource.href });
      if (payload.cnf) throw new Error('a DPoP-bound token sent as Bearer');
      return {
        token,
        clientId: String(payload.client_id ?? ''),
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
        expiresAt: payload.exp,
        resource,
        extra: { sub: payload.sub },
      };
    } catch (err) {
      throw new InvalidTokenError(err.message);
    }
  },
};

app.use((req, res, next) => {
  if (!req.path.startsWith('/__')) {
    const scheme = (req.headers.authorization ?? 'none').split(' ')[0];
    countOf(stats.schemes, scheme);
    res.on('finish', () => countOf(stats.statuses, String(res.statusCode)));
  }
  next();
});
app.get('/__stats', (req, res) => res.json(stats));
app.post('/__stats', (req, res) => {
  stats.schemes = {};
  stats.statuses = {};
  res.json({});
});

app.use(
  mcpAuthMetadataRouter({
    oauthMetadata,
    resourceServerUrl: resource,
    scopesSupported: ['api:read'],
    resourceName: 'Bearer-only MCP server',
  }),
);
const bearer = requireBearerAuth({
  verifier,
  resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(resource),
});

app.get('/mcp/whoami', bearer, (req, res) => res.json({ sub: req.auth.extra.sub }));

app.post('/mcp', bearer, express.json(), async (req, res) => {
  const mcp = new McpServer({ name: 'bearer-only', version: '1.0.0' });
  mcp.registerTool(
    'whoami',
    { description: 'The subject of the token', annotations: { readOnlyHint: true } },
    // A tool without an input schema is called with `extra` alone.
    async (extra) => ({
      content: [{ type: 'text', text: String(extra.authInfo?.extra?.sub ?? '') }],
    }),
  );
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    transport.close();
    mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res, req.body);
});

console.log(JSON.stringify({ origin, port }));
