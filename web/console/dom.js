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

const ICONS = {
  link: 'M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.7 1.7M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7',
  clip: 'M21 11l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l9-9a3.7 3.7 0 0 1 5.2 5.2l-9 9a1.8 1.8 0 0 1-2.6-2.6L15.5 6',
  lock: 'M6 11h12v10H6zM8 11V7a4 4 0 0 1 8 0v4',
  inbox: 'M3 13h5l2 3h4l2-3h5M5 5h14l2 8v6H3v-6z',
  gear: 'M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-2.9 1.2V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-2.9-1.2l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1A1.7 1.7 0 0 0 3 15H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.2-2.9l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1A1.7 1.7 0 0 0 9 4.6V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 2.9 1.2l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0 1.2 2.9H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5.9z',
  check: 'M5 12l5 5L20 7',
  reopen: 'M3 12a9 9 0 1 0 3-6.7L3 8M3 3v5h5',
  chat: 'M21 12a8 8 0 0 1-11.6 7.1L3 21l1.9-6.4A8 8 0 1 1 21 12z',
};

/** A small stroke icon (inline SVG built with DOM calls). */
export function icon(name, size = 16) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '2');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}
