// The admin listener's `GET /`: one self-contained page (inline style and script, no assets, no framework): the
// topology as regions → cities → zones with an instance tile each, coloured by health, ejection and breaker state,
// live figures per instance and zone, the tier share over the last minute, rate-limit decisions, an event list and
// the routes. It is live through server-sent events (/admin/live, dashboard-script.ts says how it authenticates).
import { createHash } from 'node:crypto';
import { DASHBOARD_SCRIPT } from './dashboard-script.ts';
import { DASHBOARD_STYLE } from './dashboard-style.ts';

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own script and style may run: its hashes, nothing else; it talks to its own origin only. */
export const DASHBOARD_CSP = `default-src 'none'; script-src ${sha256(DASHBOARD_SCRIPT)}; style-src ${sha256(DASHBOARD_STYLE)}; connect-src 'self'; form-action 'none'; frame-ancestors 'none'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zonegate</title><meta name="viewport" content="width=device-width">
<style>${DASHBOARD_STYLE}</style></head>
<body>
<header><h1>zonegate</h1><span class="where" id="where"></span><span id="status">connecting…</span></header>
<main>
<form id="token-form" class="wide" hidden><label>admin token<input id="token" type="password" autocomplete="off"></label><button>use</button></form>
<div id="totals" class="wide">
<div class="figure"><b id="f-rps">–</b><span>requests/s</span></div>
<div class="figure"><b id="f-err">–</b><span>error rate (5xx)</span></div>
<div class="figure"><b id="f-p99">–</b><span>p99 latency</span></div>
<div class="figure"><b id="f-inflight">–</b><span>in flight upstream</span></div>
<div class="figure"><b id="f-limited">–</b><span>rate-limited/s</span></div>
</div>
<section class="card"><h2>Topology <span class="muted">· last 5 s</span></h2><div id="topology"></div></section>
<div>
<section class="card" id="tier-share"><h2>Served by tier <span class="muted">· last minute</span></h2>
<div id="share-bar"></div><div class="legend" id="share-legend"></div>
<svg id="chart" viewBox="0 0 600 90" preserveAspectRatio="none" aria-label="requests per second by tier, last 60 s"></svg>
<div class="muted" id="share-total"></div></section>
<section class="card"><h2>Rate limits and discovery</h2>
<div class="kv"><span>Redis</span><span><span id="redis-state" class="pill off">–</span></span><span>Consul</span><span><span id="consul-state" class="pill off">–</span></span></div>
<div class="muted" id="decided"></div><table id="limits"></table></section>
<section class="card"><h2>Events</h2><ol id="events"></ol></section>
</div>
<section class="card wide"><h2>Routes <span class="muted">· in match order, first match wins</span></h2><table id="routes"></table></section>
<section class="card wide"><h2>Explain</h2>
<form id="explain-form">
<label>path<input id="x-path" value="/" required></label>
<label>method<select id="x-method"><option>GET</option><option>HEAD</option><option>POST</option><option>PUT</option><option>PATCH</option><option>DELETE</option><option>OPTIONS</option></select></label>
<label>X-Region-ID<input id="x-region" placeholder="zone, city or region"></label>
<label>sticky key<input id="x-key"></label>
<button>explain</button>
</form>
<pre id="explained" class="muted">which route, tier and instance would serve the request, and why</pre></section>
</main>
<script>${DASHBOARD_SCRIPT}</script>
</body></html>
`;
