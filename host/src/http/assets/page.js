// The page's own script (the page's Content-Security-Policy allows no
// inline script): the stream without Datastar, the picker, the chart.

// ---- The stream ------------------------------------------------------------
// #stream's data-init names the subscription (`@get('/stream?…')`). Datastar,
// when the page names it, opens it. Without Datastar (not named because the
// server found it unreachable, or its load failed), the browser's own
// EventSource does (it reconnects with Last-Event-ID), and each event's
// elements are patched in by id, which is what Datastar does with these
// events. <html data-stream="fallback"> says so. Either way, changing
// data-init changes the subscription.
function streamUrl() {
  const init = document.getElementById('stream')?.dataset.init ?? '';
  return /@get\('([^']+)'/.exec(init)?.[1];
}

function openFallback() {
  const url = streamUrl();
  if (!url) return;
  window.spotStream?.close();
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

function fallback() {
  if (document.documentElement.dataset.stream === 'fallback') return;
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', openFallback, { once: true });
  else openFallback();
}

// The Datastar script's load error (resource errors do not bubble, but a
// capturing listener sees them; this script runs before that one loads).
document.addEventListener('error', (e) => {
  if (e.target && e.target.id === 'datastar') fallback();
}, true);

// ---- The picker, the chart ---------------------------------------------------
document.addEventListener('DOMContentLoaded', () => {
  if (!document.getElementById('datastar')) fallback();
  else document.documentElement.dataset.stream ??= 'datastar';

  const market = document.getElementById('market');
  const chart = window.LightweightCharts
    ? new window.SpotChart(document.getElementById('chart'), document.getElementById('chart-status'))
    : null;
  const title = document.getElementById('chart-title');
  const showChart = () => {
    const { product, chart: g } = market.dataset;
    title.textContent = `${product} · ${window.spotCards.LABELS[g] ?? g}`;
    window.spotCards.refresh();
    chart?.show(product, g);
  };
  showChart();

  // A card chosen: the chart shows its granularity.
  document.getElementById('candles').addEventListener('click', (e) => {
    const card = e.target.closest?.('spot-candle');
    if (!card || card.dataset.granularity === market.dataset.chart) return;
    market.dataset.chart = card.dataset.granularity;
    form.elements.chart.value = card.dataset.granularity;
    history.replaceState(null, '', location.pathname + '?' + query());
    showChart();
  });

  // The picker: a new subscription and new cards, without a reload.
  const form = document.getElementById('picker');
  const message = document.getElementById('picker-message');
  const query = () => {
    const q = new URLSearchParams();
    q.set('product', form.elements.product.value);
    const ticked = [...form.querySelectorAll('input[name=granularity]:checked')].map((b) => b.value);
    const all = form.querySelectorAll('input[name=granularity]').length;
    if (ticked.length < all) for (const g of ticked) q.append('granularity', g);
    q.set('chart', market.dataset.chart);
    return q.toString();
  };
  const apply = (e) => {
    e?.preventDefault();
    const product = form.elements.product.value;
    const ticked = [...form.querySelectorAll('input[name=granularity]:checked')].map((b) => b.value);
    if (ticked.length === 0) {
      message.textContent = 'Tick at least one granularity.';
      return;
    }
    message.textContent = '';
    if (!ticked.includes(market.dataset.chart)) market.dataset.chart = ticked[0];
    form.elements.chart.value = market.dataset.chart;
    market.dataset.product = product;
    const cards = document.getElementById('candles');
    cards.replaceChildren(...ticked.map((g) => {
      const el = document.createElement('spot-candle');
      el.id = `${product}-${g}`;
      el.dataset.product = product;
      el.dataset.granularity = g;
      return el;
    }));
    const q = query();
    const stream = new URLSearchParams({ product });
    if (ticked.length < form.querySelectorAll('input[name=granularity]').length) for (const g of ticked) stream.append('granularity', g);
    const s = document.getElementById('stream');
    s.dataset.init = s.dataset.init.replace(/@get\('[^']*'/, `@get('/stream?${stream}'`);
    history.pushState(null, '', `/?${q}`);
    document.title = `${product} · spot`;
    showChart();
    if (document.documentElement.dataset.stream === 'fallback') openFallback();
  };
  form.addEventListener('submit', apply);
  form.addEventListener('change', apply);
  window.addEventListener('popstate', () => location.reload());
});
