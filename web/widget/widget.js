/*! Parley chat widget (AGPL-3.0-or-later). Loaded by /widget.js only on pages a chatflow
 * targets. Plain JS, no dependencies, no build step. Renders inside a Shadow DOM attached
 * to one <parley-chat> element, so the host page's CSS and ours never touch; adds no
 * global beyond window.Parley; every message text is set with textContent. */
(function () {
  'use strict';
  var P = window.Parley;
  if (!P || !P.config || P._booted) return;
  P._booted = true;
  try { boot(P); } catch (e) { /* never break the host page */ }

  function boot(P) {
    var d = document, w = window, cfg = P.config, base = P.base, ch = P.channel;
    var brand = cfg.branding || {}, flow = cfg.chatflow || {};
    var KEY = 'parley:' + ch;
    var state = read() || {};       // {token, conv, seq, pending:[{client_id, body, attachments}], email}
    state.pending = state.pending || [];
    var ws = null, wsOpen = false, retry = 0, retryTimer = null, stopped = false;
    var rendered = {};              // message id -> element
    var pendingEls = {};            // client_id -> element
    var lastSeq = 0, unread = 0, isOpen = false, shown = false, ended = false;
    var typingOn = false, typingSent = 0, typingTimer = null, theirTyping = null;
    var available = cfg.available !== false;
    var offline = cfg.offline || {};

    // ---------- storage ----------
    function read() { try { return JSON.parse(w.localStorage.getItem(KEY) || 'null'); } catch (e) { return null; } }
    function save() { try { w.localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ } }

    // ---------- DOM helpers ----------
    function h(tag, props, kids) {
      var el = d.createElement(tag);
      for (var k in props || {}) {
        var v = props[k];
        if (v == null) continue;
        if (k === 'text') el.textContent = v;
        else if (k === 'class') el.className = v;
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v);
      }
      (kids || []).forEach(function (c) { if (c) el.appendChild(typeof c === 'string' ? d.createTextNode(c) : c); });
      return el;
    }
    function svg(path) {
      var s = d.createElementNS('http://www.w3.org/2000/svg', 'svg');
      s.setAttribute('viewBox', '0 0 24 24'); s.setAttribute('aria-hidden', 'true'); s.setAttribute('focusable', 'false');
      var p = d.createElementNS('http://www.w3.org/2000/svg', 'path'); p.setAttribute('d', path); s.appendChild(p);
      return s;
    }
    var ICON_CHAT = 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z';
    var ICON_CLOSE = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z';
    var ICON_CLIP = 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z';

    var accent = /^#[0-9a-fA-F]{3,6}$/.test(brand.accent_color || '') ? brand.accent_color : '#2563eb';
    var CSS = ':host{all:initial}' +
      '*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}' +
      '.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--a);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;z-index:2147483000}' +
      '.launcher svg{width:26px;height:26px;fill:currentColor}' +
      '.badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#dc2626;color:#fff;font-size:12px;line-height:20px;text-align:center;font-weight:600}' +
      '.bubble{position:fixed;right:20px;bottom:86px;max-width:260px;background:#fff;color:#111827;padding:10px 14px;border-radius:12px;box-shadow:0 4px 18px rgba(0,0,0,.18);font-size:14px;line-height:1.4;cursor:pointer;z-index:2147483000}' +
      '.win{position:fixed;right:20px;bottom:88px;width:370px;height:560px;max-height:calc(100vh - 110px);background:#fff;color:#111827;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;font-size:14px;z-index:2147483000}' +
      '[hidden]{display:none!important}' +
      'header{background:var(--a);color:#fff;padding:12px 14px;display:flex;align-items:center;gap:10px}' +
      'header img{width:36px;height:36px;border-radius:50%;object-fit:cover;background:rgba(255,255,255,.3)}' +
      '.t{font-weight:600;font-size:15px}.s{font-size:12px;opacity:.92}.s a{color:#fff}' +
      'header .x{margin-left:auto;background:transparent;border:0;color:#fff;cursor:pointer;padding:6px;border-radius:6px}' +
      'header .x svg{width:20px;height:20px;fill:currentColor;display:block}' +
      '.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px;background:#f8fafc}' +
      '.m{max-width:82%;padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.4}' +
      '.me{align-self:flex-end;background:var(--a);color:#fff;border-bottom-right-radius:4px}' +
      '.them{align-self:flex-start;background:#e5e7eb;color:#111827;border-bottom-left-radius:4px}' +
      '.sys{align-self:center;color:#4b5563;font-size:12px;text-align:center;max-width:95%}' +
      '.pending{opacity:.6}.failed{outline:1px solid #dc2626}' +
      '.who{display:block;font-size:11px;font-weight:600;opacity:.75;margin-bottom:2px}' +
      '.m img{max-width:100%;max-height:220px;border-radius:8px;display:block;margin-top:4px}' +
      '.file{display:block;margin-top:4px;color:inherit;text-decoration:underline;background:none;border:0;padding:0;cursor:pointer;font:inherit;text-align:left}' +
      '.typing{font-size:12px;color:#4b5563;padding:2px 14px;min-height:20px}' +
      'form{margin:0}.compose{display:flex;gap:6px;padding:8px;border-top:1px solid #e5e7eb;align-items:flex-end;background:#fff}' +
      'textarea,input{border:1px solid #cbd5e1;border-radius:10px;padding:8px 10px;font:inherit;font-size:14px;color:#111827;background:#fff}' +
      'textarea{flex:1;resize:none;height:40px;max-height:120px}' +
      '.send,.primary{background:var(--a);color:#fff;border:0;border-radius:10px;padding:9px 14px;cursor:pointer;font:inherit;font-size:14px}' +
      '.icon{background:transparent;border:0;cursor:pointer;padding:8px;color:#475569;border-radius:8px}.icon svg{width:20px;height:20px;fill:currentColor;display:block}' +
      '.off{padding:16px;display:flex;flex-direction:column;gap:8px;background:#fff;border-top:1px solid #e5e7eb}.off p{margin:0;line-height:1.4}' +
      '.foot{display:flex;justify-content:flex-end;padding:0 10px 6px;background:#fff}' +
      '.link{background:none;border:0;color:#475569;text-decoration:underline;cursor:pointer;font:inherit;font-size:12px;padding:4px}' +
      ':focus-visible{outline:2px solid #f59e0b;outline-offset:2px}' +
      '.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}' +
      '@media (max-width:480px){.win{right:0;bottom:0;width:100vw;height:100vh;max-height:none;border-radius:0}.bubble{right:12px}}';

    // ---------- the element tree ----------
    var host = h('parley-chat', { 'data-parley': '' });
    var root = host.attachShadow({ mode: 'open' });
    var style = h('style', { text: CSS });
    var badge = h('span', { class: 'badge', hidden: '' });
    var launcher = h('button', { class: 'launcher', type: 'button', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', 'aria-controls': 'parley-window', 'aria-label': 'Open chat', hidden: '', onclick: toggle }, [svg(ICON_CHAT), badge]);
    var bubble = h('div', { class: 'bubble', role: 'status', hidden: '', onclick: open });
    var avatar = h('img', { alt: '', hidden: '' });
    var title = h('div', { class: 't', id: 'parley-title', text: brand.display_name || 'Support' });
    var sub = h('div', { class: 's' });
    var closeBtn = h('button', { class: 'x', type: 'button', 'aria-label': 'Close chat', onclick: close }, [svg(ICON_CLOSE)]);
    var log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Messages', tabindex: '0' });
    var typing = h('div', { class: 'typing', 'aria-live': 'polite' });
    var input = h('textarea', { rows: '1', 'aria-label': 'Message', placeholder: 'Write a message…', maxlength: '10000' });
    var file = h('input', { type: 'file', hidden: '', accept: 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,text/csv,application/zip,.docx,.xlsx' });
    var attach = h('button', { class: 'icon', type: 'button', 'aria-label': 'Attach a file', onclick: function () { file.click(); } }, [svg(ICON_CLIP)]);
    var compose = h('form', { class: 'compose', onsubmit: onSubmit }, [file, attach, input, h('button', { class: 'send', type: 'submit', text: 'Send' })]);
    var endBtn = h('button', { class: 'link', type: 'button', text: 'End chat', hidden: '', onclick: endChat });
    var newBtn = h('button', { class: 'primary', type: 'button', text: 'Start a new chat', hidden: '', onclick: newChat });
    var offEmail = h('input', { type: 'email', required: '', autocomplete: 'email', 'aria-label': 'Your email', placeholder: 'you@example.com' });
    var offMsg = h('textarea', { required: '', 'aria-label': 'Your message', placeholder: 'How can we help?', style: 'height:80px' });
    var offForm = h('form', { class: 'off', hidden: '', onsubmit: onOffline }, [
      h('p', { text: offline.message || '' }), offEmail, offMsg, h('button', { class: 'primary', type: 'submit', text: 'Send' })
    ]);
    var win = h('div', { class: 'win', id: 'parley-window', role: 'dialog', 'aria-labelledby': 'parley-title', hidden: '', onkeydown: function (e) { if (e.key === 'Escape') { close(); } } }, [
      h('header', {}, [avatar, h('div', {}, [title, sub]), closeBtn]),
      log, typing, h('div', { class: 'foot' }, [newBtn, endBtn]), compose, offForm
    ]);
    root.appendChild(style);
    root.appendChild(launcher);
    root.appendChild(bubble);
    root.appendChild(win);
    host.style.setProperty('--a', accent);
    d.body.appendChild(host);

    var welcome = flow.welcome_message || brand.greeting || '';
    if (brand.avatar_url && /^https?:\/\//.test(brand.avatar_url)) { avatar.src = brand.avatar_url; avatar.hidden = false; }
    if (welcome) log.appendChild(h('div', { class: 'm them', text: welcome }));

    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); onSubmit(e); }
    });
    input.addEventListener('input', onTyping);
    file.addEventListener('change', function () { var f = file.files && file.files[0]; file.value = ''; if (f) upload(f); });

    // ---------- showing and hiding ----------
    function show() { shown = true; launcher.hidden = false; }
    function open() {
      show(); isOpen = true; bubble.hidden = true; win.hidden = false;
      launcher.setAttribute('aria-expanded', 'true'); launcher.setAttribute('aria-label', 'Close chat');
      unread = 0; paintBadge(); mode();
      setTimeout(function () { (offForm.hidden ? input : offEmail).focus(); log.scrollTop = log.scrollHeight; }, 0);
      connect();
    }
    function close() {
      isOpen = false; win.hidden = true;
      try { w.sessionStorage.setItem(KEY + ':closed', '1'); } catch (e) { /* ignore */ }
      launcher.setAttribute('aria-expanded', 'false'); paintBadge(); launcher.focus();
    }
    function toggle() { if (isOpen) close(); else open(); }
    function paintBadge() {
      badge.hidden = !unread; badge.textContent = unread > 9 ? '9+' : String(unread);
      if (!isOpen) launcher.setAttribute('aria-label', unread ? 'Open chat, ' + unread + ' unread message' + (unread > 1 ? 's' : '') : 'Open chat');
    }
    // Offline form while nobody is available and the visitor has not written yet.
    function mode() {
      var form = !available && offline.collect_email !== false && !state.conv && !state.pending.length && !state.email && !ended;
      offForm.hidden = !form; compose.hidden = form || ended;
      endBtn.hidden = !state.conv || ended; newBtn.hidden = !ended;
    }
    P.open = open; P.close = close;

    // ---------- triggers ----------
    function fire() {
      if (shown) return;
      show();
      var dismissed = false;
      try { dismissed = w.sessionStorage.getItem(KEY + ':closed') === '1'; } catch (e) { /* ignore */ }
      if (flow.display === 'popup' && !dismissed) open();
      else if (welcome && !dismissed) { bubble.textContent = welcome; bubble.hidden = false; }
    }
    function arm() {
      var t = flow.trigger || { kind: 'on_load' };
      if (state.conv || state.pending.length) { show(); return; }
      if (t.kind === 'after_seconds') setTimeout(fire, (t.seconds || 0) * 1000);
      else if (t.kind === 'scroll_percent') {
        var onScroll = function () {
          var el = d.documentElement, max = el.scrollHeight - w.innerHeight;
          var pct = max <= 0 ? 100 : (w.scrollY / max) * 100;
          if (pct >= (t.percent || 0)) { w.removeEventListener('scroll', onScroll); fire(); }
        };
        w.addEventListener('scroll', onScroll, { passive: true });
        onScroll();
      } else if (t.kind === 'exit_intent') {
        var onOut = function (e) {
          if (!e.relatedTarget && e.clientY <= 0) { d.removeEventListener('mouseout', onOut); fire(); }
        };
        d.addEventListener('mouseout', onOut);
      } else fire();
    }

    // ---------- HTTP ----------
    function call(method, path, body, raw, type) {
      var headers = {};
      if (state.token) headers.Authorization = 'Bearer ' + state.token;
      if (body !== undefined) headers['Content-Type'] = type || 'application/json';
      return fetch(base + '/api/v1/widget/' + encodeURIComponent(ch) + path, {
        method: method, headers: headers, credentials: 'omit', mode: 'cors',
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body)
      }).then(function (r) {
        if (!r.ok) return r.json().then(function (p) { throw p; }, function () { throw { status: r.status }; });
        return raw === 'blob' ? r.blob() : r.json();
      });
    }

    function startSession(withIdentity) {
      var body = { page_url: location.href.slice(0, 2048), visitor_token: state.token || null };
      if (withIdentity && P.identity) body.identity = P.identity;
      return call('POST', '/sessions', body).then(function (s) {
        if (s.visitor_token !== state.token) { state.conv = null; state.seq = 0; }
        state.token = s.visitor_token;
        var open = s.conversations || [];
        if (state.conv && (s.conversation_ids || []).indexOf(state.conv) < 0) state.conv = null;
        if (!state.conv && open.length) state.conv = open[0].id;
        open.forEach(function (c) { if (c.id === state.conv) assigned(c); });
        save();
      }, function (p) {
        // A refused identity: carry on anonymously rather than not at all.
        if (withIdentity && p && p.code === 'invalid_identity') return startSession(false);
        throw p;
      });
    }

    // ---------- the socket ----------
    function connect() {
      if (ws || stopped || !state.token) return;
      clearTimeout(retryTimer);
      try {
        ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws/visitor?token=' + encodeURIComponent(state.token));
      } catch (e) { ws = null; return later(); }
      var sock = ws;
      ws.onopen = function () {
        if (sock !== ws) return;
        wsOpen = true; retry = 0;
        if (state.conv) frame({ type: 'resume', conversation_id: state.conv, after_seq: lastSeq });
        state.pending.forEach(sendPending);
      };
      ws.onmessage = function (e) {
        if (sock !== ws) return;
        var f; try { f = JSON.parse(e.data); } catch (x) { return; }
        try { onFrame(f); } catch (x) { /* a bad frame never stops the widget */ }
      };
      ws.onclose = function () {
        if (sock !== ws) return;
        ws = null; wsOpen = false; showTyping(null);
        if (!stopped) later();
      };
      ws.onerror = function () { /* onclose follows */ };
    }
    function later() {
      clearTimeout(retryTimer);
      var delay = Math.min(10000, 500 * Math.pow(2, retry++)) * (0.75 + Math.random() / 2);
      retryTimer = setTimeout(connect, delay);
    }
    function reconnectNow() { retry = 0; if (!ws && !stopped && (isOpen || state.conv || state.pending.length)) connect(); }
    w.addEventListener('online', reconnectNow);
    d.addEventListener('visibilitychange', function () { if (!d.hidden && isOpen && unread) { unread = 0; paintBadge(); } });
    function frame(f) { if (ws && wsOpen) { try { ws.send(JSON.stringify(f)); return true; } catch (e) { /* closed */ } } return false; }

    function onFrame(f) {
      // The first message's conversation can be routed (queue, assigned) before its ack.
      var cid = f.conversation_id || (f.conversation && f.conversation.id);
      if (!state.conv && cid && state.pending.length && (f.type === 'queue' || f.type === 'conversation')) { state.conv = cid; save(); mode(); }
      switch (f.type) {
        case 'ack': return onAck(f);
        case 'message': return onMessage(f);
        case 'typing':
          if (f.who && f.who.type !== 'visitor' && f.conversation_id === state.conv) showTyping(f.on ? f.who.name : null);
          return;
        case 'conversation':
          if (f.conversation && f.conversation.id === state.conv) {
            if (f.event === 'assigned') assigned(f.conversation);
            if (f.event === 'closed') onEnded();
          }
          return;
        case 'queue':
          if (f.conversation_id === state.conv && !state.assignee) {
            var est = f.estimate_seconds ? ' (about ' + Math.max(1, Math.round(f.estimate_seconds / 60)) + ' min)' : '';
            sub.textContent = f.position === 1 ? 'You are next in line' + est : 'You are number ' + f.position + ' in line' + est;
          }
          return;
        case 'error': return onError(f);
      }
    }

    function onAck(f) {
      var i = indexOf(f.client_id);
      if (i >= 0) state.pending.splice(i, 1);
      if (!state.conv || state.conv !== f.conversation_id) { state.conv = f.conversation_id; }
      save(); mode();
      var el = pendingEls[f.client_id]; delete pendingEls[f.client_id];
      if (!el) return;
      if (rendered[f.id]) { el.remove(); return; }
      el.classList.remove('pending'); rendered[f.id] = el;
    }
    function onMessage(f) {
      var m = f.message;
      if (!m || (state.conv && f.conversation_id !== state.conv)) return;
      if (!state.conv) { state.conv = f.conversation_id; save(); mode(); }
      if (m.seq > lastSeq) lastSeq = m.seq;
      if (rendered[m.id]) return;
      var mine = m.sender && m.sender.type === 'visitor';
      var el = bubbleFor(m.body, m.attachments, mine, mine ? null : m.sender && m.sender.name);
      rendered[m.id] = el; log.appendChild(el); scroll();
      if (!mine) {
        showTyping(null);
        if (!isOpen || d.hidden) { unread++; paintBadge(); show(); }
      }
    }
    function onError(f) {
      var i = indexOf(f.ref);
      if (i < 0) {
        if (f.code === 'not_found' && state.conv) { state.conv = null; save(); }
        return;
      }
      if (f.code === 'rate_limited' || f.code === 'internal') {
        var p = state.pending[i];
        return setTimeout(function () { if (indexOf(p.client_id) >= 0) sendPending(p); }, 1500);
      }
      var p2 = state.pending.splice(i, 1)[0]; save();
      var el = pendingEls[p2.client_id];
      if (el) { el.classList.add('failed'); el.appendChild(h('span', { class: 'who', text: 'Not sent: ' + (f.message || f.code) })); }
    }
    function indexOf(cid) { for (var i = 0; i < state.pending.length; i++) if (state.pending[i].client_id === cid) return i; return -1; }

    function assigned(c) {
      var a = c && c.assignee;
      state.assignee = a ? a.id : null;
      if (!a) return;
      title.textContent = a.name || brand.display_name || 'Support';
      sub.textContent = '';
      if (a.avatar_url && /^https?:\/\//.test(a.avatar_url)) { avatar.src = a.avatar_url; avatar.alt = ''; avatar.hidden = false; }
      if (a.meeting_link && /^https?:\/\//.test(a.meeting_link)) {
        sub.appendChild(h('a', { href: a.meeting_link, target: '_blank', rel: 'noopener noreferrer', text: 'Book a meeting' }));
      }
    }

    function showTyping(name) {
      clearTimeout(theirTyping);
      typing.textContent = name ? name + ' is typing…' : '';
      if (name) theirTyping = setTimeout(function () { typing.textContent = ''; }, 10000);
    }
    function onTyping() {
      if (!state.conv) return;
      var now = Date.now();
      if (!typingOn || now - typingSent > 2000) { typingOn = frame({ type: 'typing', conversation_id: state.conv, on: true }); typingSent = now; }
      clearTimeout(typingTimer);
      typingTimer = setTimeout(stopTyping, 3000);
    }
    function stopTyping() {
      clearTimeout(typingTimer);
      if (typingOn && state.conv) frame({ type: 'typing', conversation_id: state.conv, on: false });
      typingOn = false;
    }

    // ---------- messages ----------
    function bubbleFor(body, atts, mine, who) {
      var el = h('div', { class: 'm ' + (mine ? 'me' : 'them') });
      if (who) el.appendChild(h('span', { class: 'who', text: who }));
      else el.appendChild(h('span', { class: 'sr', text: mine ? 'You: ' : (brand.display_name || 'Support') + ': ' }));
      if (body) el.appendChild(d.createTextNode(body));
      (atts || []).forEach(function (a) { el.appendChild(attachmentEl(a)); });
      return el;
    }
    function attachmentEl(a) {
      var path = '/attachments/' + encodeURIComponent(a.id);
      if (/^image\/(png|jpeg|gif|webp)$/.test(a.content_type)) {
        var img = h('img', { alt: a.name || 'image' });
        call('GET', path, undefined, 'blob').then(function (b) { img.src = URL.createObjectURL(b); }, function () { img.alt = (a.name || 'image') + ' (unavailable)'; });
        return img;
      }
      return h('button', {
        class: 'file', type: 'button', text: '📎 ' + (a.name || 'file') + ' (' + kb(a.size) + ')',
        onclick: function () {
          call('GET', path, undefined, 'blob').then(function (b) {
            var link = h('a', { href: URL.createObjectURL(b), download: a.name || 'file' });
            root.appendChild(link); link.click(); link.remove();
          }, function () { /* stay quiet */ });
        }
      });
    }
    function kb(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MB' : Math.max(1, Math.round((n || 0) / 1024)) + ' KB'; }
    function scroll() { log.scrollTop = log.scrollHeight; }
    function sys(text) { log.appendChild(h('div', { class: 'm sys', text: text })); scroll(); }
    function newId() { return (w.crypto && w.crypto.randomUUID) ? w.crypto.randomUUID() : 'c' + Date.now().toString(36) + Math.random().toString(36).slice(2); }

    function queueSend(body, atts) {
      var p = { client_id: newId(), body: body, attachments: atts || [] };
      state.pending.push(p); save(); mode();
      var el = bubbleFor(body, p.attachments, true, null);
      el.classList.add('pending'); pendingEls[p.client_id] = el; log.appendChild(el); scroll();
      stopTyping();
      if (wsOpen) sendPending(p); else connect();
    }
    function sendPending(p) {
      var f = { type: 'send', client_id: p.client_id, body: p.body };
      if (state.conv) f.conversation_id = state.conv;
      if (p.attachments.length) f.attachments = p.attachments.map(function (a) { return a.id; });
      frame(f);
    }
    function onSubmit(e) {
      if (e && e.preventDefault) e.preventDefault();
      var body = input.value.trim();
      if (!body) return;
      input.value = '';
      queueSend(body);
    }
    function upload(f) {
      var note = h('div', { class: 'm sys', text: 'Uploading ' + f.name + '…' });
      log.appendChild(note); scroll();
      call('POST', '/uploads?name=' + encodeURIComponent(f.name), f, true, f.type || 'application/octet-stream').then(function (a) {
        note.remove(); queueSend('', [a]);
      }, function (p) {
        note.textContent = 'Could not send ' + f.name + ': ' + ((p && p.detail) || 'upload failed');
      });
    }
    function onOffline(e) {
      e.preventDefault();
      var email = offEmail.value.trim(), body = offMsg.value.trim();
      if (!email || !body) return;
      call('POST', '/contact', { email: email }).then(function () {
        state.email = email; save();
        queueSend(body);
        sys((offline.message ? offline.message + ' ' : '') + 'We will reply to ' + email + '.');
        mode(); input.focus();
      }, function (p) { sys((p && p.detail) || 'Could not send. Check your email address.'); });
    }

    // ---------- ending ----------
    function endChat() {
      if (!state.conv) return;
      call('POST', '/conversations/' + encodeURIComponent(state.conv) + '/end').then(onEnded, function () { /* quiet */ });
    }
    function onEnded() {
      if (ended) return;
      ended = true; stopTyping(); showTyping(null);
      sys('This chat has ended.');
      state.conv = null; state.assignee = null; state.pending = []; save();
      lastSeq = 0; mode();
      // A fresh socket: the next message starts a new conversation.
      stopped = true; if (ws) { var s = ws; ws = null; wsOpen = false; try { s.close(); } catch (e) { /* ignore */ } }
      newBtn.focus();
    }
    function newChat() {
      ended = false; stopped = false; rendered = {}; pendingEls = {};
      while (log.firstChild) log.removeChild(log.firstChild);
      if (welcome) log.appendChild(h('div', { class: 'm them', text: welcome }));
      title.textContent = brand.display_name || 'Support'; sub.textContent = '';
      mode(); input.focus(); connect();
    }

    // ---------- start ----------
    function go() {
      // Messages written before a reload and not yet acknowledged are shown and retried.
      state.pending.forEach(function (p) {
        var el = bubbleFor(p.body, p.attachments, true, null);
        el.classList.add('pending'); pendingEls[p.client_id] = el; log.appendChild(el);
      });
      startSession(true).then(function () {
        arm(); mode();
        if (state.conv || state.pending.length) connect();
        (P._queue || []).forEach(function (c) { if (c[0] === 'open') open(); else if (c[0] === 'close') close(); });
      }, function () { /* Parley unreachable or refused: stay hidden */ });
    }
    go();
  }
})();
