// replay.js - a trace JSONL file (`agentry trace --jsonl ID`) dropped on the page or picked with
// the file input, read in the browser and shown in the timeline (agent.js replay): no hub call
// is made, so it works offline. Lines that do not parse are reported by number; the rest show.

import {$, showError} from './util.js';
import {parseJsonl} from './events.js';
import {replay} from './agent.js';

async function load(file) {
  showError($('#replay-error'), null);
  $('#replay-info').textContent = 'Reading ' + file.name + '…';
  let text;
  try { text = await file.text(); } catch (e) { showError($('#replay-error'), e); return; }
  const {events, errors} = parseJsonl(text);
  if (errors.length) showError($('#replay-error'), new Error(errors.length + ' lines skipped: ' + errors.slice(0, 3).join('; ')));
  if (!events.length) { $('#replay-info').textContent = 'No event in ' + file.name + '.'; return; }
  replay(events, file.name);
  $('#replay-info').textContent = events.length + ' events of ' + file.name + ' loaded.';
  location.hash = '#/agent';
}

export function initReplay() {
  const zone = $('#drop-zone');
  for (const t of ['dragenter', 'dragover']) zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add('over'); });
  for (const t of ['dragleave', 'drop']) zone.addEventListener(t, () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer.files[0];
    if (f) load(f);
  });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('#replay-file').click(); } });
  $('#replay-file').addEventListener('change', (e) => { if (e.target.files[0]) load(e.target.files[0]); e.target.value = ''; });
  // Dropping a file anywhere on the page replays it too (instead of the browser opening it).
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    if (zone.contains(e.target)) return;
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) load(f);
  });
}
