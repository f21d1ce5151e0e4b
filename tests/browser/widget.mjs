// The chat widget end to end: a customer's page on another origin loads the tracking code;
// the visitor opens the widget and writes; an agent types and answers over the API; the
// visitor sees both, with the agent's profile; a reload keeps the history; the network
// drops (proxy cut + browser offline) and comes back with nothing lost or doubled;
// attachments upload and preview; end chat and start a new one; keyboard and phone size.
import { run, newPage, env, check, screenshot, api } from './lib.mjs';

const HOST = env('HOST_URL');
const CONTROL = env('CONTROL_URL');
const ADMIN = env('ADMIN_TOKEN');
const AGENT = env('AGENT_TOKEN');
const AGENT_ID = env('AGENT_ID');
const INBOX = env('INBOX_ID');
const T = { timeout: 15000 };

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR42mOosXpLEmIY1TCqYfhqAABPn6MQ2bsByAAAAABJRU5ErkJggg==',
  'base64');

/** The messages' texts, without the screen-reader-only "You: " of the visitor's own. */
async function texts(page) {
  return (await page.locator('.log .m').allTextContents()).map((t) => t.replace(/^You: /, ''));
}

async function conversationId() {
  const list = await api('GET', `/conversations?inbox_id=${INBOX}&status=open`, { token: ADMIN });
  check(list.items.length >= 1, 'the conversation reached the inbox');
  return list.items[0].id;
}

await run(async (browser) => {
  const page = await newPage(browser, { viewport: { width: 1100, height: 760 } });
  await page.goto(HOST + '/');

  // Closed: the launcher shows (Default chatflow: launcher, on load) with the greeting.
  const launcher = page.locator('.launcher');
  await launcher.waitFor({ state: 'visible', ...T });
  await page.locator('.bubble').waitFor({ state: 'visible', ...T });
  check(await page.locator('.bubble').textContent() === 'Hi! How can we help?', 'welcome bubble');
  // Host CSS does not reach the widget (the host hides every <button>, paints text green).
  const bg = await launcher.evaluate((el) => getComputedStyle(el).backgroundColor);
  check(bg === 'rgb(124, 58, 237)', `launcher keeps its accent colour, got ${bg}`);
  const font = await page.locator('.bubble').evaluate((el) => getComputedStyle(el).fontFamily);
  check(!/^serif/.test(font), `host fonts do not leak in: ${font}`);
  // One global namespace.
  const added = await page.evaluate(() =>
    Object.getOwnPropertyNames(window).filter((k) => !window.__before.includes(k) && k !== '__before'));
  check(JSON.stringify(added) === '["Parley"]', `globals added: ${JSON.stringify(added)}`);
  await screenshot(page, 'widget-closed');

  // Keyboard: focus the launcher, Enter opens, focus lands in the message box; Escape
  // closes and gives focus back to the launcher.
  await launcher.focus();
  await page.keyboard.press('Enter');
  const win = page.locator('.win');
  await win.waitFor({ state: 'visible', ...T });
  check(await win.getAttribute('role') === 'dialog', 'the window is a dialog');
  const input = page.locator('textarea[aria-label="Message"]');
  await page.waitForFunction(() => document.querySelector('parley-chat').shadowRoot.activeElement?.getAttribute('aria-label') === 'Message', null, T);
  await page.keyboard.press('Escape');
  await win.waitFor({ state: 'hidden', ...T });
  check(await page.evaluate(() => document.querySelector('parley-chat').shadowRoot.activeElement?.className) === 'launcher', 'focus back on the launcher');
  await launcher.click();
  await win.waitFor({ state: 'visible', ...T });
  await screenshot(page, 'widget-open');

  // The visitor writes, with HTML that must stay text.
  const evil = 'Hello <b>there</b><img src=x onerror="window.__xss=1">';
  await input.fill(evil);
  await input.press('Enter');
  await page.locator('.m.me:not(.pending)').first().waitFor(T);
  const conv = await conversationId();

  // The agent types (over their socket) and the visitor sees it.
  const agentPage = await newPage(browser);
  await agentPage.goto(env('PARLEY_URL') + '/healthz');
  await agentPage.evaluate(async ({ token, conv }) => {
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws/agent?token=${token}`);
    await new Promise((ok) => { ws.onopen = ok; });
    window.__agent = ws;
    window.__frames = [];
    ws.onmessage = (e) => window.__frames.push(JSON.parse(e.data));
    ws.send(JSON.stringify({ type: 'typing', conversation_id: conv, on: true }));
  }, { token: AGENT, conv });
  await page.locator('.typing', { hasText: 'is typing' }).waitFor(T);

  // Assigned: the header shows the agent's name and meeting link.
  await api('POST', `/conversations/${conv}/assign`, { token: ADMIN, body: { user_id: AGENT_ID } });
  await page.locator('#parley-title', { hasText: 'Ana' }).waitFor(T);
  check(await page.locator('header a').getAttribute('href') === 'https://cal.example.com/ana', 'meeting link');

  await api('POST', `/conversations/${conv}/messages`, {
    token: AGENT, body: { body: 'Hi! <script>window.__xss=2</script> How can I help?', client_id: 'r1' },
  });
  await page.locator('.m.them', { hasText: 'How can I help?' }).waitFor(T);
  check(await page.locator('.typing').textContent() === '', 'typing cleared by the reply');
  let t = await texts(page);
  check(t.includes(evil), `HTML shows as text: ${JSON.stringify(t)}`);
  check(t.some((x) => x.includes('<script>window.__xss=2</script>')), 'script shows as text');
  check(await page.evaluate(() => window.__xss) === undefined, 'no script ran');
  // The visitor types: the agent sees it.
  await input.pressSequentially('Thanks');
  await agentPage.waitForFunction(() => window.__frames.some((f) =>
    f.type === 'typing' && f.on && f.who.type === 'visitor'), null, T);
  await input.fill('');
  check(await page.locator('.m img').count() === 0, 'no <img> was made from text');
  await screenshot(page, 'widget-conversation');

  // Reload: the same conversation and its history, once each.
  await page.reload();
  await page.locator('.launcher').waitFor({ state: 'visible', ...T });
  await page.locator('.launcher').click();
  await page.locator('.m.them', { hasText: 'How can I help?' }).waitFor(T);
  t = await texts(page);
  check(t.filter((x) => x === evil).length === 1, `history once after reload: ${JSON.stringify(t)}`);
  await page.locator('#parley-title', { hasText: 'Ana' }).waitFor(T);

  // Network down: the proxy cuts every connection and the browser goes offline. The
  // visitor writes meanwhile, the agent answers; then the network comes back.
  await fetch(CONTROL + '/cut', { method: 'POST' });
  await page.context().setOffline(true);
  await input.fill('sent while offline');
  await input.press('Enter');
  await page.locator('.m.me.pending', { hasText: 'sent while offline' }).waitFor(T);
  await api('POST', `/conversations/${conv}/messages`, {
    token: AGENT, body: { body: 'answered during the outage', client_id: 'r2' },
  });
  await fetch(CONTROL + '/restore', { method: 'POST' });
  await page.context().setOffline(false);
  await page.locator('.m.them', { hasText: 'answered during the outage' }).waitFor(T);
  await page.locator('.m.me:not(.pending)', { hasText: 'sent while offline' }).waitFor(T);
  t = await texts(page);
  check(t.filter((x) => x === 'sent while offline').length === 1, `no duplicate: ${JSON.stringify(t)}`);
  check(t.filter((x) => x.includes('answered during the outage')).length === 1, 'reply once');
  const stored = await api('GET', `/conversations/${conv}/messages`, { token: ADMIN });
  check(stored.items.filter((m) => m.body === 'sent while offline').length === 1, 'stored once');

  // Unread badge: a reply while the window is closed.
  await page.locator('header .x').click();
  await api('POST', `/conversations/${conv}/messages`, { token: AGENT, body: { body: 'still there?', client_id: 'r3' } });
  await page.locator('.badge', { hasText: '1' }).waitFor(T);
  check((await launcher.getAttribute('aria-label')).includes('1 unread'), 'unread count is announced');
  await launcher.click();
  await page.locator('.badge').waitFor({ state: 'hidden', ...T });

  // Attachments: an image uploads, is sent, previews; the agent can download it.
  await page.locator('input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.waitForFunction(() => {
    // The message is acknowledged (stored), and its image previews.
    const img = document.querySelector('parley-chat').shadowRoot.querySelector('.m.me:not(.pending) img');
    return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth === 16;
  }, null, T);
  const msgs = await api('GET', `/conversations/${conv}/messages`, { token: ADMIN });
  const withFile = msgs.items.find((m) => m.attachments.length === 1);
  check(withFile && withFile.attachments[0].content_type === 'image/png', 'the message carries the attachment');
  const dl = await fetch(env('PARLEY_URL') + withFile.attachments[0].url, { headers: { authorization: `Bearer ${AGENT}` } });
  check(dl.status === 200 && dl.headers.get('content-type') === 'image/png', `agent download ${dl.status}`);
  check((dl.headers.get('content-disposition') || '').startsWith('inline; filename="dot.png"'), 'inline image');

  // End chat, then a new one: a new conversation.
  await page.locator('button', { hasText: 'End chat' }).click();
  await page.locator('.m.sys', { hasText: 'This chat has ended.' }).waitFor(T);
  const closed = await api('GET', `/conversations/${conv}`, { token: ADMIN });
  check(closed.status === 'closed', 'the conversation is closed');
  await page.locator('button', { hasText: 'Start a new chat' }).click();
  check((await texts(page)).every((x) => !x.includes('How can I help?')), 'the log starts afresh');
  await input.fill('a new question');
  await input.press('Enter');
  await page.locator('.m.me:not(.pending)', { hasText: 'a new question' }).waitFor(T);
  const next = await conversationId();
  check(next !== conv, 'a new conversation started');

  check(page.pageErrors.length === 0, `page errors: ${page.pageErrors.join('; ')}`);

  // A phone: the open window fills the screen.
  const phone = await newPage(browser, { viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true });
  await phone.goto(HOST + '/');
  await phone.locator('.launcher').click(T);
  await phone.locator('.win').waitFor({ state: 'visible', ...T });
  const box = await phone.locator('.win').boundingBox();
  check(box && Math.round(box.width) === 375 && Math.round(box.height) === 667, `full screen on a phone: ${JSON.stringify(box)}`);
  check(phone.pageErrors.length === 0, `phone page errors: ${phone.pageErrors.join('; ')}`);
});
