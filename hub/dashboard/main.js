// main.js - the dashboard's entry point: hash routing between views, the sign-in view (shown
// whenever the API answers 401), sign-out, the namespace selector, the spawn form, and the hub
// status badge. Panels live in their own modules; this file only wires them.
//
// The page starts even when the hub cannot be reached: the status says so and the replay view
// (a trace file read in the browser) works without any API call.

import {call, login, logout, onUnauthorized} from './api.js';
import {$, showError} from './util.js';
import {state, setNamespace} from './state.js';
import {initAgents, loadAgents} from './agents.js';
import {initAgent, openAgent} from './agent.js';
import {initOps, loadNodes, loadApprovals} from './ops.js';
import {initUsage, loadUsage} from './usage.js';
import {initReplay} from './replay.js';

const VIEWS = ['signin', 'agents', 'agent', 'tools', 'usage', 'nodes', 'approvals', 'replay'];
let signedOut = false;

function status(text, cls) {
  const s = $('#hub-status');
  s.textContent = text;
  s.className = 'badge ' + cls;
}

function show(view) {
  state.view = view;
  for (const v of VIEWS) $('#view-' + v).classList.toggle('d-none', v !== view);
  for (const a of document.querySelectorAll('.app-nav [data-view]')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    a.classList.toggle('active', a.dataset.view === view);
  }
}

function route() {
  if (signedOut) { show('signin'); return; }
  const [, view, arg] = (location.hash || '#/agents').split('/');
  const v = VIEWS.includes(view) && view !== 'signin' ? view : 'agents';
  show(v);
  if (v === 'agent' && arg) openAgent(decodeURIComponent(arg));
  if (v === 'agents') loadAgents();
  if (v === 'nodes') loadNodes();
  if (v === 'approvals') loadApprovals();
  if (v === 'usage') loadUsage();
}

onUnauthorized(() => {
  if (signedOut) return;
  signedOut = true;
  status('signed out', 'text-bg-warning');
  show('signin');
  $('#token').focus();
});

async function probe() {
  try {
    await call('Ping', {});
    signedOut = false;
    status('connected', 'text-bg-success');
    return true;
  } catch (e) {
    if (e.status !== 401) {
      status('hub unreachable', 'text-bg-danger');
      showError($('#global-error'), e.code === 'UNAVAILABLE' ?
        Object.assign(new Error(e.message + '. Replaying a trace file still works.'), {code: e.code}) : e);
    }
    return false;
  }
}

function csv(s) { return s.split(',').map((x) => x.trim()).filter(Boolean); }

async function spawn(e) {
  e.preventDefault();
  const tools = csv($('#spawn-tools').value), ask = csv($('#spawn-ask').value);
  const labels = {};
  for (const kv of csv($('#spawn-labels').value)) {
    const i = kv.indexOf('=');
    if (i > 0) labels[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const req = {
    spec: {name: $('#spawn-name').value.trim(), model: $('#spawn-model').value.trim(), tools, labels,
      permissions: ask.map((t) => ({tool: t, decision: 'ask'}))},
    input: $('#spawn-input').value,
    namespace: $('#spawn-ns').value.trim() || state.namespace,
  };
  try {
    const r = await call('Spawn', req);
    window.bootstrap.Modal.getOrCreateInstance($('#spawn-modal')).hide();
    location.hash = '#/agent/' + r.agent_id;
  } catch (err) {
    showError($('#spawn-error'), err);
  }
}

function init() {
  initAgents();
  initAgent();
  initOps();
  initUsage();
  initReplay();
  if (location.protocol === 'https:') $('#sign-out').classList.remove('d-none');
  $('#signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await login($('#token').value.trim());
      $('#token').value = '';
      showError($('#signin-error'), null);
      signedOut = false;
      if (await probe()) route();
    } catch (err) {
      showError($('#signin-error'), err.status === 401 ? Object.assign(new Error('the hub does not know this token'), {code: err.code}) : err);
    }
  });
  $('#sign-out').addEventListener('click', async () => {
    try { await logout(); } catch (err) { showError($('#global-error'), err); }
    signedOut = true;
    status('signed out', 'text-bg-warning');
    show('signin');
  });
  $('#namespace').addEventListener('change', (e) => setNamespace(e.target.value.trim()));
  $('#spawn-form').addEventListener('submit', spawn);
  $('#spawn-modal').addEventListener('shown.bs.modal', () => $('#spawn-name').focus());
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && !signedOut) route(); });
  route();
  probe().then((ok) => { if (ok) { loadApprovals(); route(); } });
}

init();
