// Chatflow targeting and priority, the offline form outside business hours, and the
// security rules: a site not allowed is refused, a forged identity HMAC is refused, a
// signed identity is accepted, and an unreachable Parley leaves the page unharmed.
import { run, newPage, env, check, screenshot } from './lib.mjs';

const HOST = env('HOST_URL');
const OTHER = env('OTHER_ORIGIN_URL');
const CHANNEL = env('CHANNEL_ID');
const PARLEY = env('PARLEY_URL');
const T = { timeout: 15000 };

/** Load `url` and wait until the loader has decided (shown / hidden / unavailable). */
async function visit(browser, url, opts) {
  const page = await newPage(browser, opts);
  await page.goto(url);
  await page.waitForFunction(() => window.Parley && window.Parley.status !== 'loading', null, T);
  return page;
}

await run(async (browser) => {
  // No enabled chatflow targets the blog: nothing shows.
  let page = await visit(browser, HOST + '/blog');
  check(await page.evaluate(() => window.Parley.status) === 'hidden', 'hidden on /blog');
  check(await page.locator('parley-chat').count() === 0, 'no widget element on /blog');
  await page.context().close();

  // /pricing: the Pricing chatflow (popup) opens the window with its welcome message.
  page = await visit(browser, HOST + '/pricing');
  await page.locator('.win').waitFor({ state: 'visible', ...T });
  await page.locator('.log .m.them', { hasText: 'Questions about pricing?' }).waitFor(T);
  await page.context().close();

  // /pricing?utm_source=ads: both match; Ads has the lower priority and wins (launcher
  // only, with its welcome bubble; the window stays closed).
  page = await visit(browser, HOST + '/pricing?utm_source=ads');
  await page.locator('.bubble', { hasText: 'Welcome, ad visitor!' }).waitFor(T);
  check(await page.locator('.win').isHidden(), 'the Ads chatflow does not pop up');
  await page.context().close();

  // Outside business hours: the offline form, and the message still reaches the inbox
  // (checked by the Rust test) with the visitor's email.
  page = await visit(browser, HOST + '/closed');
  await page.locator('.launcher').click(T);
  const form = page.locator('form.off');
  await form.waitFor({ state: 'visible', ...T });
  check((await form.textContent()).includes("We're away. We'll email you within a day."), 'offline message shown');
  check(await page.locator('form.compose').isHidden(), 'no chat box while offline');
  await page.locator('input[type=email]').fill('offline@example.com');
  await page.locator('textarea[aria-label="Your message"]').fill('Please call me back about my order');
  await screenshot(page, 'widget-offline');
  await page.locator('form.off button[type=submit]').click();
  await page.locator('.m.me:not(.pending)', { hasText: 'Please call me back about my order' }).waitFor(T);
  await page.locator('.m.sys', { hasText: 'We will reply to offline@example.com.' }).waitFor(T);
  check(page.pageErrors.length === 0, `page errors: ${page.pageErrors.join('; ')}`);
  await page.context().close();

  // A round-robin inbox with nobody online: the visitor waits and sees their place in line.
  page = await visit(browser, HOST + '/queue');
  await page.locator('.launcher').click(T);
  await page.locator('textarea[aria-label="Message"]').fill('Anyone there?');
  await page.locator('textarea[aria-label="Message"]').press('Enter');
  await page.locator('.s', { hasText: 'You are next in line' }).waitFor(T);
  await page.context().close();

  // A signed identity (window.Parley.identity set by the site): accepted; the message
  // lands on that contact (checked by the Rust test).
  page = await visit(browser, HOST + '/pricing/me');
  await page.locator('.win').waitFor({ state: 'visible', ...T });
  await page.locator('textarea[aria-label="Message"]').fill('It is Léa');
  await page.locator('textarea[aria-label="Message"]').press('Enter');
  await page.locator('.m.me:not(.pending)', { hasText: 'It is Léa' }).waitFor(T);

  // A forged identity hash is refused (401 invalid_identity) and makes nothing.
  const forged = await page.evaluate(async ({ parley, channel, hash }) => {
    const r = await fetch(`${parley}/api/v1/widget/${channel}/sessions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ page_url: location.href, identity: { email: 'lea@example.com', hash } }),
    });
    return { status: r.status, body: await r.json() };
  }, { parley: PARLEY, channel: CHANNEL, hash: env('FORGED_HASH') });
  check(forged.status === 401 && forged.body.code === 'invalid_identity', `forged HMAC: ${JSON.stringify(forged)}`);
  await page.context().close();

  // A site whose origin is not allowed: the loader is refused quietly; the API and the
  // socket refuse it too.
  page = await visit(browser, OTHER + '/pricing');
  check(await page.evaluate(() => window.Parley.status) === 'unavailable', 'refused on another origin');
  check(await page.locator('parley-chat').count() === 0, 'no widget on another origin');
  const refused = await page.evaluate(async ({ parley, channel }) => {
    try {
      await fetch(`${parley}/api/v1/widget/${channel}/sessions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
      });
      return 'allowed';
    } catch (e) { return 'blocked'; }
  }, { parley: PARLEY, channel: CHANNEL });
  check(refused === 'blocked', 'the browser blocks the call (preflight refused)');
  check(page.pageErrors.length === 0, `page errors: ${page.pageErrors.join('; ')}`);
  await page.context().close();

  // Parley unreachable: the tracking code fails quietly and the page works.
  page = await newPage(browser);
  await page.goto(HOST + '/down');
  await page.waitForLoadState('load');
  check(await page.locator('h1').textContent() === 'Down', 'the host page renders');
  check(page.pageErrors.length === 0, `no page errors: ${page.pageErrors.join('; ')}`);
  check(await page.evaluate(() => window.Parley === undefined), 'nothing defined when the script cannot load');
});
