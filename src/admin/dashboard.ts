// The admin listener's `GET /`: one self-contained page over the JSON API (no assets, no framework). It reads
// /admin/upstreams and /admin/routes every few seconds and asks /admin/explain on demand; with `adminToken` set it
// asks for the token once and keeps it for the browser tab. Data is written with textContent only.
import { createHash } from 'node:crypto';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f7f8fa; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
.muted { color: #6b7280; } .bad { color: #b42318; font-weight: 600; } .ok { color: #067647; font-weight: 600; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: .8rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; font-variant-numeric: tabular-nums; }
th { background: #eef0f4; font-weight: 600; }
form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; }
label { display: flex; flex-direction: column; font-size: .8rem; color: #4b5563; }
input, select, button { font: inherit; padding: .25rem .4rem; }
pre { background: #fff; padding: .8rem; border: 1px solid #e5e7eb; overflow: auto; }
#token-form[hidden] { display: none; }
`;

const SCRIPT = `
const headers = () => { const t = sessionStorage.getItem('zonegate-token'); return t ? { authorization: 'Bearer ' + t } : {}; };
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
const row = (cells, tag = 'td') => { const tr = el('tr'); for (const c of cells) tr.append(c instanceof Node ? c : el(tag, c)); return tr; };
async function api(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) { document.getElementById('token-form').hidden = false; throw new Error('the admin token is needed'); }
  if (!res.ok) throw new Error(path + ' answered ' + res.status);
  return res.json();
}
function upstreams(services) {
  const box = document.getElementById('upstreams'); box.replaceChildren();
  if (services.length === 0) box.append(el('p', 'no services yet', 'muted'));
  for (const s of services) {
    box.append(el('h3', s.service + ' — ' + s.healthy + '/' + s.registered + ' healthy'));
    const table = el('table');
    table.append(row(['instance', 'address', 'zone', 'city', 'region', 'weight', 'health', 'breaker', 'in flight'], 'th'));
    for (const i of s.instances) {
      const health = el('td', i.ejected ? 'ejected' : i.healthy ? 'healthy' : 'unhealthy', i.healthy ? 'ok' : 'bad');
      const breaker = el('td', i.breaker, i.breaker === 'closed' ? '' : 'bad');
      table.append(row([i.id, i.address, i.zone, i.city ?? '—', i.region ?? '—', i.weight, health, breaker, i.inFlight]));
    }
    box.append(table);
  }
}
function routes(list) {
  const table = document.getElementById('routes'); table.replaceChildren();
  table.append(row(['route', 'match', 'service', 'sticky', 'remote', 'rate limit'], 'th'));
  for (const r of list) {
    const match = [r.match.methods ? r.match.methods.join(',') : '', r.match.host ?? '', r.match.path ?? (r.match.prefix + '*')].filter(Boolean).join(' ');
    const service = r.weighted ? r.weighted.map((w) => w.service + ' ' + w.weight).join(', ') : r.service;
    const sticky = r.sticky ? Object.entries(r.sticky).map(([k, v]) => k + ' ' + v).join(' ') : '—';
    table.append(row([r.name, match, service, sticky, r.locality.remote, r.rateLimit ? r.rateLimit.key : '—']));
  }
}
async function refresh() {
  try {
    const [s, r] = await Promise.all([api('/admin/upstreams'), api('/admin/routes')]);
    upstreams(s); routes(r.routes);
    document.getElementById('status').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) { document.getElementById('status').textContent = err.message; }
}
document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault(); sessionStorage.setItem('zonegate-token', document.getElementById('token').value);
  document.getElementById('token-form').hidden = true; refresh();
});
document.getElementById('explain-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  for (const name of ['path', 'method', 'region', 'key']) { const v = document.getElementById('x-' + name).value; if (v) q.set(name, v); }
  try { document.getElementById('explained').textContent = JSON.stringify(await api('/admin/explain?' + q), null, 2); }
  catch (err) { document.getElementById('explained').textContent = err.message; }
});
refresh(); setInterval(refresh, 3000);
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own script and style may run: its hashes, nothing else. */
export const DASHBOARD_CSP = `default-src 'none'; script-src ${sha256(SCRIPT)}; style-src ${sha256(STYLE)}; connect-src 'self'; form-action 'none'; frame-ancestors 'none'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zonegate</title><meta name="viewport" content="width=device-width">
<style>${STYLE}</style></head>
<body>
<h1>zonegate</h1><p class="muted" id="status">loading…</p>
<form id="token-form" hidden><label>admin token<input id="token" type="password" autocomplete="off"></label><button>use</button></form>
<h2>Upstreams</h2><div id="upstreams"></div>
<h2>Routes</h2><table id="routes"></table>
<h2>Explain</h2>
<form id="explain-form">
<label>path<input id="x-path" value="/" required></label>
<label>method<select id="x-method"><option>GET</option><option>HEAD</option><option>POST</option><option>PUT</option><option>PATCH</option><option>DELETE</option><option>OPTIONS</option></select></label>
<label>X-Region-ID<input id="x-region" placeholder="zone, city or region"></label>
<label>sticky key<input id="x-key"></label>
<button>explain</button>
</form>
<pre id="explained" class="muted">which route, tier and instance would serve the request, and why</pre>
<script>${SCRIPT}</script>
</body></html>
`;
