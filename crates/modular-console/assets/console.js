// The modular console: reads the health and admin endpoints and renders them.
// Everything from the server is written with textContent (never parsed as HTML); the admin
// token lives in this tab's sessionStorage and travels only in the Authorization header.
'use strict';

(() => {
  const TOKEN_KEY = 'modular.console.token';
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    settings: { poll_interval_ms: 2000, page_size: 50 },
    page: { checks: 0, history: 0 },
    health: null,
    healthAt: 0,
    config: null,
    history: null,
    timer: null,
    openDiffs: new Set(),
    historySignature: null,
    rendered: false,
  };

  const $ = (id) => document.getElementById(id);

  // An element with attributes and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === 'class') node.className = value;
      else if (key.startsWith('data-')) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(status) {
    const text = status === null || status === undefined ? '–' : String(status);
    return el('span', { class: 'badge s-' + text.replace(/[^a-z_]/gi, '') }, text);
  }

  function setBadge(id, status) {
    const node = $(id);
    node.textContent = status || '–';
    node.className = 'badge s-' + String(status || '').replace(/[^a-z_]/gi, '');
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  async function api(method, path, body, contentType) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    if (contentType) headers['Content-Type'] = contentType;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
    if (body !== undefined) init.body = body;
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = { error: text };
    }
    return { status: response.status, data };
  }

  // ---- formatting -------------------------------------------------------------------------

  function duration(ms) {
    if (!Number.isFinite(ms)) return '–';
    if (ms < 0) ms = 0;
    if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  // How long ago `time` was, on the server's clock: the answer's generated_at plus the time
  // since it arrived.
  function ago(time) {
    const at = Date.parse(time);
    const generated = Date.parse(state.health && state.health.generated_at);
    if (!Number.isFinite(at) || !Number.isFinite(generated)) return '–';
    return duration(generated - at + (Date.now() - state.healthAt));
  }

  function value(v) {
    if (v === undefined) return '∅';
    return JSON.stringify(v);
  }

  function trigger(t) {
    if (t === null || t === undefined) return '–';
    return typeof t === 'string' ? t : JSON.stringify(t);
  }

  function changeLine(change) {
    const path = [change.section, change.field_path].filter(Boolean).join('.');
    let text;
    if (change.change_type === 'added') text = ' added ' + value(change.new_value);
    else if (change.change_type === 'removed') text = ' removed (was ' + value(change.old_value) + ')';
    else text = ' ' + value(change.old_value) + ' → ' + value(change.new_value);
    const flags = [];
    if (!change.dynamic) flags.push('static');
    if (change.sensitive) flags.push('sensitive');
    return el('li', {}, el('span', { class: 'path' }, path), text, flags.length ? ' [' + flags.join(', ') + ']' : null);
  }

  // ---- pagination -------------------------------------------------------------------------

  function pageOf(kind, items) {
    const size = Math.max(1, state.settings.page_size | 0);
    const pages = Math.max(1, Math.ceil(items.length / size));
    state.page[kind] = Math.min(Math.max(0, state.page[kind]), pages - 1);
    const start = state.page[kind] * size;
    const end = Math.min(items.length, start + size);
    $(kind + '-range').textContent = items.length === 0
      ? 'none'
      : `${start + 1}–${end} of ${items.length} (page ${state.page[kind] + 1} of ${pages})`;
    $(kind + '-prev').disabled = state.page[kind] === 0;
    $(kind + '-next').disabled = state.page[kind] >= pages - 1;
    show(kind + '-pager', pages > 1);
    return items.slice(start, end);
  }

  function turn(kind, delta) {
    state.page[kind] += delta;
    render();
  }

  // ---- rendering --------------------------------------------------------------------------

  function renderSummary() {
    const h = state.health;
    setBadge('status-overall', h && h.status);
    setBadge('status-readiness', h && h.readiness);
    setBadge('status-liveness', h && h.liveness);
    setBadge('status-startup', h && h.startup);
    $('generated-at').textContent = h ? ago(h.generated_at) + ' ago' : 'unavailable (no health aggregator)';
    const c = state.config;
    $('config-version').textContent = c ? String(c.version) : '–';
    const pending = (c && c.pending_restart) || [];
    $('pending-restart').textContent = pending.length ? pending.join(', ') : 'none';
    const rejected = c && c.last_rejected;
    const box = $('last-rejected');
    box.replaceChildren();
    if (rejected) {
      box.append(el('strong', {}, 'Last rejected reload'), ': ', rejected.error || '', errorList(rejected.errors));
    }
    box.hidden = !rejected;
  }

  function renderChecks() {
    const checks = (state.health && state.health.checks) || [];
    $('checks-count').textContent = `(${checks.length})`;
    const rows = pageOf('checks', checks).map((check) => el('tr', { 'data-check': check.module + ':' + check.component },
      el('td', {}, check.module),
      el('td', {}, check.component),
      el('td', {}, badge(check.status)),
      el('td', {}, check.optional === undefined ? '–' : (check.optional ? 'yes' : 'no')),
      el('td', { class: 'num' }, check.checked_at ? ago(check.checked_at) : '–'),
      el('td', { class: 'num' }, check.observed_since ? ago(check.observed_since) : '–'),
      el('td', { class: 'num' }, check.duration_ms === undefined ? '–' : duration(check.duration_ms)),
      el('td', { class: 'message' }, check.message || '')));
    $('checks').tBodies[0].replaceChildren(...rows);
  }

  function renderHistory() {
    const entries = ((state.history && state.history.history) || []).slice().sort((a, b) => b.version - a.version);
    $('history-count').textContent = `(${entries.length} kept)`;
    const current = state.config ? state.config.version : (state.history && state.history.version);
    const page = pageOf('history', entries);
    // Rebuilt only when it changed, so a button is not replaced under the pointer mid-click.
    const signature = JSON.stringify([current, page]);
    if (signature === state.historySignature) return;
    state.historySignature = signature;
    const rows = page.map((entry) => {
      const changes = entry.changes || [];
      let diff;
      if (changes.length === 0) {
        diff = el('span', { class: 'muted' }, 'no changes');
      } else {
        diff = el('details', { 'data-version': String(entry.version) },
          el('summary', {}, `${changes.length} change${changes.length === 1 ? '' : 's'}`),
          el('ul', { class: 'changes' }, ...changes.map(changeLine)));
        diff.open = state.openDiffs.has(entry.version);
        diff.addEventListener('toggle', () => {
          if (diff.open) state.openDiffs.add(entry.version);
          else state.openDiffs.delete(entry.version);
        });
      }
      const outcome = el('td', {}, badge(entry.outcome));
      if (entry.health_gate) outcome.append(' gate: ', badge(entry.health_gate));
      if (entry.health_gate_reason) outcome.append(el('div', { class: 'muted' }, entry.health_gate_reason));
      const action = entry.version === current
        ? el('span', { class: 'muted' }, 'running')
        : el('button', { type: 'button', class: 'rollback', 'data-version': String(entry.version), onclick: () => rollback(entry.version) }, 'Roll back');
      return el('tr', { 'data-version': String(entry.version) },
        el('td', { class: 'num' }, String(entry.version)),
        el('td', { class: 'num', title: entry.time || '' }, entry.time ? new Date(entry.time).toLocaleString() : '–'),
        el('td', {}, trigger(entry.trigger)),
        outcome,
        el('td', {}, diff),
        el('td', {}, action));
    });
    $('history').tBodies[0].replaceChildren(...rows);
  }

  function render() {
    renderSummary();
    renderChecks();
    renderHistory();
    if (!state.rendered) {
      state.rendered = true;
      // Read by the browser test: time from navigation start to the first full render.
      window.consoleLoadMs = performance.now();
    }
    document.body.dataset.state = 'live';
  }

  function errorList(errors) {
    if (!errors || errors.length === 0) return null;
    return el('ul', { class: 'errors' }, ...errors.map((e) => el('li', { class: 'plan-error' },
      el('span', { class: 'path' }, e.path || '(root)'), ': ', e.message || '',
      e.source ? el('span', { class: 'muted' }, ' (' + e.source + ')') : null)));
  }

  function outcomeBlock(title, outcome) {
    const o = outcome || {};
    const block = el('div', { class: 'outcome' },
      el('div', {}, el('strong', {}, title + ': '), badge(o.status || 'error'),
        o.version !== undefined ? ' version ' + o.version : null,
        o.duration_ms !== undefined ? el('span', { class: 'muted' }, ' in ' + duration(o.duration_ms)) : null));
    if (o.error) block.append(el('div', { class: 'error outcome-error' }, o.error));
    const errors = errorList(o.errors);
    if (errors) block.append(errors);
    if (o.static_changes && o.static_changes.length) {
      block.append(el('div', {}, 'restart required: ', el('span', { class: 'path' }, o.static_changes.join(', '))));
    }
    if (o.plan && o.plan.length) block.append(el('div', {}, 'plan (in order): ' + o.plan.join(' → ')));
    if (o.reloaded && o.reloaded.length) block.append(el('div', {}, 'reloaded: ' + o.reloaded.join(', ')));
    if (o.skipped && o.skipped.length) block.append(el('div', {}, 'skipped: ' + o.skipped.join(', ')));
    if (o.changes && o.changes.length) block.append(el('ul', { class: 'changes' }, ...o.changes.map(changeLine)));
    return block;
  }

  function notice(id, node) {
    const box = $(id);
    box.replaceChildren(node);
    box.hidden = false;
  }

  // ---- actions ----------------------------------------------------------------------------

  async function plan() {
    const text = $('plan-input').value;
    $('plan-run').disabled = true;
    try {
      const r = await api('POST', '/admin/reload/plan', text, 'application/yaml');
      if (r.status === 401 || r.status === 403) return needLogin('Your session ended: log in again.');
      notice('plan-result', outcomeBlock('Dry run', r.data));
    } catch (e) {
      notice('plan-result', el('span', { class: 'error' }, 'dry run failed: ' + e));
    } finally {
      $('plan-run').disabled = false;
    }
  }

  async function rollback(version) {
    if (!window.confirm(`Roll back to version ${version}? The running configuration is reloaded through the pipeline.`)) return;
    try {
      const r = await api('POST', '/admin/config/rollback/' + encodeURIComponent(version));
      if (r.status === 401 || r.status === 403) return needLogin('Your session ended: log in again.');
      notice('action-result', outcomeBlock('Rollback to version ' + version, r.data));
    } catch (e) {
      notice('action-result', el('span', { class: 'error' }, 'rollback failed: ' + e));
    }
    refreshNow();
  }

  async function reloadNow() {
    try {
      const r = await api('POST', '/admin/reload');
      if (r.status === 401 || r.status === 403) return needLogin('Your session ended: log in again.');
      notice('action-result', outcomeBlock('Reload', r.data));
    } catch (e) {
      notice('action-result', el('span', { class: 'error' }, 'reload failed: ' + e));
    }
    refreshNow();
  }

  // ---- polling ----------------------------------------------------------------------------

  async function refresh() {
    const [health, config, history] = await Promise.all([
      api('GET', '/health'),
      api('GET', '/admin/config'),
      api('GET', '/admin/config/history'),
    ]);
    if ([config.status, history.status].some((s) => s === 401 || s === 403)) {
      needLogin('Your session ended: log in again.');
      return false;
    }
    // /health answers 503 with the same body when unhealthy.
    state.health = health.data && health.data.checks ? health.data : null;
    state.healthAt = Date.now();
    state.config = config.status === 200 ? config.data : null;
    state.history = history.status === 200 ? history.data : null;
    render();
    $('connection').textContent = 'live · updated ' + new Date().toLocaleTimeString();
    return true;
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, Math.max(100, state.settings.poll_interval_ms | 0));
  }

  async function poll() {
    state.timer = null;
    let again = true;
    try {
      again = await refresh();
    } catch (e) {
      $('connection').textContent = 'offline: ' + e.message;
    }
    if (again && !$('dashboard').hidden) schedule();
  }

  function refreshNow() {
    clearTimeout(state.timer);
    poll();
  }

  // ---- session ----------------------------------------------------------------------------

  function needLogin(message) {
    clearTimeout(state.timer);
    show('dashboard', false);
    show('logout', false);
    show('login', true);
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('connection').textContent = 'logged out';
    document.body.dataset.state = 'login';
    $('token').focus();
  }

  async function start() {
    show('notice', false);
    let r;
    try {
      r = await api('GET', '/admin/ui/settings');
    } catch (e) {
      $('connection').textContent = 'offline: ' + e.message;
      setTimeout(start, 2000);
      return;
    }
    if (r.status === 200) {
      state.settings = r.data;
      show('login', false);
      show('dashboard', true);
      // No logout for a cookie session: there is no token here to forget.
      show('logout', Boolean(state.token));
      poll();
    } else if (r.status === 401 || r.status === 403) {
      const hadToken = Boolean(state.token);
      if (hadToken) {
        sessionStorage.removeItem(TOKEN_KEY);
        state.token = null;
      }
      needLogin(hadToken ? (r.status === 403 ? 'That token was refused.' : 'Log in again.') : '');
    } else if (r.status === 404) {
      $('notice').textContent = 'The admin API is not enabled on this service (set admin.token).';
      show('notice', true);
      $('connection').textContent = 'no admin API';
      document.body.dataset.state = 'disabled';
    } else {
      $('notice').textContent = 'Unexpected answer ' + r.status + ' from the admin API.';
      show('notice', true);
    }
  }

  function login(event) {
    event.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    input.value = '';
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.health = state.config = state.history = null;
    state.historySignature = null;
    needLogin('');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('plan-run').addEventListener('click', plan);
    $('reload-now').addEventListener('click', reloadNow);
    for (const kind of ['checks', 'history']) {
      $(kind + '-prev').addEventListener('click', () => turn(kind, -1));
      $(kind + '-next').addEventListener('click', () => turn(kind, 1));
    }
    start();
  });
})();
