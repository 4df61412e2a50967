// A public upstream whose answers never stop (as far as a relay can tell),
// on 127.0.0.1 only, for the relay cap's tests (tests/relay.rs).
//
// - ANY /endless: 200 application/octet-stream, 64 KiB chunks as fast as the
//   reader takes them (backpressure kept), until --limit bytes (512 MiB by
//   default: the server itself is bounded, so a test always ends) or until
//   the reader goes away. `?declare=N`: says so first (`Content-Length: N`,
//   and sends at most N bytes).
// - ANY /mcp: the same as an MCP server's event stream (text/event-stream,
//   comments only: the JSON-RPC answer never comes).
// - ANY /ok: 200 {"ok": true}.
// - GET /__log: {"streams": [{path, method, sent, finished, closed}]}: per
//   endless answer, the bytes written, whether it reached --limit, and
//   whether the reader went away first (the upstream request was ended).
//
// Usage: node endless.mjs [--port N] [--limit BYTES]
// Prints one JSON line {"origin": ..., "port": ...} when ready.

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    limit: { type: 'string', default: String(512 * 1024 * 1024) },
  },
});
const defaultLimit = Number(args.limit);
const CHUNK = 64 * 1024;
const streams = [];

function endless(req, res, contentType, chunk) {
  const entry = { path: req.url, method: req.method, sent: 0, finished: false, closed: false };
  streams.push(entry);
  const declare = new URL(req.url, 'http://x').searchParams.get('declare');
  const headers = { 'content-type': contentType, 'cache-control': 'no-store' };
  let limit = defaultLimit;
  if (declare) {
    limit = Math.min(limit, Number(declare));
    headers['content-length'] = String(limit);
  }
  res.writeHead(200, headers);
  res.on('close', () => {
    if (!entry.finished) entry.closed = true;
  });
  const pump = () => {
    while (!res.destroyed && entry.sent < limit) {
      const part = chunk.subarray(0, Math.min(chunk.length, limit - entry.sent));
      entry.sent += part.length;
      if (!res.write(part)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed && entry.sent >= limit) {
      entry.finished = true;
      res.end();
    }
  };
  pump();
}

const octets = Buffer.alloc(CHUNK, 'x');
const events = Buffer.from(`: ${'x'.repeat(CHUNK - 4)}\n\n`);

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  // Drain any request body (a forwarded POST, an MCP message) unread.
  req.resume();
  if (path === '/endless') return endless(req, res, 'application/octet-stream', octets);
  if (path === '/mcp') return endless(req, res, 'text/event-stream', events);
  if (path === '/ok') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ ok: true }));
  }
  if (path === '/__log') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ streams }));
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'not_found' }));
});

await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const { port } = server.address();
console.log(JSON.stringify({ origin: `http://127.0.0.1:${port}`, port }));
process.on('SIGTERM', () => process.exit(0));
