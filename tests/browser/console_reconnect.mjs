// The console reconnects and resumes silently (issue 6, Quality). The console is opened
// through a TCP proxy the test can cut (CONSOLE_URL, cut/restore on CONTROL_URL); the
// visitors talk to Parley directly, so they keep writing while the agent is cut off.
//
// 1. A short blip (every socket dropped, new ones accepted at once): the console
//    reconnects without showing anything, and a message sent after it arrives.
// 2. A long cut (new connections refused): the console says it is reconnecting; the
//    visitor writes twice, a second visitor starts a new conversation, and the agent sends
//    a reply that waits as "Sending…". When the network is back: the banner goes, the two
//    messages show once each and in order, the reply is delivered exactly once (same
//    client_id, so a re-send after a lost ack cannot duplicate it), the new conversation is
//    in the list, and nothing was shown as an error.
import { run, check, env } from './lib.mjs';
import { login, visitor, checkClean } from './console_lib.mjs';

const PASSWORD = 'correct horse battery';
const T = { timeout: 15000 };
// After a long cut the next attempt may be up to ~10 s away (backoff with jitter).
const LONG = { timeout: 30000 };

async function control(what) {
  const res = await fetch(`${env('CONTROL_URL')}/${what}`, { method: 'POST' });
  check(res.ok, `proxy ${what}: ${res.status}`);
}

/** Bodies of the thread's messages, in order, as shown. */
const threadBodies = (page) => page.$$eval('#thread .msg .bubble', (els) => els.map((e) => e.textContent));

await run(async (browser) => {
  const channel = env('CHANNEL_ID');
  const v1 = await visitor(browser, channel, 'https://shop.example/cart');
  await v1.send('hello before anything', 'v1-a');
  const ack = await v1.waitFrame("f.type === 'ack' && f.client_id === 'v1-a'", 'first ack');
  const conv = ack.conversation_id;

  // The agent's console, through the proxy. Count the sockets the page opens and record
  // whether the connection banner was ever shown.
  const a = await login(browser, 'ana@example.com', PASSWORD, {
    base: env('CONSOLE_URL'),
    before: (page) => page.addInitScript(() => {
      window.__sockets = 0;
      window.__bannerShown = 0;
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          window.__sockets += 1;
          window.__frames = window.__frames || [];
          this.addEventListener('message', (e) => window.__frames.push(e.data.slice(0, 160)));
          const send = this.send.bind(this);
          this.send = (d) => { window.__frames.push('> ' + d.slice(0, 160)); send(d); };
        }
      };
      new MutationObserver(() => {
        const b = document.querySelector('.conn-banner');
        if (b && !b.hidden) window.__bannerShown += 1;
      }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['hidden'] });
    }),
  });
  await a.click('.view-link[data-view=open]');
  await a.locator(`li.row[data-id="${conv}"]`).click(T);
  await a.locator('#thread .msg.visitor', { hasText: 'hello before anything' }).waitFor(T);
  check(await a.evaluate(() => window.__sockets) === 1, 'one socket before the blip');

  // 1. A blip: the page reconnects on its own, and says nothing.
  await control('cut');
  await control('restore');
  await a.waitForFunction(() => window.__sockets >= 2, null, T);
  await v1.send('after the blip', 'v1-b');
  await a.locator('#thread .msg.visitor', { hasText: 'after the blip' }).waitFor(T);
  check(await a.evaluate(() => window.__bannerShown) === 0, 'a short blip shows no banner');

  // 2. A long cut.
  await control('cut');
  await a.waitForSelector('.conn-banner:not([hidden])', T);
  const banner = await a.textContent('.conn-banner');
  check(/Reconnecting/.test(banner), `the banner says it is reconnecting: ${banner}`);
  await v1.send('while you were away 1', 'v1-c');
  await v1.waitFrame("f.type === 'ack' && f.client_id === 'v1-c'", 'ack c');
  await v1.send('while you were away 2', 'v1-d');
  await v1.waitFrame("f.type === 'ack' && f.client_id === 'v1-d'", 'ack d');
  const v2 = await visitor(browser, channel, 'https://shop.example/help');
  await v2.send('a new question meanwhile', 'v2-a');
  const ack2 = await v2.waitFrame("f.type === 'ack' && f.client_id === 'v2-a'", 'second conversation ack');
  // The agent answers while cut off: the reply waits, marked as sending.
  await a.locator('#composer-input').click();
  await a.locator('#composer-input').pressSequentially('sorry, my network dropped');
  await a.keyboard.press('Enter');
  await a.locator('#thread .msg.agent.pending', { hasText: 'sorry, my network dropped' }).waitFor(T);
  check(await a.locator('#thread .msg.failed').count() === 0, 'a reply waiting for the network is not shown as failed');

  await control('restore');
  await a.waitForSelector('.conn-banner', { state: 'hidden', ...LONG });
  await a.locator('#thread .msg.agent:not(.pending)', { hasText: 'sorry, my network dropped' }).waitFor(LONG);
  await a.locator('#thread .msg.visitor', { hasText: 'while you were away 2' }).waitFor(T).catch(async (e) => {
    throw new Error(`${e.message}\nthread: ${JSON.stringify(await threadBodies(a))}\nframes: ${JSON.stringify(await a.evaluate(() => window.__frames))}`);
  });
  const bodies = await threadBodies(a);
  const expected = ['hello before anything', 'after the blip', 'while you were away 1', 'while you were away 2', 'sorry, my network dropped'];
  check(JSON.stringify(bodies) === JSON.stringify(expected), `the thread after the cut, once each and in order: ${JSON.stringify(bodies)}`);
  // The new conversation is in the list, without a reload.
  await a.locator(`li.row[data-id="${ack2.conversation_id}"]`).waitFor(T);

  // The visitor got the reply exactly once.
  await v1.waitFrame("f.type === 'message' && f.message.body === 'sorry, my network dropped'", 'the reply');
  const frames = await v1.frames();
  const copies = frames.filter((f) => f.type === 'message' && f.message.body === 'sorry, my network dropped');
  check(copies.length === 1, `the visitor got the reply once: ${copies.length}`);
  // And the server stored it once.
  const msgs = await a.evaluate((id) => fetch(`/api/v1/conversations/${id}/messages`).then((r) => r.json()), conv);
  const stored = msgs.items.filter((m) => m.body === 'sorry, my network dropped');
  check(stored.length === 1, `stored once: ${stored.length}`);
  check(await a.locator('.toast.error, #toasts .error').count() === 0, 'no error toast');

  checkClean(a, v1.page, v2.page);
});
