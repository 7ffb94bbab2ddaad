// Render benchmark helper for benches/web_board.rs: load the dashboard at <url> <runs> times
// in fresh headless Chromium pages and print, as JSON, the time to the `hk:board-painted`
// performance mark (ms since navigation start), `hk:board-fetched` (board JSON received and
// parsed), DOMContentLoaded, and how many card
// elements exist in the DOM once painted.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url, runsArg] = process.argv.slice(2);
const runs = parseInt(runsArg || '5', 10);
const require = createRequire(path.join(path.resolve(process.env.HK_NODE_DIR), 'package.json'));
const { chromium } = require('playwright-core');
const b = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
const out = { painted_ms: [], fetched_ms: [], dom_content_loaded_ms: [], cards_in_dom: 0 };
for (let i = 0; i < runs + 1; i++) {
  const ctx = await b.newContext({ viewport: { width: 1600, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  const m = await page.evaluate(() => ({
    painted: performance.getEntriesByName('hk:board-painted')[0].startTime,
    fetched: performance.getEntriesByName('hk:board-fetched')[0].startTime,
    dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
    cards: document.querySelectorAll('.card').length,
  }));
  if (i > 0) { // the first load warms the browser's caches
    out.painted_ms.push(m.painted);
    out.fetched_ms.push(m.fetched);
    out.dom_content_loaded_ms.push(m.dcl);
  }
  out.cards_in_dom = m.cards;
  await ctx.close();
}
await b.close();
console.log(JSON.stringify(out));
