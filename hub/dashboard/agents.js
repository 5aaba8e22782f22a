// agents.js - the agents list: ListAgents one page at a time (server-side paging with page tokens
// only, so 100k agents cost one page), filtered by state, namespace, and an id, exact name or
// label selector; refreshed by polling the same page every 2 s while the list is on screen.

import {call} from './api.js';
import {el, $, showError, stateBadge, fmtAge, fmtInt, fmtCost, nsToMs} from './util.js';
import {state, onNamespace, visible} from './state.js';

const ID_RE = /^[0-9a-hjkmnp-tv-z]{16}$/;
let tokens = ['']; // page tokens of the pages visited: tokens[i] starts page i
let page = 0, next = '', loading = false, last = '';

function request() {
  const q = $('#filter-search').value.trim();
  const req = {page_size: Number($('#agents-size').value), page_token: tokens[page]};
  if ($('#filter-state').value) req.state = $('#filter-state').value;
  if (state.namespace) req.namespace = state.namespace;
  if (q && /[=!]/.test(q)) req.label_selector = q;
  else if (q) req.name = q;
  return req;
}

function row(a) {
  const labels = Object.entries((a.spec && a.spec.labels) || {});
  const u = a.usage || {};
  const badge = stateBadge(a.state);
  if (a.state_reason) badge.title = a.state_reason;
  if (a.namespace) state.namespaces.add(a.namespace);
  return el('tr', {'data-agent': a.id},
    el('td', {}, el('a', {href: '#/agent/' + a.id, class: 'font-monospace'}, a.id),
      a.parent_id ? el('div', {class: 'small text-body-secondary'}, 'child of ' + a.parent_id) : null),
    el('td', {}, (a.spec && a.spec.name) || el('span', {class: 'text-body-secondary'}, '—'), ' ',
      labels.map(([k, v]) => el('span', {class: 'badge text-bg-light border me-1 label'}, k + '=' + v))),
    el('td', {}, a.namespace || 'default'),
    el('td', {}, badge),
    el('td', {}, a.node_id || '—'),
    el('td', {title: new Date(nsToMs(a.created_unix_nano)).toLocaleString()}, fmtAge(nsToMs(a.created_unix_nano))),
    el('td', {class: 'text-end'}, fmtInt(Number(u.input_tokens || 0) + Number(u.output_tokens || 0))),
    el('td', {class: 'text-end'}, fmtCost(u.cost_usd)));
}

export async function loadAgents() {
  if (loading) return;
  loading = true;
  try {
    const req = request();
    const r = await call('ListAgents', req);
    // A poll that changed nothing leaves the table alone (keyboard focus stays where it was);
    // ages still move, so redraw at least every 10 s.
    const sig = JSON.stringify([req, r, Math.floor(Date.now() / 10000)]);
    if (sig === last) return;
    last = sig;
    const agents = r.agents || [];
    $('#agents-table').tBodies[0].replaceChildren(...(agents.length ? agents.map(row) :
      [el('tr', {}, el('td', {colspan: 8, class: 'text-body-secondary'}, 'No agents match.'))]));
    next = r.next_page_token || '';
    $('#agents-prev').disabled = page === 0;
    $('#agents-first').disabled = page === 0;
    $('#agents-next').disabled = !next;
    $('#agents-page').textContent = 'Page ' + (page + 1) + (next ? '' : ' (last)') + ' · ' + agents.length + ' agents';
    const dl = $('#namespaces');
    if (dl.children.length !== state.namespaces.size)
      dl.replaceChildren(...[...state.namespaces].sort().map((n) => el('option', {value: n})));
    showError($('#agents-error'), null);
  } catch (e) {
    showError($('#agents-error'), e);
  } finally {
    loading = false;
  }
}

function restart() { tokens = ['']; page = 0; loadAgents(); }

export function initAgents() {
  $('#agents-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('#filter-search').value.trim();
    if (ID_RE.test(q)) { location.hash = '#/agent/' + q; return; }
    restart();
  });
  $('#filter-state').addEventListener('change', restart);
  $('#agents-size').addEventListener('change', restart);
  $('#agents-first').addEventListener('click', restart);
  $('#agents-prev').addEventListener('click', () => { if (page > 0) { page--; loadAgents(); } });
  $('#agents-next').addEventListener('click', () => {
    if (!next) return;
    tokens[page + 1] = next;
    page++;
    loadAgents();
  });
  onNamespace(restart);
  setInterval(() => { if (visible('agents')) loadAgents(); }, 2000);
}
