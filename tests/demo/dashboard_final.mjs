// tests/demo/dashboard_final.mjs - for tests/demo/test_demo_cloud.py: opens the running
// demo-cloud's dashboard (https, the demo's self-signed CA: ignoreHTTPSErrors) in the system
// Chromium with playwright-core, signs in with the demo's token, opens agent_0's timeline and
// waits for its final answer and its two sub-agents in the tree. The only argument is a JSON
// config file: {url (the dashboard's agent_0 page), token, chromium, answer (the text the final
// step must hold), screenshot (a PNG path)}. Prints one JSON object; exits 1 with a message on
// the first failed check.

import {chromium} from 'playwright-core';
import {readFileSync} from 'node:fs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const T = 20000;
const out = {page_errors: []};

async function main() {
  const browser = await chromium.launch({executablePath: cfg.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']});
  try {
    const ctx = await browser.newContext({ignoreHTTPSErrors: true, viewport: {width: 1280, height: 800}});
    const page = await ctx.newPage();
    page.on('pageerror', (e) => out.page_errors.push(String(e)));
    await page.goto(cfg.url);
    await page.locator('#view-signin').waitFor({state: 'visible', timeout: T});
    await page.fill('#token', cfg.token);
    await page.click('#signin-form button[type=submit]');
    await page.locator('#hub-status', {hasText: 'connected'}).waitFor({timeout: T});
    // Signing in may leave the page on the agents list: go to agent_0's page again.
    if (!page.url().endsWith(new URL(cfg.url).hash)) await page.goto(cfg.url);
    const final = page.locator('#timeline li[data-kind="final"]');
    await final.waitFor({timeout: T});
    out.final_text = (await final.textContent()).trim();
    if (!out.final_text.includes(cfg.answer))
      throw new Error('the timeline\'s final step does not show the answer: ' + out.final_text);
    await page.locator('#timeline li[data-kind="approval_decided"]').waitFor({timeout: T});
    // The family tree: agent_0 and its two researchers, all idle.
    await page.waitForFunction(() => document.querySelectorAll('#tree svg g.node.state-idle').length >= 3,
      null, {timeout: T});
    out.tree_nodes = await page.locator('#tree svg g.node').count();
    await final.scrollIntoViewIfNeeded();
    await page.screenshot({path: cfg.screenshot});
    out.screenshot = cfg.screenshot;
  } finally {
    await browser.close();
  }
}

main().then(() => console.log(JSON.stringify(out)), (e) => {
  console.log(JSON.stringify(out));
  console.error(String(e && e.stack || e));
  process.exit(1);
});
