// The dashboard page's stylesheet (inline, allowed by its hash in the page's CSP). Tile colours say the instance's
// state; tier colours are the same in the share bar, the chart and the legend.
export const DASHBOARD_STYLE = `
:root { --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --card: #fff; --bg: #f4f6f9;
  --zone: #2e90fa; --city: #7a5af8; --region: #06aed4; --remote: #f79009; --none: #d92d20;
  --ok: #12b76a; --bad: #d92d20; --warn: #f79009; --probe: #eaaa08; --off: #98a2b3; }
* { box-sizing: border-box; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--ink); background: var(--bg); }
header { display: flex; align-items: center; gap: 1rem; padding: .7rem 1.4rem; background: #101828; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; letter-spacing: .02em; }
header .where { color: #98a2b3; }
#status { margin-left: auto; display: flex; align-items: center; gap: .4rem; color: #d0d5dd; }
#status::before { content: ""; width: .6rem; height: .6rem; border-radius: 50%; background: var(--off); }
#status.live::before { background: var(--ok); box-shadow: 0 0 0 3px rgba(18,183,106,.25); }
#status.bad::before { background: var(--bad); }
main { padding: 1rem 1.4rem 2rem; display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr) 22rem; }
.wide { grid-column: 1 / -1; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; min-width: 0; }
h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 .6rem; font-weight: 600; }
.muted { color: var(--muted); }
#totals { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 1rem; }
.figure { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem 1rem; }
.figure b { display: block; font-size: 1.5rem; font-variant-numeric: tabular-nums; font-weight: 600; }
.figure span { color: var(--muted); font-size: .75rem; text-transform: uppercase; letter-spacing: .05em; }
.region { margin-bottom: .9rem; }
.region > h3 { font-size: .95rem; margin: 0 0 .4rem; }
.cities { display: flex; flex-wrap: wrap; gap: .7rem; }
.city { border: 1px dashed #c8cdd6; border-radius: 8px; padding: .5rem; background: #fafbfc; }
.city > h4 { margin: 0 0 .4rem; font-size: .8rem; color: var(--muted); font-weight: 600; }
.zones { display: flex; flex-wrap: wrap; gap: .5rem; }
.zone-card { border: 1px solid var(--line); border-radius: 6px; background: #fff; padding: .45rem; min-width: 12.5rem; }
.zone-card.own { border-color: var(--zone); box-shadow: 0 0 0 1px var(--zone); }
.zone-head { display: flex; align-items: baseline; gap: .4rem; margin-bottom: .35rem; }
.zone-head b { font-size: .9rem; }
.zone-head .own-badge { font-size: .65rem; background: var(--zone); color: #fff; border-radius: 3px; padding: 0 .3rem; }
.zone-figs { font-size: .72rem; color: var(--muted); font-variant-numeric: tabular-nums; margin-bottom: .35rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(11.5rem, 1fr)); gap: .35rem; }
.tile { border-radius: 5px; padding: .3rem .45rem; border-left: 4px solid var(--ok); background: #ecfdf3; font-variant-numeric: tabular-nums; }
.tile .svc { font-weight: 600; font-size: .78rem; }
.tile .addr { font-size: .7rem; color: var(--muted); }
.tile .figs { font-size: .72rem; }
.tile .state { float: right; font-size: .66rem; text-transform: uppercase; letter-spacing: .04em; font-weight: 600; color: #067647; }
.tile.ejected { border-color: var(--bad); background: #fef3f2; } .tile.ejected .state { color: var(--bad); }
.tile.probing { border-color: var(--probe); background: #fefbe8; } .tile.probing .state { color: #a15c07; }
.tile.panic { border-color: var(--warn); background: #fffaeb; } .tile.panic .state { color: #b54708; }
.tile.unhealthy { border-color: var(--off); background: #f2f4f7; color: var(--muted); } .tile.unhealthy .state { color: var(--muted); }
.empty { font-size: .72rem; color: var(--muted); font-style: italic; }
#share-bar { display: flex; height: 1.1rem; border-radius: 4px; overflow: hidden; background: #eaecf0; margin-bottom: .45rem; }
#share-bar div { transition: width .4s; }
.legend { display: flex; flex-wrap: wrap; gap: .3rem .8rem; font-size: .78rem; font-variant-numeric: tabular-nums; }
.legend span::before { content: ""; display: inline-block; width: .65rem; height: .65rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; background: var(--c); }
.t-zone { --c: var(--zone); background: var(--zone); } .t-city { --c: var(--city); background: var(--city); }
.t-region { --c: var(--region); background: var(--region); } .t-remote { --c: var(--remote); background: var(--remote); }
.t-none { --c: var(--none); background: var(--none); }
.legend span { background: none; }
#chart { width: 100%; height: 90px; display: block; margin-top: .6rem; background: #fafbfc; border-radius: 4px; }
#chart .zone { fill: var(--zone); } #chart .city { fill: var(--city); } #chart .region { fill: var(--region); }
#chart .remote { fill: var(--remote); } #chart .none { fill: var(--none); }
#events { list-style: none; margin: 0; padding: 0; max-height: 26rem; overflow: auto; font-size: .78rem; }
#events li { padding: .3rem 0 .3rem .55rem; border-left: 3px solid var(--ok); margin-bottom: .25rem; background: #f9fafb; }
#events li.warn { border-color: var(--bad); }
#events time { color: var(--muted); font-variant-numeric: tabular-nums; margin-right: .35rem; }
#events .kind { font-weight: 600; margin-right: .35rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .72rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; }
code { font: .76rem ui-monospace, SFMono-Regular, Menlo, monospace; background: #f2f4f7; border-radius: 3px; padding: 0 .25rem; margin-right: .2rem; white-space: nowrap; }
.pill { display: inline-block; border-radius: 999px; padding: 0 .5rem; font-size: .72rem; font-weight: 600; background: #ecfdf3; color: #067647; }
.pill.bad { background: #fef3f2; color: var(--bad); } .pill.off { background: #f2f4f7; color: var(--muted); }
.kv { display: grid; grid-template-columns: auto 1fr; gap: .15rem .8rem; font-variant-numeric: tabular-nums; margin-bottom: .5rem; }
form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; }
label { display: flex; flex-direction: column; font-size: .72rem; color: var(--muted); }
input, select, button { font: inherit; padding: .25rem .4rem; border: 1px solid #d0d5dd; border-radius: 4px; }
button { background: #101828; color: #fff; border-color: #101828; cursor: pointer; }
#token-form { background: #fffaeb; border: 1px solid #fedf89; padding: .6rem 1rem; border-radius: 8px; }
#token-form[hidden] { display: none; }
pre { background: #f9fafb; padding: .7rem; border: 1px solid var(--line); overflow: auto; margin: .6rem 0 0; font-size: .75rem; }
@media (max-width: 1000px) { main { grid-template-columns: 1fr; } #totals { grid-template-columns: repeat(2, 1fr); } }
`;
