// Two agents and a visitor (issue 6): the visitor starts a chat, round-robin assigns it
// to agent 1, whose list shows it live; agent 2 opens it and each sees the other as a
// viewer; agent 2's note mentions agent 1, who is notified while the visitor sees
// nothing; agent 1 reassigns to agent 2; agent 2 replies and the visitor sees it with
// the agent's name; agent 2 closes it and the visitor's side learns it. Along the way:
// an agent does not see an inbox they are not in, and `<img src=x onerror=alert(1)>`
// stays text in the list and the thread.
import { run, check, api, env, screenshot } from './lib.mjs';
import { login, visitor, checkClean } from './console_lib.mjs';

const PASSWORD = 'correct horse battery';
const XSS = '<img src=x onerror=alert(1)> my order is late';

await run(async (browser) => {
  const admin = env('ADMIN_TOKEN');
  const ana = await api('POST', '/users', { token: admin, body: { email: 'ana@example.com', password: PASSWORD, name: 'Ana Agent', role: 'agent' } });
  const bob = await api('POST', '/users', { token: admin, body: { email: 'bob@example.com', password: PASSWORD, name: 'Bob Builder', role: 'agent' } });
  const support = await api('POST', '/inboxes', { token: admin, body: { name: 'Support', member_ids: [ana.id, bob.id], routing: { mode: 'round_robin' } } });
  const chat = await api('POST', `/inboxes/${support.id}/channels`, { token: admin, body: { type: 'chat', name: 'Website' } });
  // An inbox Ana is not in, with a conversation in it.
  const billing = await api('POST', '/inboxes', { token: admin, body: { name: 'Secret Billing', member_ids: [], routing: { mode: 'manual' } } });
  const billingChat = await api('POST', `/inboxes/${billing.id}/channels`, { token: admin, body: { type: 'chat', name: 'Billing chat' } });
  const outsider = await visitor(browser, billingChat.id, 'https://shop.example/billing');
  await outsider.send('billing secret question', 'b1');
  await outsider.waitFrame("f.type === 'ack'", 'billing ack');

  // Ana logs in (only she is online, so round-robin picks her).
  const a = await login(browser, 'ana@example.com', PASSWORD);
  await a.waitForSelector('#list-empty');
  const sidebar = await a.textContent('.views');
  check(sidebar.includes('Support'), 'Ana sees her inbox');
  check(!sidebar.includes('Secret Billing'), 'Ana does not see an inbox she is not in');
  const allOpen = await a.evaluate(() => fetch('/api/v1/conversations?status=open').then((r) => r.json()));
  check(allOpen.items.length === 0, 'no conversation of the other inbox is listed for Ana');

  // The visitor starts a chat: it shows up live in Ana's "Assigned to me".
  const v = await visitor(browser, chat.id, 'https://shop.example/pricing?plan=pro');
  await v.send(XSS, 'v1');
  const ack = await v.waitFrame("f.type === 'ack'", 'ack');
  const conv = ack.conversation_id;
  await v.waitFrame(`f.type === 'conversation' && f.event === 'assigned' && f.conversation.assignee_id === '${ana.id}'`, 'assigned to Ana');
  const row = a.locator(`li.row[data-id="${conv}"]`);
  await row.waitFor();
  const preview = await row.locator('.row-preview').textContent();
  check(preview.includes('<img src=x onerror=alert(1)>'), `the preview shows the markup as text: ${preview}`);
  check(await a.locator('.rows img').count() === 0, 'no <img> made from user text in the list');
  check(await row.evaluate((el) => el.classList.contains('unread')), 'the new conversation is unread');
  await a.waitForFunction(() => document.title.startsWith('(1)'), null, { timeout: 10000 });
  check((await a.textContent('#toasts')).includes('assigned to you'), 'Ana is notified of the assignment');
  await a.waitForFunction(() => document.querySelector('.view-link[data-view=mine] .count').textContent === '1');
  await screenshot(a, 'inbox');

  // Bob logs in and opens it from "All open"; Ana opens it too.
  const b = await login(browser, 'bob@example.com', PASSWORD);
  await b.click('.view-link[data-view=open]');
  await b.locator(`li.row[data-id="${conv}"]`).click();
  await b.waitForSelector('#thread .msg.visitor');
  await row.click();
  await a.waitForSelector('#thread .msg.visitor');
  const bubble = await a.locator('#thread .msg.visitor .bubble').first().textContent();
  check(bubble === XSS, `the thread shows the markup as text: ${bubble}`);
  check(await a.locator('#thread img').count() === 0, 'no <img> made from user text in the thread');
  await a.waitForSelector(`#viewers [data-user-id="${bob.id}"]`);
  await b.waitForSelector(`#viewers [data-user-id="${ana.id}"]`);
  await a.waitForFunction((id) => !document.querySelector(`li.row[data-id="${id}"]`).classList.contains('unread'), conv, { timeout: 5000 });
  const item = await a.evaluate((id) => fetch('/api/v1/conversations/' + id).then((r) => r.json()), conv);
  check(item.unread === false, 'opening it marks it read on the server');

  // The contact sidebar: page URL and browser.
  await a.waitForSelector('#contact-name');
  const side = await a.textContent('.contact-pane');
  check(side.includes('https://shop.example/pricing?plan=pro'), 'the sidebar shows the page URL');
  check(side.includes('Chrome'), `the sidebar shows the browser: ${side}`);

  // The visitor types: both agents see it.
  await v.page.evaluate((c) => { window.conv_ = c; }, conv);
  await v.typing(true);
  await a.waitForFunction(() => document.querySelector('#typing').textContent.includes('typing'));

  // Bob's note mentions Ana, picked from the autocomplete.
  await b.keyboard.press('Escape');
  await b.locator('#thread').click();
  await b.keyboard.press('c');
  await b.waitForSelector('.composer.note');
  await b.locator('#composer-input').pressSequentially('Can you check this @An');
  await b.waitForSelector(`#mention-pop li[data-user-id="${ana.id}"]`);
  await b.keyboard.press('Enter');
  await b.locator('#composer-input').pressSequentially('please');
  await b.keyboard.press('Enter');
  await b.waitForSelector('#thread .msg.note .mention');
  await a.waitForSelector('#thread .msg.note .mention');
  const mention = await a.locator('#thread .msg.note .mention').textContent();
  check(mention === '@Ana Agent', `the mention shows as a name: ${mention}`);
  await a.waitForFunction(() => document.querySelector('#toasts').textContent.includes('Bob Builder mentioned you'));
  check((await a.textContent('#thread .msg.note .meta')).includes('Internal note'), 'the note is marked internal');
  await screenshot(b, 'conversation');

  // Ana reassigns to Bob from the assignee menu.
  await a.click('#assignee-button');
  await a.click(`#assign-menu button[data-user-id="${bob.id}"]`);
  await a.waitForFunction(() => document.querySelector('#assignee-button').textContent.includes('Bob Builder'));
  await b.waitForFunction(() => document.querySelector('#assignee-button').textContent.includes('Bob Builder'));
  await b.waitForFunction(() => document.querySelector('#toasts').textContent.includes('assigned to you'));
  // It leaves Ana's "Assigned to me" live.
  await a.click('.view-link[data-view=mine]');
  await a.waitForSelector('#list-empty');

  // Bob replies; the visitor gets it with his name, and never got the note.
  await b.locator('#thread').click();
  await b.keyboard.press('r');
  await b.locator('#composer-input').fill('Hi! I am on it.');
  await b.keyboard.press('Enter');
  const reply = await v.waitFrame("f.type === 'message' && f.message.sender.type === 'agent'", 'the reply');
  check(reply.message.body === 'Hi! I am on it.', 'the visitor gets the reply');
  check(reply.message.sender.name === 'Bob Builder', `with the agent's name: ${reply.message.sender.name}`);
  const frames = await v.frames();
  check(!frames.some((f) => f.type === 'message' && f.message.kind === 'comment'), 'the visitor never got the note');
  check(!frames.some((f) => JSON.stringify(f).includes('Can you check this')), 'nor its text anywhere');
  await b.waitForSelector('#thread .msg.agent:not(.pending)');

  // Bob closes it; the visitor's side learns it.
  await b.click('#close-button');
  const closed = await v.waitFrame("f.type === 'conversation' && f.event === 'closed'", 'closed');
  check(closed.conversation.status === 'closed', 'the visitor sees it closed');
  await b.waitForSelector('#reopen-button');

  // Admin settings, for the screenshot (and a smoke test of the pages).
  const adminPage = await login(browser, 'admin@example.com', PASSWORD);
  await adminPage.click('#nav-settings');
  await adminPage.click('.settings-nav [data-tab=channels]');
  await adminPage.waitForSelector('.embed-snippet');
  const snippet = await adminPage.textContent('.embed-snippet');
  check(snippet.includes(chat.id) && snippet.includes('/widget.js'), `the snippet names the channel: ${snippet}`);
  await screenshot(adminPage, 'settings');

  checkClean(a, b, adminPage);
});
