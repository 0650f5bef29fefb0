// The candlestick chart of the chosen product and granularity: the last
// buckets from /api/candles (with volume), then live from the stream. It
// follows the <spot-candle> element of that pair: whatever the component
// renders there (the element is the contract), the chart reads the same
// attributes. Drawn by TradingView Lightweight Charts (a canvas: nothing it
// shows becomes markup).

const HISTORY = 300;

class SpotChart {
  constructor(box, status) {
    this.box = box;
    this.status = status;
    this.bars = new Map(); // time -> {time, open, high, low, close, volume}
    this.key = null;
    this.generation = 0;
    const LC = window.LightweightCharts;
    this.chart = LC.createChart(box, {
      autoSize: true,
      layout: { background: { color: '#ffffff' }, textColor: '#3b4656', attributionLogo: false },
      grid: { vertLines: { color: '#eef1f5' }, horzLines: { color: '#eef1f5' } },
      rightPriceScale: { borderColor: '#d5dde6' },
      timeScale: { borderColor: '#d5dde6', timeVisible: true, secondsVisible: false, rightOffset: 3, barSpacing: 10, maxBarSpacing: 30,
        tickMarkFormatter: (t, type) => {
          const d = new Date(t * 1000);
          return type < 3 ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
            : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
        } },
      localization: { timeFormatter: (t) => new Date(t * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) },
      crosshair: { mode: 0 },
    });
    this.candles = this.chart.addSeries(LC.CandlestickSeries, {
      upColor: '#1a9c8c', downColor: '#d9434a', borderVisible: false, wickUpColor: '#1a9c8c', wickDownColor: '#d9434a',
    });
    this.volume = this.chart.addSeries(LC.HistogramSeries, {
      priceFormat: { type: 'volume' }, priceScaleId: '', lastValueVisible: false, priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    document.addEventListener('spot-candle', (e) => this.fromElement(e.detail));
  }

  // Show `product` at `granularity`: its history, then what its element says.
  async show(product, granularity) {
    const key = `${product}-${granularity}`;
    this.key = key;
    const generation = ++this.generation;
    this.bars.clear();
    this.precision = 2;
    this.say('loading history…');
    let history = [];
    try {
      const r = await fetch(`/api/candles?product=${encodeURIComponent(product)}&granularity=${encodeURIComponent(granularity)}&limit=${HISTORY}&to=${Math.floor(Date.now() / 1000)}`);
      if (!r.ok) throw new Error(`${r.status} ${(await r.text()).trim()}`);
      history = (await r.json()).candles ?? [];
    } catch (e) {
      if (generation === this.generation) this.say(`no history: ${e.message}`);
    }
    if (generation !== this.generation) return; // another pair was chosen meanwhile
    for (const c of history) this.put(c);
    // The element may have news the history does not have yet.
    const el = document.getElementById(key);
    if (el?.dataset.timestamp) this.put(el.dataset);
    this.draw();
    this.box.dataset.key = key;
    this.say(history.length ? '' : 'waiting for trades');
  }

  put(c) {
    const bar = { time: Number(c.timestamp), open: Number(c.open), high: Number(c.high), low: Number(c.low),
      close: Number(c.close), volume: Number(c.volume) };
    if (![bar.time, bar.open, bar.high, bar.low, bar.close].every(Number.isFinite)) return null;
    const d = Math.max(...['open', 'high', 'low', 'close'].map((k) => window.spotCards.decimals(c[k])));
    if (d > this.precision) this.precision = Math.min(d, 12);
    this.bars.set(bar.time, bar);
    return bar;
  }

  draw() {
    const bars = [...this.bars.values()].sort((a, b) => a.time - b.time);
    this.candles.applyOptions({ priceFormat: { type: 'price', precision: this.precision, minMove: 10 ** -this.precision } });
    // The library keeps (and annotates) what it is given: give it copies.
    this.candles.setData(bars.map((b) => ({ ...b })));
    this.volume.setData(bars.map((b) => this.volumeBar(b)));
    this.chart.timeScale().fitContent();
    this.box.dataset.bars = String(bars.length);
    this.box.dataset.last = bars.length ? JSON.stringify(bars[bars.length - 1]) : '';
  }

  volumeBar(b) {
    return { time: b.time, value: Number.isFinite(b.volume) ? b.volume : 0, color: b.close >= b.open ? 'rgba(26, 156, 140, 0.35)' : 'rgba(217, 67, 74, 0.35)' };
  }

  fromElement(d) {
    if (`${d.product}-${d.granularity}` !== this.key || !d.timestamp) return;
    const before = this.precision;
    const last = Math.max(-Infinity, ...this.bars.keys());
    const bar = this.put(d);
    if (!bar) return;
    if (bar.time >= last && before === this.precision) {
      // The usual case: the newest bucket moves, or a new one opens.
      this.candles.update({ ...bar });
      this.volume.update(this.volumeBar(bar));
      this.box.dataset.bars = String(this.bars.size);
      this.box.dataset.last = JSON.stringify(bar);
    } else {
      this.draw(); // an older bucket changed (a repair), or finer prices arrived
    }
    this.say('');
  }

  say(text) { this.status.textContent = text; }
}

window.SpotChart = SpotChart;
