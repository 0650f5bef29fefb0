// The page's own script, served as /assets/page.js (the page's
// Content-Security-Policy allows no inline script).

// Without the Datastar client (its CDN blocked, down or offline), the page
// still streams: the browser's own EventSource (which reconnects with
// Last-Event-ID) and a patch by element id, which is what Datastar does with
// these events. <html data-stream="fallback"> says it is in use. This script
// runs before the Datastar module loads, so a capturing listener sees its
// load fail (resource errors do not bubble, but they are captured).
function spotFallback() {
  if (window.spotStream) return;
  const init = document.getElementById('stream')?.dataset.init ?? '';
  const url = /@get\('([^']+)'/.exec(init)?.[1];
  if (!url) return;
  const es = new EventSource(url);
  es.addEventListener('datastar-patch-elements', (e) => {
    const html = e.data.split('\n').filter((l) => l.startsWith('elements ')).map((l) => l.slice(9)).join('\n');
    const t = document.createElement('template');
    t.innerHTML = html;
    for (const el of [...t.content.children]) if (el.id) document.getElementById(el.id)?.replaceWith(el);
  });
  window.spotStream = es;
  document.documentElement.dataset.stream = 'fallback';
}
document.addEventListener('error', (e) => {
  if (e.target && e.target.id === 'datastar') {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', spotFallback);
    else spotFallback();
  }
}, true);

// <spot-candle>: shows its data-* attributes; values go in as text, never
// markup. Its styles are a constructed stylesheet (no inline <style>).
const spotCandleStyle = new CSSStyleSheet();
spotCandleStyle.replaceSync(`
  :host { display: block; background: #fff; border: 1px solid #d5dde6; border-radius: 6px; padding: .6rem .8rem; }
  .title { font-weight: 600; } .state { float: right; font-size: .8rem; color: #69788a; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .75rem; margin: .4rem 0 0; }
  dt { color: #69788a; } dd { margin: 0; font-variant-numeric: tabular-nums; text-align: right; }
  :host([data-complete="true"]) .state { color: #2d7a3a; }
`);
customElements.define('spot-candle', class extends HTMLElement {
  static get observedAttributes() {
    return ['data-product', 'data-granularity', 'data-timestamp', 'data-open', 'data-high',
            'data-low', 'data-close', 'data-volume', 'data-complete'];
  }
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [spotCandleStyle];
    const make = (tag, cls) => { const e = document.createElement(tag); if (cls) e.className = cls; return e; };
    const head = make('div');
    head.append(make('span', 'title'), make('span', 'state'));
    const dl = make('dl');
    for (const k of ['open', 'high', 'low', 'close', 'volume']) {
      const dt = make('dt');
      dt.textContent = k;
      const dd = make('dd');
      dd.dataset.k = k;
      dl.append(dt, dd);
    }
    root.append(head, make('div', 'time'), dl);
  }
  connectedCallback() { this.render(); }
  attributeChangedCallback() { this.render(); }
  render() {
    const r = this.shadowRoot, d = this.dataset;
    r.querySelector('.title').textContent = `${d.product || ''} ${d.granularity || ''}`;
    r.querySelector('.state').textContent =
      d.timestamp ? (d.complete === 'true' ? 'complete' : 'live') : 'waiting';
    const t = Number(d.timestamp);
    r.querySelector('.time').textContent = d.timestamp && Number.isFinite(t) ? new Date(t * 1000).toISOString() : '';
    for (const dd of r.querySelectorAll('dd')) dd.textContent = d[dd.dataset.k] ?? '';
  }
});
