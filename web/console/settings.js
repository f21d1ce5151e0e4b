// Settings: everyone's profile and notification switches; for admins, users and roles,
// teams, inboxes (members, routing, capacity) and chat channels (appearance,
// availability, allowed sites, chatflows) with the embed snippet to copy.

import { h, replace, avatar } from './dom.js';
import * as API from './api.js';

const TABS = [
  { id: 'profile', label: 'Profile & notifications' },
  { id: 'users', label: 'Users & roles', admin: true },
  { id: 'teams', label: 'Teams', admin: true },
  { id: 'inboxes', label: 'Inboxes & routing', admin: true },
  { id: 'channels', label: 'Chat channels', admin: true },
];

let ctx;

export function renderSettings(root, context, tab) {
  ctx = context;
  const isAdmin = ctx.me.role === 'admin';
  const tabs = TABS.filter((t) => !t.admin || isAdmin);
  const current = tabs.find((t) => t.id === tab) || tabs[0];
  const body = h('div.settings-body', { id: 'settings-body' });
  replace(root,
    h('nav.settings-nav', h('h2', 'Settings'),
      ...tabs.map((t) => h('a.view-link' + (t.id === current.id ? '.active' : ''), { href: '#/settings/' + t.id, dataset: { tab: t.id } }, h('span', t.label)))),
    body);
  const render = { profile, users, teams, inboxes, channels }[current.id];
  render(body).catch((e) => replace(body, h('div.state.error', h('p', 'Could not load: ' + e.message))));
}

function input(attrs) {
  return h('input', attrs);
}

function labelled(label, control, hint) {
  return h('label.field', h('span', label), control, hint ? h('small', hint) : null);
}

function saveButton(label = 'Save') {
  return h('button.primary', { type: 'submit' }, label);
}

/** Run an async change; report success or the API's error in `status`. */
async function attempt(status, fn, ok = 'Saved') {
  status.textContent = '';
  status.className = '';
  try {
    await fn();
    status.textContent = ok;
    status.className = 'saved';
    return true;
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error';
    return false;
  }
}

const userName = (id) => (ctx.users.get(id) || { name: 'Unknown user' }).name;

// ---------------------------------------------------------------------------------
// Profile and notifications (everyone)
// ---------------------------------------------------------------------------------

async function profile(body) {
  const me = ctx.me;
  const name = input({ value: me.name, required: true, maxLength: 100, id: 'profile-name' });
  const av = input({ type: 'url', value: me.avatar_url || '', placeholder: 'https://…/me.png', id: 'profile-avatar' });
  const meet = input({ type: 'url', value: me.meeting_link || '', placeholder: 'https://cal.com/you', id: 'profile-meeting' });
  const status = h('span');
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(status, async () => {
        const u = await API.patch('/users/' + me.id, {
          name: name.value.trim(), avatar_url: av.value.trim() || null, meeting_link: meet.value.trim() || null,
        });
        ctx.setMe(u);
        replace(preview, avatar(u.name, u.avatar_url, 48));
      });
    },
  }, h('h3', 'Your profile'),
  h('p.muted.small', 'Visitors see your name, avatar and meeting link when you answer them.'),
  h('div.form-grid', labelled('Name', name), labelled('Avatar URL', av), labelled('Meeting link', meet)),
  h('div.form-actions', saveButton(), status));
  const preview = h('div', avatar(me.name, me.avatar_url, 48));

  const pw = input({ type: 'password', minLength: 8, required: true, autocomplete: 'new-password' });
  const pwStatus = h('span');
  const pwForm = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(pwStatus, () => API.patch('/users/' + me.id, { password: pw.value }), 'Password changed; your other sessions were logged out.')
        .then((ok) => ok && pwForm.reset());
    },
  }, h('h3', 'Password'), h('div.form-grid', labelled('New password', pw, 'At least 8 characters.')), h('div.form-actions', saveButton('Change password'), pwStatus));

  const perm = 'Notification' in window ? Notification.permission : 'unsupported';
  const permLine = h('p.small.muted', perm === 'granted' ? 'Desktop notifications are allowed in this browser.'
    : perm === 'denied' ? 'Desktop notifications are blocked for this site in your browser settings.'
      : perm === 'unsupported' ? 'This browser cannot show desktop notifications.' : '');
  const allow = perm === 'default' ? h('button', {
    type: 'button',
    onclick: async () => { await ctx.requestNotifications(); profile(body); },
  }, 'Allow desktop notifications') : null;
  const toggle = (key, label) => {
    const box = input({ type: 'checkbox', id: 'notify-' + key, checked: localStorage.getItem('parley.notify.' + key) !== 'off' });
    box.addEventListener('change', () => localStorage.setItem('parley.notify.' + key, box.checked ? 'on' : 'off'));
    return h('label.check', box, label);
  };
  replace(body,
    h('h1', 'Profile & notifications'),
    h('p.muted', 'Signed in as ' + me.email + ' (' + me.role + ').'),
    preview, form, pwForm,
    h('section.panel', h('h3', 'Notifications'),
      h('p.muted.small', 'A notification, and a count in the tab title, for:'),
      toggle('assigned', 'New conversations assigned to me'),
      toggle('mentions', '@mentions of me in internal notes'),
      permLine, allow));
}

// ---------------------------------------------------------------------------------
// Users and roles
// ---------------------------------------------------------------------------------

async function users(body) {
  const list = await API.all('/users');
  const status = h('span');
  const rows = list.map((u) => {
    const role = h('select', { 'aria-label': 'Role of ' + u.name },
      h('option', { value: 'agent', selected: u.role === 'agent' }, 'Agent'),
      h('option', { value: 'admin', selected: u.role === 'admin' }, 'Admin'));
    role.addEventListener('change', () => attempt(status, () => API.patch('/users/' + u.id, { role: role.value }), `${u.name} is now ${role.value === 'admin' ? 'an admin' : 'an agent'}.`)
      .then((ok) => { if (!ok) role.value = u.role; }));
    const act = h('button' + (u.active ? '.danger' : ''), {
      type: 'button',
      onclick: () => attempt(status, () => API.patch('/users/' + u.id, { active: !u.active }), u.active ? `${u.name} was deactivated.` : `${u.name} was reactivated.`)
        .then((ok) => ok && ctx.reload().then(() => users(body))),
    }, u.active ? 'Deactivate' : 'Reactivate');
    return h('tr', h('td', h('div.who', avatar(u.name, u.avatar_url, 26), h('span', u.name))), h('td', u.email),
      h('td', role), h('td', u.active ? h('span.tag.open', 'active') : h('span.tag', 'deactivated')), h('td', u.id === ctx.me.id ? h('span.muted.small', 'you') : act));
  });
  const email = input({ type: 'email', required: true, placeholder: 'teammate@example.com', id: 'new-user-email' });
  const name = input({ required: true, maxLength: 100, id: 'new-user-name' });
  const pw = input({ type: 'password', required: true, minLength: 8, autocomplete: 'new-password', id: 'new-user-password' });
  const role = h('select', { id: 'new-user-role' }, h('option', { value: 'agent' }, 'Agent'), h('option', { value: 'admin' }, 'Admin'));
  const addStatus = h('span');
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(addStatus, () => API.post('/users', { email: email.value.trim(), name: name.value.trim(), password: pw.value, role: role.value }))
        .then((ok) => ok && ctx.reload().then(() => users(body)));
    },
  }, h('h3', 'Add a teammate'),
  h('div.form-grid', labelled('Name', name), labelled('Email', email), labelled('Initial password', pw, 'Share it with them; they can change it.'), labelled('Role', role)),
  h('div.form-actions', saveButton('Add user'), addStatus));
  replace(body, h('h1', 'Users & roles'), h('p.muted', 'Admins manage settings and see every inbox; agents see the inboxes they are members of.'),
    h('section.panel', h('table.data', { id: 'users-table' }, h('thead', h('tr', h('th', 'Name'), h('th', 'Email'), h('th', 'Role'), h('th', 'Status'), h('th', ''))), h('tbody', ...rows)), status),
    form);
}

// ---------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------

async function teams(body) {
  const list = await API.all('/teams');
  const active = [...ctx.users.values()].filter((u) => u.active);
  const panels = list.map((t) => {
    const status = h('span');
    const pick = h('select', { 'aria-label': 'Add to ' + t.name }, h('option', { value: '' }, 'Add a member…'),
      ...active.filter((u) => !t.member_ids.includes(u.id)).map((u) => h('option', { value: u.id }, u.name)));
    pick.addEventListener('change', () => pick.value && attempt(status, () => API.post(`/teams/${t.id}/members`, { user_id: pick.value }))
      .then((ok) => ok && teams(body)));
    return h('section.panel', h('h3', t.name),
      t.description ? h('p.muted.small', t.description) : null,
      h('div', ...t.member_ids.map((id) => h('span.pill', userName(id),
        h('button', { type: 'button', title: 'Remove', onclick: () => attempt(status, () => API.del(`/teams/${t.id}/members/${id}`)).then((ok) => ok && teams(body)) }, '×'))),
      t.member_ids.length ? null : h('span.muted.small', 'No members yet.')),
      h('div.form-actions', pick,
        h('button.danger', { type: 'button', onclick: () => confirm(`Delete team ${t.name}?`) && attempt(status, () => API.del('/teams/' + t.id)).then((ok) => ok && teams(body)) }, 'Delete team'),
        status));
  });
  const name = input({ required: true, maxLength: 100, placeholder: 'Billing', id: 'new-team-name' });
  const desc = input({ maxLength: 1000, placeholder: 'What this team handles' });
  const status = h('span');
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(status, () => API.post('/teams', { name: name.value.trim(), description: desc.value.trim() })).then((ok) => ok && teams(body));
    },
  }, h('h3', 'New team'), h('div.form-grid', labelled('Name', name), labelled('Description', desc)), h('div.form-actions', saveButton('Create team'), status));
  replace(body, h('h1', 'Teams'), h('p.muted', 'An inbox can route its conversations among one team\'s members.'), ...panels, form);
}

// ---------------------------------------------------------------------------------
// Inboxes: members, routing, capacity
// ---------------------------------------------------------------------------------

async function inboxes(body) {
  const [list, teamList] = await Promise.all([API.all('/inboxes'), API.all('/teams')]);
  const active = [...ctx.users.values()].filter((u) => u.active);
  const panels = list.map((inbox) => {
    const status = h('span');
    const r = inbox.routing;
    const mode = h('select', { 'aria-label': 'Routing mode' },
      h('option', { value: 'round_robin', selected: r.mode === 'round_robin' }, 'Round robin (automatic)'),
      h('option', { value: 'manual', selected: r.mode === 'manual' }, 'Manual'));
    const cap = input({ type: 'number', min: 1, max: 1000, value: r.capacity ?? '', placeholder: 'Unlimited' });
    const team = h('select', { 'aria-label': 'Routing team' }, h('option', { value: '' }, 'All inbox members'),
      ...teamList.map((t) => h('option', { value: t.id, selected: r.team_id === t.id }, t.name)));
    const offline = h('select', { 'aria-label': 'When an agent goes offline' },
      h('option', { value: 'keep', selected: r.offline.action === 'keep' }, 'Keep their conversations'),
      h('option', { value: 'return', selected: r.offline.action === 'return' }, 'Return them to the queue'));
    const grace = input({ type: 'number', min: 0, max: 86400, value: r.offline.grace_seconds });
    const name = input({ value: inbox.name, required: true, maxLength: 100 });
    const routingForm = h('form', {
      onsubmit: (e) => {
        e.preventDefault();
        attempt(status, () => API.patch('/inboxes/' + inbox.id, {
          name: name.value.trim(),
          routing: {
            mode: mode.value, capacity: cap.value ? Number(cap.value) : null, team_id: team.value || null,
            offline: { action: offline.value, grace_seconds: Number(grace.value || 0) },
          },
        }));
      },
    }, h('div.form-grid', labelled('Name', name), labelled('Routing', mode), labelled('Capacity per agent', cap, 'Open conversations at once.'),
      labelled('Route among', team), labelled('Agent offline', offline), labelled('Grace (seconds)', grace)),
    h('div.form-actions', saveButton('Save routing'), status));
    const memberRows = inbox.members.map((m) => {
      const mcap = input({ type: 'number', min: 1, max: 1000, value: m.capacity ?? '', placeholder: 'Inbox default', 'aria-label': 'Capacity of ' + userName(m.user_id) });
      mcap.addEventListener('change', () => attempt(status, () => API.put(`/inboxes/${inbox.id}/members/${m.user_id}`, { capacity: mcap.value ? Number(mcap.value) : null })));
      return h('tr', h('td', userName(m.user_id)), h('td', mcap),
        h('td', h('button.danger', { type: 'button', onclick: () => attempt(status, () => API.del(`/inboxes/${inbox.id}/members/${m.user_id}`)).then((ok) => ok && ctx.reload().then(() => inboxes(body))) }, 'Remove')));
    });
    const add = h('select', { 'aria-label': 'Add a member to ' + inbox.name, dataset: { inbox: inbox.id } }, h('option', { value: '' }, 'Add a member…'),
      ...active.filter((u) => !inbox.members.some((m) => m.user_id === u.id)).map((u) => h('option', { value: u.id }, u.name)));
    add.addEventListener('change', () => add.value && attempt(status, () => API.put(`/inboxes/${inbox.id}/members/${add.value}`, {}))
      .then((ok) => ok && ctx.reload().then(() => inboxes(body))));
    return h('section.panel', { dataset: { inbox: inbox.id } }, h('h3', inbox.name), routingForm,
      h('h3', { style: { marginTop: '18px' } }, 'Members'),
      h('table.data', h('thead', h('tr', h('th', 'Agent'), h('th', 'Capacity override'), h('th', ''))), h('tbody', ...memberRows)),
      h('div.form-actions', add),
      h('div.form-actions', h('button.danger', {
        type: 'button',
        onclick: () => confirm(`Delete inbox ${inbox.name} and all its conversations?`) && attempt(status, () => API.del('/inboxes/' + inbox.id))
          .then((ok) => ok && ctx.reload().then(() => inboxes(body))),
      }, 'Delete inbox')));
  });
  const name = input({ required: true, maxLength: 100, placeholder: 'Support', id: 'new-inbox-name' });
  const mode = h('select', { id: 'new-inbox-mode' }, h('option', { value: 'round_robin' }, 'Round robin (automatic)'), h('option', { value: 'manual' }, 'Manual'));
  const status = h('span');
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(status, () => API.post('/inboxes', { name: name.value.trim(), member_ids: [ctx.me.id], routing: { mode: mode.value } }))
        .then((ok) => ok && ctx.reload().then(() => inboxes(body)));
    },
  }, h('h3', 'New inbox'), h('div.form-grid', labelled('Name', name), labelled('Routing', mode)),
  h('p.muted.small', 'You are added as its first member; add your teammates after.'),
  h('div.form-actions', saveButton('Create inbox'), status));
  replace(body, h('h1', 'Inboxes & routing'), h('p.muted', 'Each inbox has members, a routing mode and a capacity per agent.'), ...panels, form);
}

// ---------------------------------------------------------------------------------
// Chat channels: settings, chatflows, embed snippet
// ---------------------------------------------------------------------------------

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

async function channels(body) {
  const list = await API.all('/inboxes');
  const chans = (await Promise.all(list.map((i) => API.get(`/inboxes/${i.id}/channels`).then((r) => r.items)))).flat().filter((c) => c.type === 'chat');
  const panels = await Promise.all(chans.map((c) => channelPanel(c, list, body)));
  const inbox = h('select', { id: 'new-channel-inbox', required: true }, ...list.map((i) => h('option', { value: i.id }, i.name)));
  const name = input({ maxLength: 100, placeholder: 'Website chat', id: 'new-channel-name' });
  const status = h('span');
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(status, () => API.post(`/inboxes/${inbox.value}/channels`, { type: 'chat', name: name.value.trim() || undefined }))
        .then((ok) => ok && ctx.reload().then(() => channels(body)));
    },
  }, h('h3', 'New chat channel'),
  list.length ? h('div.form-grid', labelled('Inbox', inbox), labelled('Name', name)) : h('p.muted', 'Create an inbox first.'),
  h('div.form-actions', list.length ? saveButton('Create chat channel') : null, status));
  replace(body, h('h1', 'Chat channels'), h('p.muted', 'Paste a channel\'s snippet into your website to show the chat widget there.'), ...panels, form);
}

async function channelPanel(c, inboxList, body) {
  const s = c.settings || {};
  const b = s.branding || {};
  const av = s.availability || {};
  const off = s.offline || {};
  const status = h('span');
  const snippet = c.embed_snippet || '';
  const copyStatus = h('span');
  const copy = h('button', {
    type: 'button', class: 'copy-snippet',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(snippet);
        copyStatus.textContent = 'Copied';
      } catch {
        const r = document.createRange();
        r.selectNodeContents(pre);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        copyStatus.textContent = 'Selected: press Ctrl+C';
      }
      copyStatus.className = 'saved';
    },
  }, 'Copy snippet');
  const pre = h('pre', { class: 'embed-snippet' }, snippet);

  const name = input({ value: c.name, maxLength: 100 });
  const color = input({ type: 'color', value: /^#[0-9a-fA-F]{6}$/.test(b.accent_color || '') ? b.accent_color : '#2563eb' });
  const display = input({ value: b.display_name || '', maxLength: 100, placeholder: 'Acme Support' });
  const avatarUrl = input({ type: 'url', value: b.avatar_url || '', placeholder: 'https://…' });
  const greeting = input({ value: b.greeting || '', maxLength: 500, placeholder: 'Hi! How can we help?' });
  const origins = h('textarea', { rows: 2, placeholder: 'https://www.example.com (one per line; empty = any site)' }, (s.allowed_origins || []).join('\n'));
  const mode = h('select', {},
    ...[['always', 'Always'], ['business_hours', 'Business hours'], ['agents_online', 'When an agent is online']]
      .map(([v, l]) => h('option', { value: v, selected: (av.mode || 'always') === v }, l)));
  const tz = input({ value: av.time_zone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC', placeholder: 'Europe/Paris' });
  const hours = DAYS.map((d) => {
    const cur = (av.hours || []).find((x) => x.day === d);
    return { day: d, on: input({ type: 'checkbox', checked: !!cur }), open: input({ type: 'time', value: cur ? cur.open : '09:00' }), close: input({ type: 'time', value: cur ? cur.close : '17:00' }) };
  });
  const collect = input({ type: 'checkbox', checked: off.collect_email !== false });
  const offMsg = input({ value: off.message || '', maxLength: 1000, placeholder: "We're away right now. Leave your email and we'll reply." });
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      const settings = {
        allowed_origins: origins.value.split(/\s+/).map((x) => x.trim()).filter(Boolean),
        branding: { accent_color: color.value, display_name: display.value.trim() || null, avatar_url: avatarUrl.value.trim() || null, greeting: greeting.value.trim() || null },
        availability: {
          mode: mode.value, time_zone: tz.value.trim(),
          hours: hours.filter((x) => x.on.checked).map((x) => ({ day: x.day, open: x.open.value, close: x.close.value })),
        },
        offline: { collect_email: collect.checked, message: offMsg.value.trim() || null },
      };
      attempt(status, () => API.patch('/channels/' + c.id, { name: name.value.trim(), settings }));
    },
  },
  h('div.form-grid', labelled('Name', name), labelled('Accent colour', color), labelled('Display name', display), labelled('Avatar URL', avatarUrl), labelled('Greeting', greeting)),
  h('h3', { style: { marginTop: '18px' } }, 'Availability'),
  h('div.form-grid', labelled('Show as available', mode), labelled('Time zone', tz)),
  h('div.hours', { style: { marginTop: '8px' } }, ...hours.flatMap((x) => [h('label.check', x.on, x.day), x.open, x.close])),
  h('h3', { style: { marginTop: '18px' } }, 'When offline'),
  h('label.check', collect, 'Ask for the visitor\'s email'),
  labelled('Offline message', offMsg),
  h('h3', { style: { marginTop: '18px' } }, 'Sites allowed to embed'),
  origins,
  h('div.form-actions', saveButton('Save channel'), status));

  const flows = h('div', { class: 'chatflows' });
  renderChatflows(flows, c);
  const inbox = inboxList.find((i) => i.id === c.inbox_id);
  return h('section.panel', { dataset: { channel: c.id } },
    h('h3', c.name, h('span.muted.small', ' · inbox ' + (inbox ? inbox.name : ''))),
    h('div.snippet', h('p.small.muted', 'Embed snippet: paste it before </body> on every page of your site.'), pre, h('div.form-actions', copy, copyStatus)),
    form,
    h('h3', { style: { marginTop: '18px' } }, 'Chatflows'),
    flows,
    h('div.form-actions', h('button.danger', {
      type: 'button',
      onclick: () => confirm(`Delete channel ${c.name}?`) && attempt(status, () => API.del('/channels/' + c.id)).then((ok) => ok && ctx.reload().then(() => channels(body))),
    }, 'Delete channel')));
}

const RULE_KINDS = [
  ['all_pages', 'All pages'], ['url_is', 'URL is'], ['url_contains', 'URL contains'],
  ['url_starts_with', 'URL starts with'], ['url_glob', 'URL matches (glob)'], ['query_param_equals', 'Query parameter equals'],
];
const TRIGGERS = [['on_load', 'When the page loads'], ['after_seconds', 'After some seconds'], ['scroll_percent', 'After scrolling'], ['exit_intent', 'On exit intent']];

async function renderChatflows(box, channel) {
  let list;
  try {
    list = (await API.get(`/channels/${channel.id}/chatflows`)).items;
  } catch (e) {
    replace(box, h('p.muted.small', e.status === 404
      ? 'Chatflows are not available on this server yet (the chat widget\'s API is not installed).'
      : 'Could not load chatflows: ' + e.message));
    return;
  }
  const status = h('span');
  const editors = list.map((f) => chatflowEditor(f, channel, box));
  const add = h('button', {
    type: 'button',
    onclick: () => attempt(status, () => API.post(`/channels/${channel.id}/chatflows`, {
      name: 'New chatflow', enabled: false, priority: 100,
      targeting: { match: 'any', rules: [{ kind: 'all_pages' }] }, trigger: { kind: 'on_load' }, welcome_message: '', display: 'launcher',
    })).then((ok) => ok && renderChatflows(box, channel)),
  }, '+ Add chatflow');
  replace(box, ...editors, h('div.form-actions', add, status));
}

function chatflowEditor(f, channel, box) {
  const status = h('span');
  const name = input({ value: f.name, maxLength: 100 });
  const enabled = input({ type: 'checkbox', checked: f.enabled });
  const priority = input({ type: 'number', value: f.priority, min: 0, max: 100000 });
  const match = h('select', {}, h('option', { value: 'any', selected: f.targeting.match === 'any' }, 'Any rule matches'), h('option', { value: 'all', selected: f.targeting.match === 'all' }, 'All rules match'));
  const rulesBox = h('div.rules');
  const rules = [];
  const addRule = (r) => {
    const kind = h('select', {}, ...RULE_KINDS.map(([v, l]) => h('option', { value: v, selected: r.kind === v }, l)));
    const param = input({ value: r.param || '', placeholder: 'utm_source' });
    const value = input({ value: r.value || '', placeholder: '/pricing' });
    const sync = () => { param.hidden = kind.value !== 'query_param_equals'; value.hidden = kind.value === 'all_pages'; };
    kind.addEventListener('change', sync);
    sync();
    const entry = { kind, param, value };
    const line = h('div.rule', kind, param, value, h('button', { type: 'button', title: 'Remove rule', onclick: () => { rules.splice(rules.indexOf(entry), 1); line.remove(); } }, '×'));
    rules.push(entry);
    rulesBox.append(line);
  };
  f.targeting.rules.forEach(addRule);
  const trig = h('select', {}, ...TRIGGERS.map(([v, l]) => h('option', { value: v, selected: f.trigger.kind === v }, l)));
  const trigN = input({ type: 'number', min: 0, max: 3600, value: f.trigger.seconds ?? f.trigger.percent ?? '' });
  const syncTrig = () => { trigN.hidden = !['after_seconds', 'scroll_percent'].includes(trig.value); trigN.placeholder = trig.value === 'scroll_percent' ? '% scrolled' : 'seconds'; };
  trig.addEventListener('change', syncTrig);
  syncTrig();
  const welcome = input({ value: f.welcome_message || '', maxLength: 1000, placeholder: 'Questions about pricing?' });
  const display = h('select', {}, h('option', { value: 'launcher', selected: f.display === 'launcher' }, 'Launcher button'), h('option', { value: 'popup', selected: f.display === 'popup' }, 'Open as a popup'));
  const form = h('form.panel', {
    onsubmit: (e) => {
      e.preventDefault();
      const trigger = { kind: trig.value };
      if (trig.value === 'after_seconds') trigger.seconds = Number(trigN.value || 0);
      if (trig.value === 'scroll_percent') trigger.percent = Number(trigN.value || 0);
      attempt(status, () => API.patch('/chatflows/' + f.id, {
        name: name.value.trim(), enabled: enabled.checked, priority: Number(priority.value || 0),
        targeting: {
          match: match.value,
          rules: rules.map((r) => (r.kind.value === 'all_pages' ? { kind: 'all_pages' }
            : r.kind.value === 'query_param_equals' ? { kind: r.kind.value, param: r.param.value.trim(), value: r.value.value.trim() }
              : { kind: r.kind.value, value: r.value.value.trim() })),
        },
        trigger, welcome_message: welcome.value, display: display.value,
      }));
    },
  },
  h('div.form-grid', labelled('Name', name), labelled('Priority', priority, 'Lower wins when several match.'), h('label.check', enabled, 'Enabled')),
  h('h3', { style: { marginTop: '12px' } }, 'Show on'), match, rulesBox,
  h('button.link', { type: 'button', onclick: () => addRule({ kind: 'url_contains', value: '' }) }, '+ Add rule'),
  h('div.form-grid', { style: { marginTop: '12px' } }, labelled('Trigger', trig), labelled('Trigger value', trigN), labelled('Welcome message', welcome), labelled('Display', display)),
  h('div.form-actions', saveButton('Save chatflow'),
    h('button.danger', { type: 'button', onclick: () => attempt(status, () => API.del('/chatflows/' + f.id)).then((ok) => ok && renderChatflows(box, channel)) }, 'Delete'),
    status));
  return form;
}
