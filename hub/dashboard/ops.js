// ops.js - what operators act on outside one agent's page: the nodes (ListNodes, with cordon,
// uncordon and drain), the tool calls waiting for approval (ListApprovals, ApproveCall with
// optional edited arguments, DenyCall with a reason), and the two modals those use. Every
// refusal of the hub (a viewer's PERMISSION_DENIED, a call already decided...) is shown inline
// in the panel or the modal that made the call.

import {call} from './api.js';
import {el, $, showError, showInfo, stateBadge, fmtAge, nsToMs, shortJson, prettyJson} from './util.js';
import {state, onNamespace, visible} from './state.js';

const modal = (id) => window.bootstrap.Modal.getOrCreateInstance($(id));

// --- confirm (kill, drain) --------------------------------------------------------------------

let confirmAction = null;

// Asks before a destructive call; action(reason) runs the call and throws to show its error.
export function confirm(title, text, action) {
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-reason').value = '';
  showError($('#confirm-error'), null);
  confirmAction = action;
  modal('#confirm-modal').show();
}

// --- approvals --------------------------------------------------------------------------------

let deciding = null; // {agentId, callId, args}
let onDecided = () => {};
export function onApprovalDecided(fn) { onDecided = fn; }

export function openDecide(agentId, callId, tool, args) {
  deciding = {agentId, callId, args};
  $('#decide-what').replaceChildren('Agent ', el('code', {}, agentId), ' asks to call ', el('code', {}, tool),
    ' (call ', el('code', {}, callId), ').');
  $('#decide-args').value = prettyJson(args);
  $('#decide-reason').value = '';
  showError($('#decide-error'), null);
  modal('#decide-modal').show();
}

async function decide(approve) {
  const d = deciding;
  if (!d) return;
  const reason = $('#decide-reason').value.trim();
  try {
    if (approve) {
      const req = {agent_id: d.agentId, call_id: d.callId, reason};
      const edited = $('#decide-args').value.trim();
      if (edited && edited !== prettyJson(d.args)) {
        try { JSON.parse(edited); } catch (e) { throw new Error('the arguments are not JSON: ' + e.message); }
        req.arguments = edited;
      }
      await call('ApproveCall', req);
    } else {
      if (!reason) throw new Error('say why the call is denied: the model reads the reason');
      await call('DenyCall', {agent_id: d.agentId, call_id: d.callId, reason});
    }
    modal('#decide-modal').hide();
    deciding = null;
    onDecided();
    loadApprovals();
  } catch (e) {
    showError($('#decide-error'), e);
  }
}

export async function loadApprovals() {
  try {
    const r = await call('ListApprovals', state.namespace ? {namespace: state.namespace} : {});
    const list = r.approvals || [];
    const badge = $('#approvals-count');
    badge.textContent = list.length;
    badge.classList.toggle('d-none', !list.length);
    $('#approvals-table').tBodies[0].replaceChildren(...(list.length ? list.map((a) =>
      el('tr', {'data-agent': a.agent_id, 'data-call': a.call_id},
        el('td', {}, el('a', {href: '#/agent/' + a.agent_id, class: 'font-monospace'}, a.agent_id),
          el('div', {class: 'small text-body-secondary'}, (a.agent_name || '') + ' · ' + (a.namespace || ''))),
        el('td', {}, el('code', {}, a.tool)),
        el('td', {}, el('code', {class: 'small', title: prettyJson(a.arguments)}, shortJson(a.arguments, 160))),
        el('td', {class: 'small'}, a.reason || ''),
        el('td', {class: 'small'}, a.expires_at_ms ? new Date(Number(a.expires_at_ms)).toLocaleString() : ''),
        el('td', {}, el('button', {type: 'button', class: 'btn btn-sm btn-warning decide',
          onclick: () => openDecide(a.agent_id, a.call_id, a.tool, a.arguments)}, 'Approve or deny…')))) :
      [el('tr', {}, el('td', {colspan: 6, class: 'text-body-secondary'}, 'Nothing waits for a decision.'))]));
    if (r.truncated) showInfo($('#approvals-error'), 'More calls wait than are listed here.');
    else showError($('#approvals-error'), null);
  } catch (e) {
    showError($('#approvals-error'), e);
  }
}

// --- nodes ------------------------------------------------------------------------------------

async function nodeAction(method, req) {
  try {
    await call(method, req);
    showError($('#nodes-error'), null);
  } catch (e) {
    showError($('#nodes-error'), e);
  }
  loadNodes();
}

function nodeRow(n) {
  const cap = Number(n.capacity || 0), run = Number(n.running || 0);
  const pct = cap ? Math.round((100 * run) / cap) : 0;
  const cordoned = n.state && n.state !== 'ready';
  return el('tr', {'data-node': n.node_id},
    el('th', {scope: 'row'}, n.node_id, n.address ? el('div', {class: 'small text-body-secondary fw-normal'}, n.address) : null),
    el('td', {}, stateBadge(n.state || 'ready')),
    el('td', {class: 'load-cell'}, el('div', {class: 'small'}, run + ' / ' + cap + ' running'),
      el('div', {class: 'progress', role: 'progressbar', 'aria-label': 'load of ' + n.node_id,
        'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100},
      el('div', {class: 'progress-bar load-' + Math.min(10, Math.round(pct / 10))}))),
    el('td', {}, Object.entries(n.labels || {}).map(([k, v]) => el('span', {class: 'badge text-bg-light border me-1'}, k + '=' + v))),
    el('td', {class: 'small'}, (n.models || []).join(', '), el('div', {class: 'text-body-secondary'}, shortJson((n.tools || []).join(', '), 80))),
    el('td', {class: 'small'}, n.version || ''),
    el('td', {class: 'small'}, n.connected_ns ? fmtAge(nsToMs(n.connected_ns)) + ' ago' : ''),
    el('td', {class: 'text-nowrap'},
      el('button', {type: 'button', class: 'btn btn-sm btn-outline-secondary me-1',
        onclick: () => nodeAction('CordonNode', {node_id: n.node_id, cordon: !cordoned})}, cordoned ? 'Uncordon' : 'Cordon'),
      el('button', {type: 'button', class: 'btn btn-sm btn-outline-danger',
        onclick: () => confirm('Drain ' + n.node_id + '?', 'The node is cordoned and each turn it runs moves to another node at its next step.',
          async () => { await call('DrainNode', {node_id: n.node_id}); loadNodes(); })}, 'Drain…')));
}

export async function loadNodes() {
  try {
    const r = await call('ListNodes', {});
    const nodes = r.nodes || [];
    $('#nodes-table').tBodies[0].replaceChildren(...(nodes.length ? nodes.map(nodeRow) :
      [el('tr', {}, el('td', {colspan: 8, class: 'text-body-secondary'}, 'No node is connected.'))]));
  } catch (e) {
    showError($('#nodes-error'), e);
  }
}

export function initOps() {
  $('#confirm-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await confirmAction($('#confirm-reason').value.trim());
      modal('#confirm-modal').hide();
    } catch (err) {
      showError($('#confirm-error'), err);
    }
  });
  $('#decide-form').addEventListener('submit', (e) => { e.preventDefault(); decide(true); });
  $('#deny-btn').addEventListener('click', () => decide(false));
  onNamespace(loadApprovals);
  setInterval(() => { if (visible('nodes')) loadNodes(); }, 3000);
  setInterval(() => { if (document.visibilityState === 'visible') loadApprovals(); }, 3000);
}
