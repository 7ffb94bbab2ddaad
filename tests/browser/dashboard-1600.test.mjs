// The dashboard as a user at 1600×900 finds it (issue 12), in headless Chromium against the
// real binary: all 8 columns inside the viewport, collapsing and expanding an empty column
// (remembered across a reload), clicking another card while the drawer is open switches it
// (the rightmost column stays clickable), a child's drawer shows its parents' hand-offs
// (summary + metadata), Complete with a summary and metadata lands in the DB (bad metadata is
// refused with a clear error first), Block with a kind, the attention strip counts only the
// filtered tenant, and card age can show time in the current status.
import fs from 'node:fs';
import path from 'node:path';
import { tempHome, serve, browser, runner, assert, repo } from './lib.mjs';

const artifacts = path.join(repo, 'test-artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const home = tempHome();
const { cli, json } = home;
cli('init');
const parent = json('create', 'Design the schema', '--assignee', 'architect', '--tenant', 'acme').id;
cli('claim', parent);
cli('complete', parent, '--summary', 'schema: 4 tables, see schema.sql', '--metadata', '{"tables": 4, "file": "schema.sql"}');
const child = json('create', 'Build the REST API', '--assignee', 'coder', '--parent', parent, '--tenant', 'acme').id;
const waiting = json('create', 'Write the client', '--assignee', 'coder', '--parent', child).id; // todo
json('create', 'Rough idea: keyboard shortcuts', '--triage');
const sched = json('create', 'Rotate keys next week', '--assignee', 'ops').id;
cli('schedule', sched, 'next week');
const toDone = json('create', 'Fix the flaky test', '--assignee', 'coder', '--tenant', 'globex').id;
const toBlock = json('create', 'Ask about the API key', '--assignee', 'coder', '--tenant', 'globex').id;
const running = json('create', 'Index the repository', '--assignee', 'researcher').id;
cli('claim', running);
// Two tasks that keep being blocked after an unblock (a diagnostics warning), one per tenant.
const cycler = (title, tenant) => {
  const id = json('create', title, '--assignee', 'coder', '--tenant', tenant).id;
  for (const k of ['needs_input', 'capability', 'transient']) { cli('block', id, '--kind', k, 'again'); cli('unblock', id); }
  cli('block', id, '--kind', 'needs_input', 'still stuck');
  return id;
};
const cycAcme = cycler('Flaky deploy (acme)', 'acme');
cycler('Flaky deploy (globex)', 'globex');

const server = await serve(home.env);
const b = await browser();
const page = await b.newPage({ viewport: { width: 1600, height: 900 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error' && !/status of 400/.test(m.text())) pageErrors.push(m.text()); });

const t = runner();
const card = (id) => page.locator(`.card[data-id="${id}"]`);
const inViewport = (r) => r && r.x >= 0 && r.y >= 0 && r.x + r.width <= 1600 + 0.5 && r.y + r.height <= 900 + 0.5;

await t.test('at 1600×900 all 8 columns are inside the viewport', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const cols = await page.$$eval('.col', (els) => els.map((e) => { const r = e.getBoundingClientRect(); return { s: e.dataset.status, x: r.x, y: r.y, width: r.width, height: r.height }; }));
  assert(cols.length === 8, 'eight columns: ' + cols.map((c) => c.s));
  for (const c of cols) assert(inViewport(c), c.s + ' column outside the viewport: ' + JSON.stringify(c));
  assert(cols.every((c) => c.width >= 160), 'columns keep a sensible width: ' + cols.map((c) => c.width | 0));
  const scroll = await page.$eval('#board', (el) => el.scrollWidth - el.clientWidth);
  assert(scroll <= 1, 'no horizontal scroll needed: ' + scroll);
  const cut = await page.$$eval('.col-head .name', (els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
  assert(cut.length === 0, 'column names fit: ' + cut);
  await page.screenshot({ path: path.join(artifacts, 'board-1600.png') });
});

await t.test('an empty column collapses, expands, and is remembered across a reload', async () => {
  const review = page.locator('.col[data-status="review"]');
  assert((await review.locator('.card').count()) === 0, 'review is empty');
  const before = (await review.boundingBox()).width;
  await review.locator('.col-head button.collapse').click();
  await page.waitForFunction(() => document.querySelector('.col[data-status="review"]').classList.contains('collapsed'));
  const after = (await review.boundingBox()).width;
  assert(after < 50 && after < before, 'collapsed to a strip: ' + before + ' → ' + after);
  assert((await review.locator('.col-strip').textContent()).includes('review'), 'the strip names the column');
  const done = await page.locator('.col[data-status="done"]').boundingBox();
  assert(inViewport(done), 'done still inside');
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  assert(await page.$eval('.col[data-status="review"]', (e) => e.classList.contains('collapsed')), 'still collapsed after reload (localStorage)');
  await page.click('.col[data-status="review"] .col-strip');
  await page.waitForFunction(() => !document.querySelector('.col[data-status="review"]').classList.contains('collapsed'));
  assert((await review.boundingBox()).width >= 160, 'expanded again');
  assert(await page.evaluate(() => localStorage.getItem('hk.collapsed')) === '[]', 'expansion remembered');
});

await t.test('clicking another card while the drawer is open switches the drawer', async () => {
  await card(running).click();
  await page.waitForFunction((id) => document.querySelector('#drawer-id').textContent === id && document.querySelector('#drawer .title-input'), running, { timeout: 5000 });
  // The rightmost column (done) is not under the drawer: a real click reaches its card.
  await card(parent).click({ timeout: 5000 });
  await page.waitForFunction((id) => document.querySelector('#drawer-id').textContent === id, parent, { timeout: 5000 });
  const box = await card(parent).boundingBox();
  const drawer = await page.locator('#drawer').boundingBox();
  assert(box.x + box.width <= drawer.x + 1, 'the card is beside the drawer, not behind it: card ' + JSON.stringify(box) + ' drawer x ' + drawer.x);
  await card(cycAcme).click({ timeout: 5000 });
  await page.waitForFunction((id) => document.querySelector('#drawer-id').textContent === id, cycAcme, { timeout: 5000 });
  await page.screenshot({ path: path.join(artifacts, 'drawer-1600.png') });
});

await t.test("a child's drawer shows its parent's hand-off (summary + metadata)", async () => {
  await card(child).click();
  await page.waitForSelector(`#drawer .handoff[data-id="${parent}"]`, { timeout: 5000 });
  const h = await page.$eval(`#drawer .handoff[data-id="${parent}"]`, (el) => ({
    summary: el.querySelector('.summary').textContent, metadata: (el.querySelector('.metadata') || {}).textContent || '',
  }));
  assert(h.summary.includes('schema: 4 tables'), 'summary: ' + h.summary);
  assert(h.metadata.includes('"tables": 4') && h.metadata.includes('"file": "schema.sql"'), 'metadata: ' + h.metadata);
  // The same as the worker context.
  const ctx = cli('context', child);
  assert(ctx.includes('schema: 4 tables') && /_metadata_: `\{"file": ?"schema.sql", ?"tables": ?4\}`/.test(ctx), 'worker context has the same hand-off:\n' + ctx);
});

await t.test('Complete takes a summary and metadata (a bad object is refused first)', async () => {
  await card(toDone).click();
  await page.waitForFunction((id) => document.querySelector('#drawer-id').textContent === id, toDone);
  await page.click('#drawer .actions button:text-is("Complete")');
  await page.waitForSelector('#prompt-dialog[open] #prompt-meta-row:not(.hidden)', { timeout: 5000 });
  await page.fill('#prompt-input', 'fixed the race in the retry loop');
  await page.fill('#prompt-meta', '["not", "an object"]');
  await page.click('#prompt-ok');
  const err = await page.textContent('#prompt-error');
  assert(/Metadata must be a JSON object/.test(err) && /array/.test(err), 'clear error: ' + err);
  assert(await page.$eval('#prompt-dialog', (d) => d.open), 'dialog stays open');
  await page.fill('#prompt-meta', '{oops');
  await page.click('#prompt-ok');
  assert(/not valid JSON/.test(await page.textContent('#prompt-error')), 'invalid JSON named');
  await page.fill('#prompt-meta', '{"tests": 12, "flaky": false}');
  await page.click('#prompt-ok');
  await page.waitForFunction((id) => { const el = document.querySelector(`.card[data-id="${id}"]`); return el && el.closest('.col').dataset.status === 'done'; }, toDone, { timeout: 5000 });
  const show = json('show', toDone);
  assert(show.task.status === 'done', 'kernel says done');
  const run = show.runs[show.runs.length - 1];
  assert(run.summary === 'fixed the race in the retry loop', 'summary in the DB: ' + run.summary);
  assert(JSON.stringify(run.metadata) === JSON.stringify({ tests: 12, flaky: false }), 'metadata in the DB: ' + JSON.stringify(run.metadata));
});

await t.test('Block offers the block kinds and the kind lands in the DB', async () => {
  await card(toBlock).click();
  await page.waitForFunction((id) => document.querySelector('#drawer-id').textContent === id, toBlock);
  await page.click('#drawer .actions button:text-is("Block")');
  await page.waitForSelector('#prompt-dialog[open] #prompt-kind-row:not(.hidden)', { timeout: 5000 });
  const kinds = await page.$$eval('#prompt-kind option', (os) => os.map((o) => o.value));
  for (const k of ['needs_input', 'capability', 'transient', 'dependency']) assert(kinds.includes(k), 'kind offered: ' + k);
  await page.fill('#prompt-input', 'which API key should the staging job use?');
  await page.selectOption('#prompt-kind', 'needs_input');
  await page.click('#prompt-ok');
  await page.waitForFunction((id) => { const el = document.querySelector(`.card[data-id="${id}"]`); return el && el.closest('.col').dataset.status === 'blocked'; }, toBlock, { timeout: 5000 });
  const d = await (await fetch(server.url + '/api/tasks/' + toBlock)).json();
  assert(d.task.status === 'blocked' && d.task.block_kind === 'needs_input', 'blocked with kind: ' + d.task.status + ' ' + d.task.block_kind);
  assert(json('show', toBlock).task.status === 'blocked', 'the CLI agrees');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#drawer.hidden', { state: 'attached', timeout: 2000 });
});

await t.test('with a tenant filter on, the attention strip counts only that tenant', async () => {
  await page.waitForSelector('#attention:not(.hidden)', { timeout: 5000 });
  const all = await page.textContent('#attention strong');
  assert(/2 tasks need attention/.test(all), 'both tenants without a filter: ' + all);
  await page.selectOption('#filter-tenant', 'acme');
  await page.waitForFunction(() => /1 task needs attention/.test(document.querySelector('#attention strong').textContent), null, { timeout: 3000 });
  await page.selectOption('#filter-tenant', 'globex');
  await page.waitForFunction(() => /1 task needs attention/.test(document.querySelector('#attention strong').textContent), null, { timeout: 3000 });
  await page.selectOption('#filter-tenant', '');
  await page.waitForFunction(() => /2 tasks need attention/.test(document.querySelector('#attention strong').textContent), null, { timeout: 3000 });
});

await t.test('card age can show the time in the current status', async () => {
  assert(await page.$eval('#drawer', (d) => d.classList.contains('hidden')), 'drawer closed: ' + await page.textContent('#drawer-id'));
  const age = async () => card(cycAcme).locator('.age').textContent();
  assert(!(await card(cycAcme).locator('.age').getAttribute('title')).startsWith('in '), 'by default: age since creation');
  assert(await page.evaluate((id) => window.__hk.state.cards.get(id).status_since, cycAcme) === undefined, 'status_since only on request');
  await page.check('#age-status', { timeout: 5000 });
  await page.waitForFunction((id) => { const c = window.__hk.state.cards.get(id); return c && c.status_since != null; }, cycAcme, { timeout: 5000 });
  // The kernel's figure is the latest status change (the last block), not the creation.
  const since = await page.evaluate((id) => window.__hk.state.cards.get(id).status_since, cycAcme);
  const ev = json('show', cycAcme).events.filter((e) => e.kind === 'blocked').pop();
  assert(since === ev.created_at, 'status_since is the latest status change: ' + since + ' vs ' + ev.created_at);
  // Make the difference visible: pretend the task was created 3 days before it was blocked.
  await page.evaluate((id) => {
    const s = window.__hk.state;
    const c = s.cards.get(id);
    s.cards.set(id, Object.assign({}, c, { created_at: c.created_at - 3 * 86400 }));
    window.__hk.layout();
  }, cycAcme);
  await page.waitForFunction((id) => document.querySelector(`.card[data-id="${id}"] .age.in-status`), cycAcme);
  assert(/^\d+s$|^\d+m$/.test(await age()), 'time in status: ' + await age());
  assert((await card(cycAcme).locator('.age').getAttribute('title')).startsWith('in blocked since'), 'tooltip says which status');
  await page.uncheck('#age-status');
  await page.waitForFunction((id) => !document.querySelector(`.card[data-id="${id}"] .age.in-status`), cycAcme);
  assert(await age() === '3d', 'back to age since creation: ' + await age());
  await page.check('#age-status');
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  assert(await page.isChecked('#age-status'), 'the toggle is remembered');
  await page.waitForSelector(`.card[data-id="${cycAcme}"] .age.in-status`, { timeout: 5000 });
});

await t.test('the board at 1600×900 (screenshot)', async () => {
  await page.evaluate(() => { document.getElementById('toast').className = 'toast'; document.activeElement.blur(); });
  await page.waitForTimeout(250);
  await page.screenshot({ path: path.join(artifacts, 'board-1600-final.png') });
});

await t.test('no script errors on the page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('\n'));
});

const failed = t.done();
await b.close();
server.stop();
fs.rmSync(home.dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
