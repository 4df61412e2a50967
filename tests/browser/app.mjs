// A person using the example app in a real browser (Debian's chromium,
// driven by playwright-core; no browser download): sign in, connect an API
// through the confirmation page, connect another from the app's own form in
// one click, connect an MCP server and see its tools, see the rows, call the
// API, see that an upstream's answer plants no link, remove a connection.
//
// Usage: node tests/browser/app.mjs --app ORIGIN --api URL --api2 URL --shots DIR
// Exits 0 when every step held; prints what failed otherwise.

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    api: { type: 'string' },
    api2: { type: 'string' },
    mcp: { type: 'string' },
    hostile: { type: 'string' },
    shots: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});

function check(cond, what) {
  if (!cond) throw new Error(`step failed: ${what}`);
  console.error(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const page = await (await browser.newContext()).newPage();
page.setDefaultTimeout(20000);
let failed = null;
try {
  // Sign in (the demo's stand-in for a real sign-in).
  await page.goto(`${args.app}/signin?user=alice`);
  check((await page.textContent('body')).includes('Signed in as alice'), 'signed in');

  // A link from elsewhere (here: a typed URL) asks before connecting.
  await page.goto(`${args.app}/oauth/login?url=${encodeURIComponent(args.api)}`);
  check((await page.textContent('h1')).includes('to your account?'), 'confirmation page shown');
  await page.screenshot({ path: `${args.shots}/confirm.png` });
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Connected');
  check((await page.textContent('body')).includes(args.api), 'connected after confirming');
  await page.click('text=Continue');

  // The app's own connect form works in one click.
  await page.fill('input[name=url]', args.api2);
  await page.click('form[action="/oauth/login"] button');
  await page.waitForSelector('text=Connected');
  check(true, 'connected from the app form in one click');
  await page.click('text=Continue');

  // An MCP server: listed by its own name, with its tools.
  await page.fill('input[name=url]', args.mcp);
  await page.click('form[action="/oauth/login"] button');
  await page.waitForSelector('text=Connected');
  await page.click('text=Continue');
  const mcpRow = page.locator(`#providers tr:has-text("Demo MCP")`);
  await mcpRow.waitFor();
  check((await mcpRow.textContent()).includes('echo, whoami'), 'the MCP server is listed with its tools');

  // All three rows are listed.
  await page.waitForSelector(`#providers tr:has-text("${args.api2}")`);
  const rows = await page.locator('#providers tr').count();
  check(rows === 3, `three providers listed (${rows})`);
  await page.screenshot({ path: `${args.shots}/home.png` });

  // Call the API through the app.
  const row = page.locator(`#providers tr:has-text("${args.api}")`).first();
  await row.locator('button:has-text("Use")').click();
  await page.fill('#target', `${args.api}/items`);
  await page.click('#call button');
  await page.waitForFunction(() => document.getElementById('answer').textContent.length > 0);
  const answer = await page.textContent('#answer');
  check(answer.startsWith('200') && answer.includes('"authorization":true'), `called with a token: ${answer.slice(0, 120)}`);

  // An upstream answer cannot plant a javascript: link on the app's page.
  await page.fill('#target', `${args.hostile}/r/jslink`);
  await page.click('#call button');
  await page.waitForFunction(() => document.getElementById('answer').textContent.startsWith('401'));
  const links = await page.locator('#answer a').count();
  check(links === 0 && (await page.title()) !== 'pwned', `no link from a javascript: URL (${links})`);

  // Nor an "Authorize" link to another site, from a 401 that copies the
  // app's own answer; the app's own answer links its login route.
  await page.fill('#target', `${args.hostile}/r/plant`);
  await page.click('#call button');
  await page.waitForFunction(() => document.getElementById('answer').textContent.includes('evil.example'));
  const planted = await page.locator('#answer a').count();
  check(planted === 0, `no link from an upstream's planted answer (${planted})`);
  // Not even one to the app's own login route (connecting what the upstream
  // chose): the answer is marked as the upstream's.
  const to = encodeURIComponent('/oauth/login?url=https://evil.example/planted');
  await page.fill('#target', `${args.hostile}/r/plant?to=${to}`);
  await page.click('#call button');
  await page.waitForFunction(() => document.getElementById('answer').textContent.includes('planted'));
  const same = await page.locator('#answer a').count();
  check(same === 0, `no link from an upstream's answer naming the app's login route (${same})`);
  await page.fill('#target', `${args.hostile}/r/fresh/items`);
  await page.click('#call button');
  await page.waitForSelector('#answer a');
  const href = new URL(await page.locator('#answer a').getAttribute('href'));
  check(href.origin === new URL(args.app).origin && href.pathname === '/oauth/login', `the app's own answer links its login route (${href})`);

  // Remove one connection.
  await row.locator('button:has-text("Remove")').click();
  await page.waitForFunction(() => document.querySelectorAll('#providers tr').length === 2);
  const left = await page.locator('#providers tr').count();
  check(left === 2, `two providers left after removal (${left})`);
  await page.screenshot({ path: `${args.shots}/removed.png` });
} catch (e) {
  failed = e;
  await page.screenshot({ path: `${args.shots}/failure.png` }).catch(() => {});
}
await browser.close();
if (failed) {
  console.error(failed.message);
  process.exit(1);
}
console.log(JSON.stringify({ ok: true }));
