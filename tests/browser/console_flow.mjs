// Two agents and a visitor (issue 6): the visitor starts a chat in the real widget on a
// customer's page; round-robin assigns it to agent 1, whose list shows it live; agent 2
// opens it and each sees the other as a viewer; agent 2's note mentions agent 1, who is
// notified while the visitor sees nothing; agent 1 reassigns to agent 2; agent 2 replies
// (with an attachment) and the visitor sees it with the agent's name; agent 2 closes it
// and the visitor's widget says so. Along the way: an agent does not see an inbox they
// are not in, and `<img src=x onerror=alert(1)>` stays text in the list and the thread.
import { run, check, api, env, screenshot, newPage } from './lib.mjs';
import { login, visitor, checkClean } from './console_lib.mjs';

const PASSWORD = 'correct horse battery';
const XSS = '<img src=x onerror=alert(1)> my order is late';
const T = { timeout: 15000 };
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR42mOosXpLEmIY1TCqYfhqAABPn6MQ2bsByAAAAABJRU5ErkJggg==',
  'base64');

await run(async (browser) => {
  const admin = env('ADMIN_TOKEN');
  const ana = { id: env('ANA_ID') };
  const bob = { id: env('BOB_ID') };
  const chat = { id: env('CHANNEL_ID') };
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

  // The visitor opens the customer's page and writes in the widget: it shows up live in
  // Ana's "Assigned to me".
  const v = await newPage(browser, { viewport: { width: 1000, height: 760 } });
  await v.goto(env('HOST_URL') + '/pricing?plan=pro');
  await v.locator('.launcher').click(T);
  const box = v.locator('textarea[aria-label="Message"]');
  await box.fill(XSS);
  await box.press('Enter');
  await v.locator('.m.me:not(.pending)').first().waitFor(T);
  const list = await api('GET', `/conversations?inbox_id=${env('INBOX_ID')}`, { token: admin });
  const conv = list.items[0].id;
  const row = a.locator(`li.row[data-id="${conv}"]`);
  await row.waitFor(T);
  await a.waitForFunction((id) => document.querySelector(`li.row[data-id="${id}"] .row-preview`).textContent.includes('my order'), conv, T);
  const preview = await row.locator('.row-preview').textContent();
  check(preview.includes('<img src=x onerror=alert(1)>'), `the preview shows the markup as text: ${preview}`);
  check(await a.locator('.rows img').count() === 0, 'no <img> made from user text in the list');
  check(await row.evaluate((el) => el.classList.contains('unread')), 'the new conversation is unread');
  await a.waitForFunction(() => document.title.startsWith('(1)'), null, T);
  await a.waitForFunction(() => document.querySelector('#toasts').textContent.includes('assigned to you'), null, T);
  await a.waitForFunction(() => document.querySelector('.view-link[data-view=mine] .count').textContent === '1', null, T);
  await screenshot(a, 'inbox');

  // Bob logs in and opens it from "All open"; Ana opens it too.
  const b = await login(browser, 'bob@example.com', PASSWORD);
  await b.click('.view-link[data-view=open]');
  await b.locator(`li.row[data-id="${conv}"]`).waitFor(T);
  // Keyboard: j selects the first row, Enter opens it.
  await b.locator('body').press('j');
  await b.locator('body').press('Enter');
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
  check(side.includes('/pricing?plan=pro'), `the sidebar shows the page URL: ${side}`);
  check(side.includes('Chrome'), `the sidebar shows the browser: ${side}`);

  // The visitor types: the agents see it.
  await box.pressSequentially('and also');
  await a.waitForFunction(() => document.querySelector('#typing').textContent.includes('typing'), null, T);

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

  // Bob replies with an attachment; the visitor gets it with his name, and never got
  // the note. The visitor sees Bob typing first.
  await b.locator('#thread').click();
  await b.keyboard.press('r');
  await b.locator('#composer-input').pressSequentially('Hi! I am on it.');
  await v.waitForFunction(() => document.querySelector('parley-chat').shadowRoot.querySelector('.typing').textContent.includes('Bob Builder is typing'), null, T);
  await b.setInputFiles('#attach-input', { name: 'receipt.png', mimeType: 'image/png', buffer: PNG });
  await b.waitForSelector('#attachment-chips .pill[data-attachment-id]:not([data-attachment-id=""])');
  await b.keyboard.press('Enter');
  await b.waitForSelector('#thread .msg.agent:not(.pending) .attachment.image img');
  const them = v.locator('.m.them', { hasText: 'Hi! I am on it.' });
  await them.waitFor(T);
  check((await them.textContent()).includes('Bob Builder'), `the visitor sees the agent's name: ${await them.textContent()}`);
  const texts = (await v.locator('.log .m').allTextContents()).join(' | ');
  check(!texts.includes('Can you check this'), `the visitor never sees the note: ${texts}`);
  check(!texts.includes('@Ana'), 'nor the mention');
  // Ana opens it again from "All open": the image loads from the history.
  await a.click('.view-link[data-view=open]');
  await a.locator(`li.row[data-id="${conv}"]`).click();
  await a.waitForSelector('#thread .msg.agent .attachment.image img');
  await a.waitForFunction(() => { const img = document.querySelector('#thread .msg.agent .attachment.image img'); return img && img.complete && img.naturalWidth === 16; }, null, T);

  // Bob closes it; the visitor's widget says so.
  await b.click('#close-button');
  await v.locator('.m.sys', { hasText: 'This chat has ended.' }).waitFor(T);
  await b.waitForSelector('#reopen-button');

  // Admin settings, for the screenshot (and a smoke test of the pages).
  const adminPage = await login(browser, 'admin@example.com', PASSWORD);
  await adminPage.click('#nav-settings');
  await adminPage.click('.settings-nav [data-tab=channels]');
  await adminPage.waitForSelector('.embed-snippet');
  const snippet = await adminPage.textContent('.embed-snippet');
  check(snippet.includes(chat.id) && snippet.includes('/widget.js'), `the snippet names the channel: ${snippet}`);
  await adminPage.waitForSelector('.chatflows form');
  await screenshot(adminPage, 'settings');
  // Everyone's profile: a new name shows at once.
  await adminPage.click('.settings-nav [data-tab=profile]');
  await adminPage.fill('#profile-name', 'Ada Admin');
  await adminPage.click('#settings-body form button[type=submit]');
  await adminPage.waitForSelector('#settings-body .saved');
  check(await adminPage.getAttribute('.me .avatar', 'title') === 'Ada Admin', 'the rail shows the new name');

  checkClean(a, b, adminPage);
});
