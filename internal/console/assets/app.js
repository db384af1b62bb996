// cutover console: one page, no dependencies. Data comes from the admin API
// of the listener that served this file, with the operator's bearer token
// (sessionStorage, this tab only; never a cookie). Every text that comes from
// the API is put in the page as text (textContent), never as HTML.
'use strict';

const S = {
  token: sessionStorage.getItem('cutover.token') || '',
  actor: sessionStorage.getItem('cutover.actor') || '',
  routes: [],            // GET /admin/routes
  summary: null,         // GET /admin/shadow/summary
  fleet: null,           // {status, data} of GET /admin/fleet
  rollouts: null,        // null: unknown; false: no rollout API; {route: state}
  view: '',              // current page
  refresh: null,         // function(topics) of the current page
};

// ---------- small helpers ----------

const $ = (sel, root) => (root || document).querySelector(sel);

// el builds an element: attrs are properties (class, text, on*, data-*,
// aria-*, anything else as an attribute); children are nodes or strings.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const pct = (bp) => (typeof bp === 'number' ? (Math.round(bp) / 100).toString() + ' %' : '–');
const fmtTime = (t) => { const d = new Date(t); return isNaN(d) ? String(t || '') : d.toLocaleString(); };
const show = (node, on) => { node.hidden = !on; };

function toast(msg, bad) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  show(t, true);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => show(t, false), 8000);
}

// REDACTED is what the diff store writes in place of a secret.
const REDACTED = '[REDACTED]';

// withRedactions returns text as nodes, each redacted value visibly marked.
function withRedactions(text) {
  const s = String(text);
  if (!s.includes(REDACTED)) return [s];
  const out = [];
  s.split(REDACTED).forEach((part, i) => {
    if (i > 0) out.push(el('span', { class: 'redacted', title: 'redacted before it was stored' }, 'redacted'));
    if (part) out.push(part);
  });
  return out;
}

// ---------- the admin API ----------

// api calls the admin API and returns {status, ok, data, error}. A 401 signs
// the operator out (the token was refused).
async function api(method, path, body) {
  const headers = { 'Authorization': 'Bearer ' + S.token, 'X-Cutover-Actor': S.actor, 'Accept': 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { status: 0, ok: false, data: null, error: 'cannot reach the admin API: ' + e.message };
  }
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  const error = res.ok ? '' : ((data && (data.error || data.message)) || res.status + ' ' + res.statusText);
  if (res.status === 401 && S.token) {
    signOut('The admin token was refused (401). Sign in again.');
  }
  return { status: res.status, ok: res.ok, data, error };
}

// ---------- sign in ----------

async function signIn(token, actor) {
  const res = await fetch('/admin/console/session', { headers: { 'Authorization': 'Bearer ' + token }, cache: 'no-store' })
    .catch((e) => ({ ok: false, status: 0, statusText: e.message, json: async () => null }));
  if (res.ok) return '';
  let msg = '';
  try { const d = await res.json(); msg = d && d.error; } catch (e) { /* not JSON */ }
  if (res.status === 401) return 'Refused: that is not the admin token of this instance.';
  if (res.status === 0) return 'Cannot reach the admin API: ' + res.statusText;
  return 'Refused (' + res.status + '): ' + (msg || res.statusText);
}

function showLogin(message) {
  show($('#bar'), false);
  show($('#lost'), false);
  $('#main').replaceChildren();
  show($('#login'), true);
  $('#login-actor').value = S.actor;
  const err = $('#login-error');
  err.textContent = message || '';
  show(err, !!message);
  (S.actor ? $('#login-token') : $('#login-actor')).focus();
}

function signOut(message) {
  S.token = '';
  sessionStorage.removeItem('cutover.token');
  live.stop();
  showLogin(message);
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('#login-token').value.trim();
  const actor = $('#login-actor').value.trim();
  const err = $('#login-error');
  if (!token || !actor) {
    err.textContent = !token ? 'Enter the admin token.' : 'Enter your name: every change is audited under it.';
    show(err, true);
    return;
  }
  $('#login-submit').disabled = true;
  const msg = await signIn(token, actor);
  $('#login-submit').disabled = false;
  if (msg) {
    err.textContent = msg;
    show(err, true);
    $('#login-token').select();
    return;
  }
  S.token = token;
  S.actor = actor;
  sessionStorage.setItem('cutover.token', token);
  sessionStorage.setItem('cutover.actor', actor);
  $('#login-token').value = '';
  start();
});

$('#logout').addEventListener('click', () => signOut('Signed out.'));

function start() {
  show($('#login'), false);
  show($('#bar'), true);
  $('#who').textContent = 'Signed in as ' + S.actor;
  live.start();
  route();
}

// ---------- live updates (server-sent events over fetch, so the token is a header) ----------

const live = {
  ctrl: null, retry: 1000, timer: null, watchdog: null, last: 0, up: false,
  start() {
    this.stop();
    this.stopped = false;
    this.connect();
    // A stream that stays silent past two heartbeats is dead even if the
    // socket has not said so: drop it and reconnect.
    this.watchdog = setInterval(() => {
      if (this.up && Date.now() - this.last > 45000 && this.ctrl) this.ctrl.abort();
    }, 5000);
  },
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
  },
  set(up, why) {
    this.up = up;
    const l = $('#live');
    l.textContent = up ? 'Live' : 'Connection lost';
    l.className = 'live ' + (up ? 'on' : 'off');
    l.title = up ? 'This page updates itself as things change' : (why || '');
    show($('#lost'), !up);
  },
  async connect() {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    let why = '';
    try {
      const res = await fetch('/admin/events', {
        headers: { 'Authorization': 'Bearer ' + S.token, 'Accept': 'text/event-stream' }, cache: 'no-store', signal: ctrl.signal,
      });
      if (res.status === 401) { signOut('The admin token was refused (401). Sign in again.'); return; }
      if (!res.ok) throw new Error('events: ' + res.status);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.last = Date.now();
        buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.block(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
      why = 'the server closed the stream';
    } catch (e) {
      why = e.message;
    }
    if (this.stopped || this.ctrl !== ctrl) return;
    this.set(false, why);
    this.timer = setTimeout(() => this.connect(), this.retry);
    this.retry = Math.min(this.retry * 2, 10000);
  },
  block(text) {
    let name = 'message';
    let data = '';
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) continue;
      const [k, ...rest] = line.split(':');
      const v = rest.join(':').replace(/^ /, '');
      if (k === 'event') name = v;
      else if (k === 'data') data += v;
    }
    let topics = [];
    try { topics = JSON.parse(data || '{}').topics || []; } catch (e) { /* ignore */ }
    if (name === 'hello') {
      this.retry = 1000;
      this.set(true);
      // Whatever changed while disconnected: read everything again.
      if (S.refresh) S.refresh(topics, true);
    } else if (name === 'change') {
      if (S.refresh) S.refresh(topics);
    }
  },
};

// ---------- the confirmation dialog ----------

// ask opens the dialog; onConfirm returns '' on success or an error to show
// (the dialog then stays open). body may be a node or a function(form) that
// builds one.
function ask({ title, body, confirm, danger, onConfirm }) {
  const d = $('#dialog');
  $('#dialog-title').textContent = title;
  $('#dialog-body').replaceChildren(body);
  const ok = $('#dialog-confirm');
  ok.textContent = confirm || 'Confirm';
  ok.className = danger ? 'danger' : 'primary';
  ok.disabled = false;
  const err = $('#dialog-error');
  show(err, false);
  const form = $('#dialog-form');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    const msg = await onConfirm();
    ok.disabled = false;
    if (msg) {
      err.textContent = msg;
      show(err, true);
      return;
    }
    d.close();
  };
  $('#dialog-cancel').onclick = () => d.close();
  d.showModal();
  // Typing replaces the current value.
  const first = $('#dialog-body input');
  if (first) { first.focus(); first.select(); } else $('#dialog-cancel').focus();
}

// ---------- pages ----------

const pages = { overview: overviewPage, diffs: diffsPage, diff: diffPage, audit: auditPage, rollout: rolloutPage };

function route() {
  if (!S.token) { showLogin(); return; }
  const h = location.hash.replace(/^#\/?/, '');
  const [path, query] = h.split('?');
  const parts = path.split('/').filter(Boolean);
  let name = parts[0] || 'overview';
  let arg = '';
  if (name === 'diffs' && parts[1]) { name = 'diff'; arg = decodeURIComponent(parts.slice(1).join('/')); }
  if (name === 'rollout') { if (parts[1]) arg = decodeURIComponent(parts[1]); else name = 'overview'; }
  if (!pages[name]) name = 'overview';
  S.view = name;
  S.refresh = null;
  show($('#toast'), false);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === ({ diff: 'diffs', rollout: 'overview' }[name] || name)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = $('#main');
  main.replaceChildren();
  pages[name](main, arg, new URLSearchParams(query || ''));
}

window.addEventListener('hashchange', route);

// keepFocus re-renders a part of the page without losing the keyboard focus
// of a control that has a data-key.
function keepFocus(render) {
  const key = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
  render();
  if (key) {
    const again = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (again) again.focus();
  }
}

// ----- overview -----

function overviewPage(main) {
  const fleetBox = el('section', { id: 'fleet', 'aria-labelledby': 'fleet-title' });
  const routesBox = el('section', { id: 'routes', 'aria-labelledby': 'routes-title' });
  main.append(el('h1', { text: 'Overview' }), fleetBox, routesBox);
  const load = async (topics) => {
    const all = !topics || topics.length === 0;
    const want = (t) => all || topics.includes(t);
    const jobs = [];
    if (want('routes') || want('hello')) jobs.push(loadRoutes());
    if (want('diffs')) jobs.push(loadSummary());
    if (want('fleet')) jobs.push(loadFleet());
    await Promise.all(jobs);
    if (S.view !== 'overview') return;
    keepFocus(() => { renderFleet(fleetBox); renderRoutes(routesBox); });
  };
  S.refresh = (topics) => load(topics && topics.length ? topics : null);
  load(null);
}

async function loadRoutes() {
  const r = await api('GET', '/admin/routes');
  if (r.ok) {
    S.routes = r.data.routes || [];
    // With a fleet store the answer carries the fleet generation the shares
    // are at; a change sent with it fails (409) if the fleet moved since.
    S.generation = r.data.generation;
  }
  else toast('Routes: ' + r.error, true);
  await loadRollouts();
}

async function loadSummary() {
  const r = await api('GET', '/admin/shadow/summary');
  S.summary = r.ok ? r.data : { error: r.error, routes: [] };
}

async function loadFleet() {
  const r = await api('GET', '/admin/fleet');
  S.fleet = r;
}

// loadRollouts reads each route's rollout (GET /admin/routes/{name}/rollout,
// proxy.RolloutStatus; 404 "no rollout for this route" when it has none). A
// listener without the rollout API (a bare 404 everywhere) hides the column
// for the rest of the session.
async function loadRollouts() {
  if (S.rollouts === false) return;
  const found = {};
  let any = false;
  await Promise.all(S.routes.map(async (rt) => {
    const r = await api('GET', '/admin/routes/' + encodeURIComponent(rt.name) + '/rollout');
    if (r.ok) { found[rt.name] = r.data; any = true; }
    else if (r.status === 404 && /no rollout/.test(r.error)) any = true;
  }));
  S.rollouts = any ? found : (S.rollouts ? {} : false);
}

// renderFleet shows GET /admin/fleet: {status: this instance's link to the
// store, fleet: {store, generation, instances}, error} (404: single instance).
function renderFleet(box) {
  const f = S.fleet;
  const parts = [el('h2', { id: 'fleet-title', text: 'Instances' })];
  if (!f || f.status === 404) {
    parts.push(el('p', { class: 'muted', id: 'single-instance' },
      'Single instance: this admin listener shows the instance it belongs to (no fleet store configured).'));
  } else if (f.status === 503) {
    parts.push(el('p', { class: 'warn', role: 'alert' },
      'The fleet store is down: instances keep serving their last state and changes are refused until it returns. (' + f.error + ')'));
  } else if (!f.ok) {
    parts.push(el('p', { class: 'error' }, 'Fleet: ' + f.error));
  } else {
    const d = f.data || {};
    const st = d.status || {};
    const view = d.fleet || d;
    if (st.healthy === false || d.error) {
      parts.push(el('p', { class: 'warn', role: 'alert', id: 'store-down' },
        'The fleet store cannot be reached (' + (st.error || d.error) + '): this instance serves generation ' + (st.generation ?? '–') +
        ' and changes are refused until the store returns.'));
    }
    parts.push(el('p', {}, 'Store ', el('strong', { text: String(view.store ?? st.store ?? '–') }),
      ' · fleet generation ', el('strong', { text: String(view.generation ?? '–') }),
      st.instance ? ' · this instance ' : '', st.instance ? el('strong', { text: st.instance + ' at ' + st.generation }) : ''));
    const rows = (view.instances || []).map((i) => {
      const name = i.instance || i.name || '';
      const lagging = i.behind || i.lagging;
      const up = i.uptime_seconds ?? i.uptime;
      return el('tr', { class: lagging ? 'lagging' : '', 'data-instance': name },
        el('th', { scope: 'row' }, name, name === st.instance ? el('span', { class: 'muted small' }, ' (this one)') : '',
          lagging ? el('span', { class: 'badge bad', title: 'has not applied the fleet generation' }, 'lagging') : ''),
        el('td', { text: i.version ?? '' }),
        el('td', { text: String(i.generation ?? '') + (i.source === 'file' ? ' (file)' : '') }),
        el('td', { text: typeof up === 'number' ? duration(up) : String(up ?? '') }),
        el('td', { text: breakersText(i.breakers) }),
        el('td', { class: 'num', text: String(i.in_flight ?? '') }),
        el('td', { class: 'num', text: String(i.shadow_queue ?? '') }));
    });
    parts.push(el('table', {},
      el('thead', {}, el('tr', {}, ['Instance', 'Version', 'Generation', 'Uptime', 'Open breakers', 'In flight', 'Shadow queue']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows)));
  }
  box.replaceChildren(...parts);
}

// duration renders seconds as "3h 05m", "4m 10s" or "12s".
function duration(sec) {
  const s = Math.max(0, Math.round(sec));
  if (s >= 3600) return Math.floor(s / 3600) + 'h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
  if (s >= 60) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
  return s + 's';
}

function breakersText(b) {
  if (b === undefined || b === null) return '';
  if (typeof b !== 'object') return String(b);
  const open = Object.entries(b).filter(([, v]) => String((v && v.state) || v).includes('open'));
  return open.length ? open.map(([k, v]) => k + ' ' + ((v && v.state) || v)).join(', ') : 'none';
}

function breaker(b) {
  const s = b ? b.state : 'off';
  return el('span', { class: 'state ' + s.replace(/[^a-z-]/g, '') }, s);
}

// meter is a bar of bp basis points (styled through the CSSOM: the page's
// CSP allows no inline style attribute).
function meter(bp) {
  const fill = el('span');
  fill.style.width = (bp / 100) + '%';
  return el('span', { class: 'meter', 'aria-hidden': 'true' }, fill);
}

function renderRoutes(box) {
  const byRoute = {};
  for (const s of (S.summary && S.summary.routes) || []) byRoute[s.route] = s;
  const hasRollouts = S.rollouts && typeof S.rollouts === 'object';
  const head = ['Route', 'Native share', 'Native handler', 'Breakers (native / legacy)', 'Shadow rate', 'Diffs (semantic)']
    .concat(hasRollouts ? ['Rollout'] : [], ['Actions']);
  let wide = null;
  const rows = S.routes.map((r) => {
    const st = r.status || {};
    if (st.legacy_wide) wide = st.legacy_wide;
    const sum = byRoute[r.name];
    const cells = [
      el('th', { scope: 'row' }, el('span', { class: 'route-name', text: r.name }),
        el('div', { class: 'muted small', text: (r.methods || []).join(',') + ' ' + r.path })),
      el('td', { class: 'share' },
        el('span', { class: 'share-value', 'data-route': r.name, text: pct(r.native_bp) }),
        meter(r.native_bp)),
      el('td', { text: r.native_handler ? 'yes' : 'no' }),
      el('td', {}, breaker(st.native), ' / ', breaker(st.legacy)),
      el('td', { text: r.shadow && r.shadow.rate_bp ? pct(r.shadow.rate_bp) : 'off' }),
      el('td', {}, sum ? el('a', { href: '#/diffs?route=' + encodeURIComponent(r.name) + '&class=semantic' },
        String(sum.semantic) + ' of ' + sum.compared) : '–'),
    ];
    if (hasRollouts) cells.push(el('td', {}, rolloutCell(r, S.rollouts[r.name])));
    cells.push(el('td', {}, el('button', {
      type: 'button', 'data-key': 'share-' + r.name, disabled: !r.native_handler,
      title: r.native_handler ? '' : 'no native handler: only 0 % is possible',
      'aria-label': 'Set the native share of ' + r.name, onclick: () => shareDialog(r),
    }, 'Set share…')));
    return el('tr', { 'data-route': r.name }, cells);
  });
  box.replaceChildren(
    el('h2', { id: 'routes-title', text: 'Routes' }),
    el('table', { class: 'routes' },
      el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows)),
    wide ? el('p', { class: 'small' }, 'Legacy as a whole: breaker ', breaker(wide)) : '',
    S.summary && S.summary.scope ? el('p', { class: 'muted small' },
      'Diff counts: ' + (S.summary.scope === 'fleet' ? 'the fleet\'s, since the last reset.' : 'this instance\'s, since it started.')) : '');
}

// ROLLOUT_DONE are the statuses that wait for a new start.
const ROLLOUT_DONE = ['completed', 'rolled_back', 'aborted'];

// stepText is a step of a plan as the API gives it: "shadow" or a percentage.
const stepText = (s) => (s === 'shadow' ? 'shadow' : s + ' %');

// rolloutCell is a route's rollout in the routes table: its status and
// step, why it stands there, the actions its status allows, and a start
// when it has none (or its last one ended).
function rolloutCell(r, ro) {
  const name = r.name;
  const parts = [];
  if (ro) {
    const steps = ro.steps || [];
    parts.push(el('span', { class: 'state ro-' + ro.status, text: ro.status.replace('_', ' ') }),
      ' step ' + (ro.step + 1) + '/' + steps.length + ' (' + stepText(steps[ro.step] ?? '–') + ')',
      ro.why ? el('div', { class: 'muted small', text: ro.why }) : '',
      el('div', {}, el('a', { class: 'small', href: '#/rollout/' + encodeURIComponent(name) }, 'Rollout view')));
  }
  parts.push(el('div', { class: 'buttons' }, rolloutButtons(r, ro)));
  return el('div', {}, parts);
}

// rolloutButtons are the actions a rollout's status allows, each confirmed
// and sent under the operator's name.
function rolloutButtons(r, ro) {
  const name = r.name;
  if (!ro || ROLLOUT_DONE.includes(ro.status)) {
    return [el('button', {
      type: 'button', class: 'small', 'data-key': 'ro-start-' + name, disabled: !r.native_handler,
      title: r.native_handler ? '' : 'no native handler: nothing to roll out',
      'aria-label': 'Start a rollout of ' + name, onclick: () => startDialog(r),
    }, 'Start rollout…')];
  }
  const acts = ro.status === 'paused' ? ['resume', 'promote', 'abort'] : ['pause', 'promote', 'abort'];
  return acts.map((action) => {
    const danger = action === 'abort';
    const title = action[0].toUpperCase() + action.slice(1);
    return el('button', {
      type: 'button', class: danger ? 'danger small' : 'small', 'data-key': 'ro-' + action + '-' + name,
      'aria-label': action + ' the rollout of ' + name,
      onclick: () => ask({
        title: title + ' the rollout of ' + name + '?',
        body: el('div', {}, el('p', {}, 'Now ' + ro.status.replace('_', ' ') + ' at step ' + (ro.step + 1) + ' of ' +
          (ro.steps || []).length + ' (' + stepText((ro.steps || [])[ro.step]) + ', native ' + pct(ro.share_bp) + ').' +
          (danger ? ' Aborting sets native\'s share to 0.' : '')), rolloutReason()),
        confirm: title, danger,
        onConfirm: async () => {
          const reason = $('#reason-input').value.trim();
          const res = await api('POST', '/admin/routes/' + encodeURIComponent(name) + '/rollout/' + action, reason ? { reason } : undefined);
          if (S.refresh) S.refresh(['routes']);
          if (!res.ok) return conflictText(res);
          toast('Rollout of ' + name + ': ' + action + ' done (' + res.data.status.replace('_', ' ') + ').');
          return '';
        },
      }),
    }, title);
  });
}

// rolloutReason is the optional why of a rollout action (the rollout API
// takes it on every instance, fleet or not).
function rolloutReason() {
  return [el('label', { for: 'reason-input', class: 'reason-label' }, 'Why (for the audit log, optional)'),
    el('input', { id: 'reason-input', type: 'text', maxlength: '500' })];
}

// startDialog confirms and starts a rollout of r with its configured plan
// (the route's rollout: block, or the defaults).
function startDialog(r) {
  ask({
    title: 'Start a rollout of ' + r.name + '?',
    body: el('div', {}, el('p', {}, 'The route\'s plan (its rollout: block, or the defaults) moves native\'s share step by step ' +
      'while its gates pass, and rolls back to 0 % when one fails. Native is now at ' + pct(r.native_bp) + '.'), rolloutReason()),
    confirm: 'Start rollout',
    onConfirm: async () => {
      const reason = $('#reason-input').value.trim();
      const res = await api('POST', '/admin/routes/' + encodeURIComponent(r.name) + '/rollout', reason ? { reason } : undefined);
      if (S.refresh) S.refresh(['routes']);
      if (!res.ok) return conflictText(res);
      toast('Rollout of ' + r.name + ' started at step ' + stepText(res.data.steps[res.data.step]) + '.');
      return '';
    },
  });
}

// ----- one rollout -----

// rolloutPage is #/rollout/{route}: the plan's steps with the current one
// marked, the status and share, why it stands there, each gate's values per
// evaluation as a small chart against its threshold, and the history.
function rolloutPage(main, name) {
  const box = el('section', { id: 'rollout', 'aria-labelledby': 'rollout-title' });
  main.append(el('p', {}, el('a', { href: '#/overview' }, '← Overview')), box);
  const load = async () => {
    const [rs, ro] = await Promise.all([api('GET', '/admin/routes'),
      api('GET', '/admin/routes/' + encodeURIComponent(name) + '/rollout')]);
    if (S.view !== 'rollout') return;
    const r = (rs.ok && (rs.data.routes || []).find((x) => x.name === name)) || { name, native_bp: undefined, native_handler: false };
    keepFocus(() => renderRollout(box, r, ro));
  };
  S.refresh = () => load();
  load();
}

function renderRollout(box, r, res) {
  const parts = [el('h1', { id: 'rollout-title', text: 'Rollout of ' + r.name })];
  if (!res.ok) {
    parts.push(el('p', { class: res.status === 404 ? 'muted' : 'error', id: 'rollout-none' },
      res.status === 404 ? 'No rollout: ' + res.error + '.' : 'Rollout: ' + res.error),
    el('div', { class: 'buttons' }, rolloutButtons(r, null)));
    box.replaceChildren(...parts);
    return;
  }
  const ro = res.data;
  const steps = ro.steps || [];
  parts.push(el('p', { id: 'rollout-summary' }, el('span', { class: 'state ro-' + ro.status, text: ro.status.replace('_', ' ') }),
    ' · step ', el('strong', { text: (ro.step + 1) + ' of ' + steps.length }),
    ' · asks native ', el('strong', { text: pct(ro.share_bp) }), ' · applied here ', el('strong', { text: pct(ro.applied_bp) }),
    ro.driver ? ' · driven by ' + ro.driver : ''));
  parts.push(el('ol', { class: 'steps', 'aria-label': 'Steps' }, steps.map((s, i) => el('li', {
    class: i === ro.step ? 'current' : (i < ro.step ? 'done' : ''), 'aria-current': i === ro.step ? 'step' : null,
  }, stepText(s)))));
  const why = lastWhy(ro);
  if (why) parts.push(el('p', { id: 'rollout-why', class: ro.status === 'rolled_back' ? 'warn' : '' }, el('strong', { text: why.label + ': ' }), why.text));
  parts.push(el('div', { class: 'buttons' }, rolloutButtons(r, ro)));
  parts.push(el('h2', { text: 'Gates per evaluation' }), gateCharts(ro));
  parts.push(el('h2', { text: 'History' }), el('table', { class: 'history' },
    el('thead', {}, el('tr', {}, ['Time', 'Event', 'Step', 'Share', 'Who', 'Why'].map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, (ro.history || []).slice().reverse().map((e) => el('tr', { 'data-event': e.event },
      el('td', { text: fmtTime(e.time) }), el('td', { text: e.event }), el('td', { text: stepText(steps[e.step] ?? '–') }),
      el('td', { text: pct(e.share_bp) }), el('td', { text: e.who || '' }), el('td', { text: e.reason || '' }))))));
  box.replaceChildren(...parts);
}

// lastWhy is the reason of the last hold, pause or rollback (or abort), or
// the API's why while it holds.
function lastWhy(ro) {
  const labels = { hold: 'Held', pause: 'Paused', rollback: 'Rolled back', abort: 'Aborted' };
  if (ro.status === 'holding' && ro.why) return { label: 'Holding', text: ro.why };
  const h = ro.history || [];
  for (let i = h.length - 1; i >= 0; i--) {
    if (labels[h[i].event]) return { label: labels[h[i].event] + ' ' + fmtTime(h[i].time), text: (h[i].reason || '–') + (h[i].who ? ' (' + h[i].who + ')' : '') };
  }
  return null;
}

// gateCharts draws, per gate, its value at each evaluation the history kept
// (and the last one) as a line against its threshold.
function gateCharts(ro) {
  const evals = (ro.history || []).filter((e) => e.gates && e.gates.length).map((e) => ({ time: e.time, gates: e.gates }));
  const last = ro.last_evaluation;
  if (last && last.gates && last.gates.length && !evals.some((e) => e.time === last.time)) evals.push({ time: last.time, gates: last.gates });
  if (!evals.length) return el('p', { class: 'muted', id: 'no-gates' }, 'No evaluation yet: the first comes after the step\'s interval.');
  const byGate = {};
  evals.forEach((ev, i) => {
    for (const g of ev.gates) (byGate[g.gate] = byGate[g.gate] || []).push({ i, ...g, time: ev.time });
  });
  return el('div', { class: 'charts' }, Object.entries(byGate).map(([gate, pts]) => {
    const lastPt = pts[pts.length - 1];
    return el('figure', { class: 'gate', 'data-gate': gate },
      lineChart(pts, evals.length, gate),
      el('figcaption', { class: 'small' }, el('strong', { text: gate }), ' ' + fmtNum(lastPt.value) + ' (limit ' + fmtNum(lastPt.threshold) + ', ' + lastPt.result + ')',
        el('div', { class: 'muted', text: lastPt.detail || '' })));
  }));
}

const fmtNum = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 || v === Math.round(v) ? String(Math.round(v * 100) / 100) : String(Number(v.toPrecision(3)))) : '–');

// lineChart is a small SVG: the values (dots colored by result) joined by a
// line, and the threshold dashed.
function lineChart(pts, n, gate) {
  const W = 260, H = 70, P = 6;
  // The HTML parser puts <svg> in the SVG namespace: its children are
  // created in the same one (a constant string, never API data).
  const t = document.createElement('template');
  t.innerHTML = '<svg></svg>';
  const ns = t.content.firstChild.namespaceURI;
  const svg = (tag, attrs) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v)); return e; };
  const top = Math.max(...pts.map((p) => Math.max(p.value, p.threshold)), 1e-9) * 1.15;
  const x = (i) => (n <= 1 ? W / 2 : P + (i * (W - 2 * P)) / (n - 1));
  const y = (v) => H - P - (Math.max(0, v) / top) * (H - 2 * P);
  const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', class: 'chart',
    'aria-label': gate + ' per evaluation: ' + pts.map((p) => fmtNum(p.value)).join(', ') + '; threshold ' + fmtNum(pts[pts.length - 1].threshold) });
  root.append(svg('rect', { x: 0, y: 0, width: W, height: H, fill: '#f5f7f9' }));
  const th = pts[pts.length - 1].threshold;
  root.append(svg('line', { class: 'threshold', x1: 0, x2: W, y1: y(th), y2: y(th), stroke: '#b3261e', 'stroke-dasharray': '4 3' }));
  root.append(svg('polyline', { class: 'values', fill: 'none', stroke: '#0b5cad', 'stroke-width': 2,
    points: pts.map((p) => x(p.i) + ',' + y(p.value)).join(' ') }));
  for (const p of pts) {
    const dot = svg('circle', { cx: x(p.i), cy: y(p.value), r: 3, fill: p.result === 'fail' ? '#b3261e' : (p.result === 'pass' ? '#1a7f37' : '#5b6470') });
    dot.append(svg('title', {}));
    dot.firstChild.textContent = fmtTime(p.time) + ': ' + fmtNum(p.value) + ' (' + p.result + ')';
    root.append(dot);
  }
  return root;
}

// conflictText explains a refused change.
function conflictText(r) {
  if (r.status === 409) return 'Refused (409): ' + r.error + ' — the state changed meanwhile; it has been re-read, check and try again.';
  if (r.status === 503) return 'Refused (503): ' + r.error + ' — the store is down; nothing was changed.';
  return 'Refused (' + r.status + '): ' + r.error;
}

function shareDialog(r) {
  const input = el('input', { id: 'share-input', type: 'number', min: '0', max: '100', step: '0.01', value: String(r.native_bp / 100), required: true });
  const preview = el('p', { id: 'share-preview', class: 'preview', 'aria-live': 'polite' });
  const update = () => {
    const v = parseFloat(input.value);
    if (isNaN(v) || v < 0 || v > 100) { preview.textContent = 'Enter a percentage between 0 and 100.'; return; }
    const now = r.native_bp / 100;
    const delta = Math.round((v - now) * 100) / 100;
    if (delta === 0) preview.textContent = 'No change: ' + now + ' % of users are on native.';
    else if (delta > 0) preview.textContent = 'About ' + delta + ' % of users move from legacy to native (' + now + ' % → ' + v + ' %).';
    else preview.textContent = 'About ' + (-delta) + ' % of users move from native back to legacy (' + now + ' % → ' + v + ' %).';
  };
  input.addEventListener('input', update);
  update();
  // The change is decided on what this dialog shows: with a fleet, it is
  // sent with that generation (and refused, 409, if the fleet moved since).
  const gen = S.generation;
  const why = reasonInput();
  ask({
    title: 'Set the native share of ' + r.name,
    body: el('div', {},
      el('label', { for: 'share-input' }, 'Native share (%)'), input, preview, why ? why.nodes : '',
      el('p', { class: 'muted small' }, 'Users are sticky: the same users stay on native as the share grows. Audited as ' + S.actor + '.')),
    confirm: 'Apply',
    onConfirm: async () => {
      const v = parseFloat(input.value);
      if (isNaN(v) || v < 0 || v > 100) return 'The share must be a percentage between 0 and 100.';
      const body = { native_percent: v };
      if (gen !== undefined) body.generation = gen;
      if (why && why.input.value.trim()) body.reason = why.input.value.trim();
      const res = await api('PUT', '/admin/routes/' + encodeURIComponent(r.name), body);
      if (!res.ok) { S.refresh && S.refresh(['routes']); return conflictText(res); }
      reportChange(res.data.result);
      S.refresh && S.refresh(['routes']);
      return '';
    },
  });
}

// reasonInput is the optional "why" of a change, for the audit log; only the
// fleet's admin API takes one (it answers GET /admin/routes with a
// generation), so without a fleet it is null.
function reasonInput() {
  if (S.generation === undefined) return null;
  const input = el('input', { id: 'reason-input', type: 'text', maxlength: '500' });
  return { input, nodes: [el('label', { for: 'reason-input', class: 'reason-label' }, 'Why (for the audit log, optional)'), input] };
}

function reportChange(result) {
  const ch = (result && result.changes) || [];
  let msg = ch.length ? ch.map((c) => c.route + ': ' + pct(c.old_bp) + ' → ' + pct(c.new_bp) + ' native').join('; ') : 'No change.';
  if (result && !result.persisted && result.persist_error) msg += ' (in force, not persisted: ' + result.persist_error + ')';
  toast(msg);
}

$('#rollback').addEventListener('click', async () => {
  const r = await api('GET', '/admin/routes');
  const routes = r.ok ? r.data.routes : S.routes;
  if (r.ok) S.generation = r.data.generation;
  const moving = routes.filter((x) => x.native_bp > 0);
  const body = el('div', {},
    el('p', { class: 'strong' }, 'Every route goes to 0 % native: all users are served by legacy.'),
    moving.length
      ? el('ul', { id: 'rollback-list' }, moving.map((x) => el('li', {}, x.name + ': ' + pct(x.native_bp) + ' of its users move back to legacy')))
      : el('p', { text: 'No route has a native share now: nothing would move.' }));
  // No generation: a rollback goes through whatever changed meanwhile.
  const why = reasonInput();
  if (why) body.append(...why.nodes);
  ask({
    title: 'Roll everything back to legacy?', body, confirm: 'Roll back every route', danger: true,
    onConfirm: async () => {
      const res = await api('POST', '/admin/rollback', why && why.input.value.trim() ? { reason: why.input.value.trim() } : undefined);
      if (!res.ok) { S.refresh && S.refresh(['routes']); return conflictText(res); }
      reportChange(res.data.result);
      S.refresh && S.refresh(['routes']);
      return '';
    },
  });
});

// ----- diffs -----

const CLASSES = [['', 'any'], ['semantic', 'semantic'], ['encoding_only', 'encoding-only'], ['noise', 'noise'], ['error', 'error'], ['match', 'match']];

function diffsPage(main, _arg, q) {
  const summaryBox = el('section', { id: 'summary', 'aria-labelledby': 'summary-title' });
  const listBox = el('section', { id: 'diff-list', 'aria-labelledby': 'list-title' });
  const routeSel = el('select', { id: 'f-route', name: 'route' }, el('option', { value: '' }, 'any'));
  const classSel = el('select', { id: 'f-class', name: 'class' }, CLASSES.map(([v, t]) => el('option', { value: v }, t)));
  const since = el('input', { id: 'f-since', name: 'since', type: 'datetime-local' });
  const until = el('input', { id: 'f-until', name: 'until', type: 'datetime-local' });
  classSel.value = q.get('class') || '';
  if (q.get('since')) since.value = q.get('since');
  if (q.get('until')) until.value = q.get('until');
  const form = el('form', { class: 'filters', 'aria-label': 'Filter the diffs' },
    el('label', { for: 'f-route' }, 'Route'), routeSel,
    el('label', { for: 'f-class' }, 'Class'), classSel,
    el('label', { for: 'f-since' }, 'Since'), since,
    el('label', { for: 'f-until' }, 'Until'), until,
    el('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (routeSel.value) p.set('route', routeSel.value);
    if (classSel.value) p.set('class', classSel.value);
    if (since.value) p.set('since', since.value);
    if (until.value) p.set('until', until.value);
    location.hash = '#/diffs' + (p.toString() ? '?' + p : '');
  });
  // The list is read when asked (reading diff records is audited once the
  // admin API audits reads); the live feed only says that new ones exist.
  const newer = el('button', { type: 'button', id: 'new-records', class: 'primary small', 'data-key': 'new-records', hidden: true,
    onclick: () => load(null, true) }, 'New records: show them');
  main.append(el('h1', { text: 'Shadow diffs' }), summaryBox, el('h2', { id: 'list-title', text: 'Records' }), form, newer, listBox);

  const fillRoutes = () => {
    const names = new Set(S.routes.map((r) => r.name));
    for (const s of (S.summary && S.summary.routes) || []) names.add(s.route);
    if (q.get('route')) names.add(q.get('route'));
    routeSel.replaceChildren(el('option', { value: '' }, 'any'), ...[...names].sort().map((n) => el('option', { value: n }, n)));
    routeSel.value = q.get('route') || '';
  };
  const params = () => {
    const p = new URLSearchParams();
    if (q.get('route')) p.set('route', q.get('route'));
    if (q.get('class')) p.set('class', q.get('class'));
    for (const k of ['since', 'until']) {
      const d = q.get(k) ? new Date(q.get(k)) : null;
      if (d && !isNaN(d)) p.set(k, d.toISOString());
    }
    p.set('limit', '50');
    return p;
  };
  let rows = [];
  let next = '';
  const renderList = () => {
    const table = el('table', { class: 'diffs' },
      el('thead', {}, el('tr', {}, ['Time', 'Route', 'Class', 'Primary', 'Request', 'Status', 'Differing paths']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows.map((d) => el('tr', { 'data-class': d.class },
        el('td', {}, el('a', { href: '#/diffs/' + encodeURIComponent(d.id), 'data-key': 'diff-' + d.id, 'aria-label': 'Open diff ' + d.id + ' (' + d.class + ', ' + d.route + ')' }, fmtTime(d.time))),
        el('td', { text: d.route }),
        el('td', {}, el('span', { class: 'badge ' + d.class, text: d.class })),
        el('td', { text: d.primary_side }),
        el('td', { class: 'mono', text: d.method + ' ' + d.path }),
        el('td', { class: 'mono', text: d.primary_status + ' / ' + d.shadow_status }),
        el('td', { class: 'mono small', text: (d.paths || []).join('  ') + (d.mismatches > (d.paths || []).length ? ' …' : '') })))));
    const parts = [rows.length ? table : el('p', { class: 'muted', text: 'No records match.' })];
    if (next) {
      parts.push(el('button', { type: 'button', 'data-key': 'more', onclick: async () => {
        const p = params();
        p.set('before', next);
        const r = await api('GET', '/admin/diffs?' + p);
        if (!r.ok) { toast('Diffs: ' + r.error, true); return; }
        rows = rows.concat(r.data.records || []);
        next = r.data.next || '';
        keepFocus(renderList);
      } }, 'Older records'));
    }
    listBox.replaceChildren(...parts);
  };
  // total is the number of comparisons the summary counts for the filter's
  // route(s): when it moves, records were added.
  const total = () => ((S.summary && S.summary.routes) || [])
    .filter((x) => !q.get('route') || x.route === q.get('route'))
    .reduce((n, x) => n + x.compared + x.errors, 0);
  let seen = -1;
  const load = async (topics, withList) => {
    if (!withList && topics && topics.length && !topics.includes('diffs') && !topics.includes('routes')) return;
    const [, , r] = await Promise.all([
      S.routes.length ? null : api('GET', '/admin/routes').then((x) => { if (x.ok) S.routes = x.data.routes; }),
      loadSummary(),
      withList ? api('GET', '/admin/diffs?' + params()) : null,
    ]);
    if (S.view !== 'diffs') return;
    if (r) {
      seen = total();
      show(newer, false);
      if (r.ok) { rows = r.data.records || []; next = r.data.next || ''; } else {
        listBox.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Diffs: ' + r.error }));
      }
    } else if (total() !== seen) {
      show(newer, true);
    }
    if (!routeSel.options.length || routeSel.options.length === 1) fillRoutes();
    keepFocus(() => { renderSummary(summaryBox); if (r && r.ok) renderList(); });
  };
  fillRoutes();
  S.refresh = load;
  load(null, true);
}

function renderSummary(box) {
  const s = S.summary || {};
  const cols = ['Route', 'Compared', 'Matched', 'Encoding-only', 'Semantic', 'Noise', 'Errors', 'Skipped'];
  const rows = (s.routes || []).map((r) => el('tr', { 'data-route': r.route },
    el('th', { scope: 'row' }, el('a', { href: '#/diffs?route=' + encodeURIComponent(r.route) }, r.route)),
    [r.compared, r.matched, r.encoding_only].map((n) => el('td', { class: 'num', text: String(n) })),
    el('td', { class: 'num semantic-count' + (r.semantic ? ' hot' : ''), text: String(r.semantic) }),
    [r.noise, r.errors].map((n) => el('td', { class: 'num', text: String(n) })),
    el('td', { class: 'small', text: Object.entries(r.skipped || {}).map(([k, v]) => k + '=' + v).join(', ') || '–' })));
  box.replaceChildren(
    el('h2', { id: 'summary-title', text: 'Per route' }),
    s.error ? el('p', { class: 'error', text: 'Summary: ' + s.error }) : '',
    el('p', { class: 'muted small' }, s.scope === 'fleet'
      ? 'Whole fleet, since the last reset.'
      : 'This instance only, since it started' + (s.fleet_error ? ' (the fleet summary could not be read: ' + s.fleet_error + ')' : '') + '.',
      s.queue_depth !== undefined ? ' Queue depth ' + s.queue_depth + ', in flight ' + s.in_flight + '.' : ''),
    rows.length ? el('table', { class: 'summary' },
      el('thead', {}, el('tr', {}, cols.map((h) => el('th', { scope: 'col', text: h })))), el('tbody', {}, rows))
      : el('p', { class: 'muted', text: 'No shadowed requests yet.' }));
}

// ----- one diff record -----

function bodyText(b) {
  if (!b) return { text: '', binary: false };
  if (b.base64) {
    try { return { text: atob(b.base64), binary: true }; } catch (e) { return { text: b.base64, binary: true }; }
  }
  return { text: b.text || '', binary: false };
}

function header(h, name) {
  for (const k of Object.keys(h || {})) if (k.toLowerCase() === name.toLowerCase()) return (h[k] || []).join(', ');
  return '';
}

// parseSSE splits an event stream into [{event, data}].
function parseSSE(text) {
  const out = [];
  for (const block of text.replace(/\r\n?/g, '\n').split(/\n\n+/)) {
    if (!block.trim()) continue;
    let event = 'message';
    const data = [];
    let any = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (k === 'event') { event = v; any = true; } else if (k === 'data') { data.push(v); any = true; }
    }
    if (any) out.push({ event, data: data.join('\n') });
  }
  return out;
}

const isSSE = (resp) => /text\/event-stream/i.test(header(resp.header, 'Content-Type'));

// keyPath appends an object key to a JSON path as the comparator writes it.
const keyPath = (p, k) => (/^[A-Za-z0-9_-]+$/.test(k) ? p + '.' + k : p + "['" + k + "']");

// jsonView renders v as indented JSON (on one line when compact) whose nodes
// carry data-path; nodes at a differing path get class "diff", their
// ancestors "has-diff".
function jsonView(v, path, diffs, indent, compact) {
  const pad = (n) => (compact ? ' ' : '\n' + '  '.repeat(n));
  const mark = (node, p) => {
    node.dataset.path = p;
    if (diffs.has(p)) node.classList.add('diff');
    else if ([...diffs].some((d) => d.startsWith(p) && /^[.[]/.test(d.slice(p.length)))) node.classList.add('has-diff');
    return node;
  };
  if (Array.isArray(v)) {
    const n = el('span', { class: 'jv arr' }, '[');
    v.forEach((x, i) => {
      n.append(pad(indent + 1), mark(jsonView(x, path + '[' + i + ']', diffs, indent + 1, compact), path + '[' + i + ']'));
      if (i < v.length - 1) n.append(',');
    });
    if (v.length) n.append(pad(indent));
    n.append(']');
    return n;
  }
  if (v && typeof v === 'object') {
    const n = el('span', { class: 'jv obj' }, '{');
    const keys = Object.keys(v);
    keys.forEach((k, i) => {
      const p = keyPath(path, k);
      const member = mark(el('span', { class: 'member' }, el('span', { class: 'jk', text: JSON.stringify(k) }), ': ',
        jsonView(v[k], p, diffs, indent + 1, compact)), p);
      n.append(pad(indent + 1), member);
      if (i < keys.length - 1) n.append(',');
    });
    if (keys.length) n.append(pad(indent));
    n.append('}');
    return n;
  }
  const text = JSON.stringify(v);
  return el('span', { class: 'jv ' + (v === null ? 'null' : typeof v) }, typeof v === 'string' ? withRedactions(text) : text);
}

// bodyView renders a stored body: JSON as a tree, anything else as text.
function bodyView(b, prefix, diffs) {
  const { text, binary } = bodyText(b);
  const notes = [];
  if (binary) notes.push(el('p', { class: 'muted small', text: 'Not UTF-8: shown from its base64 form.' }));
  if (b && b.clipped) notes.push(el('p', { class: 'warn small', text: 'Clipped at the diff store\'s body limit.' }));
  let parsed;
  let ok = false;
  if (!binary && text.trim()) { try { parsed = JSON.parse(text); ok = true; } catch (e) { ok = false; } }
  const pre = el('pre', { class: 'body' });
  if (ok) {
    const root = jsonView(parsed, prefix + '$', diffs, 0);
    root.dataset.path = prefix + '$';
    if (diffs.has(prefix + '$')) root.classList.add('diff');
    pre.append(root);
  } else {
    pre.append(...withRedactions(text || '(empty)'));
    if (diffs.has(prefix + '$')) pre.classList.add('diff');
  }
  return el('div', {}, notes, pre);
}

// firstEventDiff is the index of the first event that differs between the
// two sequences, from the recorded paths or else by comparing them.
function firstEventDiff(a, b, paths) {
  let first = Infinity;
  for (const p of paths) {
    const m = /^events\[(\d+)\]/.exec(p);
    if (m) first = Math.min(first, Number(m[1]));
  }
  if (first !== Infinity) return first;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!a[i] || !b[i] || a[i].event !== b[i].event || a[i].data !== b[i].data) return i;
  }
  return -1;
}

function eventsView(events, first, diffs) {
  return el('ol', { class: 'events', start: '0' }, events.map((e, i) => {
    const prefix = 'events[' + i + '].data';
    let data;
    try { data = jsonView(JSON.parse(e.data), prefix + '$', diffs, 0, true); } catch (err) { data = el('span', {}, withRedactions(e.data)); }
    data.dataset.path = prefix + '$';
    if (diffs.has(prefix + '$') || diffs.has(prefix)) data.classList.add('diff');
    const li = el('li', { class: 'event' + (i === first ? ' first-diff' : ''), 'data-event-index': String(i) },
      i === first ? el('span', { class: 'badge bad' }, 'first difference') : '',
      el('span', { class: 'ev-name' + (diffs.has('events[' + i + '].event') ? ' diff' : ''), text: 'event: ' + e.event }), ' ',
      el('code', { class: 'ev-data' }, data));
    return li;
  }));
}

function headersDiff(a, b, paths) {
  const names = new Map();
  for (const h of [a || {}, b || {}]) for (const k of Object.keys(h)) names.set(k.toLowerCase(), k);
  const rows = [...names.entries()].sort().map(([lk, k]) => {
    const va = header(a, k);
    const vb = header(b, k);
    const differs = va !== vb || paths.some((p) => p.toLowerCase() === 'header.' + lk);
    return el('tr', { class: differs ? 'diff' : '', 'data-header': k },
      el('th', { scope: 'row', class: 'mono', text: k }),
      el('td', { class: 'mono' }, va ? withRedactions(va) : el('span', { class: 'muted' }, 'absent')),
      el('td', { class: 'mono' }, vb ? withRedactions(vb) : el('span', { class: 'muted' }, 'absent')));
  });
  return rows;
}

// mismatchTable shows the first rows of the differences, the rest on demand.
function mismatchTable(rows, primarySide, shadowSide) {
  const head = () => el('thead', {}, el('tr', {}, ['Path', 'Class', 'Primary (' + primarySide + ')', 'Shadow (' + shadowSide + ')', 'Detail']
    .map((h) => el('th', { scope: 'col', text: h }))));
  const first = 8;
  const table = el('table', { class: 'mismatches' }, head(), el('tbody', {}, rows.slice(0, first)));
  if (rows.length <= first) return table;
  return el('div', {}, table, el('details', {}, el('summary', {}, (rows.length - first) + ' more differences'),
    el('table', { class: 'mismatches' }, head(), el('tbody', {}, rows.slice(first)))));
}

async function diffPage(main, id) {
  main.append(el('p', { class: 'muted', text: 'Loading diff ' + id + '…' }));
  const r = await api('GET', '/admin/diffs/' + encodeURIComponent(id));
  if (S.view !== 'diff') return;
  if (!r.ok) {
    main.replaceChildren(el('h1', { text: 'Diff ' + id }), el('p', { class: 'error', role: 'alert', text: r.error }),
      el('p', {}, el('a', { href: '#/diffs' }, 'Back to the diffs')));
    return;
  }
  const rec = r.data;
  const paths = (rec.mismatches || []).map((m) => m.path);
  const diffs = new Set(paths);
  const primarySide = rec.primary_side || 'primary';
  const shadowSide = primarySide === 'legacy' ? 'native' : primarySide === 'native' ? 'legacy' : 'shadow';
  const req = rec.request || {};

  // A JSON string value is shown decoded where the difference is in the
  // value (semantic); byte-level classes keep the raw text.
  const shown = (m, v) => {
    if (m.class === 'semantic' && typeof v === 'string' && v.startsWith('"')) {
      try { return JSON.stringify(JSON.parse(v)); } catch (e) { /* clipped: shown as stored */ }
    }
    return v ?? '';
  };
  const mm = (rec.mismatches || []).map((m) => el('tr', {},
    el('td', { class: 'mono' }, el('button', { type: 'button', class: 'link mono', 'aria-label': 'Show ' + m.path,
      onclick: () => { const n = main.querySelector('[data-path="' + CSS.escape(m.path) + '"].diff'); if (n) { n.scrollIntoView({ block: 'center' }); n.classList.add('flash'); setTimeout(() => n.classList.remove('flash'), 1200); } } }, m.path)),
    el('td', {}, el('span', { class: 'badge ' + m.class, text: m.class + (m.noise ? ' (noise)' : '') })),
    el('td', { class: 'mono small' }, withRedactions(shown(m, m.primary))),
    el('td', { class: 'mono small' }, withRedactions(shown(m, m.shadow))),
    el('td', { class: 'small', text: m.detail || '' })));

  const side = (resp, which, label) => {
    const statusDiff = diffs.has('status') || (rec.primary && rec.shadow && rec.primary.status !== rec.shadow.status);
    let body;
    if (isSSE(resp)) {
      const evA = parseSSE(bodyText(rec.primary.body).text);
      const evB = parseSSE(bodyText(rec.shadow.body).text);
      const first = firstEventDiff(evA, evB, paths);
      const events = which === 'primary' ? evA : evB;
      body = el('div', {},
        el('p', { class: 'small' }, events.length + ' events' + (first >= 0 ? '; the first difference is event ' + first : '; no event differs')),
        eventsView(events, first, diffs),
        el('details', {}, el('summary', {}, 'Raw stream'), el('pre', { class: 'body' }, withRedactions(bodyText(resp.body).text))));
    } else {
      body = bodyView(resp.body, '', diffs);
    }
    return el('section', { class: 'side', id: 'side-' + which, 'aria-label': label },
      el('h3', { text: label }),
      el('p', {}, 'Status ', el('strong', { class: statusDiff ? 'diff' : '', 'data-path': 'status', text: String(resp.status || '–') }),
        resp.truncated ? el('span', { class: 'warn small' }, ' (response cut at the shadow limit)') : ''),
      resp.error ? el('p', { class: 'error', text: 'Error: ' + resp.error }) : '',
      body);
  };

  main.replaceChildren(
    el('p', {}, el('a', { href: '#/diffs' + (rec.route ? '?route=' + encodeURIComponent(rec.route) : '') }, '← Diffs')),
    el('h1', {}, 'Diff ', el('span', { class: 'mono', text: rec.id }), ' ', el('span', { class: 'badge ' + rec.class, id: 'record-class', text: rec.class })),
    el('p', { class: 'muted' }, fmtTime(rec.time) + ' · route ' + rec.route + ' · primary: ' + primarySide + ' · shadow: ' + shadowSide +
      (rec.dropped ? ' · ' + rec.dropped + ' more differences not kept' : '')),
    el('section', { 'aria-labelledby': 'mm-title' },
      el('h2', { id: 'mm-title', text: 'Differences' }),
      mm.length ? mismatchTable(mm, primarySide, shadowSide) : el('p', { class: 'muted', text: 'None: the responses match.' })),
    el('section', { 'aria-labelledby': 'req-title' },
      el('h2', { id: 'req-title', text: 'Request' }),
      el('p', { class: 'mono' }, (req.method || '') + ' ' + (req.path || '') + (req.query ? '?' : ''), req.query ? withRedactions(req.query) : ''),
      el('table', { class: 'headers' }, el('tbody', {}, Object.keys(req.header || {}).sort().map((k) => el('tr', {},
        el('th', { scope: 'row', class: 'mono', text: k }), el('td', { class: 'mono' }, withRedactions(header(req.header, k))))))),
      bodyView(req.body, 'request', new Set())),
    el('section', { 'aria-labelledby': 'resp-title' },
      el('h2', { id: 'resp-title', text: 'Responses' }),
      el('div', { class: 'sides' },
        side(rec.primary || {}, 'primary', 'Primary: ' + primarySide + ' (what the client got)'),
        side(rec.shadow || {}, 'shadow', 'Shadow: ' + shadowSide))),
    el('section', { 'aria-labelledby': 'hdr-title' },
      el('h2', { id: 'hdr-title', text: 'Response headers' }),
      el('table', { class: 'headers hdiff' },
        el('thead', {}, el('tr', {}, ['Header', 'Primary (' + primarySide + ')', 'Shadow (' + shadowSide + ')'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, headersDiff((rec.primary || {}).header, (rec.shadow || {}).header, paths)))));
  $('#main').focus({ preventScroll: true });
}

// ----- audit -----

// fleetAudit flattens the fleet's audit records ({time, instance, who,
// remote, action, reason, generation, changes: [{route, old, new}]}, old and
// new being {share_bp, file_share_bp, rollout}) into one entry per route
// change, in the local file's shape.
function fleetAudit(records) {
  const out = [];
  for (const rec of records) {
    const base = { time: rec.time, who: rec.who, instance: rec.instance || rec.remote, action: rec.action, why: rec.reason || rec.why };
    if (rec.generation !== undefined) base.generation = rec.generation;
    const changes = Array.isArray(rec.changes) ? rec.changes : [];
    if (!changes.length) { out.push(Object.assign({}, rec, base)); continue; }
    for (const c of changes) {
      const e = Object.assign({}, base, { route: c.route });
      if (c.old && typeof c.old === 'object') e.old_bp = c.old.share_bp; else if (c.old === null) e.old = 'new route';
      if (c.new && typeof c.new === 'object') e.new_bp = c.new.share_bp;
      if (c.new && c.new.rollout) e.rollout = c.new.rollout;
      out.push(e);
    }
  }
  return out;
}

function auditPage(main) {
  const box = el('section', { id: 'audit', 'aria-labelledby': 'audit-title' });
  main.append(el('h1', { id: 'audit-title', text: 'Audit log' }), box);
  const load = async (topics) => {
    if (topics && topics.length && !topics.includes('audit')) return;
    let source = 'fleet';
    let r = await api('GET', '/admin/audit');
    let entries = null;
    let note = '';
    if (r.status === 404) {
      source = 'local';
      r = await api('GET', '/admin/console/audit');
      if (r.ok && !r.data.available) note = r.data.reason;
      else if (r.ok) entries = r.data.entries;
    } else if (r.ok) {
      entries = fleetAudit(Array.isArray(r.data) ? r.data : (r.data.records || r.data.entries || []));
    }
    if (S.view !== 'audit') return;
    if (!r.ok) { box.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Audit: ' + conflictText(r) })); return; }
    if (entries === null) { box.replaceChildren(el('p', { class: 'warn', id: 'audit-unavailable', text: 'Not available on this instance: ' + note })); return; }
    const known = new Set(['time', 'who', 'remote', 'instance', 'action', 'route', 'old', 'new', 'old_bp', 'new_bp', 'why', 'persisted']);
    const rows = entries.map((e) => {
      const extra = Object.entries(e).filter(([k]) => !known.has(k)).map(([k, v]) => k + '=' + (typeof v === 'object' ? JSON.stringify(v) : v));
      const why = [e.why, e.persisted === false ? 'not persisted' : '', ...extra].filter(Boolean).join('; ');
      const old = e.old !== undefined ? e.old : (e.old_bp !== undefined ? pct(e.old_bp) : '');
      const nw = e.new !== undefined ? e.new : (e.new_bp !== undefined ? pct(e.new_bp) : '');
      return el('tr', { 'data-action': e.action || '' },
        el('td', { text: fmtTime(e.time) }),
        el('td', { class: 'who', text: e.who || '' }),
        el('td', { class: 'mono small', text: e.instance || e.remote || '' }),
        el('td', { text: e.action || '' }),
        el('td', { text: e.route || '' }),
        el('td', { class: 'mono', text: old === '' && nw === '' ? '' : (typeof old === 'object' ? JSON.stringify(old) : old) + ' → ' + (typeof nw === 'object' ? JSON.stringify(nw) : nw) }),
        el('td', { class: 'small', text: why }));
    });
    box.replaceChildren(
      el('p', { class: 'muted small', text: source === 'fleet' ? 'The fleet\'s audit stream.' : 'This instance\'s audit file (admin.audit_log), newest first.' + (r.data.truncated ? ' Older entries are in the file.' : '') }),
      rows.length ? el('table', { class: 'audit' },
        el('thead', {}, el('tr', {}, ['Time', 'Who', 'Instance / from', 'Action', 'Route', 'Old → new', 'Why / detail'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, rows)) : el('p', { class: 'muted', text: 'No changes recorded yet.' }));
  };
  S.refresh = load;
  load(null);
}

// ---------- boot ----------

(async () => {
  if (!S.token) { showLogin(); return; }
  const msg = await signIn(S.token, S.actor);
  if (msg) { S.token = ''; sessionStorage.removeItem('cutover.token'); showLogin(msg); return; }
  start();
})();
