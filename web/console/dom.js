// Tiny DOM helpers. Every piece of user-supplied text goes in through textContent (or a
// Text node): nothing here ever parses a string as HTML.

/**
 * h('div.row.unread', {onclick, title, dataset: {id}}, child, 'text', [more])
 * Children: Nodes, strings/numbers (text), arrays, null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
    else if (k === 'href') setHref(el, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Append children (nodes, text, arrays) to `el`. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Only http(s) (and relative) links become hrefs: never javascript: or data:. */
export function safeUrl(url) {
  try {
    const u = new URL(String(url), location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:' ? u.href : null;
  } catch {
    return null;
  }
}

function setHref(el, url) {
  const safe = safeUrl(url);
  if (safe) el.href = safe;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/**
 * A message body as nodes: plain text with http(s) links made clickable and, when
 * `users` is given, `<@USER_ID>` mentions shown as "@Name" chips. Text only.
 */
export function richText(body, users) {
  const out = [];
  const parts = users ? String(body).split(/(<@[A-Za-z0-9_-]{1,64}>)/) : [String(body)];
  for (const part of parts) {
    const m = users && /^<@([A-Za-z0-9_-]{1,64})>$/.exec(part);
    if (m) {
      const u = users.get(m[1]);
      out.push(h('span.mention', { title: u ? u.email : m[1] }, '@' + (u ? u.name : 'unknown')));
      continue;
    }
    let last = 0;
    for (const match of part.matchAll(URL_RE)) {
      out.push(part.slice(last, match.index));
      out.push(h('a', { href: match[0], target: '_blank', rel: 'noopener noreferrer' }, match[0]));
      last = match.index + match[0].length;
    }
    out.push(part.slice(last));
  }
  return out.filter((x) => x !== '');
}

/** Plain-text form of a body: mentions as @Name (for previews and notifications). */
export function plainText(body, users) {
  return String(body).replace(/<@([A-Za-z0-9_-]{1,64})>/g, (_, id) => '@' + ((users && users.get(id)?.name) || 'unknown'));
}

/** Initials for an avatar. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] || '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

const HUES = [210, 260, 330, 20, 150, 190, 45, 290];
/** A round avatar: the image when there is a safe URL, else coloured initials. */
export function avatar(name, url, size = 28, extraClass = '') {
  const hue = HUES[[...String(name || '')].reduce((a, c) => a + c.charCodeAt(0), 0) % HUES.length];
  const el = h('span.avatar' + (extraClass ? '.' + extraClass : ''), {
    title: name || '',
    style: { width: size + 'px', height: size + 'px', fontSize: Math.round(size * 0.4) + 'px', background: `hsl(${hue} 55% 45%)` },
  });
  const safe = url && safeUrl(url);
  if (safe) {
    const img = h('img', { alt: '', referrerPolicy: 'no-referrer' });
    img.src = safe;
    img.addEventListener('error', () => { img.remove(); el.textContent = initials(name); });
    el.append(img);
  } else {
    el.textContent = initials(name);
  }
  return el;
}

/** "just now", "5m", "3h", "Mon", "12 Mar". */
export function ago(iso) {
  const t = new Date(iso).getTime();
  if (!t) return '';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 45) return 'now';
  if (s < 3600) return Math.round(s / 60) + 'm';
  if (s < 86400) return Math.round(s / 3600) + 'h';
  if (s < 6 * 86400) return new Date(t).toLocaleDateString(undefined, { weekday: 'short' });
  return new Date(t).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

/** Local time of day, or date and time when not today. */
export function clock(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

/** A friendly browser + OS from a User-Agent string. */
export function browserName(ua) {
  if (!ua) return null;
  const b = /Edg\/(\d+)/.exec(ua) ? 'Edge ' + /Edg\/(\d+)/.exec(ua)[1]
    : /OPR\/(\d+)/.exec(ua) ? 'Opera ' + /OPR\/(\d+)/.exec(ua)[1]
    : /Firefox\/(\d+)/.exec(ua) ? 'Firefox ' + /Firefox\/(\d+)/.exec(ua)[1]
    : /Chrom(?:e|ium)\/(\d+)/.exec(ua) ? 'Chrome ' + /Chrom(?:e|ium)\/(\d+)/.exec(ua)[1]
    : /Version\/(\d+).*Safari/.exec(ua) ? 'Safari ' + /Version\/(\d+)/.exec(ua)[1]
    : null;
  const os = /Windows/.test(ua) ? 'Windows' : /iPhone|iPad/.test(ua) ? 'iOS' : /Android/.test(ua) ? 'Android'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : null;
  return [b || 'Unknown browser', os].filter(Boolean).join(' on ');
}

/** Debounce `fn` by `ms`. */
export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
