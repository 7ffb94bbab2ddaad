// The dashboard's own cost of a board, without the server's: load the page from a running
// `serve` at <url>, answer its first `GET /api/board?compact=1` with the bytes of <json-file>
// (captured once), and print, as JSON, medians over <runs> fresh pages of: the board JSON's
// size, its parse + card map fill (`hk:board-fetched` − the response's end), layout and paint
// (`hk:board-painted` − `hk:board-fetched`), long tasks (count, total ms: main-thread work
// over 50 ms), DOM elements and card elements once painted, and the JS heap used.
// Usage: HK_NODE_DIR=target/browser-node node tests/browser/page-cost.mjs <url> <json-file> [runs]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [url, file, runsArg] = process.argv.slice(2);
const runs = parseInt(runsArg || '5', 10);
const body = readFileSync(file);
const require = createRequire(path.join(path.resolve(process.env.HK_NODE_DIR), 'package.json'));
const { chromium } = require('playwright-core');
const b = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
    '--enable-precise-memory-info'],
});
const rows = [];
for (let i = 0; i < runs + 1; i++) {
  const ctx = await b.newContext({ viewport: { width: 1600, height: 900 } });
  const page = await ctx.newPage();
  await page.addInitScript(() => {
    window.__longtasks = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__longtasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.route((u) => u.pathname === '/api/board' && u.searchParams.get('compact') === '1'
    && !u.searchParams.has('ids') && !u.searchParams.has('column'),
  (route) => route.fulfill({ status: 200, contentType: 'application/json', body }));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 120000 });
  await page.waitForTimeout(200);
  const m = await page.evaluate(() => {
    const res = performance.getEntriesByType('resource')
      .find((e) => e.name.includes('/api/board?compact=1'));
    const fetched = performance.getEntriesByName('hk:board-fetched')[0].startTime;
    const painted = performance.getEntriesByName('hk:board-painted')[0].startTime;
    return {
      parse_ms: fetched - res.responseEnd,
      layout_paint_ms: painted - fetched,
      page_ms: painted - res.responseEnd,
      longtasks: window.__longtasks.length,
      longtask_ms: window.__longtasks.reduce((a, b) => a + b, 0),
      dom_elements: document.getElementsByTagName('*').length,
      cards_in_dom: document.querySelectorAll('.card').length,
      heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null,
    };
  });
  if (i > 0) rows.push(m); // the first load warms the browser's caches
  await ctx.close();
}
await b.close();
const med = (k) => {
  const v = rows.map((r) => r[k]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
};
const out = { json_bytes: body.length, runs };
for (const k of Object.keys(rows[0])) out[k] = med(k);
console.log(JSON.stringify(out));
