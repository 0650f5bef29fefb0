// <spot-candle>: one card. The element and its data-* attributes are the
// contract with the component (it renders them; Datastar morphs them in by
// id); this only shows them. Values go in as text, never markup; the styles
// are a constructed stylesheet (the page's policy allows no inline style).
//
// Every change of the element's attributes (a patch) is announced with a
// bubbling `spot-candle` event, which the chart follows.

const KNOWN = ['product', 'granularity', 'timestamp', 'open', 'high', 'low', 'close', 'volume', 'complete'];
const LABELS = {
  ONE_MINUTE: '1 minute', FIVE_MINUTES: '5 minutes', FIFTEEN_MINUTES: '15 minutes', THIRTY_MINUTES: '30 minutes',
  ONE_HOUR: '1 hour', TWO_HOURS: '2 hours', SIX_HOURS: '6 hours', ONE_DAY: '1 day',
};

// Decimals written in a decimal string ("0.00000921" -> 8).
function decimals(s) {
  const dot = (s ?? '').indexOf('.');
  return dot < 0 ? 0 : s.length - dot - 1;
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

const candleStyle = new CSSStyleSheet();
candleStyle.replaceSync(`
  :host { display: block; background: #fff; border: 1px solid #d5dde6; border-radius: 8px; padding: .6rem .8rem; }
  :host(:hover) { border-color: #9aa3b2; }
  .charted { box-shadow: inset 3px 0 0 #2962ff; margin: -.6rem -.8rem; padding: .6rem .8rem; border-radius: 8px; }
  .head { display: flex; justify-content: space-between; gap: .5rem; }
  .title { font-weight: 600; }
  .state { font-size: .75rem; padding: 0 .4rem; border-radius: 1rem; background: #eef1f5; color: #69788a; }
  .state.live { background: #e3f6ef; color: #11795f; }
  .time { color: #69788a; font-size: .85rem; }
  .price { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; margin-top: .2rem; }
  .change { font-variant-numeric: tabular-nums; font-size: .9rem; }
  .up .price, .up .change { color: #1a9c8c; } .down .price, .down .change { color: #d9434a; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .75rem; margin: .4rem 0 0; font-size: .9rem; }
  dt { color: #69788a; } dd { margin: 0; font-variant-numeric: tabular-nums; text-align: right; overflow-wrap: anywhere; }
  dt.extra, dd.extra { color: #6b4fbb; }
  .age { color: #8a96a6; font-size: .75rem; margin-top: .3rem; }
`);

const cards = new Set();

customElements.define('spot-candle', class extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [candleStyle];
    const make = (tag, cls, parent) => {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      parent?.append(e);
      return e;
    };
    this.box = make('div', 'box', root);
    const head = make('div', 'head', this.box);
    make('span', 'title', head);
    make('span', 'state', head);
    make('div', 'time', this.box);
    make('div', 'price', this.box);
    make('div', 'change', this.box);
    this.list = make('dl', '', this.box);
    make('div', 'age', this.box);
    this.updatedAt = null;
    // Any attribute, not a fixed list: a component may add its own data-*.
    new MutationObserver(() => this.changed()).observe(this, { attributes: true });
  }
  connectedCallback() {
    cards.add(this);
    this.changed();
  }
  disconnectedCallback() { cards.delete(this); }
  changed() {
    if (this.dataset.timestamp) this.updatedAt = Date.now();
    this.render();
    this.dispatchEvent(new CustomEvent('spot-candle', { bubbles: true, detail: { ...this.dataset } }));
  }
  // Whether the chart follows this card (the #market section says which).
  get charted() {
    const m = document.getElementById('market')?.dataset;
    return !!m && m.product === this.dataset.product && m.chart === this.dataset.granularity;
  }
  render() {
    const r = this.shadowRoot, d = this.dataset, q = (s) => r.querySelector(s);
    this.box.classList.toggle('charted', this.charted);
    q('.title').textContent = `${d.product ?? ''} · ${LABELS[d.granularity] ?? d.granularity ?? ''}`;
    const state = q('.state');
    state.textContent = d.timestamp ? (d.complete === 'true' ? 'complete' : 'live') : 'waiting';
    state.classList.toggle('live', !!d.timestamp && d.complete !== 'true');
    const t = Number(d.timestamp);
    const time = q('.time');
    if (d.timestamp && Number.isFinite(t)) {
      const at = new Date(t * 1000);
      time.textContent = d.granularity === 'ONE_DAY'
        ? at.toLocaleDateString(undefined, { dateStyle: 'medium' })
        : at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
      time.title = `${at.toISOString().replace('.000Z', 'Z')} (UTC)`;
    } else {
      time.textContent = '';
      time.title = '';
    }
    q('.price').textContent = d.close ?? '';
    const open = Number(d.open), close = Number(d.close);
    const change = q('.change');
    this.box.classList.remove('up', 'down');
    if (d.open && d.close && Number.isFinite(open) && Number.isFinite(close)) {
      const diff = close - open;
      const places = Math.min(12, Math.max(decimals(d.open), decimals(d.close)));
      const pct = open !== 0 ? (diff / open) * 100 : 0;
      const sign = diff > 0 ? '+' : diff < 0 ? '−' : '';
      // Two decimals of a percent, four for a change below a hundredth of one.
      const pctPlaces = diff !== 0 && Math.abs(pct) < 0.01 ? 4 : 2;
      change.textContent = `${sign}${Math.abs(diff).toFixed(places)} (${sign}${Math.abs(pct).toFixed(pctPlaces)}%)`;
      if (diff > 0) this.box.classList.add('up');
      if (diff < 0) this.box.classList.add('down');
    } else {
      change.textContent = '';
    }
    // open, high, low, close, volume, then whatever else the component sent.
    const rows = ['open', 'high', 'low', 'close', 'volume'].map((k) => [k, d[k], false]);
    for (const name of this.getAttributeNames()) {
      const k = name.slice(5);
      if (name.startsWith('data-') && !KNOWN.includes(k)) rows.push([k, this.getAttribute(name), true]);
    }
    this.list.replaceChildren(...rows.flatMap(([k, v, extra]) => {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v ?? '';
      dd.dataset.k = k;
      if (extra) { dt.className = 'extra'; dd.className = 'extra'; }
      return [dt, dd];
    }));
    this.tick();
  }
  tick() {
    this.shadowRoot.querySelector('.age').textContent = this.updatedAt ? `updated ${ago(Date.now() - this.updatedAt)}` : '';
  }
});

// The ages move on their own.
setInterval(() => { for (const c of cards) c.tick(); }, 1000);

window.spotCards = { refresh: () => { for (const c of cards) c.render(); }, LABELS, decimals };
