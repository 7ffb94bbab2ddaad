// The review lane in the dashboard (issue 11), in headless Chromium against the real binary:
// Request review from the drawer (reviewer + summary) moves a running task to Review with the
// reviewer as assignee; Request changes sends it back to its implementer with a CHANGES
// REQUESTED comment; Approve completes a review task; Reopen review returns one to ready; and
// dragging a ready card onto the Review column requests review like any other column move.
// Every outcome is checked in the database through the CLI, not only on the page.
import fs from 'node:fs';
import { tempHome, serve, browser, runner, assert } from './lib.mjs';

const home = tempHome();
const { cli, json } = home;
cli('init');
const impl = json('create', 'Add CSV export', '--assignee', 'coder').id;
cli('claim', impl);
const approveMe = json('create', 'Fix the date parser', '--assignee', 'coder').id;
cli('claim', approveMe);
cli('request-review', approveMe, '--summary', 'parser handles ISO weeks; 9 tests', '--reviewer', 'reviewer');
const reopenMe = json('create', 'Tune the cache', '--assignee', 'coder').id;
cli('claim', reopenMe);
cli('request-review', reopenMe, '--summary', 'cache ttl 60s', '--reviewer', 'reviewer');
const dragMe = json('create', 'Write the changelog', '--assignee', 'writer').id;

const server = await serve(home.env);
const b = await browser();
const page = await b.newPage({ viewport: { width: 1600, height: 900 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) pageErrors.push(m.text()); });

const t = runner();
const card = (id) => page.locator(`.card[data-id="${id}"]`);
const inColumn = (id, status) => page.waitForFunction(([i, s]) => {
  const el = document.querySelector(`.card[data-id="${i}"]`);
  return el && el.closest('.col').dataset.status === s;
}, [id, status], { timeout: 8000 });
const openDrawer = async (id) => {
  await card(id).click();
  await page.waitForFunction((i) => document.querySelector('#drawer-id').textContent === i, id, { timeout: 5000 });
};
const show = (id) => json('show', id);
const button = (label) => page.locator(`#drawer .actions button:text-is("${label}")`);

await t.test('Request review from the drawer moves a running task to Review for the reviewer', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  await openDrawer(impl);
  await button('Request review').click();
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  await page.fill('#prompt-input', 'reviewer');
  await page.click('#prompt-ok');
  await page.waitForSelector('#prompt-dialog[open] #prompt-meta-row:not(.hidden)', { timeout: 5000 });
  await page.fill('#prompt-input', 'CSV export behind ?format=csv; 5 tests');
  await page.fill('#prompt-meta', '{"tests": 5}');
  await page.click('#prompt-ok');
  await inColumn(impl, 'review');
  const s = show(impl);
  assert(s.task.status === 'review', 'status in the DB: ' + s.task.status);
  assert(s.task.assignee === 'reviewer', 'the reviewer is the assignee: ' + s.task.assignee);
  const ev = s.events.find((e) => e.kind === 'review_requested');
  assert(ev && ev.payload.reviewer === 'reviewer' && ev.payload.implementer === 'coder', 'review_requested: ' + JSON.stringify(ev));
  const run = s.runs[s.runs.length - 1];
  assert(run.outcome === 'review_requested' && run.metadata && run.metadata.tests === 5, 'the run carries the hand-off: ' + JSON.stringify(run));
});

await t.test('Request changes sends it back to the implementer with the reason', async () => {
  await openDrawer(impl);
  await button('Request changes').click();
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  await page.fill('#prompt-input', 'quote fields that contain commas');
  await page.click('#prompt-ok');
  await inColumn(impl, 'ready');
  const s = show(impl);
  assert(s.task.status === 'ready', 'status: ' + s.task.status);
  assert(s.task.assignee === 'coder', 'back to the implementer: ' + s.task.assignee);
  assert(s.comments.some((c) => c.body === 'CHANGES REQUESTED: quote fields that contain commas'), 'comment: ' + JSON.stringify(s.comments));
  assert(s.events.some((e) => e.kind === 'review_reopened'), 'review_reopened event');
});

await t.test('Approve completes a task under review', async () => {
  await openDrawer(approveMe);
  await button('Approve').click();
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  await page.fill('#prompt-input', 'checked ISO week 53 by hand');
  await page.click('#prompt-ok');
  await inColumn(approveMe, 'done');
  const s = show(approveMe);
  assert(s.task.status === 'done', 'status: ' + s.task.status);
  assert(s.runs[s.runs.length - 1].summary === 'checked ISO week 53 by hand', 'approval summary on the run');
});

await t.test('Reopen review gives a review task back to its implementer', async () => {
  await openDrawer(reopenMe);
  await button('Reopen review').click();
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  await page.click('#prompt-ok');
  await inColumn(reopenMe, 'ready');
  const s = show(reopenMe);
  assert(s.task.status === 'ready' && s.task.assignee === 'coder', 'ready for the implementer: ' + s.task.status + ' ' + s.task.assignee);
});

await t.test('dropping a ready card on the Review column requests review', async () => {
  await card(dragMe).dragTo(page.locator('.col[data-status="review"]'));
  await page.waitForSelector('#prompt-dialog[open]', { timeout: 5000 });
  await page.fill('#prompt-input', '');
  await page.click('#prompt-ok');
  await page.waitForSelector('#prompt-dialog[open] #prompt-meta-row:not(.hidden)', { timeout: 5000 });
  await page.fill('#prompt-input', 'changelog for 2.1 drafted');
  await page.click('#prompt-ok');
  await inColumn(dragMe, 'review');
  const s = show(dragMe);
  assert(s.task.status === 'review' && s.task.assignee === 'writer', 'review, assignee kept: ' + s.task.status + ' ' + s.task.assignee);
});

await t.test('a refused move says why and changes nothing', async () => {
  // A done task cannot go to review.
  const before = show(approveMe);
  const r = await page.evaluate(async ([url, id]) => {
    const res = await fetch(url + '/api/tasks/' + id, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'review', summary: 'again' }) });
    return { status: res.status, body: await res.text() };
  }, [server.url, approveMe]);
  assert(r.status === 409 || r.status === 400, 'refused: ' + JSON.stringify(r));
  assert(/review/.test(r.body), 'the error says why: ' + r.body);
  const after = show(approveMe);
  assert(JSON.stringify(after.task) === JSON.stringify(before.task), 'nothing changed');
});

await t.test('no script errors on the page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('\n'));
});

const failed = t.done();
await b.close();
server.stop();
fs.rmSync(home.dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
