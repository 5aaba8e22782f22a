// heatmap.js - tokens or cost per model per time bucket, as a d3 (v3, Debian's libjs-d3) SVG
// heat-map: one rect per (model, bucket) coloured on a sequential scale, a legend, and a <title>
// tooltip with the exact values on each cell (also read by screen readers).
//
// Input is GetUsageHistory's UsageHistory (proto3 JSON): every series has `buckets` values.

import {fmtInt, fmtCost} from './util.js';

const d3 = window.d3;

// Draws hist into container (an element); metric is "tokens" or "cost". Returns cells drawn with
// a non-zero value.
export function drawHeatmap(container, hist, metric) {
  const series = hist.series || [];
  const n = Number(hist.buckets || 0);
  const bucketMs = Number(hist.bucket_seconds || 60) * 1000;
  const startMs = Number(hist.start_unix_nano || 0) / 1e6;
  const cells = [];
  series.forEach((s, row) => {
    for (let i = 0; i < n; i++) {
      const input = Number((s.input_tokens || [])[i] || 0), output = Number((s.output_tokens || [])[i] || 0);
      const cost = Number((s.cost_usd || [])[i] || 0), calls = Number((s.model_calls || [])[i] || 0);
      cells.push({row, col: i, model: s.model, input, output, cost, calls,
        value: metric === 'cost' ? cost : input + output, t: startMs + i * bucketMs});
    }
  });
  d3.select(container).selectAll('*').remove();
  if (!series.length) {
    d3.select(container).append('p').attr('class', 'text-body-secondary').text('No model usage in this window yet.');
    return 0;
  }
  const label = 150, cell = Math.max(6, Math.min(24, Math.floor((container.clientWidth - label - 20) / n) || 12));
  const width = label + n * cell + 20, height = series.length * 22 + 70;
  const max = d3.max(cells, (c) => c.value) || 1;
  const color = d3.scale.linear().domain([0, max]).range(['#deebf7', '#08306b']).interpolate(d3.interpolateHcl);
  const svg = d3.select(container).append('svg').attr('width', width).attr('height', height)
    .attr('role', 'img').attr('class', 'heatmap')
    .attr('aria-label', (metric === 'cost' ? 'Cost' : 'Tokens') + ' per model per ' + (bucketMs / 60000) + ' minutes');
  const g = svg.append('g').attr('transform', 'translate(' + label + ',10)');
  g.selectAll('text.model').data(series).enter().append('text').attr('class', 'model axis-label')
    .attr('x', -6).attr('y', (s, i) => i * 22 + 15).attr('text-anchor', 'end').text((s) => s.model);
  g.selectAll('rect.cell').data(cells).enter().append('rect')
    .attr('class', 'cell').attr('x', (c) => c.col * cell).attr('y', (c) => c.row * 22)
    .attr('width', cell - 1).attr('height', 20).attr('rx', 2)
    .attr('data-value', (c) => c.value).attr('data-model', (c) => c.model)
    .style('fill', (c) => (c.value ? color(c.value) : 'var(--heat-empty)'))
    .append('title').text((c) => c.model + ', ' + new Date(c.t).toLocaleTimeString() + ': ' +
      fmtInt(c.input) + ' input + ' + fmtInt(c.output) + ' output tokens, ' + fmtCost(c.cost) +
      ' (' + c.cost + ' USD), ' + c.calls + ' model calls');
  const x = d3.time.scale().domain([new Date(startMs), new Date(startMs + n * bucketMs)]).range([0, n * cell]);
  g.append('g').attr('class', 'axis').attr('transform', 'translate(0,' + series.length * 22 + ')')
    .call(d3.svg.axis().scale(x).orient('bottom').ticks(Math.max(2, Math.floor(n * cell / 90))));
  // The legend: the scale in 6 steps, with the values.
  const steps = d3.range(6).map((i) => (max * i) / 5);
  const lg = svg.append('g').attr('class', 'legend').attr('transform', 'translate(' + label + ',' + (series.length * 22 + 40) + ')');
  lg.selectAll('rect').data(steps).enter().append('rect').attr('x', (v, i) => i * 60).attr('width', 58)
    .attr('height', 10).style('fill', (v) => (v ? color(v) : 'var(--heat-empty)'));
  lg.selectAll('text').data(steps).enter().append('text').attr('class', 'axis-label').attr('x', (v, i) => i * 60)
    .attr('y', 24).text((v) => (metric === 'cost' ? fmtCost(v) : fmtInt(Math.round(v))));
  return cells.filter((c) => c.value > 0).length;
}
