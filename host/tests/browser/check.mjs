// The browser half of host/tests/browser.rs: Debian's Chromium, driven by
// playwright-core, against a running spot server.
//
//   node check.mjs BASE_URL       (CHROMIUM overrides /usr/bin/chromium;
//                                  SCREENSHOTS=dir saves one per step)
//
// The Rust test writes one JSON message per line on stdin and waits for this
// script's answer line before going on:
//   {"step":"snapshot","product":P,"expect":{id:{timestamp,open,...}},"chart":[bars]} -> "ok snapshot"
//   {"step":"live","expect":{...},"chart":[bars]}                              -> "ok live"
//   {"step":"picker","product":P,"expect":{...}}                               -> "ok picker"
//   {"step":"origin","url":U}   (a page on another origin, allowed)             -> "ok origin"
//   {"step":"hostile","value":S}                                               -> "ok hostile"
// Any failure prints "FAIL: ..." and exits 1.
//
// The server is told a Datastar URL nothing answers (no test reaches the
// internet), finds it unreachable and leaves it out of the page, which then
// streams with its own client (EventSource and a patch by id, as Datastar
// does): what is checked is the page itself, the browser's parsing of the
// stream, the DOM it builds from the `data: elements` lines and the chart
// drawn from it, with no code injected by the test. Every request off the
// server is blocked and must not happen.

import readline from 'node:readline';
import { chromium } from 'playwright-core';

const base = process.argv[2];
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function next(step) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed before step ${step}`);
  const msg = JSON.parse(value);
  if (msg.step !== step) throw new Error(`expected step ${step}, got ${msg.step}`);
  return msg;
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// Every expected candle is on the page, as attributes and in the shadow root.
async function shows(page, expect, step) {
  try {
    await page.waitForFunction((want) => Object.entries(want).every(([id, w]) => {
      const el = document.getElementById(id);
      return el && ['timestamp', 'open', 'high', 'low', 'close', 'volume'].every((k) => el.dataset[k] === w[k]);
    }), expect, { timeout: 20000, polling: 50 });
  } catch (e) {
    const have = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
      const el = document.getElementById(id);
      return [id, el ? { ...el.dataset } : null];
    })), Object.keys(expect));
    throw new Error(`${step}: the page never showed the expected candles\nwant ${JSON.stringify(expect)}\nhave ${JSON.stringify(have)}`);
  }
  const rendered = await page.evaluate((want) => Object.entries(want).map(([id, w]) => {
    const root = document.getElementById(id).shadowRoot;
    const dd = (k) => root?.querySelector(`dd[data-k="${k}"]`)?.textContent;
    const ok = ['open', 'high', 'low', 'close', 'volume'].every((k) => dd(k) === w[k]);
    return ok ? null : `${id}: shadow root shows ${['open', 'high', 'low', 'close', 'volume'].map(dd)}`;
  }).filter(Boolean), expect);
  check(rendered.length === 0, `${step}: ${rendered.join('; ')}`);
}

// The chart's bars (from its series' data, kept on #chart by chart.js) are
// the expected ones: the same buckets, the same numbers.
async function charts(page, bars, step) {
  const want = bars.map((b) => ({ time: Number(b.timestamp), open: Number(b.open), high: Number(b.high),
    low: Number(b.low), close: Number(b.close), volume: Number(b.volume) }));
  try {
    await page.waitForFunction((w) => {
      const c = document.getElementById('chart');
      return c.dataset.bars === String(w.length) && c.dataset.last === JSON.stringify(w[w.length - 1]);
    }, want, { timeout: 20000, polling: 50 });
  } catch (e) {
    const have = await page.evaluate(() => ({ ...document.getElementById('chart').dataset }));
    throw new Error(`${step}: the chart shows ${JSON.stringify(have)}, want ${want.length} bars ending ${JSON.stringify(want[want.length - 1])}`);
  }
  // Drawn, not only held: the candles' colours are on the canvas.
  const painted = await page.evaluate(() => {
    let n = 0;
    for (const c of document.querySelectorAll('#chart canvas')) {
      if (!c.width || !c.height) continue;
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < px.length; i += 4) {
        const [r, g, b] = [px[i], px[i + 1], px[i + 2]];
        if ((Math.abs(r - 26) < 8 && Math.abs(g - 156) < 8 && Math.abs(b - 140) < 8)
          || (Math.abs(r - 217) < 8 && Math.abs(g - 67) < 8 && Math.abs(b - 74) < 8)) n++;
      }
    }
    return n;
  });
  check(painted > 0, `${step}: no candle is drawn on the chart's canvas`);
}

async function shot(page, name) {
  if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const blocked = [];
  const others = []; // other origins the test serves
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base) || others.some((o) => url.startsWith(o))) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });

  // The page, and the stream its data-init names.
  const first = await next('snapshot');
  const response = await page.goto(`${base}/?product=${encodeURIComponent(first.product)}`);
  check(response.status() === 200, `GET / answered ${response.status()}`);
  check(await page.$('script#datastar') === null, 'the page names a Datastar client the server cannot reach');
  const init = await page.getAttribute('#stream', 'data-init');
  const path = /^@get\('([^']+)'/.exec(init ?? '')?.[1];
  check(path && path.startsWith('/stream?') && init.includes("retry: 'always'"), `data-init is ${init}`);
  const ids = await page.$$eval('spot-candle', (els) => els.map((e) => e.id));
  check(ids.length === 8 && Object.keys(first.expect).every((id) => ids.includes(id)),
    `placeholders ${ids} do not cover ${Object.keys(first.expect)}`);
  const options = await page.$$eval('select[name=product] option', (os) => os.map((o) => o.value));
  check(options.length > 0 && options.every((o) => /^[A-Z0-9]+-[A-Z0-9]+$/.test(o)), `product options ${options}`);

  // Straight to the page's own client: no request for an unreachable one.
  await page.waitForFunction(() => document.documentElement.dataset.stream === 'fallback', null, { timeout: 10000 });
  check(await page.evaluate((p) => window.spotStream.url.endsWith(p), path), 'the fallback opened another URL');
  await page.evaluate(() => {
    window.patches = 0;
    window.marker = 'same page';
    const count = (e) => { window.patches++; window.lastEventId = e.lastEventId; };
    window.spotStream.addEventListener('datastar-patch-elements', count);
    window.countPatches = count;
  });
  await shows(page, first.expect, 'snapshot');
  await charts(page, first.chart, 'snapshot');
  const before = await page.evaluate(() => window.patches);
  await shot(page, '1-snapshot');
  console.log('ok snapshot');

  // Live updates on the same stream: the cards and the chart move.
  const live = await next('live');
  await shows(page, live.expect, 'live');
  await charts(page, live.chart, 'live');
  const seen = await page.evaluate(() => ({ patches: window.patches, id: window.lastEventId }));
  check(seen.patches > before, 'no live patch arrived');
  check(/^\d+-\d+$/.test(seen.id), `event id ${seen.id} is not <unix-ms>-<sequence>`);
  // A card shows its change against the open and its state.
  const card = await page.evaluate((id) => {
    const r = document.getElementById(id).shadowRoot;
    return { change: r.querySelector('.change').textContent, state: r.querySelector('.state').textContent,
      time: r.querySelector('.time').title, age: r.querySelector('.age').textContent };
  }, Object.keys(live.expect).find((k) => k.endsWith('ONE_DAY')));
  check(/\(([+−]?)\d+\.\d{2,4}%\)$/.test(card.change) && card.state === 'live' && card.time.endsWith('Z (UTC)')
    && card.age.startsWith('updated'), `card ${JSON.stringify(card)}`);
  // Choosing another card charts its granularity.
  await page.click('#candles spot-candle:nth-child(2)');
  await page.waitForFunction(() => document.getElementById('chart').dataset.key?.endsWith('FIVE_MINUTES'), null, { timeout: 10000 });
  check(new URL(page.url()).searchParams.get('chart') === 'FIVE_MINUTES', `URL ${page.url()}`);
  await shot(page, '2-live');
  check(errors.length === 0, `console errors: ${errors.join(' | ')}`);
  console.log(`ok live ${JSON.stringify(seen)}`);

  // The picker: another product without a reload; the stream follows.
  const picked = await next('picker');
  await page.selectOption('select[name=product]', picked.product);
  await page.waitForFunction((p) => window.spotStream?.url.includes(`product=${p}`), picked.product, { timeout: 10000 });
  check(await page.evaluate(() => window.marker) === 'same page', 'the picker reloaded the page');
  check(new URL(page.url()).searchParams.get('product') === picked.product, `URL ${page.url()}`);
  await shows(page, picked.expect, 'picker');
  // Unticking every granularity does not mean all eight: it says so and
  // keeps the subscription.
  const boxes = await page.$$('input[name=granularity]:checked');
  for (const box of boxes.slice(1)) await box.uncheck();
  await page.waitForFunction(() => document.querySelectorAll('spot-candle').length === 1, null, { timeout: 10000 });
  const url = await page.evaluate(() => window.spotStream.url);
  await boxes[0].uncheck();
  const message = await page.textContent('#picker-message');
  check(/at least one/.test(message), `no message for an empty choice: ${message}`);
  check(await page.evaluate(() => window.spotStream.url) === url, 'an empty choice changed the subscription');
  check(await page.$$eval('spot-candle', (els) => els.length) >= 1, 'an empty choice removed every card');
  await shot(page, '3-picker');
  check(errors.length === 0, `console errors: ${errors.join(' | ')}`);
  check(blocked.length === 0, `requests off the server: ${blocked.join(' ')}`);
  console.log('ok picker');

  // A page on another origin (ALLOWED_ORIGINS names it) opens the stream
  // with Datastar's header, so after a preflight, and reads the API.
  const elsewhere = (await next('origin')).url;
  others.push(elsewhere);
  const away = await browser.newPage();
  await away.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base) || url.startsWith(elsewhere)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  await away.goto(`${elsewhere}/?spot=${encodeURIComponent(base)}`);
  await away.waitForFunction(() => window.result, null, { timeout: 20000 });
  const result = await away.evaluate(() => window.result);
  check(!result.error && result.status === 200, `cross-origin stream: ${JSON.stringify(result)}`);
  check(result.stream.includes('event: datastar-patch-elements') && result.stream.includes('id="BTC-USD-ONE_MINUTE"'),
    `cross-origin stream read ${JSON.stringify(result.stream)}`);
  check(Array.isArray(result.products) && result.products.some((p) => p.product_id === 'BTC-USD'),
    `cross-origin API read ${JSON.stringify(result.products)}`);
  check(result.closed.startsWith('refused'), `/readyz from another origin: ${result.closed}`);
  await away.close();
  console.log('ok origin');

  // Hostile input: refused, never markup, never run; the page leads back.
  const hostile = (await next('hostile')).value;
  const stream = await page.evaluate(async (v) => {
    const r = await fetch(`/stream?product=${encodeURIComponent(v)}`);
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
  }, hostile);
  check(stream.status >= 400 && stream.status < 500 && !stream.body.includes('<'), `hostile stream: ${JSON.stringify(stream)}`);
  const bad = await page.goto(`${base}/?product=${encodeURIComponent(hostile)}`);
  check(bad.status() === 404, `hostile page answered ${bad.status()}`);
  check((await page.textContent('h2')) === 'Unknown product', 'the unknown-product page');
  const injected = await page.evaluate(() => ({ imgs: document.querySelectorAll('img').length, pwned: window.pwned ?? null }));
  check(injected.imgs === 0 && injected.pwned === null, `hostile input became markup: ${JSON.stringify(injected)}`);
  await shot(page, '4-unknown');
  await page.click('#back');
  await page.waitForSelector('#chart');
  check(new URL(page.url()).pathname === '/', `the way back led to ${page.url()}`);
  // The refusals themselves are logged as failed loads (404); nothing else may be.
  const unexpected = errors.filter((e) => !e.includes('status of 404'));
  check(unexpected.length === 0, `console errors: ${unexpected.join(' | ')}`);
  console.log('ok hostile');
} catch (e) {
  console.log(`FAIL: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
