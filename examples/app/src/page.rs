//! The example's two pages. Data is loaded by script from the JSON API and
//! inserted as text, never as HTML.

use idp::workers::pages::escape;
use idp::workers::Config;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}\
input[type=url]{width:28rem}table{border-collapse:collapse}td,th{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:left}\
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:20rem}";

pub fn signed_out() -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>idp example</title><style>{STYLE}</style></head><body>\
<h1>idp example</h1><p>This demo stands in for a real session with a cookie.</p>\
<form action=\"/signin\"><label>User id <input name=\"user\" value=\"alice\" pattern=\"[A-Za-z0-9._@-]{{1,64}}\"></label> <button>Sign in</button></form></body></html>"
    )
}

pub fn home(user: &str, config: &Config) -> String {
    let login = format!("{}/login", config.prefix);
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>idp example</title><style>{STYLE}</style></head><body>
<h1>idp example</h1>
<p>Signed in as <b>{user}</b> (demo cookie). <a href="/signin">Switch user</a></p>
<h2>Connect a resource</h2>
<form action="{login}" method="get"><input type="url" name="url" required placeholder="https://api.example.com/v1"> <input name="account" placeholder="account (optional: work, home)" pattern="[A-Za-z0-9._@+-]{{1,64}}"> <button>Connect</button></form>
<h2>Connected</h2>
<table><thead><tr><th>Resource</th><th>Account</th><th>Name</th><th>Token</th><th>Expires</th><th>MCP tools</th><th></th></tr></thead><tbody id="providers"></tbody></table>
<h2>Events</h2>
<table><thead><tr><th>When</th><th>Resource</th><th>Account</th><th>Event</th><th>Detail</th></tr></thead><tbody id="events"></tbody></table>
<h2>Call a URL</h2>
<form id="call"><input type="url" id="target" required> <input id="as" placeholder="account (optional)"> <button>Call</button></form>
<pre id="answer"></pre>
<script>
const $ = (id) => document.getElementById(id);
// The only place a button built from server data may send the person: the
// app's own login route on this origin (never another site, javascript: or data:).
const LOGIN = {login_js};
function ownLogin(u) {{ try {{ const x = new URL(u, location.href); return (x.origin === location.origin && x.pathname === LOGIN) ? x.href : null; }} catch (_) {{ return null; }} }}
function cell(row, text) {{ const td = row.insertCell(); td.textContent = text; return td; }}
function button(td, label, onclick) {{ const b = document.createElement('button'); b.textContent = label; b.onclick = onclick; td.append(b, ' '); }}
async function load() {{
  const list = await (await fetch('/api/providers')).json();
  const body = $('providers'); body.textContent = '';
  for (const p of list) {{
    const row = body.insertRow();
    // `&account=` for a connection beside the first at its resource.
    const acct = p.account ? 'account=' + encodeURIComponent(p.account) : '';
    cell(row, p.resource_url); cell(row, p.account || ''); cell(row, p.name);
    cell(row, p.public ? 'public' : (p.has_token ? 'yes' : 'no'));
    cell(row, p.expires_at ? new Date(p.expires_at * 1000).toLocaleTimeString() : '');
    cell(row, (p.metadata && p.metadata.mcp && Array.isArray(p.metadata.mcp.tools)) ? p.metadata.mcp.tools.join(', ') : '');
    const actions = cell(row, '');
    button(actions, 'Use', () => {{ $('target').value = p.resource_url; $('as').value = p.account || ''; }});
    button(actions, 'Refresh', async () => {{ await fetch('/api/refresh' + (acct ? '?' + acct : ''), {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify({{urls: [p.resource_url]}})}}); load(); }});
    button(actions, 'Reconnect', () => {{ const u = ownLogin(p.reauthorize_url); if (u) location.href = u; }});
    button(actions, 'Remove', async () => {{ await fetch('/api/providers?url=' + encodeURIComponent(p.resource_url) + (acct ? '&' + acct : ''), {{method: 'DELETE'}}); load(); }});
  }}
  const events = await (await fetch('/api/events')).json();
  const log = $('events'); log.textContent = '';
  for (const e of events.slice(0, 20)) {{
    const row = log.insertRow();
    cell(row, new Date(e.at * 1000).toLocaleTimeString()); cell(row, e.resource); cell(row, e.account || '');
    cell(row, e.event.replace(/_/g, ' ')); cell(row, e.message || e.reason || '');
  }}
}}
$('call').onsubmit = async (e) => {{
  e.preventDefault();
  const as = $('as').value.trim();
  const r = await fetch('/api/fetch?url=' + encodeURIComponent($('target').value) + (as ? '&account=' + encodeURIComponent(as) : ''));
  const text = await r.text();
  $('answer').textContent = r.status + '\n' + text;
  // Only the app's own answer may offer to authorize: one relayed from the
  // upstream (Idp-Relayed) is the upstream's, whatever its body says.
  const own = !r.headers.has('idp-relayed');
  try {{ const j = JSON.parse(text); const u = ownLogin(j.reauthorize_url); if (own && r.status === 401 && j.error === 'authorization_required' && u) {{
    const a = document.createElement('a'); a.href = u; a.textContent = 'Authorize'; $('answer').append('\n', a);
  }} }} catch (_) {{}}
}};
load();
</script></body></html>"#,
        user = escape(user),
        login_js = script_string(&login),
        login = escape(&login),
    )
}

/// `text` as a JavaScript string literal inside a `<script>` element: JSON,
/// with `<` escaped so it cannot close the element.
fn script_string(text: &str) -> String {
    serde_json::to_string(text)
        .unwrap_or_default()
        .replace('<', "\\u003c")
}
