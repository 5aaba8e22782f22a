// usage.js - the Usage panel: GetUsageHistory (tokens and cost per model per bucket, counted by
// the hub from the model replies it stores) drawn as a heat-map, refreshed every 10 s while shown.

import {call} from './api.js';
import {$, showError} from './util.js';
import {state, onNamespace, visible} from './state.js';
import {drawHeatmap} from './heatmap.js';

export async function loadUsage() {
  const [bucketSeconds, buckets] = $('#usage-window').value.split('x').map(Number);
  const req = {bucket_seconds: bucketSeconds, buckets};
  if (state.namespace) req.namespace = state.namespace;
  let hist;
  try {
    hist = await call('GetUsageHistory', req);
  } catch (e) {
    showError($('#usage-error'), e);
    return;
  }
  showError($('#usage-error'), null);
  $('#usage-source').textContent = 'Counted by the hub from every stored model reply' +
    (state.namespace ? ' in namespace ' + state.namespace : ' in the namespaces you may see') +
    ' (since the hub started; at most 24 hours).';
  const n = drawHeatmap($('#heatmap'), hist, $('#usage-metric').value);
  $('#heatmap').setAttribute('data-cells', n);
}

export function initUsage() {
  $('#usage-metric').addEventListener('change', loadUsage);
  $('#usage-window').addEventListener('change', loadUsage);
  onNamespace(() => { if (visible('usage')) loadUsage(); });
  setInterval(() => { if (visible('usage')) loadUsage(); }, 10000);
}
