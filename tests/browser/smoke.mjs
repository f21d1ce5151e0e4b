// The server serves the console at / and the widget loader at /widget.js, and a page
// loads in headless Chromium without errors.
import { run, newPage, env, check } from './lib.mjs';

await run(async (browser) => {
  const base = env('PARLEY_URL');
  const page = await newPage(browser);
  const res = await page.goto(`${base}/`);
  check(res && res.status() === 200, `GET / answered ${res && res.status()}`);
  check((res.headers()['content-type'] || '').startsWith('text/html'), 'GET / is HTML');
  const loader = await fetch(`${base}/widget.js`);
  check(loader.status === 200, `GET /widget.js answered ${loader.status}`);
  check((loader.headers.get('content-type') || '').includes('javascript'), '/widget.js is JavaScript');
  check(page.pageErrors.length === 0, `page errors: ${page.pageErrors.join('; ')}`);

  // A customer's page on another origin with the tracking code loads without errors.
  const host = await newPage(browser);
  const hosted = await host.goto(env('HOST_URL'));
  check(hosted && hosted.status() === 200, 'the host page loads');
  await host.waitForLoadState('load');
  check(host.pageErrors.length === 0, `host page errors: ${host.pageErrors.join('; ')}`);
});
