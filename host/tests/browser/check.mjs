// The browser half of host/tests/browser.rs: Debian's Chromium, driven by
// playwright-core, against a running spot server.
//
//   node check.mjs BASE_URL       (CHROMIUM overrides /usr/bin/chromium)
//
// The Rust test writes one JSON message per line on stdin and waits for this
// script's answer line before going on:
//   {"step":"snapshot","product":P,"expect":{id:{timestamp,open,...}}} -> "ok snapshot"
//   {"step":"live","expect":{...}}                                    -> "ok live"
//   {"step":"hostile","value":S}                                      -> "ok hostile"
// Any failure prints "FAIL: ..." and exits 1.
//
// The Datastar bundle comes from a CDN this machine cannot reach, so every
// request off the server is blocked (and checked to be the configured
// client). The page then streams through its own fallback (EventSource and
// a patch by id, as Datastar does): what is checked is the page itself, the
// browser's parsing of the stream, and the DOM it builds from the
// `data: elements` lines, with no code injected by the test.

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

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
let failed = false;
try {
  const page = await browser.newPage();
  const errors = [];
  const blocked = [];
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The blocked CDN request is logged as a failed resource; nothing else may be.
    if (m.type() === 'error' && !blocked.includes(m.location().url)) errors.push(`console: ${m.text()}`);
  });

  // The page, and the stream its data-init names.
  const first = await next('snapshot');
  const response = await page.goto(`${base}/?product=${encodeURIComponent(first.product)}`);
  check(response.status() === 200, `GET / answered ${response.status()}`);
  const client = await page.getAttribute('script[type=module]', 'src');
  check(blocked.includes(client), `the page did not load its Datastar client (${client}); blocked: ${blocked}`);
  const init = await page.getAttribute('#stream', 'data-init');
  const path = /^@get\('([^']+)'/.exec(init ?? '')?.[1];
  check(path && path.startsWith('/stream?') && init.includes("retry: 'always'"), `data-init is ${init}`);
  const ids = await page.$$eval('spot-candle', (els) => els.map((e) => e.id));
  check(ids.length === 8 && Object.keys(first.expect).every((id) => ids.includes(id)),
    `placeholders ${ids} do not cover ${Object.keys(first.expect)}`);
  const options = await page.$$eval('select[name=product] option', (os) => os.map((o) => o.value));
  check(options.length > 0 && options.every((o) => /^[A-Z0-9]+-[A-Z0-9]+$/.test(o)), `product options ${options}`);

  // The blocked client's error switches the page to its own EventSource.
  await page.waitForFunction(() => document.documentElement.dataset.stream === 'fallback', null, { timeout: 10000 });
  check(await page.evaluate((p) => window.spotStream.url.endsWith(p), path), 'the fallback opened another URL');
  await page.evaluate(() => {
    window.patches = 0;
    window.spotStream.addEventListener('datastar-patch-elements', (e) => {
      window.patches++;
      window.lastEventId = e.lastEventId;
    });
  });
  await shows(page, first.expect, 'snapshot');
  const before = await page.evaluate(() => window.patches);
  console.log('ok snapshot');

  // Live updates on the same stream.
  const live = await next('live');
  await shows(page, live.expect, 'live');
  const seen = await page.evaluate(() => ({ patches: window.patches, id: window.lastEventId }));
  check(seen.patches > before, 'no live patch arrived');
  check(/^\d+-\d+$/.test(seen.id), `event id ${seen.id} is not <unix-ms>-<sequence>`);
  const after = JSON.stringify(seen);
  check(errors.length === 0, `console errors: ${errors.join(' | ')}`);
  console.log(`ok live ${after}`);

  // Hostile input: refused as plain text, never markup, never run.
  const hostile = (await next('hostile')).value;
  const stream = await page.evaluate(async (v) => {
    const r = await fetch(`/stream?product=${encodeURIComponent(v)}`);
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
  }, hostile);
  check(stream.status >= 400 && stream.status < 500 && !stream.body.includes('<'), `hostile stream: ${JSON.stringify(stream)}`);
  const bad = await page.goto(`${base}/?product=${encodeURIComponent(hostile)}`);
  check(bad.status() >= 400 && bad.status() < 500, `hostile page answered ${bad.status()}`);
  check((bad.headers()['content-type'] ?? '').startsWith('text/plain'), `hostile page type ${bad.headers()['content-type']}`);
  const injected = await page.evaluate(() => ({ imgs: document.querySelectorAll('img').length, pwned: window.pwned ?? null }));
  check(injected.imgs === 0 && injected.pwned === null, `hostile input became markup: ${JSON.stringify(injected)}`);
  // The refusals themselves are logged as failed loads (400); nothing else may be.
  const unexpected = errors.filter((e) => !e.includes('status of 400'));
  check(unexpected.length === 0, `console errors: ${unexpected.join(' | ')}`);
  console.log('ok hostile');
} catch (e) {
  console.log(`FAIL: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
