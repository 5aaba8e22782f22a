// tree.js - the coordination debugger's tree: an agent and its sub-agents, recursively, across
// nodes, each with its node and state, drawn with d3's tree layout (v3). GetAgent's children
// give the edges; at most MAX agents are fetched, breadth first, so a huge team stays cheap.

import {call} from './api.js';
import {stateName} from './util.js';

const d3 = window.d3;
const MAX = 200;

// Fetches the tree rooted at rootId: {id, name, state, node, children: [...]}, plus a count.
export async function loadTree(rootId) {
  const root = {id: rootId, children: []};
  const queue = [root];
  let fetched = 0, truncated = false;
  while (queue.length) {
    const n = queue.shift();
    if (fetched >= MAX) { truncated = true; break; }
    const a = await call('GetAgent', {agent_id: n.id});
    fetched++;
    Object.assign(n, {name: (a.spec && a.spec.name) || '', state: stateName(a.state), node: a.node_id || '—'});
    for (const c of a.children || []) {
      const child = {id: c, children: [], state: '?', node: '?'};
      n.children.push(child);
      queue.push(child);
    }
  }
  return {root, fetched, truncated};
}

// Draws the tree into container as an indented tree (rows in depth-first order, one indent per
// level: it fits the narrow column beside the timeline however wide the team is); clicking an
// agent (or Enter on it) calls open(id).
export function drawTree(container, tree, currentId, open) {
  d3.select(container).selectAll('*').remove();
  const ROW = 36, INDENT = 22;
  const nodes = d3.layout.tree().nodes(tree.root); // depth-first, parents before children
  nodes.forEach((n, i) => { n.x = i * ROW; n.y = n.depth * INDENT; });
  const links = d3.layout.tree().links(nodes);
  const svg = d3.select(container).append('svg').attr('class', 'tree')
    .attr('width', d3.max(nodes, (n) => n.y) + 300).attr('height', nodes.length * ROW + 8)
    .attr('role', 'tree').attr('aria-label', 'Sub-agents of ' + tree.root.id);
  const g = svg.append('g').attr('transform', 'translate(12,14)');
  g.selectAll('path.link').data(links).enter().append('path').attr('class', 'link')
    .attr('d', (l) => 'M' + l.source.y + ',' + l.source.x + 'V' + l.target.x + 'H' + l.target.y);
  const node = g.selectAll('g.node').data(nodes).enter().append('g')
    .attr('class', (d) => 'node state-' + d.state + (d.id === currentId ? ' current' : ''))
    .attr('transform', (d) => 'translate(' + d.y + ',' + d.x + ')')
    .attr('tabindex', 0).attr('role', 'treeitem').attr('aria-level', (d) => d.depth + 1)
    .attr('data-agent', (d) => d.id)
    .attr('aria-label', (d) => 'agent ' + d.id + ' ' + (d.name || '') + ', ' + d.state + ' on ' + d.node)
    .on('click', (d) => open(d.id))
    .on('keydown', (d) => { if (d3.event.key === 'Enter') open(d.id); });
  node.append('circle').attr('r', 6);
  node.append('text').attr('x', 12).attr('y', -2).attr('class', 'tree-id').text((d) => d.id + (d.name ? '  ' + d.name : ''));
  node.append('text').attr('x', 12).attr('y', 12).attr('class', 'tree-meta').text((d) => d.state + ' · node ' + d.node);
  node.append('title').text((d) => d.id + ' (' + d.state + ') on node ' + d.node);
}
