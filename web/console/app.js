// The Parley agent console: first-run setup, login, the shared inbox (views with counts,
// a live list with cursor pagination and search), the conversation (thread, reply and
// internal notes with @mentions, typing, viewers, assignment, close/reopen), the contact
// sidebar, presence, notifications and settings. Plain ES modules, no build step.
// Every piece of user text goes into the page as text (see dom.js).

import { h, replace, avatar, richText, plainText, ago, clock, browserName, debounce, safeUrl, icon } from './dom.js';
import * as API from './api.js';
import { AgentSocket } from './socket.js';
import { renderSettings } from './settings.js';

const root = document.getElementById('app');

// ---------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------

const S = {
  me: null,
  users: new Map(), // id -> user
  inboxes: [], // the inboxes the user may see
  channels: [], // their channels
  counts: null,
  presence: new Map(), // user id -> online|away|offline
  myPresence: localStorage.getItem('parley.presence') === 'away' ? 'away' : 'online',
  route: { page: 'inbox', view: 'mine', inbox: '', channel: '', conv: '', tab: '' },
  q: '',
  list: { items: new Map(), order: [], cursor: null, loading: false, error: null, key: '' },
  selected: -1,
  conv: null, // the open conversation: {id, data, messages: Map seq->msg, pending: Map, viewers, typing, contact}
  mentions: new Set(), // conversation ids with an unseen @mention
  socket: null,
};

const VIEWS = [
  { id: 'mine', label: 'Assigned to me', count: (c) => c.mine },
  { id: 'unassigned', label: 'Unassigned', count: (c) => c.unassigned },
  { id: 'open', label: 'All open', count: (c) => c.open },
  { id: 'closed', label: 'Closed', count: (c) => c.closed },
];

const settingOn = (k) => localStorage.getItem('parley.notify.' + k) !== 'off';

// ---------------------------------------------------------------------------------
// Boot: setup, login or the app
// ---------------------------------------------------------------------------------

API.onSignedOut.add(() => {
  if (S.me) {
    S.me = null;
    if (S.socket) S.socket.stop();
    API.clearCsrf();
    showLogin('Your session ended. Please log in again.');
  }
});

async function boot() {
  try {
    const me = await API.get('/auth/me').catch((e) => {
      if (e.status === 401) return null;
      throw e;
    });
    if (me) return startApp(me);
    const setup = await API.get('/setup');
    if (setup.needed) showSetup();
    else showLogin();
  } catch (e) {
    replace(root, h('div.boot', h('div.card.auth',
      h('h1', 'Parley'),
      h('p.error', 'Cannot reach the server: ' + e.message),
      h('button.primary', { onclick: () => boot() }, 'Try again'))));
  }
}

function field(label, input, hint) {
  return h('label.field', h('span', label), input, hint ? h('small', hint) : null);
}

function authShell(title, subtitle, form) {
  replace(root, h('div.auth-page',
    h('div.card.auth',
      h('div.brand-big', h('span.logo', 'P'), 'Parley'),
      h('h1', title),
      subtitle ? h('p.muted', subtitle) : null,
      form)));
  const first = form.querySelector('input');
  if (first) first.focus();
}

function showSetup() {
  const ws = h('input', { name: 'workspace_name', required: true, maxLength: 100, placeholder: 'Acme Inc.', autocomplete: 'organization' });
  const name = h('input', { name: 'name', required: true, maxLength: 100, placeholder: 'Ada Lovelace', autocomplete: 'name' });
  const email = h('input', { name: 'email', type: 'email', required: true, autocomplete: 'email', placeholder: 'you@example.com' });
  const pw = h('input', { name: 'password', type: 'password', required: true, minLength: 8, autocomplete: 'new-password' });
  const err = h('p.error', { role: 'alert' });
  const btn = h('button.primary', { type: 'submit' }, 'Create workspace');
  const form = h('form.stack', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = '';
      btn.disabled = true;
      try {
        const r = await API.post('/setup', {
          workspace_name: ws.value.trim(), name: name.value.trim(), email: email.value.trim(), password: pw.value,
        });
        API.setCsrf(r.csrf_token, r.csrf_header);
        startApp(r.user);
      } catch (e2) {
        if (e2.status === 409) return showLogin('This install is already set up. Log in instead.');
        err.textContent = e2.message;
        btn.disabled = false;
      }
    },
  },
  field('Workspace name', ws), field('Your name', name), field('Email', email),
  field('Password', pw, 'At least 8 characters.'), err, btn);
  authShell('Set up your workspace', 'Welcome! Create the workspace and its first admin account.', form);
}

function showLogin(notice) {
  document.title = 'Log in · Parley';
  const email = h('input', { name: 'email', type: 'email', required: true, autocomplete: 'username' });
  const pw = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const err = h('p.error', { role: 'alert' }, notice || '');
  const btn = h('button.primary', { type: 'submit' }, 'Log in');
  const form = h('form.stack', {
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = '';
      btn.disabled = true;
      try {
        const r = await API.post('/auth/login', { email: email.value.trim(), password: pw.value });
        API.setCsrf(r.csrf_token, r.csrf_header);
        startApp(r.user);
      } catch (e2) {
        err.textContent = e2.status === 429 ? 'Too many attempts. Wait a minute and try again.' : e2.message;
        btn.disabled = false;
      }
    },
  }, field('Email', email), field('Password', pw), err, btn);
  authShell('Log in', null, form);
}

async function logout() {
  try {
    await API.post('/auth/logout');
  } catch {
    // The session may already be gone.
  }
  S.me = null;
  if (S.socket) S.socket.stop();
  API.clearCsrf();
  location.hash = '';
  showLogin();
}

// ---------------------------------------------------------------------------------
// The app shell
// ---------------------------------------------------------------------------------

const el = {};

async function startApp(me) {
  S.me = me;
  replace(root, h('div.boot', h('div.spinner', { 'aria-label': 'Loading' })));
  try {
    await loadDirectory();
  } catch (e) {
    replace(root, h('div.boot', h('div.card.auth', h('p.error', 'Could not load the workspace: ' + e.message),
      h('button.primary', { onclick: () => startApp(me) }, 'Try again'))));
    return;
  }
  buildShell();
  S.socket = new AgentSocket();
  S.socket.presence = S.myPresence;
  S.socket.on(onFrame);
  S.socket.onState(renderConnection);
  S.socket.start();
  window.addEventListener('hashchange', onRoute);
  onRoute();
  refreshCounts();
}

async function loadDirectory() {
  const [users, inboxes] = await Promise.all([API.all('/users'), API.all('/inboxes')]);
  S.users = new Map(users.map((u) => [u.id, u]));
  S.me = S.users.get(S.me.id) || S.me;
  S.inboxes = inboxes;
  const lists = await Promise.all(inboxes.map((i) => API.get(`/inboxes/${i.id}/channels`).then((r) => r.items).catch(() => [])));
  S.channels = lists.flat();
}

function buildShell() {
  el.rail = h('nav.rail', { 'aria-label': 'Main' });
  el.views = h('aside.views', { 'aria-label': 'Views' });
  el.listPane = h('section.list-pane', { 'aria-label': 'Conversations' });
  el.main = h('main.conv-pane');
  el.side = h('aside.contact-pane', { 'aria-label': 'Contact' });
  el.settings = h('main.settings-pane');
  el.toasts = h('div.toasts', { id: 'toasts', role: 'status' });
  el.conn = h('div.conn-banner', { hidden: true });
  el.shell = h('div.shell', el.rail, el.views, el.listPane, el.main, el.side, el.settings);
  replace(root, el.conn, el.shell, el.toasts);
  renderRail();
  buildListPane();
  document.addEventListener('keydown', onKey);
  window.addEventListener('focus', () => { if (S.conv) markRead(S.conv.id); });
}

function renderRail() {
  const me = S.me;
  const away = S.myPresence === 'away';
  const menu = h('div.menu.me-menu', { hidden: true },
    h('div.menu-head', h('strong', me.name), h('small.muted', me.email)),
    h('button', { onclick: () => { location.hash = '#/settings/profile'; } }, 'Profile & notifications'),
    h('button', { onclick: logout, id: 'logout' }, 'Log out'));
  const meBtn = h('button.me', { title: me.name, 'aria-label': 'Your account', onclick: (e) => { e.stopPropagation(); menu.hidden = !menu.hidden; } },
    avatar(me.name, me.avatar_url, 32), h('span.dot.' + (away ? 'away' : 'online')));
  document.addEventListener('click', () => { menu.hidden = true; });
  const toggle = h('button.presence-toggle', {
    id: 'presence-toggle',
    role: 'switch',
    'aria-checked': String(!away),
    title: away ? 'You are away: click to become available' : 'You are available: click to go away',
    onclick: () => setPresence(away ? 'online' : 'away'),
  }, h('span.dot.' + (away ? 'away' : 'online')), away ? 'Away' : 'Available');
  const page = S.route.page;
  replace(el.rail,
    h('a.logo', { href: '#/inbox', title: 'Parley' }, 'P'),
    h('a.rail-link' + (page === 'inbox' ? '.active' : ''), { href: '#/inbox', title: 'Inbox', id: 'nav-inbox' }, icon('inbox', 20), h('span', 'Inbox')),
    h('a.rail-link' + (page === 'settings' ? '.active' : ''), { href: '#/settings', title: 'Settings', id: 'nav-settings' }, icon('gear', 20), h('span', 'Settings')),
    h('div.grow'),
    toggle,
    h('div.me-wrap', meBtn, menu));
}

function setPresence(status) {
  S.myPresence = status;
  localStorage.setItem('parley.presence', status);
  S.socket.setPresence(status);
  renderRail();
}

function renderConnection(connected, attempt) {
  if (!el.conn) return;
  // Only say something when a reconnect takes a while: short blips stay silent.
  clearTimeout(renderConnection.t);
  if (connected) {
    el.conn.hidden = true;
    if (renderConnection.wasDown) {
      renderConnection.wasDown = false;
      refreshList(true);
      refreshCounts();
    }
    return;
  }
  renderConnection.wasDown = true;
  renderConnection.t = setTimeout(() => {
    el.conn.hidden = false;
    el.conn.textContent = attempt > 2 ? 'Connection lost. Reconnecting…' : 'Reconnecting…';
  }, 2500);
}

// ---------------------------------------------------------------------------------
// Routing: #/inbox?view=mine&inbox=…&channel=…&c=…  and  #/settings/<tab>
// ---------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const p = new URLSearchParams(query || '');
  const [page, tab] = (path || 'inbox').split('/');
  return {
    page: page === 'settings' ? 'settings' : 'inbox',
    tab: tab || '',
    view: VIEWS.some((v) => v.id === p.get('view')) ? p.get('view') : 'mine',
    inbox: p.get('inbox') || '',
    channel: p.get('channel') || '',
    conv: p.get('c') || '',
  };
}

function hrefFor(over) {
  const r = { ...S.route, ...over };
  const p = new URLSearchParams();
  p.set('view', r.view);
  if (r.inbox) p.set('inbox', r.inbox);
  if (r.channel) p.set('channel', r.channel);
  if (r.conv) p.set('c', r.conv);
  return '#/inbox?' + p.toString();
}

function go(over) {
  location.hash = hrefFor(over);
}

function onRoute() {
  if (!S.me) return;
  const prev = S.route;
  S.route = parseRoute();
  const r = S.route;
  renderRail();
  el.shell.classList.toggle('in-settings', r.page === 'settings');
  if (r.page === 'settings') {
    closeConversation();
    renderSettings(el.settings, settingsContext(), r.tab);
    document.title = 'Settings · Parley';
    return;
  }
  renderViews();
  const key = listKey();
  if (key !== S.list.key) refreshList();
  if (r.conv !== (S.conv && S.conv.id)) openConversation(r.conv);
  else highlightSelection();
  updateTitle();
  void prev;
}

function settingsContext() {
  return {
    me: S.me,
    users: S.users,
    inboxes: S.inboxes,
    channels: S.channels,
    toast,
    reload: async () => {
      await loadDirectory();
      return { me: S.me, users: S.users, inboxes: S.inboxes, channels: S.channels };
    },
    setMe: (u) => {
      S.me = u;
      S.users.set(u.id, u);
      renderRail();
    },
    requestNotifications,
  };
}

// ---------------------------------------------------------------------------------
// Views sidebar with counts
// ---------------------------------------------------------------------------------

async function refreshCounts() {
  try {
    S.counts = await API.get('/conversations/counts');
  } catch {
    return;
  }
  if (S.route.page === 'inbox') renderViews();
  updateTitle();
}
const refreshCountsSoon = debounce(refreshCounts, 400);

function scopeCounts() {
  const c = S.counts;
  if (!c) return null;
  if (S.route.channel) return c.channels[S.route.channel] || {};
  if (S.route.inbox) return c.inboxes[S.route.inbox] || {};
  return c.all;
}

function renderViews() {
  const r = S.route;
  const sc = scopeCounts();
  const ws = h('div.views-head', h('strong', 'Inbox'));
  const viewLinks = VIEWS.map((v) => {
    const n = sc ? v.count(sc) || 0 : null;
    const unread = v.id === 'mine' && sc ? sc.unread_mine || 0 : 0;
    return h('a.view-link' + (r.view === v.id ? '.active' : ''), {
      href: hrefFor({ view: v.id, conv: '' }), dataset: { view: v.id },
    }, h('span', v.label), unread ? h('span.badge.unread', { title: unread + ' unread' }, String(unread)) : null,
    h('span.count', n === null ? '' : String(n)));
  });
  const inboxLinks = S.inboxes.map((i) => {
    const c = S.counts && S.counts.inboxes[i.id];
    return h('a.scope-link' + (r.inbox === i.id && !r.channel ? '.active' : ''), {
      href: hrefFor({ inbox: r.inbox === i.id && !r.channel ? '' : i.id, channel: '', conv: '' }),
      dataset: { inbox: i.id },
    }, h('span', i.name), h('span.count', c ? String(c.open) : ''));
  });
  const channelLinks = S.channels.map((ch) => {
    const c = S.counts && S.counts.channels[ch.id];
    const inbox = S.inboxes.find((i) => i.id === ch.inbox_id);
    return h('a.scope-link' + (r.channel === ch.id ? '.active' : ''), {
      href: hrefFor({ channel: r.channel === ch.id ? '' : ch.id, inbox: '', conv: '' }),
      dataset: { channel: ch.id },
      title: inbox ? inbox.name : '',
    }, h('span', ch.name + ' · ' + ch.type), h('span.count', c ? String(c.open) : ''));
  });
  replace(el.views, ws,
    h('nav.view-group', ...viewLinks),
    h('div.group-title', 'Inboxes'),
    inboxLinks.length ? h('nav.view-group', ...inboxLinks) : h('p.muted.small', S.me.role === 'admin' ? 'No inbox yet: create one in Settings.' : 'You are not in any inbox yet.'),
    channelLinks.length ? h('div.group-title', 'Channels') : null,
    channelLinks.length ? h('nav.view-group', ...channelLinks) : null);
}

function updateTitle() {
  const c = S.counts && S.counts.all;
  const n = (settingOn('assigned') && c ? c.unread_mine || 0 : 0) + (settingOn('mentions') ? S.mentions.size : 0);
  const base = S.conv && S.conv.data ? contactName(S.conv.data) + ' · Parley' : 'Parley';
  document.title = (n ? `(${n}) ` : '') + base;
}

// ---------------------------------------------------------------------------------
// The conversation list
// ---------------------------------------------------------------------------------

function buildListPane() {
  el.search = h('input.search', {
    type: 'search', placeholder: 'Search name, email or message  ( / )', 'aria-label': 'Search conversations', id: 'search',
    oninput: debounce(() => { S.q = el.search.value.trim(); refreshList(); }, 250),
  });
  el.listTitle = h('div.list-title');
  el.rows = h('ul.rows', { role: 'listbox', 'aria-label': 'Conversations', id: 'rows' });
  el.listFoot = h('div.list-foot');
  el.rowsWrap = h('div.rows-wrap', el.rows, el.listFoot);
  el.rowsWrap.addEventListener('scroll', () => {
    const w = el.rowsWrap;
    if (w.scrollTop + w.clientHeight > w.scrollHeight - 200) loadMore();
  });
  replace(el.listPane, h('div.list-head', el.search, el.listTitle), el.rowsWrap);
}

function listQuery() {
  const r = S.route;
  const p = new URLSearchParams();
  p.set('status', r.view === 'closed' ? 'closed' : 'open');
  if (r.view === 'mine') p.set('assignee', 'me');
  if (r.view === 'unassigned') p.set('assignee', 'unassigned');
  if (r.inbox) p.set('inbox_id', r.inbox);
  if (r.channel) p.set('channel_id', r.channel);
  if (S.q) p.set('q', S.q);
  return p;
}

function listKey() {
  return listQuery().toString();
}

/** Whether a conversation belongs in the current view (for live updates). */
function matchesView(c) {
  const r = S.route;
  if ((r.view === 'closed') !== (c.status === 'closed')) return false;
  if (r.view === 'mine' && c.assignee_id !== S.me.id) return false;
  if (r.view === 'unassigned' && c.assignee_id) return false;
  if (r.inbox && c.inbox_id !== r.inbox) return false;
  if (r.channel) {
    const ch = S.channels.find((x) => x.id === r.channel);
    if (!ch || ch.inbox_id !== c.inbox_id || ch.type !== c.channel) return false;
  }
  return true;
}

async function refreshList(keepSelection) {
  const key = listKey();
  S.list = { items: new Map(), order: [], cursor: null, loading: true, error: null, key };
  if (!keepSelection) S.selected = -1;
  renderListTitle();
  replace(el.rows, ...Array.from({ length: 6 }, () => h('li.row.skeleton', h('span.sk'), h('span.sk.long'))));
  replace(el.listFoot);
  await loadPage(key);
}

async function loadMore() {
  if (S.list.loading || !S.list.cursor) return;
  S.list.loading = true;
  replace(el.listFoot, h('div.spinner.small'));
  await loadPage(S.list.key, S.list.cursor);
}

async function loadPage(key, cursor) {
  const p = listQuery();
  p.set('limit', '50');
  if (cursor) p.set('cursor', cursor);
  try {
    const page = await API.get('/conversations?' + p.toString());
    if (key !== S.list.key) return; // the view changed meanwhile
    if (!cursor) replace(el.rows);
    for (const item of page.items) upsertItem(item, false);
    S.list.cursor = page.next_cursor;
    S.list.loading = false;
    renderListFoot();
  } catch (e) {
    if (key !== S.list.key) return;
    S.list.loading = false;
    S.list.error = e.message;
    if (!cursor) replace(el.rows);
    replace(el.listFoot, h('div.state.error', h('p', 'Could not load conversations: ' + e.message),
      h('button', { onclick: () => (cursor ? loadMore() : refreshList()) }, 'Retry')));
  }
  highlightSelection();
}

function renderListTitle() {
  const v = VIEWS.find((x) => x.id === S.route.view);
  const scope = S.route.channel ? S.channels.find((c) => c.id === S.route.channel)?.name
    : S.route.inbox ? S.inboxes.find((i) => i.id === S.route.inbox)?.name : null;
  replace(el.listTitle, h('strong', v.label), scope ? h('span.muted', ' · ' + scope) : null,
    S.q ? h('span.muted', ' · “' + S.q + '”') : null);
}

function renderListFoot() {
  if (S.list.order.length === 0) {
    const empty = S.q ? 'No conversation matches your search.'
      : S.route.view === 'mine' ? 'Nothing assigned to you. Nice work!'
        : S.route.view === 'unassigned' ? 'No unassigned conversations.'
          : S.route.view === 'closed' ? 'No closed conversations yet.' : 'No open conversations.';
    replace(el.listFoot, h('div.state.empty', { id: 'list-empty' }, h('div.big', icon('inbox', 34)), h('p', empty)));
  } else if (S.list.cursor) {
    replace(el.listFoot, h('button.link', { onclick: loadMore }, 'Load more'));
  } else {
    replace(el.listFoot);
  }
}

function contactName(c) {
  const ct = c.contact || {};
  return ct.name || ct.email || 'Visitor ' + String(c.contact_id || '').slice(-4);
}

/** Insert or update a list row (keeps newest-first order by id). */
function upsertItem(item, live) {
  const L = S.list;
  const had = L.items.get(item.id);
  const merged = had ? { ...had, ...item } : item;
  L.items.set(item.id, merged);
  if (!had) {
    // Keyset order: ids are time-ordered, newest first.
    let i = L.order.findIndex((id) => id < item.id);
    if (i === -1) i = L.order.length;
    if (!live || i < L.order.length || !L.cursor) {
      L.order.splice(i, 0, item.id);
    } else {
      L.items.delete(item.id);
      return; // older than what is loaded: it will come with the next page
    }
  }
  const row = renderRow(merged);
  const existing = el.rows.querySelector(`li[data-id="${CSS.escape(item.id)}"]`);
  if (existing) existing.replaceWith(row);
  else {
    const idx = L.order.indexOf(item.id);
    const next = L.order[idx + 1] && el.rows.querySelector(`li[data-id="${CSS.escape(L.order[idx + 1])}"]`);
    el.rows.insertBefore(row, next || null);
  }
  S.socket.follow(item.id, merged.last_seq || 0);
  if (live) renderListFoot();
}

function removeItem(id) {
  const L = S.list;
  if (!L.items.has(id)) return;
  L.items.delete(id);
  L.order = L.order.filter((x) => x !== id);
  const row = el.rows.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (row) row.remove();
  renderListFoot();
}

function renderRow(c) {
  const assignee = c.assignee_id ? S.users.get(c.assignee_id) || c.assignee : null;
  const lm = c.last_message;
  const preview = lm
    ? [lm.kind === 'comment' ? h('span.note-tag', 'Note') : null,
      lm.sender && lm.sender.type === 'agent' ? (lm.sender.name || 'Agent') + ': ' : '',
      lm.body ? plainText(lm.body, S.users) : h('em', 'Attachment')]
    : [h('em.muted', 'No messages yet')];
  const active = S.conv && S.conv.id === c.id;
  const mention = S.mentions.has(c.id);
  return h('li.row' + (c.unread && !active ? '.unread' : '') + (active ? '.active' : ''), {
    role: 'option',
    'aria-selected': String(active),
    dataset: { id: c.id },
    onclick: () => go({ conv: c.id }),
  },
  avatar(contactName(c), null, 34),
  h('div.row-main',
    h('div.row-top',
      h('span.row-name', contactName(c)),
      mention ? h('span.badge.mention', { title: 'You were mentioned' }, '@') : null,
      h('time.row-time', { datetime: c.last_message_at, title: new Date(c.last_message_at).toLocaleString() }, ago(c.last_message_at))),
    h('div.row-bottom',
      h('span.row-preview', ...preview),
      c.status === 'closed' ? h('span.tag', 'Closed') : null,
      assignee ? avatar(assignee.name, assignee.avatar_url, 18, 'row-assignee') : h('span.tag.unassigned', 'Unassigned'))));
}

function highlightSelection() {
  const rows = [...el.rows.querySelectorAll('li.row[data-id]')];
  rows.forEach((r) => {
    const on = S.conv && r.dataset.id === S.conv.id;
    r.classList.toggle('active', !!on);
    r.setAttribute('aria-selected', String(!!on));
  });
  rows.forEach((r, i) => r.classList.toggle('cursor', i === S.selected));
}

// ---------------------------------------------------------------------------------
// Live frames
// ---------------------------------------------------------------------------------

function onFrame(f) {
  switch (f.type) {
    case 'message': return onMessage(f.message);
    case 'ack': return onAck(f);
    case 'error': return onSocketError(f);
    case 'conversation': return onConversation(f.event, f.conversation);
    case 'typing': return onTyping(f);
    case 'viewers': return onViewers(f);
    case 'presence':
      S.presence.set(f.user_id, f.status);
      if (S.conv) renderHeader();
      return;
    case 'mention': return onMention(f);
    default: return undefined;
  }
}

function onMessage(m) {
  const item = S.list.items.get(m.conversation_id);
  const open = S.conv && S.conv.id === m.conversation_id;
  if (item) {
    upsertItem({
      ...item,
      last_seq: Math.max(item.last_seq || 0, m.seq),
      last_message_at: m.created_at,
      last_message: { kind: m.kind, sender: m.sender, body: m.body ? m.body.slice(0, 140) : 'Attachment: ' + (m.attachments || []).map((a) => a.name).join(', ') },
      unread: open && document.hasFocus() ? false : item.unread || m.sender.id !== S.me.id,
    }, true);
  }
  if (open) {
    addMessage(m);
    if (document.hasFocus()) markRead(m.conversation_id);
  }
  refreshCountsSoon();
}

function onConversation(event, c) {
  const item = S.list.items.get(c.id);
  const before = item || (S.conv && S.conv.id === c.id ? S.conv.data : null);
  // New for me: created already assigned to me, or assigned to me by someone else.
  if ((event === 'assigned' || event === 'created') && c.assignee_id === S.me.id
      && (!before || before.assignee_id !== S.me.id)) {
    notify('assigned', 'New conversation assigned to you', 'From ' + contactName(before || c), c.id);
  }
  if (matchesView(c) && !S.q) {
    if (item) upsertItem({ ...item, ...c }, true);
    else fetchItem(c.id);
  } else if (item) {
    if (matchesView(c)) upsertItem({ ...item, ...c }, true);
    else removeItem(c.id);
  }
  if (S.conv && S.conv.id === c.id) {
    S.conv.data = { ...S.conv.data, ...c };
    renderHeader();
  }
  refreshCountsSoon();
}

async function fetchItem(id) {
  // The item carries the contact and the preview; a conversation frame does not.
  try {
    const it = await API.get('/conversations/' + encodeURIComponent(id));
    if (matchesView(it) && !S.list.items.has(id)) upsertItem(it, true);
  } catch {
    // It will show on the next refresh.
  }
}

function onMention(f) {
  const m = f.message;
  if (!(S.conv && S.conv.id === f.conversation_id && document.hasFocus())) S.mentions.add(f.conversation_id);
  const item = S.list.items.get(f.conversation_id);
  if (item) upsertItem(item, true);
  notify('mentions', `${m.sender.name} mentioned you`, plainText(m.body, S.users), f.conversation_id);
  updateTitle();
}

// ---------------------------------------------------------------------------------
// Notifications: in-app toasts, browser notifications, the tab title
// ---------------------------------------------------------------------------------

function toast(text, opts = {}) {
  const t = h('div.toast' + (opts.error ? '.error' : ''), { role: opts.error ? 'alert' : 'status', onclick: opts.onclick },
    opts.title ? h('strong', opts.title) : null, h('span', text));
  el.toasts.append(t);
  setTimeout(() => t.remove(), opts.ms || 6000);
}

function notify(kind, title, body, conversationId) {
  if (!settingOn(kind)) return;
  toast(body, { title, onclick: () => go({ conv: conversationId }), ms: 8000 });
  if ('Notification' in window && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    try {
      const n = new Notification(title, { body, tag: kind + ':' + conversationId });
      n.onclick = () => { window.focus(); go({ conv: conversationId }); n.close(); };
    } catch {
      // Some browsers only allow notifications from a service worker.
    }
  }
  updateTitle();
}

async function requestNotifications() {
  if (!('Notification' in window)) return 'unsupported';
  return Notification.requestPermission();
}

// ---------------------------------------------------------------------------------
// The conversation
// ---------------------------------------------------------------------------------

function closeConversation() {
  if (S.conv) {
    stopTyping();
    S.socket.view(null);
  }
  S.conv = null;
}

async function openConversation(id) {
  closeConversation();
  if (!id) {
    replace(el.main, h('div.state.empty.center', h('div.big', icon('chat', 40)),
      h('p', 'Select a conversation'), h('p.muted.small', 'j / k to move, Enter to open, r to reply, c for a note, / to search')));
    replace(el.side);
    highlightSelection();
    return;
  }
  const C = { id, data: S.list.items.get(id) || null, messages: new Map(), pending: new Map(), viewers: [], typing: new Map(), contact: null, mode: 'reply' };
  S.conv = C;
  S.mentions.delete(id);
  highlightSelection();
  replace(el.main, h('div.state.center', h('div.spinner')));
  replace(el.side);
  try {
    const data = await API.get('/conversations/' + encodeURIComponent(id));
    if (S.conv !== C) return;
    C.data = { ...(C.data || {}), ...data };
    buildConversation();
    let after = 0;
    for (let i = 0; i < 20; i++) {
      const page = await API.get(`/conversations/${encodeURIComponent(id)}/messages?limit=500&after_seq=${after}`);
      if (S.conv !== C) return;
      for (const m of page.items) addMessage(m, true);
      if (!page.next_cursor) break;
      after = Number(page.next_cursor);
    }
    renderThread();
    const last = Math.max(0, ...C.messages.keys());
    S.socket.follow(id, last);
    S.socket.view(id);
    markRead(id);
    loadContact();
  } catch (e) {
    if (S.conv !== C) return;
    replace(el.main, h('div.state.error.center', h('p', e.status === 404 ? 'This conversation does not exist or you cannot see it.' : 'Could not open the conversation: ' + e.message),
      h('button', { onclick: () => openConversation(id) }, 'Retry')));
  }
  updateTitle();
}

const markRead = debounce(async (id) => {
  if (!S.conv || S.conv.id !== id) return;
  try {
    await API.post(`/conversations/${encodeURIComponent(id)}/read`, {});
  } catch {
    return;
  }
  const item = S.list.items.get(id);
  if (item && item.unread) upsertItem({ ...item, unread: false }, true);
  refreshCountsSoon();
}, 300);

function buildConversation() {
  const C = S.conv;
  C.el = {};
  C.el.head = h('header.conv-head');
  C.el.thread = h('div.thread', { id: 'thread', role: 'log', 'aria-live': 'polite' });
  C.el.typing = h('div.typing-line', { id: 'typing' });
  C.el.composer = buildComposer();
  replace(el.main, C.el.head, C.el.thread, C.el.typing, C.el.composer);
  renderHeader();
}

function renderHeader() {
  const C = S.conv;
  if (!C || !C.el) return;
  const c = C.data;
  const others = C.viewers.filter((v) => v.id !== S.me.id);
  const assignee = c.assignee_id ? S.users.get(c.assignee_id) || c.assignee : null;
  const menu = h('div.menu.assign-menu', { hidden: true, id: 'assign-menu' });
  const assignBtn = h('button.assignee', {
    id: 'assignee-button',
    'aria-haspopup': 'menu',
    onclick: (e) => { e.stopPropagation(); fillAssignMenu(menu); menu.hidden = !menu.hidden; },
  }, assignee ? avatar(assignee.name, assignee.avatar_url, 22) : h('span.avatar.empty', '?'),
  h('span', assignee ? assignee.name : 'Unassigned'), h('span.caret', '▾'));
  document.addEventListener('click', () => { menu.hidden = true; }, { once: true });
  const closeBtn = c.status === 'open'
    ? h('button.primary', { id: 'close-button', onclick: () => setStatus('close') }, icon('check'), 'Close')
    : h('button', { id: 'reopen-button', onclick: () => setStatus('reopen') }, icon('reopen'), 'Reopen');
  replace(C.el.head,
    h('div.conv-title',
      h('h2', contactName(c)),
      h('span.muted.small', [c.contact && c.contact.email, c.channel, c.status === 'closed' ? 'closed' : null].filter(Boolean).join(' · '))),
    h('div.viewers', { id: 'viewers', title: others.length ? 'Also viewing: ' + others.map((v) => v.name).join(', ') : '' },
      ...others.map((v) => {
        const u = S.users.get(v.id);
        const typing = [...C.typing.values()].some((w) => w.type === 'agent' && w.id === v.id);
        return h('span.viewer' + (typing ? '.typing' : ''), { dataset: { userId: v.id } }, avatar(v.name, u && u.avatar_url, 26));
      })),
    h('div.assign-wrap', assignBtn, menu),
    closeBtn);
}

function fillAssignMenu(menu) {
  const C = S.conv;
  const inbox = S.inboxes.find((i) => i.id === C.data.inbox_id);
  const memberIds = inbox ? inbox.members.map((m) => m.user_id) : [];
  const members = memberIds.map((id) => S.users.get(id)).filter((u) => u && u.active);
  const cur = C.data.assignee_id;
  const item = (label, userId, extra) => h('button' + (cur === userId ? '.current' : ''), {
    role: 'menuitem', dataset: { userId: userId || '' }, onclick: () => assign(userId),
  }, extra, h('span', label));
  const dot = (id) => h('span.dot.' + (S.presence.get(id) || 'offline'));
  replace(menu,
    memberIds.includes(S.me.id) && cur !== S.me.id ? item(cur ? 'Take over (assign to me)' : 'Assign to me', S.me.id, dot(S.me.id)) : null,
    h('div.menu-sep'),
    ...members.filter((u) => u.id !== S.me.id).map((u) => item(u.name, u.id, dot(u.id))),
    cur ? h('div.menu-sep') : null,
    cur ? item('Unassign', null, null) : null);
}

async function assign(userId) {
  const C = S.conv;
  try {
    const c = await API.post(`/conversations/${encodeURIComponent(C.id)}/assign`, { user_id: userId });
    C.data = { ...C.data, ...c };
    renderHeader();
    onConversation('assigned', c);
  } catch (e) {
    toast(e.message, { error: true, title: 'Could not assign' });
  }
}

async function setStatus(action) {
  const C = S.conv;
  try {
    const c = await API.post(`/conversations/${encodeURIComponent(C.id)}/${action}`);
    C.data = { ...C.data, ...c };
    renderHeader();
    onConversation(action === 'close' ? 'closed' : 'reopened', c);
  } catch (e) {
    toast(e.message, { error: true, title: 'Could not ' + action });
  }
}

function addMessage(m, bulk) {
  const C = S.conv;
  if (!C || m.conversation_id !== C.id || C.messages.has(m.seq)) return;
  C.messages.set(m.seq, m);
  for (const [cid, p] of C.pending) if (p.seq === m.seq) C.pending.delete(cid);
  if (!bulk) renderThread();
}

function senderClass(m) {
  if (m.kind === 'comment') return 'note';
  if (m.kind === 'event' || m.sender.type === 'system') return 'event';
  return m.sender.type; // visitor | agent | bot
}

function renderMessage(m, pending) {
  const cls = senderClass(m);
  if (cls === 'event') {
    return h('div.msg.event', { dataset: { seq: m.seq } }, h('span', plainText(m.body, S.users)), h('time', clock(m.created_at)));
  }
  const u = m.sender.type === 'agent' ? S.users.get(m.sender.id) : null;
  const name = m.sender.type === 'visitor' ? contactName(S.conv.data) : m.sender.name || (m.sender.type === 'bot' ? 'Bot' : 'Agent');
  const label = cls === 'note' ? [icon('lock', 12), ' Internal note · ', name] : cls === 'bot' ? ['Bot · ', name] : [name];
  return h('div.msg.' + cls + (pending ? '.pending' : '') + (pending && pending.failed ? '.failed' : ''), { dataset: { seq: m.seq || '' } },
    cls === 'visitor' || cls === 'bot' ? avatar(name, null, 28) : null,
    h('div.bubble-wrap',
      h('div.meta', ...label, h('time', { title: m.created_at ? new Date(m.created_at).toLocaleString() : '' }, m.created_at ? clock(m.created_at) : '')),
      m.body ? h('div.bubble', ...richText(m.body, S.users)) : null,
      (m.attachments || []).length ? h('div.attachments', ...m.attachments.map(renderAttachment)) : null,
      pending ? h('div.status', pending.failed ? [pending.failed + ' ', h('button.link', { onclick: () => retrySend(pending.clientId) }, 'Retry')] : 'Sending…') : null),
    cls === 'agent' || cls === 'note' ? avatar(name, u && u.avatar_url, 28) : null);
}

function fileSize(n) {
  return n < 1024 ? n + ' B' : n < 1048576 ? Math.round(n / 1024) + ' KB' : (n / 1048576).toFixed(1) + ' MB';
}

function renderAttachment(a) {
  const isImage = /^image\/(png|jpeg|gif|webp)$/.test(a.content_type || '');
  const link = h('a.attachment', { href: a.url, target: '_blank', rel: 'noopener noreferrer', title: a.name });
  if (isImage) {
    const img = h('img', { alt: a.name, loading: 'lazy' });
    img.src = safeUrl(a.url) || '';
    link.classList.add('image');
    link.append(img);
  } else {
    link.append(icon('clip', 14), h('span', a.name), h('small.muted', fileSize(a.size || 0)));
  }
  return link;
}

function renderThread() {
  const C = S.conv;
  if (!C || !C.el) return;
  const t = C.el.thread;
  const atBottom = t.scrollTop + t.clientHeight >= t.scrollHeight - 40;
  const msgs = [...C.messages.values()].sort((a, b) => a.seq - b.seq);
  const nodes = [];
  let day = '';
  for (const m of msgs) {
    const d = new Date(m.created_at).toDateString();
    if (d !== day) {
      day = d;
      nodes.push(h('div.day', new Date(m.created_at).toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long' })));
    }
    nodes.push(renderMessage(m));
  }
  for (const p of C.pending.values()) {
    nodes.push(renderMessage({ seq: 0, kind: p.kind === 'comment' ? 'comment' : 'message', sender: { type: 'agent', id: S.me.id, name: S.me.name }, body: p.body, attachments: p.attachments || [], created_at: null }, p));
  }
  if (!msgs.length && !C.pending.size) nodes.push(h('div.state.empty', h('p.muted', 'No messages yet.')));
  replace(t, ...nodes);
  if (atBottom || C.stick !== false) t.scrollTop = t.scrollHeight;
  C.stick = false;
}

function onAck(f) {
  const C = S.conv;
  if (!C) return;
  const p = C.pending.get(f.client_id);
  if (!p) return;
  C.pending.delete(f.client_id);
  addMessage({
    id: f.id, conversation_id: f.conversation_id, seq: f.seq, kind: p.kind === 'comment' ? 'comment' : 'message',
    sender: { type: 'agent', id: S.me.id, name: S.me.name }, body: p.body, attachments: p.attachments || [], created_at: new Date().toISOString(),
  });
  markRead(C.id);
}

function onSocketError(f) {
  const C = S.conv;
  if (f.ref && C && C.pending.has(f.ref)) {
    const p = C.pending.get(f.ref);
    p.failed = f.code === 'body_too_long' ? 'Too long.' : f.code === 'not_found' ? 'Conversation not found.' : 'Not sent.';
    renderThread();
  } else if (f.code && f.code !== 'not_found') {
    toast(f.message || f.code, { error: true });
  }
}

function retrySend(clientId) {
  const C = S.conv;
  const p = C && C.pending.get(clientId);
  if (!p) return;
  C.pending.delete(clientId);
  sendMessage(p.body, p.kind, p.attachments);
}

function sendMessage(body, kind, attachments = []) {
  const C = S.conv;
  const clientId = S.socket.send(C.id, body, kind, attachments.map((a) => a.id));
  C.pending.set(clientId, { clientId, body, kind, attachments });
  C.stick = true;
  renderThread();
}

function onTyping(f) {
  const C = S.conv;
  if (!C || f.conversation_id !== C.id || !C.el) return;
  const key = f.who.type + ':' + f.who.id;
  if (f.who.type === 'agent' && f.who.id === S.me.id) return;
  if (f.on) C.typing.set(key, f.who);
  else C.typing.delete(key);
  const names = [...C.typing.values()].map((w) => (w.type === 'visitor' ? contactName(C.data) : w.name));
  replace(C.el.typing, names.length ? [h('span.dots', h('i'), h('i'), h('i')), names.join(', ') + (names.length > 1 ? ' are typing…' : ' is typing…')] : '');
  renderHeader();
}

function onViewers(f) {
  const C = S.conv;
  if (!C || f.conversation_id !== C.id) return;
  C.viewers = f.users;
  renderHeader();
}

// ---------------------------------------------------------------------------------
// The composer: Reply / Note tabs, @mentions, links, Enter sends
// ---------------------------------------------------------------------------------

let typingState = { on: false, last: 0, timer: null };

function stopTyping() {
  if (typingState.on && S.conv) S.socket.typing(S.conv.id, false);
  clearTimeout(typingState.timer);
  typingState = { on: false, last: 0, timer: null };
}

function typed() {
  const C = S.conv;
  if (!C || C.mode === 'comment') return; // notes are not announced to the visitor
  const now = Date.now();
  if (!typingState.on || now - typingState.last > 2000) {
    S.socket.typing(C.id, true);
    typingState.on = true;
    typingState.last = now;
  }
  clearTimeout(typingState.timer);
  typingState.timer = setTimeout(stopTyping, 3000);
}

function buildComposer() {
  const C = S.conv;
  C.mentioned = new Map(); // "@Name" -> user id, as picked from the autocomplete
  const ta = h('textarea', { id: 'composer-input', rows: 3, 'aria-label': 'Message', placeholder: 'Reply to the visitor…  (Enter to send, Shift+Enter for a new line)' });
  const pop = h('ul.mention-pop', { hidden: true, role: 'listbox', id: 'mention-pop' });
  const tabs = {
    reply: h('button.tab.active', { type: 'button', id: 'tab-reply', onclick: () => setMode('reply') }, 'Reply'),
    comment: h('button.tab', { type: 'button', id: 'tab-comment', onclick: () => setMode('comment') }, 'Note'),
  };
  const box = h('div.composer');
  const linkForm = h('form.link-form', { hidden: true },
    h('input', { type: 'url', placeholder: 'https://…', 'aria-label': 'Link URL', required: true }),
    h('button', { type: 'submit' }, 'Insert'));
  linkForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const url = linkForm.querySelector('input').value.trim();
    if (!safeUrl(url)) return;
    insertAtCursor(ta, (ta.value && !/\s$/.test(ta.value.slice(0, ta.selectionStart)) ? ' ' : '') + url + ' ');
    linkForm.hidden = true;
    linkForm.reset();
    ta.focus();
  });
  const send = h('button.primary.send', { type: 'button', id: 'send-button', onclick: () => submit() }, 'Send');

  function setMode(mode) {
    C.mode = mode;
    tabs.reply.classList.toggle('active', mode === 'reply');
    tabs.comment.classList.toggle('active', mode === 'comment');
    box.classList.toggle('note', mode === 'comment');
    ta.placeholder = mode === 'comment'
      ? 'Internal note: only your team sees it. Type @ to mention a teammate.'
      : 'Reply to the visitor…  (Enter to send, Shift+Enter for a new line)';
    send.textContent = mode === 'comment' ? 'Add note' : 'Send';
    if (mode === 'comment') stopTyping();
    ta.focus();
  }
  C.setMode = setMode;
  C.focusComposer = () => ta.focus();

  function submit() {
    let body = ta.value;
    if (C.attachments.some((a) => a.uploading)) return;
    const ready = C.attachments.filter((a) => a.id && !a.error);
    if (!body.trim() && !ready.length) return;
    if (C.mode === 'comment') {
      for (const [label, id] of C.mentioned) body = body.split(label).join(`<@${id}>`);
    }
    sendMessage(body.trim() ? body : '', C.mode === 'comment' ? 'comment' : 'reply', ready);
    C.attachments = [];
    renderChips();
    ta.value = '';
    C.mentioned.clear();
    pop.hidden = true;
    stopTyping();
  }

  let popItems = [];
  let popIndex = 0;
  function mentionQuery() {
    if (C.mode !== 'comment') return null;
    const before = ta.value.slice(0, ta.selectionStart);
    const m = /(^|\s)@([^\s@]{0,30})$/.exec(before);
    return m ? m[2] : null;
  }
  function renderPop() {
    const q = mentionQuery();
    if (q === null) { pop.hidden = true; return; }
    const lower = q.toLowerCase();
    popItems = [...S.users.values()].filter((u) => u.active && u.id !== S.me.id
      && (u.name.toLowerCase().includes(lower) || u.email.toLowerCase().startsWith(lower))).slice(0, 6);
    if (!popItems.length) { pop.hidden = true; return; }
    popIndex = Math.min(popIndex, popItems.length - 1);
    replace(pop, ...popItems.map((u, i) => h('li' + (i === popIndex ? '.active' : ''), {
      role: 'option', dataset: { userId: u.id },
      onmousedown: (e) => { e.preventDefault(); pick(u); },
    }, avatar(u.name, u.avatar_url, 20), h('span', u.name), h('small.muted', u.email))));
    pop.hidden = false;
  }
  function pick(u) {
    const pos = ta.selectionStart;
    const before = ta.value.slice(0, pos).replace(/@([^\s@]{0,30})$/, '');
    const label = '@' + u.name;
    ta.value = before + label + ' ' + ta.value.slice(pos);
    const at = before.length + label.length + 1;
    ta.setSelectionRange(at, at);
    C.mentioned.set(label, u.id);
    pop.hidden = true;
    ta.focus();
  }

  ta.addEventListener('input', () => { typed(); renderPop(); });
  ta.addEventListener('keydown', (e) => {
    if (!pop.hidden && popItems.length) {
      if (e.key === 'ArrowDown') { e.preventDefault(); popIndex = (popIndex + 1) % popItems.length; renderPop(); return; }
      if (e.key === 'ArrowUp') { e.preventDefault(); popIndex = (popIndex + popItems.length - 1) % popItems.length; renderPop(); return; }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); pick(popItems[popIndex]); return; }
      if (e.key === 'Escape') { e.preventDefault(); pop.hidden = true; return; }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'Escape') {
      ta.blur();
    }
  });
  ta.addEventListener('blur', () => setTimeout(() => { pop.hidden = true; }, 150));

  C.attachments = []; // uploaded, not sent yet
  const chips = h('div.chips', { id: 'attachment-chips' });
  const renderChips = () => replace(chips, ...C.attachments.map((a) => h('span.pill', { dataset: { attachmentId: a.id || '' } },
    a.uploading ? h('span.spinner.tiny') : icon('clip', 12), a.name, a.error ? h('span.error', ' ' + a.error) : null,
    h('button', { type: 'button', title: 'Remove', onclick: () => { C.attachments = C.attachments.filter((x) => x !== a); renderChips(); } }, '×'))));
  async function addFiles(files) {
    for (const file of files) {
      const entry = { name: file.name || 'pasted file', uploading: true };
      C.attachments.push(entry);
      renderChips();
      try {
        Object.assign(entry, await API.upload(file), { uploading: false });
      } catch (e) {
        entry.uploading = false;
        entry.error = e.status === 413 ? 'too large (10 MB max)' : e.message;
      }
      renderChips();
    }
  }
  C.addFiles = addFiles;
  const fileInput = h('input', { type: 'file', multiple: true, hidden: true, id: 'attach-input' });
  fileInput.addEventListener('change', () => { addFiles([...fileInput.files]); fileInput.value = ''; });
  const attach = h('button.tool', {
    type: 'button', id: 'attach-button', title: 'Attach files (images, PDF, text, zip, office; 10 MB max)',
    onclick: () => fileInput.click(),
  }, icon('clip', 18));
  ta.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  const linkBtn = h('button.tool', { type: 'button', title: 'Insert a link', id: 'link-button', onclick: () => { linkForm.hidden = !linkForm.hidden; if (!linkForm.hidden) linkForm.querySelector('input').focus(); } }, icon('link', 18));
  append(box,
    h('div.tabs', tabs.reply, tabs.comment),
    h('div.compose-area', pop, ta),
    chips,
    linkForm,
    h('div.toolbar', linkBtn, attach, fileInput, h('span.hint.muted', 'Enter to send · Shift+Enter new line'), h('div.grow'), send));
  return box;
}

function append(parent, ...kids) {
  for (const k of kids) if (k) parent.append(k);
  return parent;
}

function insertAtCursor(ta, text) {
  const s = ta.selectionStart;
  ta.value = ta.value.slice(0, s) + text + ta.value.slice(ta.selectionEnd);
  ta.setSelectionRange(s + text.length, s + text.length);
}

// ---------------------------------------------------------------------------------
// The contact sidebar
// ---------------------------------------------------------------------------------

async function loadContact() {
  const C = S.conv;
  replace(el.side, h('div.state.center', h('div.spinner.small')));
  try {
    const ct = await API.get('/contacts/' + encodeURIComponent(C.data.contact_id));
    if (S.conv !== C) return;
    C.contact = ct;
    renderContact();
  } catch (e) {
    if (S.conv !== C) return;
    replace(el.side, h('div.state.error', h('p', 'Could not load the contact: ' + e.message)));
  }
}

function renderContact() {
  const C = S.conv;
  const ct = C.contact;
  const name = ct.name || ct.email || 'Visitor ' + ct.id.slice(-4);
  const row = (label, value, node) => (value ? h('div.kv', h('dt', label), h('dd', node || value)) : null);
  const page = ct.page_url || (ct.attributes && ct.attributes.page_url);
  const ua = ct.user_agent || (ct.attributes && ct.attributes.user_agent);
  const past = ct.conversations.filter((x) => x.id !== C.id);
  replace(el.side,
    h('div.contact-card', avatar(name, null, 56), h('h3', { id: 'contact-name' }, name), ct.email ? h('div.muted', ct.email) : null),
    h('dl.kvs',
      row('Email', ct.email),
      row('Phone', ct.phone),
      row('Page', page, h('a', { href: page, target: '_blank', rel: 'noopener noreferrer', title: page }, page)),
      row('Browser', ua && browserName(ua), h('span', { title: ua || '' }, browserName(ua) || '')),
      row('Last seen', ct.last_seen_at, h('span', ct.last_seen_at ? (ago(ct.last_seen_at) === 'now' ? 'just now' : ago(ct.last_seen_at) + ' ago') : '')),
      row('First seen', ct.created_at, h('span', new Date(ct.created_at).toLocaleDateString()))),
    h('h4', 'Past conversations', h('span.count', String(past.length))),
    past.length
      ? h('ul.past', ...past.map((p) => h('li', h('a', { href: hrefFor({ conv: p.id }) },
        h('span.tag' + (p.status === 'open' ? '.open' : ''), p.status),
        h('span.past-preview', p.last_message ? plainText(p.last_message.body, S.users) : 'No messages'),
        h('time.muted', ago(p.last_message_at))))))
      : h('p.muted.small', 'None.'));
}

// ---------------------------------------------------------------------------------
// Keyboard: j/k move, Enter open, r reply, c note, / search, Esc leaves a field
// ---------------------------------------------------------------------------------

function onKey(e) {
  if (S.route.page !== 'inbox' || e.metaKey || e.ctrlKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) {
    if (e.key === 'Escape') t.blur();
    return;
  }
  const ids = S.list.order;
  if (e.key === 'j' || e.key === 'k') {
    e.preventDefault();
    if (!ids.length) return;
    if (S.selected < 0 && S.conv) S.selected = ids.indexOf(S.conv.id);
    S.selected = e.key === 'j' ? Math.min(ids.length - 1, S.selected + 1) : Math.max(0, S.selected - 1);
    highlightSelection();
    const row = el.rows.querySelector(`li[data-id="${CSS.escape(ids[S.selected])}"]`);
    if (row) row.scrollIntoView({ block: 'nearest' });
    if (S.selected >= ids.length - 5) loadMore();
  } else if (e.key === 'Enter' && S.selected >= 0 && ids[S.selected]) {
    e.preventDefault();
    go({ conv: ids[S.selected] });
  } else if ((e.key === 'r' || e.key === 'c') && S.conv && S.conv.setMode) {
    e.preventDefault();
    S.conv.setMode(e.key === 'r' ? 'reply' : 'comment');
  } else if (e.key === '/') {
    e.preventDefault();
    el.search.focus();
  }
}

boot();
