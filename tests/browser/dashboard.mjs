// tests/browser/dashboard.mjs - drives the hub's web dashboard in the system Chromium (Playwright,
// playwright-core only: no browser download) for tests/e2e/test_dashboard.py, which starts the
// hub and 3 nodes and passes a JSON config file as the only argument:
//   {url, token (TLS: sign in with it, else ""), chromium, out_dir, jsonl (a trace file to
//    replay), deny_agent (an agent whose call waits for approval, denied from the Approvals
//    panel), team_agent (an agent with two sub-agents, all idle), nodes (how many the Nodes
//    panel must list)}
// It spawns an agent from the page whose echo call waits for approval, sees the steps appear
// live, approves the call and sees the final answer; checks the tool log, the heat-map's data,
// the nodes and a team's sub-agent tree; denies a call from the Approvals panel; then, with every
// API call failing (the hub "gone"), replays the JSONL file dropped on the page. A screenshot of
// each panel goes to out_dir. Prints one JSON object: the screenshots, the spawned agent's id,
// first paint and the event-to-screen latencies (stored on the hub -> painted, read from each
// step's data-time), and the page errors; exits 1 with a message on the first failed check.

import {chromium} from 'playwright-core';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {screenshots: [], page_errors: []};
const T = 20000;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

async function shot(page, name, selector) {
  const path = join(cfg.out_dir, name + '.png');
  if (selector) await page.locator(selector).screenshot({path});
  else await page.screenshot({path, fullPage: false});
  out.screenshots.push(path);
}

async function open(browser, blockApi) {
  const ctx = await browser.newContext({ignoreHTTPSErrors: true, viewport: {width: 1280, height: 800},
    colorScheme: cfg.dark ? 'dark' : 'light'});
  const page = await ctx.newPage();
  page.on('pageerror', (e) => out.page_errors.push(String(e)));
  if (blockApi) await page.route('**/api/**', (r) => r.abort());
  await page.goto(cfg.url);
  return page;
}

// Records, for every timeline step added from now on, when it was painted (the frame after it
// was inserted) against the hub's time of the event.
async function watchLatency(page) {
  await page.evaluate(() => {
    window.__lat = [];
    new MutationObserver((muts) => {
      const added = [];
      for (const m of muts) for (const n of m.addedNodes) if (n.dataset && n.dataset.time) added.push(n);
      if (!added.length) return;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        const painted = performance.timeOrigin + performance.now();
        for (const n of added) window.__lat.push({seq: Number(n.dataset.seq), kind: n.dataset.kind,
          ms: painted - Number(n.dataset.time)});
      }));
    }).observe(document.getElementById('timeline'), {childList: true});
  });
}

async function main() {
  const browser = await chromium.launch({executablePath: cfg.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']});
  try {
    const page = await open(browser, false);
    if (cfg.token) {
      await page.locator('#view-signin').waitFor({state: 'visible', timeout: T});
      await shot(page, 'signin');
      await page.fill('#token', cfg.token);
      await page.click('#signin-form button[type=submit]');
    }
    await page.locator('#hub-status', {hasText: 'connected'}).waitFor({timeout: T});
    out.paint = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((p) => [p.name, p.startTime])));
    out.dom_content_loaded_ms = await page.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd);

    // Agents list: the agents the test made through the API are there.
    await page.locator('#agents-table tbody tr[data-agent]').first().waitFor({timeout: T});
    await shot(page, 'agents');

    // Spawn from the page: echo asks for approval.
    await watchLatency(page);
    await page.click('button[data-bs-target="#spawn-modal"]');
    // Once shown, the modal moves the focus to its first field: fill only after that.
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'spawn-name', null, {timeout: T});
    await page.fill('#spawn-name', 'dash-e2e');
    await page.fill('#spawn-tools', 'echo');
    await page.fill('#spawn-ask', 'echo');
    await page.fill('#spawn-labels', 'suite=browser');
    await page.fill('#spawn-input', 'call echo {"text":"approved from the page"}');
    await page.click('#spawn-form button[type=submit]');
    await page.waitForURL(/#\/agent\/[0-9a-z]{16}$/, {timeout: T});
    out.agent_id = page.url().split('/').pop();
    const tl = page.locator('#timeline');
    for (const kind of ['spawned', 'input', 'assigned', 'model_request', 'model_reply', 'tool_call', 'approval_required'])
      await tl.locator(`li[data-kind="${kind}"]`).first().waitFor({timeout: T});
    await page.locator('#trace-status', {hasText: 'live'}).waitFor({timeout: T});
    await shot(page, 'timeline-waiting');

    // Approve from the timeline's button; the call runs and the turn ends.
    await tl.locator('li[data-kind="approval_required"] button.decide').click();
    await page.locator('#decide-modal').waitFor({state: 'visible'});
    await page.click('#approve-btn');
    await page.locator('#decide-modal').waitFor({state: 'hidden', timeout: T});
    await tl.locator('li[data-kind="approval_decided"]').waitFor({timeout: T});
    await tl.locator('li[data-kind="tool_result"]').waitFor({timeout: T});
    await tl.locator('li[data-kind="final"]').waitFor({timeout: T});
    check((await tl.locator('li[data-kind="final"]').textContent()).includes('approved from the page'), 'the final answer is the echo');
    await page.locator('#agent-state [data-state="idle"]').waitFor({timeout: T});
    await page.locator('#tree svg g.node.state-idle').waitFor({timeout: T});
    await page.waitForTimeout(100); // the last steps' paint records
    out.latencies = await page.evaluate(() => window.__lat);
    await shot(page, 'timeline');

    // Tool log: the echo call, its arguments, duration and outcome.
    await page.click('a[data-view="tools"]');
    const row = page.locator('#tools-table tbody tr[data-tool="echo"][data-outcome="ok"]');
    await row.waitFor({timeout: T});
    check((await row.textContent()).includes('approved from the page'), 'the tool log shows the arguments');
    await page.selectOption('#tool-filter', 'echo');
    await shot(page, 'tools');

    // Heat-map: cells with usage.
    await page.click('a[data-view="usage"]');
    await page.locator('#heatmap rect.cell').first().waitFor({timeout: T});
    const cells = await page.$$eval('#heatmap rect.cell', (rs) => rs.map((r) => Number(r.dataset.value)).filter((v) => v > 0));
    check(cells.length > 0, 'the heat-map has cells with a non-zero value');
    out.heatmap_nonzero_cells = cells.length;
    out.usage_source = await page.textContent('#usage-source');
    await shot(page, 'usage');

    // Nodes: all of them, and cordon then uncordon one.
    await page.click('a[data-view="nodes"]');
    await page.waitForFunction((n) => document.querySelectorAll('#nodes-table tbody tr[data-node]').length === n, cfg.nodes, {timeout: T});
    const last = page.locator('#nodes-table tbody tr[data-node]').last();
    await last.locator('button', {hasText: 'Cordon'}).click();
    await last.locator('[data-state="cordoned"]').waitFor({timeout: T});
    await shot(page, 'nodes');
    await last.locator('button', {hasText: 'Uncordon'}).click();
    await last.locator('[data-state="ready"]').waitFor({timeout: T});

    // A team: the tree shows the parent and its two sub-agents, with their nodes.
    await page.goto(cfg.url + '#/agent/' + cfg.team_agent);
    await page.waitForFunction(() => document.querySelectorAll('#tree g.node.state-idle').length === 3, null, {timeout: T});
    await page.locator('#timeline li[data-kind="child"]').first().waitFor({timeout: T});
    await shot(page, 'team');

    // Approvals: deny the test's waiting call, with a reason.
    await page.click('a[data-view="approvals"]');
    const ask = page.locator(`#approvals-table tbody tr[data-agent="${cfg.deny_agent}"]`);
    await ask.waitFor({timeout: T});
    await shot(page, 'approvals');
    await ask.locator('button.decide').click();
    await page.locator('#decide-modal').waitFor({state: 'visible'});
    await page.click('#deny-btn');
    await page.locator('#decide-error .alert').waitFor({timeout: T}); // a denial needs a reason
    await page.fill('#decide-reason', 'not from a browser test');
    await page.click('#deny-btn');
    await page.locator('#decide-modal').waitFor({state: 'hidden', timeout: T});
    await ask.waitFor({state: 'detached', timeout: T});
    await page.close();

    // Replay, offline: every API call fails; the file dropped on the page still plays.
    const off = await open(browser, true);
    await off.locator('#hub-status', {hasText: 'unreachable'}).waitFor({timeout: T});
    await off.click('a[data-view="replay"]');
    const text = readFileSync(cfg.jsonl, 'utf8');
    await off.evaluate((t) => {
      const dt = new DataTransfer();
      dt.items.add(new File([t], 'trace.jsonl', {type: 'application/json'}));
      document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }, text);
    await off.locator('#timeline li[data-kind="final"]').waitFor({timeout: T});
    const lines = text.split('\n').filter((l) => l.trim()).length;
    const shown = await off.$$eval('#timeline li[data-seq]', (ls) => new Set(ls.map((l) => l.dataset.seq)).size);
    check(shown === lines, `the replay shows every event (${shown} of ${lines})`);
    out.replay_events = shown;
    await shot(off, 'replay');
    await off.close();
  } finally {
    await browser.close();
  }
  check(out.page_errors.length === 0, 'no script error on the page: ' + out.page_errors.join('; '));
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
