// The dashboard page's script (inline, allowed by its hash in the page's CSP; no framework). It takes a ticket from
// /admin/live/ticket (with the admin token when one is set), opens /admin/live with it as an EventSource and redraws
// from each frame; the routes table comes from /admin/routes, again after each reload event. Data is written with
// textContent only.
export const DASHBOARD_SCRIPT = `
const TIER_NAMES = ['zone', 'city', 'region', 'remote', 'none'];
const $ = (id) => document.getElementById(id);
const headers = () => { const t = sessionStorage.getItem('zonegate-token'); return t ? { authorization: 'Bearer ' + t } : {}; };
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; };
const row = (cells, tag = 'td') => { const tr = el('tr'); for (const c of cells) tr.append(c instanceof Node ? c : el(tag, c)); return tr; };
const rate = (n) => (n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString());
const pct = (n) => (n === 0 ? '0%' : n < 0.001 ? '<0.1%' : (n * 100).toFixed(n < 0.1 ? 1 : 0) + '%');
const ms = (n) => (n === null ? '–' : n < 10 ? n.toFixed(1) + ' ms' : n < 1000 ? Math.round(n) + ' ms' : (n / 1000).toFixed(1) + ' s');
const clock = (at) => new Date(at).toLocaleTimeString([], { hour12: false });
class NeedsToken extends Error {}
async function api(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) { $('token-form').hidden = false; throw new NeedsToken('the admin token is needed'); }
  if (!res.ok) throw new Error(path + ' answered ' + res.status);
  return res.json();
}
function status(text, cls) { $('status').textContent = text; $('status').className = cls; }

function tile(i) {
  const t = el('div', undefined, 'tile ' + i.state);
  t.dataset.instance = i.id; t.dataset.state = i.state;
  t.append(el('span', i.state === 'probing' ? 'half-open' : i.state, 'state'), el('div', i.service, 'svc'), el('div', i.address, 'addr'));
  let figs = rate(i.perSecond) + '/s · ' + pct(i.errorRate) + ' err · p99 ' + ms(i.p99Ms) + ' · ' + i.inFlight + ' in flight';
  if (i.failedTriesPerSecond > 0) figs += ' · ' + rate(i.failedTriesPerSecond) + ' failed tries/s';
  t.append(el('div', figs, 'figs'));
  t.title = i.id + ' — breaker ' + i.breaker;
  return t;
}
function zone(z, own) {
  const box = el('div', undefined, 'zone-card' + (own ? ' own' : ''));
  box.dataset.zone = z.zone;
  const head = el('div', undefined, 'zone-head');
  head.append(el('b', z.zone));
  if (own) head.append(el('span', 'gateway zone', 'own-badge'));
  box.append(head, el('div', rate(z.perSecond) + ' req/s · ' + pct(z.errorRate) + ' err · p99 ' + ms(z.p99Ms) + ' · ' + z.inFlight + ' in flight', 'zone-figs'));
  const tiles = el('div', undefined, 'tiles');
  for (const i of z.instances) tiles.append(tile(i));
  if (z.instances.length === 0) tiles.append(el('div', 'no instances', 'empty'));
  box.append(tiles);
  return box;
}
function topology(frame) {
  const box = $('topology'); box.replaceChildren();
  for (const r of frame.regions) {
    const region = el('div', undefined, 'region');
    region.append(el('h3', r.region ?? 'zones outside the topology (remote for every caller)'));
    const cities = el('div', undefined, 'cities');
    for (const c of r.cities) {
      const city = el('div', undefined, 'city');
      if (c.city) city.append(el('h4', c.city));
      const zones = el('div', undefined, 'zones');
      for (const z of c.zones) zones.append(zone(z, z.zone === frame.zone));
      city.append(zones); cities.append(city);
    }
    region.append(cities); box.append(region);
  }
}
function tiers(frame) {
  const total = frame.tiers.counts.reduce((a, b) => a + b, 0);
  const bar = $('share-bar'); bar.replaceChildren();
  const legend = $('share-legend'); legend.replaceChildren();
  TIER_NAMES.forEach((name, i) => {
    const share = total === 0 ? 0 : frame.tiers.counts[i] / total;
    if (name === 'none' && share === 0) return;
    const seg = el('div', undefined, 't-' + name); seg.style.width = (share * 100) + '%'; bar.append(seg);
    const item = el('span', name + ' ' + pct(share), 't-' + name);
    item.dataset.tier = name; item.dataset.share = String(share);
    legend.append(item);
  });
  $('share-total').textContent = total.toLocaleString() + ' requests in the last minute';
  const svg = $('chart'); svg.replaceChildren();
  const series = frame.tiers.series;
  const peak = Math.max(1, ...series.map((s) => s.reduce((a, b) => a + b, 0)));
  const width = 600 / 61;
  series.forEach((second, index) => {
    let y = 90;
    const x = (61 - series.length + index) * width;
    second.forEach((count, tier) => {
      if (count === 0) return;
      const h = (count / peak) * 86;
      y -= h;
      const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      rect.setAttribute('x', String(x)); rect.setAttribute('y', String(y));
      rect.setAttribute('width', String(width - 1)); rect.setAttribute('height', String(h));
      rect.setAttribute('class', TIER_NAMES[tier]);
      svg.append(rect);
    });
  });
}
function totals(frame) {
  const t = frame.totals;
  $('f-rps').textContent = rate(t.perSecond); $('f-err').textContent = pct(t.errorRate);
  $('f-p99').textContent = ms(t.p99Ms); $('f-inflight').textContent = String(t.inFlight);
  $('f-limited').textContent = rate(frame.routes.reduce((sum, r) => sum + r.limitedPerSecond, 0));
}
let lastEventId = 0;
function events(frame) {
  const list = $('events');
  for (const e of frame.events) {
    if (e.id <= lastEventId) continue;
    lastEventId = e.id;
    if (e.kind === 'reload') void loadRoutes();
    const item = el('li', undefined, e.level);
    item.dataset.kind = e.kind;
    item.append(el('time', clock(e.at)), el('span', e.kind, 'kind'));
    const subject = e.instance ?? e.service ?? e.datacenter;
    if (subject) item.append(el('b', subject + ' '));
    item.append(document.createTextNode(e.message));
    list.prepend(item);
  }
  while (list.children.length > 100) list.lastChild.remove();
  if (list.children.length === 0 && !$('no-events')) list.append(Object.assign(el('li', 'nothing has happened yet', 'muted'), { id: 'no-events' }));
  else if (list.children.length > 1) $('no-events')?.remove();
}
function rateLimits(frame) {
  const rl = frame.rateLimits;
  const redis = $('redis-state');
  redis.textContent = rl.redis; redis.className = 'pill' + (rl.redis === 'unavailable' ? ' bad' : rl.redis === 'available' ? '' : ' off');
  const d = rl.decidedPerSecond;
  $('decided').textContent = 'Redis ' + rate(d.redis) + '/s · lease ' + rate(d.lease) + '/s · deny cache ' + rate(d.denyCache) + '/s · fallback ' + rate(d.fallback) + '/s';
  const consul = $('consul-state');
  if (frame.consul === null) { consul.textContent = 'not used'; consul.className = 'pill off'; }
  else if (frame.consul.unreachable.length > 0) { consul.textContent = 'unreachable: ' + frame.consul.unreachable.join(', '); consul.className = 'pill bad'; }
  else { consul.textContent = 'answering'; consul.className = 'pill'; }
  const table = $('limits'); table.replaceChildren();
  table.append(row(['route', 'allowed/s', 'limited/s'], 'th'));
  const limited = frame.routes.filter((r) => r.limited);
  for (const r of limited) table.append(row([r.name, rate(r.perSecond - r.limitedPerSecond), rate(r.limitedPerSecond)]));
  if (limited.length === 0) table.append(row([Object.assign(el('td', 'no route has a rate limit', 'muted'), { colSpan: 3 })]));
}
let routeFigures = new Map();
function routeLive() {
  for (const tr of $('routes').querySelectorAll('tr[data-route]')) {
    const r = routeFigures.get(tr.dataset.route);
    tr.querySelector('.rps').textContent = r ? rate(r.perSecond) : '0.0';
    tr.querySelector('.err').textContent = r ? pct(r.errorRate) : '0%';
    tr.querySelector('.p99').textContent = r ? ms(r.p99Ms) : '–';
  }
}
function matchCell(m) {
  const td = el('td');
  const part = (label, value) => { td.append(el('code', label + ' ' + value)); };
  if (m.methods) part('methods', m.methods.join(','));
  if (m.host) part('host', m.host);
  if (m.path !== undefined) part('path', m.path); else part('prefix', m.prefix);
  for (const [name, value] of Object.entries(m.headers ?? {})) part('header', name + ': ' + value);
  return td;
}
async function loadRoutes() {
  const { routes } = await api('/admin/routes');
  const table = $('routes'); table.replaceChildren();
  table.append(row(['route', 'match', 'service', 'req/s', 'err', 'p99', 'sticky', 'remote', 'rate limit'], 'th'));
  for (const r of routes) {
    const service = r.weighted ? r.weighted.map((w) => w.service + ' ' + w.weight).join(', ') : r.service;
    const sticky = r.sticky ? Object.entries(r.sticky).map(([k, v]) => k + ' ' + v).join(' ') : '–';
    const limit = r.rateLimit ? r.rateLimit.key + ' · ' + (r.rateLimit.rate.text ?? r.rateLimit.rate) + (r.rateLimit.burst ? ' · burst ' + r.rateLimit.burst : '') : '–';
    const tr = row([r.name, matchCell(r.match), service, el('td', '', 'num rps'), el('td', '', 'num err'), el('td', '', 'num p99'), sticky, r.locality.remote, limit]);
    tr.dataset.route = r.name; table.append(tr);
  }
  routeLive();
}
function render(frame) {
  totals(frame); topology(frame); tiers(frame); events(frame); rateLimits(frame);
  routeFigures = new Map(frame.routes.map((r) => [r.name, r])); routeLive();
  $('where').textContent = 'gateway zone ' + frame.zone;
  status('live · ' + clock(frame.at), 'live');
}
let source;
async function connect() {
  source?.close();
  let ticket;
  try { ticket = (await api('/admin/live/ticket')).ticket; }
  catch (err) { status(err.message, 'bad'); if (!(err instanceof NeedsToken)) setTimeout(connect, 3000); return; }
  source = new EventSource('/admin/live?ticket=' + encodeURIComponent(ticket));
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => {
    status('reconnecting…', 'bad');
    // a stream refused (its ticket expired while it reconnected) is not retried by the browser: a new ticket is
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
  loadRoutes().catch((err) => status(err.message, 'bad'));
}
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault(); sessionStorage.setItem('zonegate-token', $('token').value);
  $('token-form').hidden = true; void connect();
});
$('explain-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  for (const name of ['path', 'method', 'region', 'key']) { const v = $('x-' + name).value; if (v) q.set(name, v); }
  try { $('explained').textContent = JSON.stringify(await api('/admin/explain?' + q), null, 2); }
  catch (err) { $('explained').textContent = err.message; }
});
void connect();
`;
