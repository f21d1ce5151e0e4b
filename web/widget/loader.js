/*! Parley chat widget loader (AGPL-3.0-or-later).
 * The tracking code: <script async src=".../widget.js" data-parley-channel="ID"></script>
 * It asks Parley which chatflow targets this page and, only if one does, loads the widget
 * (/static/widget/widget.js), which renders in a Shadow DOM. It defines one global,
 * window.Parley, and never throws or logs: if Parley is unreachable, nothing happens.
 * A site may set window.Parley = {identity: {email, name, hash}} before this script
 * (hash = hex HMAC-SHA256 of the email under the channel's identity secret), or use the
 * data-parley-email / data-parley-name / data-parley-hash attributes. */
(function () {
  'use strict';
  try {
    var w = window, d = document;
    var s = d.currentScript || d.querySelector('script[data-parley-channel]');
    var channel = s && s.getAttribute('data-parley-channel');
    if (!channel || !w.fetch || !w.WebSocket || !d.body || !d.body.attachShadow) return;
    var pre = w.Parley && typeof w.Parley === 'object' ? w.Parley : {};
    if (pre._loaded) return;
    var base = new URL(s.src, location.href).origin;
    var identity = pre.identity || null;
    var email = s.getAttribute('data-parley-email');
    if (email) identity = { email: email, name: s.getAttribute('data-parley-name') || undefined, hash: s.getAttribute('data-parley-hash') || '' };
    var queue = [];
    var api = {
      _loaded: true, version: 1, base: base, channel: channel, identity: identity,
      status: 'loading', // then 'hidden' (no chatflow here), 'shown' or 'unavailable'
      // Calls made before the widget is ready are queued and replayed.
      open: function () { queue.push(['open']); },
      close: function () { queue.push(['close']); },
      _queue: queue
    };
    w.Parley = api;
    var url = base + '/api/v1/widget/' + encodeURIComponent(channel) + '/config?page_url=' +
      encodeURIComponent(location.href.slice(0, 2048));
    fetch(url, { credentials: 'omit', mode: 'cors' }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (config) {
      api.status = !config ? 'unavailable' : config.chatflow ? 'shown' : 'hidden';
      if (api.status !== 'shown') return;
      api.config = config;
      var el = d.createElement('script');
      el.async = true;
      el.src = base + '/static/widget/widget.js';
      (d.head || d.body).appendChild(el);
    })['catch'](function () { api.status = 'unavailable'; /* stay quiet */ });
  } catch (e) { /* never break the host page */ }
})();
