// Dashboard tests in headless Chromium against the real binary: load the board, create a task
// in the dialog, drag a card ready→blocked and answer the block prompt, read a retried task's
// two runs in the drawer, see a CLI change appear live (SSE, no reload) within 2 s, and prove
// that `<img src=x onerror=alert(1)>` in a title, body and comment renders inert.
// Screenshots go to test-artifacts/; with --docs the board shot is also copied to
// docs/screenshot-board.png.
import fs from 'node:fs';
import path from 'node:path';
import { tempHome, serve, browser, runner, assert, repo } from './lib.mjs';

const XSS = '<img src=x onerror=alert(1)>';
const artifacts = path.join(repo, 'test-artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const home = tempHome();
const { cli, json } = home;
cli('init');
// A small, realistic board.
const schema = json('create', 'Design the schema', '--assignee', 'architect', '--priority', '2').id;
const api = json('create', 'Build the REST API', '--assignee', 'coder', '--parent', schema, '--body', 'Endpoints per **REF §17.2**.').id;
json('create', 'Write the user guide', '--assignee', 'writer', '--tenant', 'docs');
json('create', 'Benchmark board load at 10k tasks', '--assignee', 'coder', '--priority', '1');
json('create', 'Rough idea: keyboard shortcuts', '--triage');
const dragMe = json('create', 'Drag me to blocked', '--assignee', 'coder').id;
const running = json('create', 'Index the repository', '--assignee', 'researcher').id;
cli('claim', running);
json('create', 'Flaky upstream API', '--assignee', 'coder');
// A retried task: attempt 1 blocked, attempt 2 completed, each with a summary.
const retried = json('create', 'Migrate the database', '--assignee', 'coder').id;
cli('claim', retried);
cli('block', retried, 'first attempt: missing credentials for the staging DB');
cli('comment', retried, 'credentials are in the vault now');
cli('unblock', retried);
cli('claim', retried);
cli('complete', retried, '--summary', 'second attempt: migrated 12 tables, zero downtime', '--metadata', '{"tables": 12}');
cli('claim', schema);
cli('complete', schema, '--summary', '4 tables, see schema.sql');
// Hostile text in a title, a body and a comment.
const evil = json('create', 'Evil ' + XSS, '--assignee', 'coder', '--body', '# Heading\n' + XSS + '\n\n- item ' + XSS + '\n\n[x](javascript:alert(1))').id;
cli('comment', evil, XSS);

const server = await serve(home.env);
const b = await browser();
const page = await b.newPage({ viewport: { width: 1720, height: 960 } });
const dialogs = [];
const pageErrors = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

const t = runner();
const card = (id) => page.locator(`.card[data-id="${id}"]`);
const colOf = async (id) => card(id).evaluate((el) => el.closest('.col').dataset.status);

await t.test('loads the board with every column and the seeded cards', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const cols = await page.$$eval('.col', (els) => els.map((e) => e.dataset.status));
  assert(JSON.stringify(cols) === JSON.stringify(['triage', 'todo', 'scheduled', 'ready', 'running', 'blocked', 'review', 'done']), 'columns: ' + cols);
  assert(await colOf(api) === 'ready', 'API task is ready once the schema is done');
  assert(await colOf(running) === 'running', 'claimed task is in running');
  assert(await colOf(retried) === 'done', 'retried task is done');
  const lane = await page.locator('.col[data-status="running"] .lane').first().textContent();
  assert(lane.includes('@researcher'), 'running column has lanes by profile: ' + lane);
  await page.waitForSelector('#live.on', { timeout: 5000 });
  await page.screenshot({ path: path.join(artifacts, 'board-initial.png') });
});

await t.test('creates a task in the dialog (Enter submits)', async () => {
  await page.click('#create-btn');
  await page.waitForSelector('#create-dialog[open]');
  await page.fill('#create-form input[name=title]', 'Created from the dialog');
  await page.fill('#create-form input[name=assignee]', 'coder');
  await page.fill('#create-form input[name=priority]', '5');
  await page.press('#create-form input[name=title]', 'Enter');
  await page.waitForSelector('#create-dialog:not([open])', { state: 'attached', timeout: 5000 });
  const c = page.locator('.card', { hasText: 'Created from the dialog' });
  await c.waitFor({ timeout: 5000 });
  assert((await c.evaluate((el) => el.closest('.col').dataset.status)) === 'ready', 'new card in ready');
  assert((await c.textContent()).includes('P5'), 'priority chip shown');
});

await t.test('dragging a card ready→blocked asks for the block reason', async () => {
  await card(dragMe).dragTo(page.locator('.col[data-status="blocked"] .col-body'));
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  const title = await page.textContent('#prompt-title');
  assert(/^Block/.test(title), 'block prompt shown: ' + title);
  await page.fill('#prompt-input', 'waiting for the design review');
  await page.press('#prompt-input', 'Enter');
  await page.waitForFunction((id) => {
    const el = document.querySelector(`.card[data-id="${id}"]`);
    return el && el.closest('.col').dataset.status === 'blocked';
  }, dragMe, { timeout: 5000 });
  const show = json('show', dragMe);
  assert(show.task.status === 'blocked', 'kernel says blocked');
  // Dragging to running is refused client-side (the dispatcher starts tasks).
  await card(api).dragTo(page.locator('.col[data-status="running"] .col-body'));
  await page.waitForTimeout(300);
  assert(await colOf(api) === 'ready', 'running is not a drop target that moves cards');
});

await t.test('the drawer shows both runs of a retried task with their summaries', async () => {
  await card(retried).click();
  await page.waitForSelector('#drawer:not(.hidden) .run', { timeout: 5000 });
  const runs = await page.$$eval('#drawer .run', (els) => els.map((e) => ({
    outcome: e.querySelector('.badge').textContent,
    summary: (e.querySelector('.summary') || {}).textContent || '',
    metadata: (e.querySelector('.metadata') || {}).textContent || '',
  })));
  assert(runs.length === 2, 'two runs: ' + JSON.stringify(runs));
  assert(runs[0].outcome === 'blocked' && runs[0].summary.includes('missing credentials'), 'first run: ' + JSON.stringify(runs[0]));
  assert(runs[1].outcome === 'completed' && runs[1].summary.includes('migrated 12 tables'), 'second run: ' + JSON.stringify(runs[1]));
  assert(runs[1].metadata.includes('"tables": 12'), 'metadata shown');
  const comments = await page.textContent('#drawer');
  assert(comments.includes('credentials are in the vault now'), 'comment shown');
  await page.screenshot({ path: path.join(artifacts, 'drawer.png') });
  await page.keyboard.press('Escape');
  await page.waitForSelector('#drawer.hidden', { state: 'attached', timeout: 2000 });
});

await t.test('a change made through the CLI appears without reload within 2 s', async () => {
  await page.evaluate(() => { window.__marker = 'same page'; });
  const t0 = Date.now();
  const id = json('create', 'Made by the CLI', '--assignee', 'coder').id;
  await card(id).waitFor({ timeout: 2000 });
  const created = Date.now() - t0;
  const t1 = Date.now();
  cli('claim', id);
  await page.waitForFunction((x) => {
    const el = document.querySelector(`.card[data-id="${x}"]`);
    return el && el.closest('.col').dataset.status === 'running';
  }, id, { timeout: 2000 });
  const moved = Date.now() - t1;
  assert(await page.evaluate(() => window.__marker) === 'same page', 'no reload happened');
  console.log(`     (CLI create visible after ${created} ms, claim after ${moved} ms)`);
});

await t.test('a title, body and comment holding <img onerror> render inert', async () => {
  await card(evil).waitFor();
  const cardText = await card(evil).textContent();
  assert(cardText.includes(XSS), 'the card shows the characters');
  await card(evil).click();
  await page.waitForSelector('#drawer:not(.hidden) .comment', { timeout: 5000 });
  const stats = await page.evaluate(() => ({
    imgs: document.querySelectorAll('img').length,
    onerror: document.querySelectorAll('[onerror]').length,
    jsLinks: [...document.querySelectorAll('a')].filter((a) => /^javascript:/i.test(a.getAttribute('href') || '')).length,
    bodyText: document.querySelector('#drawer .md').textContent,
    commentText: document.querySelector('#drawer .comment').textContent,
    heading: !!document.querySelector('#drawer .md h3'),
  }));
  assert(stats.imgs === 0, 'no img element anywhere: ' + stats.imgs);
  assert(stats.onerror === 0, 'no onerror attribute anywhere');
  assert(stats.jsLinks === 0, 'no javascript: link');
  assert(stats.bodyText.includes(XSS), 'body shows the text: ' + stats.bodyText);
  assert(stats.commentText.includes(XSS), 'comment shows the text');
  assert(stats.heading, 'the rest of the markdown still renders');
  await page.waitForTimeout(300);
  assert(dialogs.length === 0, 'no dialog fired: ' + dialogs.join(' | '));
  await page.keyboard.press('Escape');
});

await t.test('touch drag (pointer fallback) moves a card ready→todo', async () => {
  const guide = page.locator('.card', { hasText: 'Write the user guide' });
  const id = await guide.getAttribute('data-id');
  await page.evaluate((id) => {
    const card = document.querySelector(`.card[data-id="${id}"]`);
    const from = card.getBoundingClientRect();
    const to = document.querySelector('.col[data-status="todo"] .col-body').getBoundingClientRect();
    const ev = (type, target, x, y) => target.dispatchEvent(new PointerEvent(type, {
      bubbles: true, cancelable: true, pointerType: 'touch', pointerId: 7, isPrimary: true, clientX: x, clientY: y,
    }));
    const x0 = from.left + 20, y0 = from.top + 20;
    const x1 = to.left + to.width / 2, y1 = to.top + 120;
    ev('pointerdown', card, x0, y0);
    for (let i = 1; i <= 5; i++) ev('pointermove', document, x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5);
    ev('pointerup', document, x1, y1);
  }, id);
  await page.waitForFunction((x) => {
    const el = document.querySelector(`.card[data-id="${x}"]`);
    return el && el.closest('.col').dataset.status === 'todo';
  }, id, { timeout: 3000 });
});

await t.test('search filters cards; the bulk bar edits a selection', async () => {
  await page.fill('#search', 'flaky upstream');
  await page.waitForFunction(() => document.querySelectorAll('.card').length === 1, null, { timeout: 2000 });
  await page.fill('#search', '');
  await page.waitForFunction(() => document.querySelectorAll('.card').length > 5, null, { timeout: 2000 });
  const ready = page.locator('.col[data-status="ready"] .card');
  const a = await ready.nth(0).getAttribute('data-id');
  const b2 = await ready.nth(1).getAttribute('data-id');
  await ready.nth(0).click({ modifiers: ['Control'] });
  await ready.nth(1).click({ modifiers: ['Control'] });
  await page.waitForSelector('#bulkbar:not(.hidden)');
  assert((await page.textContent('#bulk-count')) === '2 selected', 'two selected');
  await page.fill('#bulk-priority', '4');
  await page.click('#bulkbar button[data-bulk="priority"]');
  await page.waitForFunction(([x, y]) => [x, y].every((id) => {
    const el = document.querySelector(`.card[data-id="${id}"]`);
    return el && el.textContent.includes('P4');
  }), [a, b2], { timeout: 3000 });
  await page.click('#bulkbar button[data-bulk="clear"]');
  await page.waitForSelector('#bulkbar.hidden', { state: 'attached' });
});

await t.test('a new board from the dialog, and switching boards', async () => {
  await page.click('#new-board-btn');
  await page.waitForSelector('#board-dialog[open]');
  await page.fill('#board-form input[name=slug]', 'lab');
  await page.fill('#board-form input[name=name]', 'Lab');
  await page.press('#board-form input[name=name]', 'Enter');
  await page.waitForFunction(() => document.querySelector('#board-select').value === 'lab', null, { timeout: 5000 });
  await page.waitForFunction(() => document.querySelectorAll('.card').length === 0, null, { timeout: 3000 });
  await page.selectOption('#board-select', 'default');
  await page.waitForFunction(() => document.querySelectorAll('.card').length > 5, null, { timeout: 3000 });
  cli('boards', 'switch', 'default');
});

await t.test('the board after the session (screenshot)', async () => {
  await page.waitForSelector('#drawer.hidden', { state: 'attached', timeout: 2000 });
  await page.evaluate(() => { document.getElementById('toast').className = 'toast'; document.activeElement.blur(); });
  await page.waitForTimeout(250);
  await page.screenshot({ path: path.join(artifacts, 'board.png') });
});

await t.test('no script errors on the page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('\n'));
});

const failed = t.done();
if (process.argv.includes('--docs') && fs.existsSync(path.join(artifacts, 'board.png'))) {
  fs.mkdirSync(path.join(repo, 'docs'), { recursive: true });
  fs.copyFileSync(path.join(artifacts, 'board.png'), path.join(repo, 'docs', 'screenshot-board.png'));
}
await b.close();
server.stop();
fs.rmSync(home.dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
