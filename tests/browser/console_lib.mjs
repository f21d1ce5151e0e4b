// Helpers for the console's browser tests.
import { newPage, check, env } from './lib.mjs';

/**
 * Log in through the console's form; resolves once the inbox shows. `base` is where the
 * console is opened (PARLEY_URL unless a test puts a proxy in front); `before` runs before
 * the page loads (e.g. `page.addInitScript`).
 */
export async function login(browser, email, password, { base, before } = {}) {
  const page = await newPage(browser, { viewport: { width: 1440, height: 860 } });
  page.on('dialog', (d) => { page.pageErrors.push('unexpected dialog: ' + d.message()); d.dismiss(); });
  if (before) await before(page);
  await page.goto((base || env('PARLEY_URL')) + '/');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('.view-link[data-view=mine]');
  return page;
}

/**
 * A visitor: a widget session from the API and a /ws/visitor socket opened inside a
 * Chromium page (so frames are collected in `window.frames`).
 */
export async function visitor(browser, channelId, pageUrl) {
  const base = env('PARLEY_URL');
  const page = await newPage(browser);
  await page.goto(base + '/healthz');
  // From the page, as the widget would: the session records Chromium's User-Agent.
  const session = await page.evaluate(async ([ch, url]) => {
    const res = await fetch(`/api/v1/widget/${ch}/sessions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ page_url: url }),
    });
    return res.ok ? res.json() : { error: res.status };
  }, [channelId, pageUrl]);
  check(!session.error, `widget session: ${session.error}`);
  await page.evaluate((token) => new Promise((resolve, reject) => {
    window.frames_ = [];
    const ws = new WebSocket(`ws://${location.host}/ws/visitor?token=${token}`);
    ws.onmessage = (e) => window.frames_.push(JSON.parse(e.data));
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('visitor socket failed'));
    window.ws_ = ws;
  }), session.visitor_token);
  return {
    session,
    page,
    send: (body, clientId) => page.evaluate(([b, c]) => window.ws_.send(JSON.stringify({ type: 'send', client_id: c, body: b })), [body, clientId]),
    typing: (on) => page.evaluate((o) => window.ws_.send(JSON.stringify({ type: 'typing', on: o, conversation_id: window.conv_ })), on),
    frames: () => page.evaluate(() => window.frames_),
    /** Wait for a frame matching `pred` (a function source string over `f`). */
    waitFrame: async (pred, what) => {
      const deadline = Date.now() + 15000;
      for (;;) {
        const frames = await page.evaluate(() => window.frames_);
        const found = frames.find((f) => new Function('f', `return (${pred});`)(f));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`visitor: no frame where ${what}; got ${JSON.stringify(frames)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/**
 * Fail on any page error or console error of these pages. Chromium's own network lines
 * ("Failed to load resource", and "WebSocket connection … failed" while a test has cut
 * the network) are not the page's errors.
 */
export function checkClean(...pages) {
  for (const p of pages) {
    check(p.pageErrors.length === 0, `page errors: ${p.pageErrors.join('; ')}`);
    const errs = p.consoleErrors.filter((e) => !/Failed to load resource|^WebSocket connection to .* failed/.test(e));
    check(errs.length === 0, `console errors: ${errs.join('; ')}`);
  }
}
