// Drives the web app in headless Chromium (the system's, through playwright-core) from a JSON plan
// and writes what it saw as JSON; the Python tests and apps/make_screenshots.py decide what is right.
//
//   node apps/web/tests/drive.mjs plan.json
//
// plan: {chromium, out, args?, viewport?, scenarios: [{name, steps: [...]}]}; args are extra
// chromium flags (the test adds SwiftShader's WebGPU adapter). Steps:
//   {goto: url}                 open a page and wait until it is ready or shows an error
//   {upload: path}              choose a file with the Photo button and wait for the result
//   {task: name}                tap a task button and wait for the result
//   {collect: key}              record the last result (raw output, prediction canvas as PNG)
//   {message: key}              record the status and the on-screen message
//   {overlay: 0..100}           move the overlay slider
//   {camera: frames}            start the (fake) camera, wait for `frames` results, stop it
//   {screenshot: path, full?}   save a screenshot
//   {bench: url, key}           open the benchmark page (bench.html), wait until it is done and
//                               record window.edgemtlBench (its result or error) under key
import { chromium } from 'playwright-core';
import { readFile, writeFile } from 'node:fs/promises';

const plan = JSON.parse(await readFile(process.argv[2], 'utf8'));
const TIMEOUT = plan.timeout_ms || 60000;

const browser = await chromium.launch({
  executablePath: plan.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    ...(plan.args || [])],
});

const events = (page) => page.evaluate(() => (window.edgemtlDemo ? window.edgemtlDemo.events : -1));
const waitEvents = (page, n) => page.waitForFunction((k) => window.edgemtlDemo && window.edgemtlDemo.events > k, n, { timeout: TIMEOUT });

const results = {};
try {
  for (const sc of plan.scenarios) {
    const context = await browser.newContext({ viewport: plan.viewport || { width: 760, height: 1000 }, deviceScaleFactor: 1 });
    await context.grantPermissions(['camera']);
    const page = await context.newPage();
    const out = { console: [], page_errors: [], collected: {}, messages: {} };
    results[sc.name] = out;
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.console.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => out.page_errors.push(String(e)));
    for (const step of sc.steps) {
      if (step.goto) {
        await page.goto(step.goto);
        await page.waitForFunction(() => window.edgemtlDemo && window.edgemtlDemo.events > 0, null, { timeout: TIMEOUT });
      } else if (step.upload) {
        const n = await events(page);
        await page.setInputFiles('#image-input', step.upload);
        await waitEvents(page, n);
      } else if (step.task) {
        const n = await events(page);
        await page.click(`#tasks button[data-task="${step.task}"]`);
        await waitEvents(page, n);
      } else if (step.collect) {
        out.collected[step.collect] = await page.evaluate(() => {
          const d = window.edgemtlDemo;
          return { result: d.result, prediction_png: d.predictionPNG(), composite_png: d.compositePNG(), backend: d.backend,
            task: d.task, legend: document.getElementById('legend').textContent,
            latency: [...document.querySelectorAll('#latency tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)) };
        });
      } else if (step.message) {
        out.messages[step.message] = await page.evaluate(() => ({ state: window.edgemtlDemo.state, message: window.edgemtlDemo.message,
          status: document.getElementById('status').textContent, tasks: window.edgemtlDemo.tasks }));
      } else if (step.overlay !== undefined) {
        await page.evaluate((v) => { const s = document.getElementById('overlay'); s.value = String(v); s.dispatchEvent(new Event('input')); }, step.overlay);
      } else if (step.camera) {
        const runs = await page.evaluate(() => window.edgemtlDemo.runs);
        const n = await events(page);
        await page.click('#camera-button');
        await waitEvents(page, n);
        await page.waitForFunction((k) => window.edgemtlDemo.runs >= k || window.edgemtlDemo.message, runs + step.camera, { timeout: TIMEOUT });
        out.camera = await page.evaluate((r0) => ({ runs: window.edgemtlDemo.runs - r0, message: window.edgemtlDemo.message,
          result: window.edgemtlDemo.result && { task: window.edgemtlDemo.result.task, width: window.edgemtlDemo.result.width, height: window.edgemtlDemo.result.height } }), runs);
        if (step.screenshot_while) await page.screenshot({ path: step.screenshot_while, fullPage: true });
        await page.click('#camera-button');
      } else if (step.bench) {
        await page.goto(step.bench);
        await page.waitForFunction(() => window.edgemtlBench && window.edgemtlBench.done, null, { timeout: plan.bench_timeout_ms || TIMEOUT });
        out.collected[step.key] = await page.evaluate(() => ({ result: window.edgemtlBench.result, error: window.edgemtlBench.error,
          warning: window.edgemtlBench.warning || null }));
        if (plan.progress) console.log(`${step.key}: ${out.collected[step.key].error || 'done'}`);
      } else if (step.screenshot) {
        await page.screenshot({ path: step.screenshot, fullPage: step.full !== false });
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
    await context.close();
  }
} finally {
  await browser.close();
  await writeFile(plan.out, JSON.stringify(results));
}
