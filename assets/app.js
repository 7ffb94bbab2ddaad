// hermes-kanban dashboard. Plain JavaScript, no framework, no build step.
//
// Data flow: GET /api/board once (compact cards), then live updates from the SSE stream at
// /api/events: each event names a task; touched ids are batched (200 ms) and refreshed with
// GET /api/board?ids=… so one change never re-fetches or re-renders the whole board.
// Columns are virtualised: only the cards in view (plus a margin) exist in the DOM, so a
// 10,000-task board paints as fast as a small one. Done (and Archived) arrive capped: their
// newest 200 cards, newest first, with the column's total; "Load more" at the foot of the
// column reads the next page with the server's cursor (GET /api/board?column=&cursor=). All user text goes through textContent or
// the DOM-building markdown renderer (md.js); nothing untrusted is ever parsed as HTML.
'use strict';
(function () {
  const STATUSES = ['triage', 'todo', 'scheduled', 'ready', 'running', 'blocked', 'review', 'done'];
  const HELP = {
    triage: 'Rough ideas waiting to be specified',
    todo: 'Waiting on parents, or parked',
    scheduled: 'Parked until later; never dispatched',
    ready: 'Dispatchable: the dispatcher claims these by priority',
    running: 'Claimed by a worker',
    blocked: 'Needs a human (or tripped the circuit breaker)',
    review: 'Review queue',
    done: 'Finished, with a hand-off',
    archived: 'Hidden; satisfies dependencies',
  };
  const CARD_H = 88;
  const LANE_H = 28;
  const MORE_H = 44;
  // Columns the server pages (newest first) on the compact board.
  const PAGED = new Set(['done', 'archived']);
  const PAGE_SIZE = 200;
  const OVERSCAN = 6;
  const SEV_RANK = { warning: 1, error: 2, critical: 3 };
  const SEV_MARK = { warning: '⚠', error: '!!', critical: '!!!' };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const md = (text) => window.HKMarkdown.render(text);

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k in e && typeof v !== 'string') e[k] = v;
        else e.setAttribute(k, v === true ? '' : v);
      }
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  // ---------- state ----------
  const state = {
    board: localStorage.getItem('hk.board') || '',
    cards: new Map(),
    showArchived: false,
    lanes: localStorage.getItem('hk.lanes') !== '0',
    // Card age: time since creation, or time in the current status (from the kernel's
    // `status_since`).
    ageInStatus: localStorage.getItem('hk.ageMode') === 'status',
    collapsed: new Set(JSON.parse(localStorage.getItem('hk.collapsed') || '[]')),
    filter: { q: '', tenant: '', assignee: '', diagOnly: false },
    selected: new Set(),
    anchor: null,
    drawerId: null,
    skew: 0,
    tenants: [],
    assignees: [],
    boards: [],
    lastEventId: null,
    loaded: false,
    // Paged columns: status -> { total, cursor (null once every card is loaded), loading }.
    pages: new Map(),
  };
  const cols = new Map(); // status -> Column

  // ---------- API ----------
  async function api(method, path, body) {
    const url = new URL('/api' + path, location.origin);
    if (state.board && !url.searchParams.has('board')) url.searchParams.set('board', state.board);
    const init = { method, headers: {}, credentials: 'same-origin' };
    if (body instanceof Blob) {
      init.body = body;
      init.headers['Content-Type'] = body.type || 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(url, init);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
    if (!r.ok) {
      const e = new Error((data && data.detail) || r.statusText || ('HTTP ' + r.status));
      e.status = r.status;
      throw e;
    }
    return data;
  }

  let toastTimer = null;
  function toast(msg, isErr) {
    const t = $('#toast');
    t.textContent = msg;
    t.className = 'toast show' + (isErr ? ' err' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = 'toast'; }, isErr ? 6000 : 3000);
  }
  const fail = (e) => toast(e.message || String(e), true);

  // ---------- time ----------
  const nowSec = () => Date.now() / 1000 + state.skew;
  function ago(ts) {
    if (ts == null) return '';
    const d = Math.max(0, Math.floor(nowSec() - ts));
    if (d < 60) return d + 's';
    if (d < 3600) return Math.floor(d / 60) + 'm';
    if (d < 86400) return Math.floor(d / 3600) + 'h';
    return Math.floor(d / 86400) + 'd';
  }
  // One formatter for every card's date (toLocaleString builds one per call: ~0.3 ms each).
  const WHEN_FMT = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  function when(ts) {
    if (ts == null) return '—';
    const d = new Date(ts * 1000);
    return WHEN_FMT.format(d) + ' (' + ago(ts) + ' ago)';
  }
  function duration(s) {
    if (s == null) return '';
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  }
  // REF §17.3 staleness colouring.
  function staleness(c) {
    const age = (ts) => (ts == null ? 0 : nowSec() - ts);
    const H = 3600, D = 86400;
    let a = 0, amber = 0, red = 0;
    if (c.status === 'ready') { a = age(c.created_at); amber = H; red = D; }
    else if (c.status === 'running') { a = age(c.started_at); amber = 600; red = H; }
    else if (c.status === 'blocked') { a = age(c.created_at); amber = H; red = D; }
    else if (c.status === 'todo') { a = age(c.created_at); amber = 7 * D; red = 30 * D; }
    else return '';
    return a >= red ? 'stale-red' : a >= amber ? 'stale-amber' : '';
  }

  // ---------- filtering ----------
  function matches(c) {
    const f = state.filter;
    if (f.tenant && c.tenant !== f.tenant) return false;
    if (f.assignee && (c.assignee || '') !== f.assignee) return false;
    if (f.diagOnly && !c.warnings) return false;
    if (f.q) {
      const hay = c._hay || (c._hay = [c.id, c.title, c.body, c.result, c.latest_summary, c.assignee, c.tenant]
        .filter(Boolean).join('\n').toLowerCase());
      for (const word of f.q.split(/\s+/)) if (word && !hay.includes(word)) return false;
    }
    return true;
  }
  const byPriority = (a, b) => (b.priority - a.priority) || (a.created_at - b.created_at) || (a.id < b.id ? -1 : 1);
  // Paged columns: the server's order, newest completion first (then newest creation, then id).
  const doneAt = (c) => (c.completed_at == null ? c.created_at : c.completed_at);
  const byNewest = (a, b) => (doneAt(b) - doneAt(a)) || (b.created_at - a.created_at) || (a.id < b.id ? 1 : -1);
  // Cards of `status` the page does not hold yet (the server's total minus those loaded).
  function notLoaded(status) {
    const p = state.pages.get(status);
    if (!p) return 0;
    let have = 0;
    for (const c of state.cards.values()) if (c.status === status) have++;
    return Math.max(0, p.total - have);
  }

  // ---------- virtualised column ----------
  class Column {
    constructor(status) {
      this.status = status;
      this.rows = [];
      this.offsets = [];
      this.total = 0;
      this.ids = [];
      this.rendered = new Map(); // key -> element
      this.countEl = h('span', { class: 'count', text: '0' });
      this.checkEl = h('input', { type: 'checkbox', title: 'Select all in column', onchange: () => this.selectAll(this.checkEl.checked) });
      this.collapseBtn = h('button', { type: 'button', class: 'collapse', title: 'Collapse this column', text: '‹', onclick: (e) => { e.stopPropagation(); this.setCollapsed(true); } });
      // The column's purpose is the name's tooltip (a separate "?" cost width at 1600 px).
      const head = h('div', { class: 'col-head' },
        this.checkEl,
        h('span', { class: 'name', title: status + ': ' + (HELP[status] || ''), text: status }),
        this.countEl,
        h('span', { class: 'spacer' }),
        this.collapseBtn,
        status === 'running' || status === 'archived' ? null
          : h('button', { type: 'button', title: 'New task here', text: '+', onclick: () => openCreate(status) }));
      this.spacer = h('div', { class: 'spacer-v' });
      this.empty = h('div', { class: 'col-empty hidden', text: 'No tasks' });
      this.body = h('div', { class: 'col-body', dataset: { status } }, this.spacer, this.empty);
      // A collapsed column is a narrow strip showing its name and count; click it to expand.
      this.strip = h('button', { type: 'button', class: 'col-strip', title: 'Expand ' + status, onclick: () => this.setCollapsed(false) },
        h('span', { class: 'name', text: status }), this.stripCount = h('span', { class: 'count', text: '0' }));
      this.el = h('section', { class: 'col', dataset: { status } }, this.strip, head, this.body);
      this.el.classList.toggle('collapsed', state.collapsed.has(status));
      this.body.addEventListener('scroll', () => this.schedule(), { passive: true });
      bindDrop(this.el, status);
      this.pending = false;
    }
    setCollapsed(on) {
      on ? state.collapsed.add(this.status) : state.collapsed.delete(this.status);
      localStorage.setItem('hk.collapsed', JSON.stringify([...state.collapsed]));
      this.el.classList.toggle('collapsed', on);
      if (!on) this.render();
    }
    // Rows for `list`; renders at once unless `defer` (layout() renders every column after one
    // read of their scroll positions, so the browser lays the page out once, not per column).
    setCards(list, defer) {
      const ids = list.map((c) => c.id);
      const laneMode = state.lanes && this.status === 'running';
      const rows = [];
      if (laneMode) {
        const groups = new Map();
        for (const c of list) {
          const k = c.assignee || '(unassigned)';
          if (!groups.has(k)) groups.set(k, []);
          groups.get(k).push(c);
        }
        for (const k of [...groups.keys()].sort()) {
          rows.push({ key: 'lane:' + k, lane: k, n: groups.get(k).length, h: LANE_H });
          for (const c of groups.get(k)) rows.push({ key: c.id, id: c.id, h: CARD_H });
        }
      } else {
        for (const c of list) rows.push({ key: c.id, id: c.id, h: CARD_H });
      }
      const page = state.pages.get(this.status);
      const hidden = notLoaded(this.status);
      if (page && page.cursor) rows.push({ key: 'more', more: hidden, h: MORE_H });
      this.ids = ids;
      this.rows = rows;
      this.offsets = new Array(rows.length);
      let y = 6;
      for (let i = 0; i < rows.length; i++) { this.offsets[i] = y; y += rows[i].h; }
      this.total = y + 6;
      this.spacer.style.height = this.total + 'px';
      // A paged column counts what it has not loaded yet too ("+" when a filter is on: the
      // unloaded cards are not searched).
      const f = state.filter;
      const filtered = f.q || f.tenant || f.assignee || f.diagOnly;
      const count = !hidden ? String(ids.length) : filtered ? ids.length + '+' : String(ids.length + hidden);
      this.countEl.textContent = count;
      this.stripCount.textContent = count;
      this.countEl.title = hidden ? ids.length + ' shown, ' + hidden + ' more not loaded' : '';
      this.empty.classList.toggle('hidden', ids.length > 0 || hidden > 0);
      this.syncCheck();
      if (!defer) this.render();
    }
    syncCheck() {
      const n = this.ids.length;
      let sel = 0;
      if (state.selected.size) for (const id of this.ids) if (state.selected.has(id)) sel++;
      this.checkEl.checked = n > 0 && sel === n;
      this.checkEl.indeterminate = sel > 0 && sel < n;
    }
    selectAll(on) {
      for (const id of this.ids) on ? state.selected.add(id) : state.selected.delete(id);
      selectionChanged();
    }
    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }
    // Render the rows intersecting the viewport; reuse elements whose card did not change.
    viewport() { return [this.body.scrollTop, this.body.clientHeight || 800]; }
    render(view) {
      const [top, height] = view || this.viewport();
      const bottom = top + height;
      let lo = 0, hi = this.rows.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (this.offsets[mid] + this.rows[mid].h < top) lo = mid + 1; else hi = mid; }
      const start = Math.max(0, lo - OVERSCAN);
      let end = lo;
      while (end < this.rows.length && this.offsets[end] < bottom) end++;
      end = Math.min(this.rows.length, end + OVERSCAN);
      const keep = new Set();
      for (let i = start; i < end; i++) {
        const row = this.rows[i];
        keep.add(row.key);
        let el = this.rendered.get(row.key);
        if (row.more !== undefined) {
          if (!el) {
            el = h('button', { type: 'button', class: 'more', onclick: () => loadMore(this.status).catch(fail) });
            this.body.appendChild(el);
            this.rendered.set(row.key, el);
          }
          const p = state.pages.get(this.status);
          el.disabled = !!(p && p.loading);
          el.textContent = p && p.loading ? 'Loading…'
            : 'Load ' + Math.min(PAGE_SIZE, row.more || PAGE_SIZE) + ' more' + (row.more ? ' (' + row.more + ' not loaded)' : '');
        } else if (row.lane !== undefined) {
          if (!el) {
            el = h('div', { class: 'lane' });
            this.body.appendChild(el);
            this.rendered.set(row.key, el);
          }
          el.textContent = '@' + row.lane + ' · ' + row.n;
        } else {
          const card = state.cards.get(row.id);
          if (!card) continue;
          if (!el || el._card !== card) {
            const fresh = renderCard(card);
            if (el) el.replaceWith(fresh); else this.body.appendChild(fresh);
            el = fresh;
            this.rendered.set(row.key, el);
          }
          el.classList.toggle('selected', state.selected.has(card.id));
        }
        if (el._y !== this.offsets[i]) {
          el.style.transform = 'translateY(' + this.offsets[i] + 'px)';
          el.style.top = '0';
          el._y = this.offsets[i];
        }
      }
      for (const [k, el] of this.rendered) {
        if (!keep.has(k)) { el.remove(); this.rendered.delete(k); }
      }
    }
    refreshVisible() {
      for (const [, el] of this.rendered) el._card = null;
      this.render();
    }
  }

  function renderCard(c) {
    const top = h('div', { class: 'top' }, h('span', { class: 'mono', text: c.id }));
    if (c.warnings) {
      const sev = c.warnings.highest_severity || 'warning';
      const kinds = Object.entries(c.warnings.kinds || {}).map(([k, n]) => k + (n > 1 ? ' ×' + n : '')).join(', ');
      top.appendChild(h('span', { class: 'diag ' + sev, title: sev + ': ' + kinds, text: SEV_MARK[sev] || '⚠' }));
    }
    if (c.priority > 0) top.appendChild(h('span', { class: 'chip prio', text: 'P' + c.priority }));
    if (c.tenant) top.appendChild(h('span', { class: 'chip tenant', text: c.tenant }));
    if (c.progress) top.appendChild(h('span', { class: 'chip progress', title: 'children done / total', text: c.progress.done + '/' + c.progress.total }));
    if (c.status === 'ready' && !c.assignee) top.appendChild(h('span', { class: 'chip need', text: 'Needs assignee' }));
    const links = (c.link_counts ? c.link_counts.parents + c.link_counts.children : 0);
    const bottom = h('div', { class: 'bottom' },
      c.assignee ? h('span', { text: '@' + c.assignee }) : h('span', { text: 'unassigned' }),
      c.comment_count ? h('span', { title: 'comments', text: '✉ ' + c.comment_count }) : null,
      links ? h('span', { title: 'dependencies', text: '⇄ ' + links }) : null,
      state.ageInStatus
        ? h('span', { class: 'age in-status', title: 'in ' + c.status + ' since ' + when(c.status_since || c.created_at), text: ago(c.status_since || c.created_at) })
        : h('span', { class: 'age', title: 'created ' + when(c.created_at), text: ago(c.created_at) }));
    const el = h('div', {
      class: 'card ' + staleness(c), tabindex: '0', draggable: 'true', role: 'button',
      dataset: { id: c.id }, 'aria-label': c.id + ' ' + c.title,
    }, top, h('div', { class: 'title', text: c.title }), bottom);
    el._card = c;
    return el;
  }

  // ---------- board ----------
  function buildColumns() {
    const main = $('#board');
    main.textContent = '';
    cols.clear();
    const list = state.showArchived ? [...STATUSES, 'archived'] : STATUSES;
    for (const s of list) {
      const col = new Column(s);
      cols.set(s, col);
      main.appendChild(col.el);
    }
  }

  function layout() {
    const groups = new Map();
    for (const s of cols.keys()) groups.set(s, []);
    for (const c of state.cards.values()) {
      if (!matches(c)) continue;
      const g = groups.get(c.status) || groups.get('todo');
      g.push(c);
    }
    for (const [s, list] of groups) {
      list.sort(PAGED.has(s) ? byNewest : byPriority);
      cols.get(s).setCards(list, true);
    }
    // Read every column's viewport first, then write: one layout for the whole board.
    const views = [...cols.values()].map((c) => [c, c.viewport()]);
    for (const [c, v] of views) c.render(v);
    updateAttention();
  }

  function updateAttention() {
    const bar = $('#attention');
    const kinds = {};
    let n = 0;
    const f = state.filter;
    for (const c of state.cards.values()) {
      if (!c.warnings) continue;
      // With a tenant (or profile) filter on, count only what the filter shows.
      if (f.tenant && c.tenant !== f.tenant) continue;
      if (f.assignee && (c.assignee || '') !== f.assignee) continue;
      n++;
      for (const k of Object.keys(c.warnings.kinds || {})) kinds[k] = (kinds[k] || 0) + 1;
    }
    if (!n) { bar.classList.add('hidden'); return; }
    bar.classList.remove('hidden');
    bar.textContent = '';
    bar.appendChild(h('strong', { text: '⚠ ' + n + (n === 1 ? ' task needs' : ' tasks need') + ' attention:' }));
    bar.appendChild(h('span', { text: Object.entries(kinds).map(([k, v]) => k + ' ' + v).join(' · ') }));
    bar.appendChild(h('button', {
      type: 'button', text: state.filter.diagOnly ? 'Show all' : 'Show only these',
      onclick: () => { state.filter.diagOnly = !state.filter.diagOnly; layout(); },
    }));
  }

  function storeCard(c) {
    if (c.status === 'archived' && !state.showArchived) state.cards.delete(c.id);
    else state.cards.set(c.id, c);
  }

  async function loadBoard() {
    // A re-read keeps as many cards of the paged columns as the page already shows.
    let limit = PAGE_SIZE;
    for (const s of PAGED) {
      let have = 0;
      if (state.pages.has(s)) for (const c of state.cards.values()) if (c.status === s) have++;
      limit = Math.max(limit, Math.min(10000, have));
    }
    const q = '/board?compact=1' + (state.showArchived ? '&include_archived=1' : '') + (state.ageInStatus ? '&status_since=1' : '')
      + (limit !== PAGE_SIZE ? '&done_limit=' + limit : '');
    let data;
    try {
      data = await api('GET', q);
    } catch (e) {
      if (e.status === 404 && state.board) {
        // The remembered board is gone: fall back to the server's current board.
        state.board = '';
        localStorage.removeItem('hk.board');
        return loadBoard();
      }
      throw e;
    }
    if (!state.loaded) performance.mark('hk:board-fetched');
    state.skew = data.now - Date.now() / 1000;
    state.cards.clear();
    state.pages.clear();
    for (const col of data.columns) {
      for (const c of col.tasks) state.cards.set(c.id, c);
      if (col.total != null) state.pages.set(col.name, { total: col.total, cursor: col.next_cursor, loading: false });
    }
    state.tenants = data.tenants;
    state.assignees = data.assignees;
    if (state.lastEventId == null) state.lastEventId = data.latest_event_id;
    fillFilters();
    if (cols.size !== (state.showArchived ? 9 : 8)) buildColumns();
    layout();
    state.loaded = true;
    requestAnimationFrame(() => {
      if (!performance.getEntriesByName('hk:board-painted').length) performance.mark('hk:board-painted');
      document.body.dataset.ready = '1';
    });
  }

  async function refreshIds(ids) {
    if (!ids.length) return;
    const q = '/board?compact=1' + (state.ageInStatus ? '&status_since=1' : '') + '&ids=' + encodeURIComponent(ids.join(','));
    const data = await api('GET', q);
    state.skew = data.now - Date.now() / 1000;
    for (const c of data.cards) storeCard(c);
    for (const id of data.missing) {
      state.cards.delete(id);
      state.selected.delete(id);
    }
    for (const [s, n] of Object.entries(data.column_totals || {})) {
      const p = state.pages.get(s);
      if (p) p.total = n;
    }
    state.tenants = data.tenants;
    state.assignees = data.assignees;
    fillFilters();
    layout();
  }

  // "Load more": the next page of a paged column, after the last card the server sent.
  async function loadMore(status) {
    const p = state.pages.get(status);
    if (!p || !p.cursor || p.loading) return;
    p.loading = true;
    cols.get(status)?.refreshVisible();
    try {
      const data = await api('GET', '/board?compact=1&column=' + status + '&cursor=' + encodeURIComponent(p.cursor)
        + (state.ageInStatus ? '&status_since=1' : ''));
      // Cards already here (a live update brought them) keep their newer copy.
      for (const c of data.tasks) if (!state.cards.has(c.id)) state.cards.set(c.id, c);
      p.total = data.total;
      p.cursor = data.next_cursor;
    } finally {
      p.loading = false;
    }
    layout();
  }

  function fillFilters() {
    const fill = (sel, values, label) => {
      const cur = sel.value;
      const want = [''].concat(values);
      const have = [...sel.options].map((o) => o.value);
      if (want.join('\u0000') === have.join('\u0000')) return;
      sel.textContent = '';
      for (const v of want) sel.appendChild(h('option', { value: v, text: v || label }));
      sel.value = want.includes(cur) ? cur : '';
    };
    fill($('#filter-tenant'), state.tenants, 'All tenants');
    fill($('#filter-assignee'), state.assignees, 'All profiles');
    const dl = $('#assignee-list');
    const names = new Set(state.assignees);
    for (const a of knownProfiles) names.add(a);
    if (dl.options.length !== names.size) {
      dl.textContent = '';
      for (const a of [...names].sort()) dl.appendChild(h('option', { value: a }));
    }
  }
  let knownProfiles = [];

  // ---------- live events ----------
  let es = null;
  let backoff = 1000;
  let reconnectTimer = null;
  const touched = new Set();
  let flushTimer = null;
  function setLive(on, text) {
    const el = $('#live');
    el.className = 'live ' + (on ? 'on' : 'off');
    el.textContent = text || (on ? 'live' : 'offline');
  }
  function connectEvents() {
    clearTimeout(reconnectTimer);
    if (es) es.close();
    const url = new URL('/api/events', location.origin);
    if (state.board) url.searchParams.set('board', state.board);
    if (state.lastEventId != null) url.searchParams.set('since', String(state.lastEventId));
    es = new EventSource(url);
    es.addEventListener('hello', () => { backoff = 1000; setLive(true); });
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      state.lastEventId = ev.id;
      onEvent(ev);
    };
    es.onerror = () => {
      // Reconnect ourselves with exponential back-off (1 s … 30 s), resuming from the last
      // event seen, then re-read the board in case we were away long.
      es.close();
      es = null;
      setLive(false, 'reconnecting in ' + Math.round(backoff / 1000) + 's');
      reconnectTimer = setTimeout(async () => {
        connectEvents();
        try { await loadBoard(); } catch (_) { /* next retry */ }
      }, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }
  function onEvent(ev) {
    touched.add(ev.task_id);
    const p = ev.payload || {};
    if (typeof p.parent === 'string') touched.add(p.parent);
    if (typeof p.child === 'string') touched.add(p.child);
    if (state.drawerId && (ev.task_id === state.drawerId || p.parent === state.drawerId || p.child === state.drawerId)) drawerDirty = true;
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flushEvents, 200);
  }
  async function flushEvents() {
    const ids = [...touched];
    touched.clear();
    try {
      if (ids.length > 500) await loadBoard();
      else await refreshIds(ids);
    } catch (e) { fail(e); }
    if (drawerDirty && state.drawerId) reloadDrawer();
  }

  // ---------- selection ----------
  function selectionChanged() {
    const n = state.selected.size;
    $('#bulkbar').classList.toggle('hidden', n === 0);
    $('#bulk-count').textContent = n + ' selected';
    for (const col of cols.values()) { col.syncCheck(); col.render(); }
  }
  function visibleIdsInOrder() {
    const out = [];
    for (const col of cols.values()) out.push(...col.ids);
    return out;
  }

  document.addEventListener('click', (e) => {
    const cardEl = e.target.closest('.card');
    if (!cardEl) return;
    const id = cardEl.dataset.id;
    if (e.ctrlKey || e.metaKey) {
      state.selected.has(id) ? state.selected.delete(id) : state.selected.add(id);
      state.anchor = id;
      selectionChanged();
    } else if (e.shiftKey && state.anchor) {
      const order = visibleIdsInOrder();
      const a = order.indexOf(state.anchor), b = order.indexOf(id);
      if (a >= 0 && b >= 0) for (let i = Math.min(a, b); i <= Math.max(a, b); i++) state.selected.add(order[i]);
      selectionChanged();
    } else {
      state.anchor = id;
      openDrawer(id);
    }
  });
  document.addEventListener('keydown', (e) => {
    const tag = (e.target.tagName || '').toLowerCase();
    const typing = tag === 'input' || tag === 'textarea' || tag === 'select' || e.target.isContentEditable;
    if (e.key === 'Escape' && !document.querySelector('dialog[open]')) {
      if (state.drawerId) closeDrawer();
      else if (state.selected.size) { state.selected.clear(); selectionChanged(); }
      return;
    }
    if (typing) return;
    const cardEl = e.target.closest && e.target.closest('.card');
    if (cardEl && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); openDrawer(cardEl.dataset.id); return; }
    if (e.key === '/') { e.preventDefault(); $('#search').focus(); }
    else if (e.key === 'n') { e.preventDefault(); openCreate(); }
  });

  // ---------- moves ----------
  function promptDialog(title, message, opts) {
    opts = opts || {};
    const dlg = $('#prompt-dialog');
    $('#prompt-title').textContent = title;
    $('#prompt-message').textContent = message || '';
    const input = $('#prompt-input');
    input.value = opts.value || '';
    input.classList.toggle('hidden', !!opts.confirmOnly);
    input.required = !!opts.required;
    $('#prompt-ok').textContent = opts.ok || 'OK';
    $('#prompt-error').textContent = '';
    const kindRow = $('#prompt-kind-row'), metaRow = $('#prompt-meta-row');
    kindRow.classList.toggle('hidden', !opts.kinds);
    metaRow.classList.toggle('hidden', !opts.metadata);
    $('#prompt-kind').value = '';
    $('#prompt-meta').value = '';
    const extended = !!(opts.kinds || opts.metadata);
    return new Promise((resolve) => {
      const onClose = () => {
        dlg.removeEventListener('close', onClose);
        if (dlg.returnValue !== 'ok') { resolve(null); return; }
        if (!extended) { resolve(input.value); return; }
        resolve({ text: input.value, kind: $('#prompt-kind').value || null, metadata: parseMetadata($('#prompt-meta').value).value });
      };
      dlg.addEventListener('close', onClose);
      dlg.returnValue = '';
      dlg.showModal();
      if (!opts.confirmOnly) input.focus();
    });
  }
  // Metadata typed in the Complete dialog: empty, or a JSON object.
  function parseMetadata(text) {
    const s = (text || '').trim();
    if (!s) return { value: null };
    let v;
    try { v = JSON.parse(s); } catch (e) { return { error: 'Metadata is not valid JSON (' + e.message + '). Give an object like {"tests": 12}.' }; }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      return { error: 'Metadata must be a JSON object like {"tests": 12}, not ' + (Array.isArray(v) ? 'an array' : v === null ? 'null' : 'a ' + typeof v) + '.' };
    }
    return { value: v };
  }
  $('#prompt-form').addEventListener('submit', (e) => {
    if ($('#prompt-meta-row').classList.contains('hidden')) return;
    const m = parseMetadata($('#prompt-meta').value);
    if (m.error) { e.preventDefault(); $('#prompt-error').textContent = m.error; $('#prompt-meta').focus(); }
  });
  // Enter submits the prompt (Shift+Enter for a new line).
  $('#prompt-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('#prompt-ok').click(); }
  });

  // Ask what a move needs (summary, reason, confirmation) and turn it into a change.
  async function changeFor(to, n, from) {
    const many = n > 1 ? n + ' tasks' : 'this task';
    if (to === 'running') { toast('Tasks start running when a worker claims them — nudge the dispatcher instead.', true); return null; }
    if (to === 'done' && from === 'review') {
      // Approving a review: a note is welcome, not required.
      const r = await promptDialog('Approve ' + many, 'Approval note (optional): what you checked. It becomes the hand-off the tasks that depend on it receive.', { ok: 'Approve' });
      if (r == null) return null;
      return r.trim() ? { status: 'done', summary: r.trim() } : { status: 'done' };
    }
    if (to === 'review') {
      const reviewer = await promptDialog('Request review of ' + many, 'Reviewer profile (optional; default: keep the assignee, or who last requested changes). The dispatcher starts the reviewer on it.', { ok: 'Next' });
      if (reviewer == null) return null;
      const s = await promptDialog('Request review of ' + many, 'Summary (required): what was done and how it was checked, for the reviewer.', { required: true, ok: 'Request review', metadata: true });
      if (s == null || !s.text.trim()) return null;
      const change = { status: 'review', summary: s.text.trim() };
      if (reviewer.trim()) change.reviewer = reviewer.trim();
      if (s.metadata) change.metadata = s.metadata;
      return change;
    }
    if (from === 'review' && (to === 'ready' || to === 'todo')) {
      const r = await promptDialog('Send ' + many + ' back to the implementer', 'What must change? (optional; recorded as a CHANGES REQUESTED comment)', { ok: 'Send back' });
      if (r == null) return null;
      return r.trim() ? { status: to, reason: r.trim() } : { status: to };
    }
    if (to === 'done') {
      const r = await promptDialog('Complete ' + many, 'Completion summary (required): what was done, for the tasks that depend on it. Metadata (optional) is a JSON object the children\'s workers see with the summary.', { required: true, ok: 'Complete', metadata: true });
      if (r == null || !r.text.trim()) return null;
      const change = { status: 'done', result: r.text.trim(), summary: r.text.trim() };
      if (r.metadata) change.metadata = r.metadata;
      return change;
    }
    if (to === 'blocked') {
      const r = await promptDialog('Block ' + many, 'Why is it blocked? The reason is shown to whoever unblocks it.', { required: true, ok: 'Block', kinds: true });
      if (r == null || !r.text.trim()) return null;
      const change = { status: 'blocked', block_reason: r.text.trim() };
      if (r.kind) change.block_kind = r.kind;
      return change;
    }
    if (to === 'scheduled') {
      const r = await promptDialog('Schedule ' + many, 'Reason / until when (optional)', { ok: 'Schedule' });
      if (r == null) return null;
      return { status: 'scheduled', block_reason: r.trim() || null };
    }
    if (to === 'archived') {
      const ok = await promptDialog('Archive ' + many + '?', 'Archived tasks are hidden; they still satisfy their children.', { confirmOnly: true, ok: 'Archive' });
      return ok == null ? null : { status: 'archived' };
    }
    return { status: to };
  }

  async function moveTo(ids, to) {
    ids = ids.filter((id) => { const c = state.cards.get(id); return !c || c.status !== to; });
    if (!ids.length) return;
    const froms = new Set(ids.map((id) => (state.cards.get(id) || {}).status));
    const change = await changeFor(to, ids.length, froms.size === 1 ? [...froms][0] : null);
    if (!change) return;
    try {
      if (ids.length === 1) {
        await api('PATCH', '/tasks/' + encodeURIComponent(ids[0]), change);
      } else {
        const r = await api('POST', '/tasks/bulk', Object.assign({ ids }, change));
        reportBulk(r);
      }
    } catch (e) { fail(e); }
    await refreshIds(ids).catch(fail);
  }

  function reportBulk(r) {
    const bad = r.results.filter((x) => !x.ok);
    if (bad.length) toast(bad.length + ' of ' + r.results.length + ' refused: ' + bad.slice(0, 3).map((x) => x.id + ': ' + x.error).join('; '), true);
    else toast(r.results.length + ' tasks updated');
  }

  async function deleteTasks(ids) {
    const ok = await promptDialog('Delete ' + (ids.length > 1 ? ids.length + ' tasks' : ids[0]) + ' permanently?',
      'This removes the task with its comments, events and runs. It cannot be undone.', { confirmOnly: true, ok: 'Delete' });
    if (ok == null) return;
    for (const id of ids) {
      try { await api('DELETE', '/tasks/' + encodeURIComponent(id)); } catch (e) { fail(e); }
      state.selected.delete(id);
      state.cards.delete(id);
      if (state.drawerId === id) closeDrawer();
    }
    selectionChanged();
    layout();
  }

  // ---------- drag and drop (HTML5, with a pointer fallback for touch and pens) ----------
  let dragIds = null;
  function dragSet(id) {
    return state.selected.has(id) ? [...state.selected] : [id];
  }
  document.addEventListener('dragstart', (e) => {
    const el = e.target.closest && e.target.closest('.card');
    if (!el) return;
    dragIds = dragSet(el.dataset.id);
    e.dataTransfer.effectAllowed = 'move';
    e.dataTransfer.setData('text/plain', dragIds.join(','));
    el.classList.add('dragging');
    $('#trash').classList.remove('hidden');
  });
  document.addEventListener('dragend', (e) => {
    const el = e.target.closest && e.target.closest('.card');
    if (el) el.classList.remove('dragging');
    $('#trash').classList.add('hidden');
    for (const c of cols.values()) c.el.classList.remove('drop-target');
  });
  function bindDrop(colEl, status) {
    colEl.addEventListener('dragover', (e) => { if (dragIds) { e.preventDefault(); colEl.classList.add('drop-target'); } });
    colEl.addEventListener('dragleave', (e) => { if (!colEl.contains(e.relatedTarget)) colEl.classList.remove('drop-target'); });
    colEl.addEventListener('drop', (e) => {
      e.preventDefault();
      colEl.classList.remove('drop-target');
      const ids = dragIds || (e.dataTransfer.getData('text/plain') || '').split(',').filter(Boolean);
      dragIds = null;
      if (ids.length) moveTo(ids, status);
    });
  }
  const trash = $('#trash');
  trash.addEventListener('dragover', (e) => { if (dragIds) { e.preventDefault(); trash.classList.add('over'); } });
  trash.addEventListener('dragleave', () => trash.classList.remove('over'));
  trash.addEventListener('drop', (e) => {
    e.preventDefault();
    trash.classList.remove('over');
    const ids = dragIds;
    dragIds = null;
    if (ids) deleteTasks(ids);
  });

  // Pointer fallback: touch and pen pointers do not start HTML5 drags; after a short move we
  // drag a ghost and drop on the column (or trash) under the finger.
  let pdrag = null;
  document.addEventListener('pointerdown', (e) => {
    if (e.pointerType === 'mouse') return;
    const el = e.target.closest && e.target.closest('.card');
    if (!el) return;
    pdrag = { id: el.dataset.id, x: e.clientX, y: e.clientY, ghost: null, el };
  });
  document.addEventListener('pointermove', (e) => {
    if (!pdrag) return;
    if (!pdrag.ghost) {
      if (Math.hypot(e.clientX - pdrag.x, e.clientY - pdrag.y) < 12) return;
      pdrag.ids = dragSet(pdrag.id);
      pdrag.ghost = h('div', { class: 'ghost', text: pdrag.ids.length > 1 ? pdrag.ids.length + ' tasks' : (state.cards.get(pdrag.id) || {}).title || pdrag.id });
      document.body.appendChild(pdrag.ghost);
      $('#trash').classList.remove('hidden');
    }
    e.preventDefault();
    pdrag.ghost.style.left = e.clientX + 8 + 'px';
    pdrag.ghost.style.top = e.clientY + 8 + 'px';
    const under = document.elementFromPoint(e.clientX, e.clientY);
    for (const c of cols.values()) c.el.classList.toggle('drop-target', !!under && c.el.contains(under));
  }, { passive: false });
  document.addEventListener('pointerup', (e) => {
    if (!pdrag) return;
    const d = pdrag;
    pdrag = null;
    if (!d.ghost) return;
    d.ghost.remove();
    $('#trash').classList.add('hidden');
    for (const c of cols.values()) c.el.classList.remove('drop-target');
    const under = document.elementFromPoint(e.clientX, e.clientY);
    if (under && under.closest('#trash')) { deleteTasks(d.ids); return; }
    const colEl = under && under.closest('.col');
    if (colEl) moveTo(d.ids, colEl.dataset.status);
  });
  document.addEventListener('pointercancel', () => { if (pdrag && pdrag.ghost) pdrag.ghost.remove(); pdrag = null; });

  // ---------- drawer ----------
  let drawerDirty = false;
  let drawerSeq = 0;
  function closeDrawer() {
    state.drawerId = null;
    $('#drawer').classList.add('hidden');
    document.body.classList.remove('drawer-open');
    for (const el of document.querySelectorAll('.card.open')) el.classList.remove('open');
  }
  // The drawer takes the right of the window and the board shrinks beside it (scrolling
  // sideways when its columns no longer fit), so every card stays clickable; clicking another
  // card switches the drawer to it.
  // Below the toolbar (whose height changes when it wraps), so search, filters and toggles
  // stay usable while the drawer is open.
  function placeDrawer() {
    document.documentElement.style.setProperty('--drawer-top', Math.round($('.toolbar').getBoundingClientRect().bottom) + 'px');
  }
  window.addEventListener('resize', () => { if (state.drawerId) placeDrawer(); });
  async function openDrawer(id) {
    state.drawerId = id;
    $('#drawer').classList.remove('hidden');
    document.body.classList.add('drawer-open');
    placeDrawer();
    for (const el of document.querySelectorAll('.card.open')) el.classList.remove('open');
    const cardEl = document.querySelector('.card[data-id="' + CSS.escape(id) + '"]');
    if (cardEl) {
      cardEl.classList.add('open');
      requestAnimationFrame(() => cardEl.scrollIntoView({ block: 'nearest', inline: 'nearest' }));
    }
    $('#drawer-id').textContent = id;
    $('#drawer-body').textContent = 'Loading…';
    await reloadDrawer();
  }
  async function reloadDrawer() {
    const id = state.drawerId;
    if (!id) return;
    // Do not clobber what the user is typing; try again when they leave the field.
    const active = document.activeElement;
    if (active && $('#drawer').contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.value) {
      drawerDirty = true;
      active.addEventListener('blur', () => { if (drawerDirty) setTimeout(reloadDrawer, 50); }, { once: true });
      return;
    }
    drawerDirty = false;
    const seq = ++drawerSeq;
    let d, log;
    try {
      [d, log] = await Promise.all([
        api('GET', '/tasks/' + encodeURIComponent(id)),
        api('GET', '/tasks/' + encodeURIComponent(id) + '/log?tail=102400').catch(() => null),
      ]);
    } catch (e) {
      if (seq !== drawerSeq) return;
      if (e.status === 404) { closeDrawer(); toast(id + ' no longer exists'); return; }
      $('#drawer-body').textContent = e.message;
      return;
    }
    if (seq !== drawerSeq || state.drawerId !== id) return;
    const scroll = $('#drawer-body').scrollTop;
    renderDrawer(d, log);
    $('#drawer-body').scrollTop = scroll;
  }

  function section(title, ...children) {
    return h('section', null, h('h3', { text: title }), ...children);
  }
  function tidLink(id, label) {
    return h('a', { class: 'tid mono', text: label || id, onclick: (e) => { e.preventDefault(); openDrawer(id); } });
  }
  async function patch(id, change) {
    try {
      await api('PATCH', '/tasks/' + encodeURIComponent(id), change);
      await refreshIds([id]);
      await reloadDrawer();
    } catch (e) { fail(e); }
  }

  function renderDrawer(d, log) {
    const t = d.task;
    $('#drawer-id').textContent = t.id;
    const badge = $('#drawer-status');
    badge.textContent = t.status;
    badge.className = 'badge s-' + t.status;
    const body = $('#drawer-body');
    body.textContent = '';

    const title = h('input', { class: 'title-input', value: t.title, 'aria-label': 'Title' });
    title.addEventListener('keydown', (e) => { if (e.key === 'Enter') title.blur(); });
    title.addEventListener('change', () => { if (title.value.trim() && title.value !== t.title) patch(t.id, { title: title.value }); });
    body.appendChild(title);

    const statusSel = h('select', { 'aria-label': 'Status' });
    for (const s of ['triage', 'todo', 'scheduled', 'ready', 'blocked', 'review', 'done', 'archived']) statusSel.appendChild(h('option', { value: s, text: s }));
    if (t.status === 'running') statusSel.insertBefore(h('option', { value: t.status, text: t.status, disabled: true }), statusSel.firstChild);
    statusSel.value = t.status;
    statusSel.addEventListener('change', async () => {
      const to = statusSel.value;
      statusSel.value = t.status;
      await moveTo([t.id], to);
      reloadDrawer();
    });
    const assignee = h('input', { value: t.assignee || '', list: 'assignee-list', placeholder: 'unassigned', 'aria-label': 'Assignee' });
    assignee.addEventListener('change', () => patch(t.id, { assignee: assignee.value.trim() || null }));
    assignee.addEventListener('keydown', (e) => { if (e.key === 'Enter') assignee.blur(); });
    const prio = h('input', { type: 'number', step: '1', value: String(t.priority), 'aria-label': 'Priority' });
    prio.addEventListener('change', () => { const n = parseInt(prio.value, 10); if (!Number.isNaN(n)) patch(t.id, { priority: n }); });
    body.appendChild(h('div', { class: 'fields' },
      h('label', null, 'Status', statusSel),
      h('label', null, 'Assignee', assignee),
      h('label', null, 'Priority', prio)));

    const act = (label, fn, cls) => h('button', { type: 'button', class: cls, text: label, onclick: fn });
    const acts = h('div', { class: 'actions' });
    if (t.status !== 'triage') acts.appendChild(act('→ triage', () => moveTo([t.id], 'triage').then(reloadDrawer)));
    if (!['ready', 'running', 'review'].includes(t.status)) acts.appendChild(act(['blocked', 'scheduled'].includes(t.status) ? 'Unblock' : '→ ready', () => moveTo([t.id], 'ready').then(reloadDrawer)));
    if (['running', 'ready'].includes(t.status)) acts.appendChild(act('Block', () => moveTo([t.id], 'blocked').then(reloadDrawer)));
    if (['running', 'ready', 'blocked'].includes(t.status)) acts.appendChild(act('Complete', () => moveTo([t.id], 'done').then(reloadDrawer)));
    if (['running', 'ready'].includes(t.status)) acts.appendChild(act('Request review', () => moveTo([t.id], 'review').then(reloadDrawer)));
    if (t.status === 'review') {
      acts.appendChild(act('Approve', () => moveTo([t.id], 'done').then(reloadDrawer), 'primary'));
      acts.appendChild(act('Request changes', async () => {
        const r = await promptDialog('Request changes on ' + t.id, 'What must change? The implementer is started again with it (a CHANGES REQUESTED comment).', { required: true, ok: 'Request changes' });
        if (r == null || !r.trim()) return;
        await patch(t.id, { status: 'ready', reason: r.trim() });
      }));
      acts.appendChild(act('Reopen review', async () => {
        const ok = await promptDialog('Reopen ' + t.id + '?', 'Takes it out of review and gives it back to its implementer (ready, or todo while a parent is unfinished).', { confirmOnly: true, ok: 'Reopen' });
        if (ok == null) return;
        await patch(t.id, { status: 'ready' });
      }));
    }
    if (t.status === 'running') acts.appendChild(act('Reclaim', async () => {
      const r = await promptDialog('Reclaim ' + t.id + '?', 'Stops its worker (if on this machine) and puts the task back in ready. Reason (optional):', { ok: 'Reclaim' });
      if (r == null) return;
      try { await api('POST', '/tasks/' + t.id + '/reclaim', { reason: r.trim() || null }); reloadDrawer(); } catch (e) { fail(e); }
    }));
    if (t.status !== 'archived') acts.appendChild(act('Archive', () => moveTo([t.id], 'archived').then(reloadDrawer)));
    acts.appendChild(act('Delete', () => deleteTasks([t.id]), 'danger'));
    body.appendChild(acts);

    const kv = h('dl', { class: 'kv' });
    const row = (k, v) => { if (v != null && v !== '') kv.append(h('dt', { text: k }), h('dd', { text: String(v) })); };
    row('tenant', t.tenant);
    row('workspace', t.workspace_kind + (t.workspace_path ? ': ' + t.workspace_path : ''));
    row('branch', t.branch_name);
    row('skills', (t.skills || []).join(', '));
    row('goal mode', t.goal_mode ? 'on' + (t.goal_max_turns ? ' (max ' + t.goal_max_turns + ' turns)' : '') : null);
    row('created by', t.created_by);
    row('created', when(t.created_at));
    row('started', t.started_at ? when(t.started_at) : null);
    row('completed', t.completed_at ? when(t.completed_at) : null);
    row('failures', t.consecutive_failures ? t.consecutive_failures + (t.last_failure_error ? ' — ' + t.last_failure_error : '') : null);
    row('block kind', t.block_kind);
    body.appendChild(section('Details', kv));

    if (t.diagnostics && t.diagnostics.length) {
      body.appendChild(section('Diagnostics', h('div', { class: 'list' }, t.diagnostics.map((x) => h('div', { class: 'item' },
        h('div', { class: 'meta' }, h('span', { class: 'diag ' + x.severity, text: SEV_MARK[x.severity] }), h('strong', { text: x.title }), h('span', { text: x.kind })),
        h('div', { text: x.detail }),
        x.actions.filter((a) => a.payload && a.payload.command).map((a) => h('div', { class: 'meta' }, a.label + ': ', h('code', { text: a.payload.command }))))))));
    }

    // Body (markdown, rendered safely) with an editor.
    const bodyView = h('div', { class: 'md' });
    bodyView.appendChild(t.body ? md(t.body) : h('p', { class: 'meta', text: 'No description.' }));
    const editBtn = h('button', { type: 'button', text: 'Edit' });
    const bodySec = section('Body', bodyView, editBtn);
    editBtn.addEventListener('click', () => {
      const ta = h('textarea', { class: 'edit' });
      ta.value = t.body || '';
      const save = h('button', { type: 'button', class: 'primary', text: 'Save', onclick: () => patch(t.id, { body: ta.value }) });
      const cancel = h('button', { type: 'button', text: 'Cancel', onclick: () => reloadDrawer() });
      ta.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) save.click(); });
      bodySec.replaceChildren(h('h3', { text: 'Body' }), ta, h('div', { class: 'actions' }, save, cancel));
      ta.focus();
    });
    body.appendChild(bodySec);

    if (t.result || t.latest_summary) {
      const res = h('div', { class: 'md' });
      if (t.latest_summary) res.appendChild(md(t.latest_summary));
      if (t.result && t.result !== t.latest_summary) res.appendChild(h('details', null, h('summary', { text: 'Full result' }), h('div', { class: 'md' }, md(t.result))));
      body.appendChild(section('Result', res));
    }

    // Run history, newest last (collapsed beyond 3).
    const runEl = (r) => h('div', { class: 'item run', dataset: { runId: String(r.id) } },
      h('div', { class: 'meta' },
        h('strong', { text: 'Run #' + r.id }),
        h('span', { class: 'badge o-' + (r.outcome || r.status), text: r.outcome || r.status }),
        r.profile ? h('span', { text: '@' + r.profile }) : null,
        h('span', { text: when(r.started_at) }),
        r.ended_at != null ? h('span', { text: 'took ' + duration(r.ended_at - r.started_at) }) : h('span', { text: 'open' }),
        r.worker_pid ? h('span', { text: 'pid ' + r.worker_pid }) : null),
      r.summary ? h('div', { class: 'md summary' }, md(r.summary)) : null,
      r.metadata != null ? h('pre', { class: 'block metadata', text: JSON.stringify(r.metadata, null, 2) }) : null,
      r.error ? h('pre', { class: 'block error', text: r.error }) : null);
    const runs = d.runs;
    const runBox = h('div', { class: 'list runs' });
    const shown = runs.length > 3 ? runs.slice(-3) : runs;
    if (runs.length > 3) runBox.appendChild(h('button', { type: 'button', text: 'Show all ' + runs.length + ' runs', onclick: (e) => {
      e.target.remove();
      runBox.replaceChildren(...runs.map(runEl));
    } }));
    for (const r of shown) runBox.appendChild(runEl(r));
    body.appendChild(section('Run history (' + runs.length + ')', runs.length ? runBox : h('span', { class: 'meta', text: 'never run' })));

    // Dependencies.
    const depList = (ids, kind) => h('div', { class: 'list links' }, ids.length ? ids.map((id) => h('div', { class: 'link-row' },
      tidLink(id), h('span', { class: 'meta', text: (state.cards.get(id) || {}).title || '' }),
      h('button', { type: 'button', title: 'Remove dependency', text: '✕', onclick: async () => {
        const [p, c] = kind === 'parent' ? [id, t.id] : [t.id, id];
        try { await api('DELETE', '/links?parent_id=' + encodeURIComponent(p) + '&child_id=' + encodeURIComponent(c)); await refreshIds([p, c]); reloadDrawer(); } catch (e) { fail(e); }
      } }))) : h('span', { class: 'meta', text: 'none' }));
    const addDep = (kind) => {
      const inp = h('input', { placeholder: kind === 'parent' ? 'add parent t_…' : 'add child t_…', class: 'mono' });
      const go = async () => {
        const other = inp.value.trim();
        if (!other) return;
        const [p, c] = kind === 'parent' ? [other, t.id] : [t.id, other];
        try { await api('POST', '/links', { parent_id: p, child_id: c }); inp.value = ''; await refreshIds([p, c]); reloadDrawer(); } catch (e) { fail(e); }
      };
      inp.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
      return h('div', { class: 'add-row' }, inp, h('button', { type: 'button', text: 'Add', onclick: go }));
    };
    // What this task's worker is handed by its parents (as in its worker context).
    const handoffs = d.parent_handoffs || [];
    if (handoffs.length) {
      body.appendChild(section('Parent hand-offs', h('div', { class: 'list handoffs' }, handoffs.map((p) => h('div', { class: 'item handoff', dataset: { id: p.id } },
        h('div', { class: 'meta' }, tidLink(p.id), h('span', { class: 'badge s-' + p.status, text: p.status }), h('span', { text: p.title }),
          p.completed_at ? h('span', { text: 'completed ' + ago(p.completed_at) + ' ago' }) : null),
        h('div', { class: 'md summary' }, p.summary ? md(p.summary) : h('p', { class: 'meta', text: '(no result recorded)' })),
        p.metadata != null ? h('pre', { class: 'block metadata', text: JSON.stringify(p.metadata, null, 2) }) : null)))));
    }
    body.appendChild(section('Depends on (parents)', depList(d.links.parents, 'parent'), addDep('parent')));
    body.appendChild(section('Unblocks (children)', depList(d.links.children, 'child'), addDep('child')));

    if (d.child_results.length) {
      body.appendChild(section('Child results', h('div', { class: 'list' }, d.child_results.map((c) => h('div', { class: 'item' },
        h('div', { class: 'meta' }, tidLink(c.id), h('span', { class: 'badge s-' + c.status, text: c.status }), h('span', { text: c.title })),
        c.latest_summary ? h('div', { class: 'md' }, md(c.latest_summary)) : null)))));
    }

    // Attachments.
    const file = h('input', { type: 'file', 'aria-label': 'Upload attachment' });
    file.addEventListener('change', async () => {
      const f = file.files[0];
      if (!f) return;
      try {
        await api('POST', '/tasks/' + encodeURIComponent(t.id) + '/attachments?filename=' + encodeURIComponent(f.name), f);
        reloadDrawer();
      } catch (e) { fail(e); }
    });
    const boardQ = state.board ? '?board=' + encodeURIComponent(state.board) : '';
    body.appendChild(section('Attachments', h('div', { class: 'list' }, d.attachments.map((a) => h('div', { class: 'link-row' },
      h('a', { class: 'tid', href: '/api/attachments/' + a.id + boardQ, download: a.filename, text: a.filename }),
      h('span', { class: 'meta', text: a.size + ' bytes · ' + (a.uploaded_by || '') }),
      h('button', { type: 'button', title: 'Delete attachment', text: '✕', onclick: async () => {
        try { await api('DELETE', '/attachments/' + a.id); reloadDrawer(); } catch (e) { fail(e); }
      } })))), file));

    // Comments.
    const cbox = h('textarea', { rows: 2, placeholder: 'Add a comment (Enter to send, Shift+Enter for a new line)', 'aria-label': 'New comment' });
    const send = async () => {
      const text = cbox.value.trim();
      if (!text) return;
      try { await api('POST', '/tasks/' + encodeURIComponent(t.id) + '/comments', { body: text }); cbox.value = ''; reloadDrawer(); } catch (e) { fail(e); }
    };
    cbox.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } });
    body.appendChild(section('Comments (' + d.comments.length + ')', h('div', { class: 'list' }, d.comments.map((c) => h('div', { class: 'item comment' },
      h('div', { class: 'meta' }, h('strong', { text: c.author }), h('span', { text: when(c.created_at) })),
      h('div', { class: 'md' }, md(c.body))))), h('div', { class: 'add-row' }, cbox, h('button', { type: 'button', text: 'Send', onclick: send }))));

    // Events: last 20.
    const evs = d.events.slice(-20).reverse();
    body.appendChild(section('Events', h('div', { class: 'events' }, evs.map((e) => h('div', {
      class: 'ev' + (/hallucinat/.test(e.kind) ? ' hl' : ''),
    }, h('span', { class: 'meta', text: ago(e.created_at) }), h('span', { class: 'mono', text: e.kind + (e.run_id ? ' #' + e.run_id : '') }),
    h('span', { class: 'payload mono', text: e.payload == null ? '' : JSON.stringify(e.payload) }))))));

    // Worker log.
    if (log) {
      body.appendChild(section('Worker log',
        log.exists ? h('pre', { class: 'block log', text: (log.truncated ? '… (last ' + log.content.length + ' bytes of ' + log.size_bytes + ')\n' : '') + log.content })
          : h('span', { class: 'meta', text: log.host && !log.host.this_host
            ? 'The log is on host ' + log.host.host + ' (its last run ran there)'
            : 'No log yet (' + log.path + ')' })));
    }
  }
  $('#drawer-close').addEventListener('click', closeDrawer);

  // ---------- create ----------
  function openCreate(status) {
    const form = $('#create-form');
    form.reset();
    $('#create-error').textContent = '';
    form.triage.checked = status === 'triage';
    form.title.placeholder = status === 'triage' ? 'Rough idea — to be specified…' : 'What needs doing?';
    $('#create-dialog').showModal();
    form.title.focus();
  }
  $('#create-form').addEventListener('submit', async (e) => {
    const form = e.target;
    e.preventDefault();
    const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
    const num = (s) => (s.trim() === '' ? null : parseInt(s, 10));
    const body = {
      title: form.title.value,
      body: form.body.value || null,
      assignee: form.assignee.value.trim() || null,
      priority: num(form.priority.value) || 0,
      tenant: form.tenant.value.trim() || null,
      parents: list(form.parents.value),
      skills: list(form.skills.value),
      workspace_kind: form.workspace_kind.value,
      workspace_path: form.workspace_path.value.trim() || null,
      triage: form.triage.checked,
      goal_mode: form.goal_mode.checked,
      goal_max_turns: num(form.goal_max_turns.value),
    };
    try {
      const r = await api('POST', '/tasks', body);
      $('#create-dialog').close('ok');
      toast('Created ' + r.task.id + (r.warning ? ' — ' + r.warning : ''), !!r.warning && false);
      await refreshIds([r.task.id].concat(body.parents));
    } catch (err) {
      $('#create-error').textContent = err.message;
    }
  });
  $('#create-btn').addEventListener('click', () => openCreate());

  // ---------- boards ----------
  async function loadBoards() {
    const r = await api('GET', '/boards?board=');
    state.boards = r.boards;
    if (!state.board) state.board = r.current;
    const sel = $('#board-select');
    sel.textContent = '';
    for (const b of r.boards) {
      sel.appendChild(h('option', { value: b.slug, text: (b.icon ? b.icon + ' ' : '') + b.name + ' (' + b.total + ')' }));
    }
    if (!r.boards.some((b) => b.slug === state.board)) state.board = r.current;
    sel.value = state.board;
    try {
      const a = await api('GET', '/assignees');
      knownProfiles = a.assignees.map((x) => x.name);
    } catch (_) { knownProfiles = []; }
  }
  async function switchBoard(slug) {
    state.board = slug;
    localStorage.setItem('hk.board', slug);
    state.selected.clear();
    selectionChanged();
    closeDrawer();
    state.lastEventId = null;
    state.cards.clear();
    await loadBoard();
    connectEvents();
  }
  $('#board-select').addEventListener('change', (e) => switchBoard(e.target.value).catch(fail));
  $('#new-board-btn').addEventListener('click', () => {
    $('#board-form').reset();
    $('#board-error').textContent = '';
    $('#board-dialog').showModal();
  });
  $('#board-form').addEventListener('submit', async (e) => {
    const form = e.target;
    e.preventDefault();
    const body = {
      slug: form.slug.value.trim(),
      name: form.name.value.trim() || null,
      icon: form.icon.value.trim() || null,
      description: form.description.value.trim() || null,
      default_workdir: form.default_workdir.value.trim() || null,
      switch: form.switch.checked,
    };
    try {
      const r = await api('POST', '/boards', body);
      $('#board-dialog').close('ok');
      toast('Created board ' + r.board.slug);
      await loadBoards();
      if (body.switch) { $('#board-select').value = r.board.slug; await switchBoard(r.board.slug); }
    } catch (err) {
      $('#board-error').textContent = err.message;
    }
  });

  // ---------- toolbar ----------
  let searchTimer = null;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.filter.q = e.target.value.trim().toLowerCase(); layout(); }, 120);
  });
  $('#search').addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.target.value = ''; state.filter.q = ''; layout(); e.target.blur(); } });
  $('#filter-tenant').addEventListener('change', (e) => { state.filter.tenant = e.target.value; layout(); });
  $('#filter-assignee').addEventListener('change', (e) => { state.filter.assignee = e.target.value; layout(); });
  $('#show-archived').addEventListener('change', (e) => { state.showArchived = e.target.checked; buildColumns(); loadBoard().catch(fail); });
  const ageMode = $('#age-status');
  ageMode.checked = state.ageInStatus;
  ageMode.addEventListener('change', () => {
    state.ageInStatus = ageMode.checked;
    localStorage.setItem('hk.ageMode', ageMode.checked ? 'status' : 'created');
    // The kernel sends status_since only on request (a pass over the event log).
    if (ageMode.checked) loadBoard().catch(fail);
    else for (const c of cols.values()) c.refreshVisible();
  });
  const lanes = $('#lanes');
  lanes.checked = state.lanes;
  lanes.addEventListener('change', () => { state.lanes = lanes.checked; localStorage.setItem('hk.lanes', lanes.checked ? '1' : '0'); layout(); });
  $('#nudge-btn').addEventListener('click', async () => {
    try {
      const r = await api('POST', '/dispatch?max=8');
      const spawned = r && (r.spawned || r.claimed || []);
      toast('Dispatcher ran' + (Array.isArray(spawned) ? ': ' + spawned.length + ' spawned' : ''));
    } catch (e) { fail(e); }
  });

  // Bulk bar.
  $('#bulkbar').addEventListener('click', async (e) => {
    const b = e.target.closest('button[data-bulk]');
    if (!b) return;
    const ids = [...state.selected];
    const op = b.dataset.bulk;
    if (op === 'clear') { state.selected.clear(); selectionChanged(); return; }
    if (op === 'select-all') { for (const id of visibleIdsInOrder()) state.selected.add(id); selectionChanged(); return; }
    if (!ids.length) return;
    if (op === 'delete') { deleteTasks(ids); return; }
    let change = null;
    if (op === 'todo') change = { status: 'todo' };
    else if (op === 'ready' || op === 'unblock') change = { status: 'ready' };
    else if (op === 'block') change = await changeFor('blocked', ids.length);
    else if (op === 'done') change = await changeFor('done', ids.length);
    else if (op === 'archive') change = await changeFor('archived', ids.length);
    else if (op === 'priority') {
      const n = parseInt($('#bulk-priority').value, 10);
      if (Number.isNaN(n)) { toast('Enter a priority first', true); return; }
      change = { priority: n };
    } else if (op === 'assign') {
      change = { assignee: $('#bulk-assignee').value.trim(), reclaim_first: $('#bulk-reclaim').checked };
    }
    if (!change) return;
    try {
      const r = await api('POST', '/tasks/bulk', Object.assign({ ids }, change));
      reportBulk(r);
      await refreshIds(ids);
    } catch (err) { fail(err); }
  });

  // Dispatcher hosts: which are live and when each last ticked (GET /api/hosts).
  async function loadHosts() {
    const el = $('#hosts');
    try {
      const r = await api('GET', '/hosts');
      const hosts = (r && r.hosts) || [];
      const live = hosts.filter((x) => x.live).length;
      el.className = 'live ' + (live === hosts.length ? 'on' : 'off') + (hosts.length ? '' : ' hidden');
      el.textContent = live + '/' + hosts.length + (hosts.length === 1 ? ' host' : ' hosts');
      el.title = hosts.map((x) => x.host_id + (x.this_host ? ' (serving this page)' : '') + ': '
        + (x.live ? 'live' : 'not live') + ', last tick ' + x.age_seconds + 's ago').join('\n');
    } catch (_) { el.classList.add('hidden'); }
  }
  loadHosts();
  setInterval(() => { if (!document.hidden) loadHosts(); }, 10000);

  // Keep relative ages fresh without re-fetching.
  setInterval(() => { for (const c of cols.values()) c.refreshVisible(); }, 30000);
  // Safety net: a full re-read every 5 minutes (time-based diagnostics drift).
  setInterval(() => { if (!document.hidden) loadBoard().catch(() => {}); }, 300000);

  // Cancel buttons are plain buttons (so Enter submits the form's primary action).
  for (const btn of document.querySelectorAll('dialog button.cancel')) {
    btn.addEventListener('click', () => btn.closest('dialog').close('cancel'));
  }

  // ---------- start ----------
  (async function start() {
    buildColumns();
    try {
      // The board (the remembered one, or the server's current) loads alongside the list.
      await Promise.all([loadBoards(), loadBoard()]);
    } catch (e) {
      fail(e);
    }
    connectEvents();
  })();

  window.__hk = { state, refreshIds, loadBoard, loadMore, layout };
})();
