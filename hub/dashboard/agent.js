// agent.js - one agent's page: its header (state, node, usage), the operator's actions (send a
// message, resume, kill), its live timeline over Trace, the tree of its sub-agents, and the
// tool invocation log of the same events. A replayed trace file (replay.js) fills the same
// timeline and log with no hub: replay mode disables the actions and builds the tree from the
// file's CHILD and WAITING events instead of GetAgent.
//
// One trace stream at a time: opening another agent (or a replay) closes the previous one.

import {call, trace} from './api.js';
import {el, $, showError, stateBadge, fmtInt, fmtCost, fmtAge, nsToMs} from './util.js';
import {normalize} from './events.js';
import {Timeline, renderToolLog} from './timeline.js';
import {loadTree, drawTree} from './tree.js';
import {confirm, openDecide, onApprovalDecided} from './ops.js';

let timeline = null;
let current = null; // {id, replay: bool, name}
let es = null;
let refreshTimer = 0, treeTimer = 0;
function changed() {
  renderToolLog($('#tools-table'), $('#tool-filter'), timeline.toolCalls);
}

function setStatus(text, cls) {
  const s = $('#trace-status');
  s.textContent = text;
  s.className = 'badge ms-auto ' + (cls || 'text-bg-light border');
}

function stopStream() {
  if (es) es.close();
  es = null;
}

async function refreshHeader() {
  if (!current || current.replay) return;
  const id = current.id;
  try {
    const a = await call('GetAgent', {agent_id: id});
    if (!current || current.id !== id) return;
    const u = a.usage || {};
    const badge = stateBadge(a.state);
    $('#agent-state').replaceChildren(badge, a.state_reason ? el('span', {class: 'small ms-2'}, a.state_reason) : '');
    $('#agent-meta').textContent = [(a.spec && a.spec.name) || '', 'namespace ' + (a.namespace || 'default'),
      a.node_id ? 'node ' + a.node_id : 'not placed yet', 'created ' + fmtAge(nsToMs(a.created_unix_nano)) + ' ago',
      fmtInt(Number(u.input_tokens || 0) + Number(u.output_tokens || 0)) + ' tokens', fmtCost(u.cost_usd),
      (u.model_calls || 0) + ' model calls', (u.tool_calls || 0) + ' tool calls',
      a.parent_id ? 'child of ' + a.parent_id : ''].filter(Boolean).join(' · ');
    showError($('#agent-error'), null);
  } catch (e) {
    showError($('#agent-error'), e);
  }
}

async function refreshTree() {
  if (!current || current.replay) return;
  const id = current.id;
  try {
    // The tree starts at the root of the agent's family, so a child shows its siblings too.
    let root = id;
    for (let i = 0; i < 64; i++) {
      const a = await call('GetAgent', {agent_id: root});
      if (!a.parent_id) break;
      root = a.parent_id;
    }
    const t = await loadTree(root);
    if (!current || current.id !== id) return;
    drawTree($('#tree'), t, id, (x) => { location.hash = '#/agent/' + x; });
    $('#tree-note').textContent = (t.fetched === 1 ? 'No sub-agents' : t.fetched + ' agents') + (t.truncated ? ' (first ' + t.fetched + ' shown)' : '') +
      (t.fetched === 1 ? '.' : '. Click one to follow it.');
    showError($('#tree-error'), null);
  } catch (e) {
    showError($('#tree-error'), e);
  }
}

// A replay's tree: the agent and the sub-agents its CHILD and WAITING events name.
function replayTree(events, rootId) {
  const kids = new Map();
  for (const ev of events) {
    if (ev.kind === 'child') kids.set(ev.payload.agent_id, {id: ev.payload.agent_id, state: ev.payload.state || '?', node: '?', children: []});
    if (ev.kind === 'waiting') for (const c of ev.payload.agents || []) if (!kids.has(c)) kids.set(c, {id: c, state: 'waited for', node: '?', children: []});
  }
  const END = {final: 'idle', yield: 'yielded', error: 'failed', killed: 'killed'};
  const ends = events.filter((e) => END[e.kind]);
  const lastEnd = ends[ends.length - 1], last = events[events.length - 1];
  const root = {id: rootId, state: lastEnd && lastEnd === last ? END[lastEnd.kind] : 'running', node: (events.find((e) => e.nodeId) || {}).nodeId || '—', children: [...kids.values()]};
  drawTree($('#tree'), {root}, rootId, () => {});
  $('#tree-note').textContent = kids.size ? kids.size + ' sub-agents named in the file (their own traces are separate files).' :
    'No sub-agents named in the file.';
}

function debounce(which, fn, ms) {
  clearTimeout(which === 'tree' ? treeTimer : refreshTimer);
  const t = setTimeout(fn, ms);
  if (which === 'tree') treeTimer = t; else refreshTimer = t;
}

function prepare(replay) {
  stopStream();
  timeline.reset();
  timeline.live = !replay;
  $('#agent-empty').classList.add('d-none');
  $('#agent-body').classList.remove('d-none');
  $('#agent-actions').classList.toggle('d-none', replay);
  $('#tree').replaceChildren();
  showError($('#agent-error'), null);
  changed();
}

// Follows agent id live.
export function openAgent(id) {
  if (current && current.id === id && !current.replay && es) return;
  current = {id, replay: false};
  prepare(false);
  $('#agent-title').textContent = 'Agent ' + id;
  $('#tools-of').textContent = 'of agent ' + id;
  $('#agent-state').replaceChildren();
  $('#agent-meta').textContent = '';
  setStatus('connecting');
  refreshHeader();
  refreshTree();
  es = trace(id, 0, {
    event: (raw) => {
      const arrived = performance.now();
      let ev;
      try { ev = normalize(raw); } catch (e) { showError($('#agent-error'), e); return; }
      ev.arrived = arrived;
      timeline.add(ev);
      if (['assigned', 'final', 'yield', 'error', 'killed', 'interrupted', 'resumed', 'waiting',
        'approval_required', 'approval_decided', 'input', 'child'].includes(ev.kind)) debounce('head', refreshHeader, 150);
      if (['child', 'waiting', 'assigned', 'final', 'yield', 'error', 'killed'].includes(ev.kind) ||
        (ev.kind === 'tool_result' && ev.payload.name === 'spawn_agent'))
        debounce('tree', refreshTree, 400);
    },
    end: () => { setStatus('ended (agent killed)', 'text-bg-secondary'); es = null; refreshHeader(); },
    error: (e) => {
      setStatus('stopped', 'text-bg-danger');
      es = null;
      showError($('#agent-error'), e);
      refreshHeader(); // its error says why (NOT_FOUND, UNAUTHENTICATED...)
    },
    state: (s) => setStatus(s, s === 'live' ? 'text-bg-success' : 'text-bg-warning'),
  });
}

// Shows events read from a file, offline.
export function replay(events, fileName) {
  const ids = [...new Set(events.map((e) => e.agentId))];
  current = {id: ids[0] || '', replay: true, name: fileName};
  prepare(true);
  $('#agent-title').textContent = 'Replay of ' + fileName;
  $('#tools-of').textContent = 'in ' + fileName;
  $('#agent-state').replaceChildren(el('span', {class: 'badge text-bg-secondary'}, 'replay'));
  $('#agent-meta').textContent = (ids.length === 1 ? 'agent ' + ids[0] : ids.length + ' agents') + ' · ' + events.length + ' events';
  setStatus('offline replay', 'text-bg-secondary');
  for (const ev of events) timeline.add(ev);
  if (current.id) replayTree(events, current.id);
}

// Run after an action: the new events arrive over the trace; the header may change now.
function acted() { debounce('head', refreshHeader, 100); }

export function initAgent() {
  timeline = new Timeline($('#timeline'), {onDecide: openDecide, onChange: changed});
  onApprovalDecided(acted);
  $('#tool-filter').addEventListener('change', () => renderToolLog($('#tools-table'), $('#tool-filter'), timeline.toolCalls));
  $('#send-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#send-text');
    try {
      await call('SendMessage', {agent_id: current.id, input: input.value});
      input.value = '';
      acted();
    } catch (err) { showError($('#agent-error'), err); }
  });
  $('#resume-btn').addEventListener('click', async () => {
    try { await call('ResumeAgent', {agent_id: current.id}); acted(); } catch (err) { showError($('#agent-error'), err); }
  });
  $('#kill-btn').addEventListener('click', () => confirm('Kill agent ' + current.id + '?',
    'Its running turn is cancelled and it takes no more input. This cannot be undone.',
    async (reason) => { await call('KillAgent', {agent_id: current.id, reason}); acted(); }));
  setInterval(() => { if (current && !current.replay && document.visibilityState === 'visible') refreshHeader(); }, 5000);
  renderToolLog($('#tools-table'), $('#tool-filter'), []);
}
