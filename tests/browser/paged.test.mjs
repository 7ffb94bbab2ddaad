// Done column paging in headless Chromium against the real binary: a board with 230 done
// tasks loads only the newest 200 of them (newest first) with the column's count, live
// updates keep the count and order right (a completion lands on top; an unloaded done card
// reopened elsewhere leaves the "not loaded" count), and "Load more" brings the rest, after
// which the page holds exactly the server's done cards.
import path from 'node:path';
import fs from 'node:fs';
import { tempHome, serve, browser, runner, assert, repo } from './lib.mjs';

const artifacts = path.join(repo, 'test-artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const home = tempHome();
const { cli, json } = home;
cli('init');
const server = await serve(home.env, ['--no-dispatch']);
const call = async (method, p, body) => {
  const r = await fetch(server.url + '/api' + p, {
    method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body),
  });
  const v = await r.json();
  if (!r.ok) throw new Error(method + ' ' + p + ': ' + JSON.stringify(v));
  return v;
};
// 230 done tasks (created oldest first), and two ready ones.
const doneIds = [];
for (let i = 0; i < 230; i++) doneIds.push((await call('POST', '/tasks', { title: 'finished ' + i, assignee: 'coder' })).task.id);
const bulk = await call('POST', '/tasks/bulk', { ids: doneIds, status: 'done', result: 'shipped', summary: 'shipped' });
assert(bulk.results.every((r) => r.ok), 'bulk complete: ' + JSON.stringify(bulk.results.find((r) => !r.ok)));
const fresh = json('create', 'completed while the page is open', '--assignee', 'coder').id;
json('create', 'still to do', '--assignee', 'coder');

const b = await browser();
const page = await b.newPage({ viewport: { width: 1720, height: 960 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
const t = runner();
let newestFirst = [];

const doneCol = '.col[data-status="done"]';
const count = () => page.textContent(doneCol + ' .col-head .count');
const loadedDone = () => page.evaluate(() => [...window.__hk.state.cards.values()].filter((c) => c.status === 'done').length);
// Card ids of the done column in on-screen order (virtual rows are placed by translateY).
const renderedOrder = () => page.$$eval(doneCol + ' .card', (els) => els.sort((a, b) => a._y - b._y).map((e) => e.dataset.id));
const toBottom = () => page.$eval(doneCol + ' .col-body', (el) => { el.scrollTop = el.scrollHeight; });
const moreText = async () => { await toBottom(); return page.textContent(doneCol + ' .more', { timeout: 5000 }); };

await t.test('Done holds its newest 200 cards and counts all 230', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  assert(await loadedDone() === 200, 'loaded done cards: ' + await loadedDone());
  assert(await count() === '230', 'count: ' + await count());
  // The server's order (newest completion, then newest creation, then id), and the page's.
  const first = (await call('GET', '/board?compact=1')).columns.find((c) => c.name === 'done');
  const want = first.tasks.map((c) => c.id);
  const order = await renderedOrder();
  assert(order.length > 5 && JSON.stringify(order) === JSON.stringify(want.slice(0, order.length)), 'newest first: ' + order.slice(0, 3) + ' vs ' + want.slice(0, 3));
  newestFirst = (await call('GET', '/board?compact=1&done_limit=1000')).columns.find((c) => c.name === 'done').tasks.map((c) => c.id);
  const more = await moreText();
  assert(/Load 30 more \(30 not loaded\)/.test(more), 'load-more row: ' + more);
  await page.waitForSelector('#live.on', { timeout: 5000 });
});

await t.test('live updates place cards right and keep the count', async () => {
  await page.$eval(doneCol + ' .col-body', (el) => { el.scrollTop = 0; });
  cli('claim', fresh);
  cli('complete', fresh, '--summary', 'done live');
  await page.waitForFunction((id) => { const el = document.querySelector(`.card[data-id="${id}"]`); return el && el.closest('.col').dataset.status === 'done'; }, fresh, { timeout: 5000 });
  assert((await renderedOrder())[0] === fresh, 'a fresh completion is on top: ' + (await renderedOrder()).slice(0, 2));
  await page.waitForFunction(() => document.querySelector('.col[data-status="done"] .col-head .count').textContent === '231', null, { timeout: 5000 });
  // The oldest done card is not loaded; reopening it moves it to ready and out of the count.
  const oldest = newestFirst[newestFirst.length - 1];
  assert(!(await page.evaluate((id) => window.__hk.state.cards.has(id), oldest)), 'oldest done card not loaded yet');
  await call('PATCH', '/tasks/' + oldest, { status: 'ready' });
  await page.waitForFunction((id) => { const el = document.querySelector(`.card[data-id="${id}"]`); return el && el.closest('.col').dataset.status === 'ready'; }, oldest, { timeout: 5000 });
  await page.waitForFunction(() => document.querySelector('.col[data-status="done"] .col-head .count').textContent === '230', null, { timeout: 5000 });
  const more = await moreText();
  assert(/\(29 not loaded\)/.test(more), 'load-more row after the move: ' + more);
});

await t.test('Load more brings the rest: every done card exactly once', async () => {
  await toBottom();
  await page.click(doneCol + ' .more');
  await page.waitForFunction(() => !document.querySelector('.col[data-status="done"] .more'), null, { timeout: 10000 });
  const server_ = await call('GET', '/board');
  const want = server_.columns.find((c) => c.name === 'done').tasks.map((c) => c.id).sort();
  const have = await page.evaluate(() => [...window.__hk.state.cards.values()].filter((c) => c.status === 'done').map((c) => c.id).sort());
  assert(want.length === 230 && JSON.stringify(have) === JSON.stringify(want), 'page holds the server\'s done cards: ' + have.length + ' vs ' + want.length);
  assert(await count() === '230', 'count: ' + await count());
  await toBottom();
  const last = newestFirst[newestFirst.length - 2];
  await page.waitForSelector(`.card[data-id="${last}"]`, { timeout: 5000 });
  const order = await renderedOrder();
  assert(order[order.length - 1] === last, 'the oldest remaining done card is last: ' + order.slice(-2));
  await page.screenshot({ path: path.join(artifacts, 'board-paged-done.png') });
  assert(pageErrors.length === 0, 'no page errors: ' + pageErrors.join('; '));
});

await b.close();
server.stop();
const failed = t.done();
process.exit(failed ? 1 : 0);
