// The HTTP API, as the logged-in console user: the session cookie authenticates, and
// writes carry the CSRF header that login named.

const CSRF_KEY = 'parley.csrf';

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

export function setCsrf(token, header) {
  localStorage.setItem(CSRF_KEY, JSON.stringify({ token, header: header || 'X-CSRF-Token' }));
}

export function clearCsrf() {
  localStorage.removeItem(CSRF_KEY);
}

function csrf() {
  try {
    return JSON.parse(localStorage.getItem(CSRF_KEY) || 'null');
  } catch {
    return null;
  }
}

/** Listeners told when the session is gone (401 / CSRF failure). */
export const onSignedOut = new Set();

export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const c = csrf();
  if (method !== 'GET' && c) headers[c.header] = c.token;
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection.' });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if ((res.status === 401 && !path.startsWith('/auth/login') && !path.startsWith('/setup'))
        || err.code === 'csrf_failed') {
      for (const f of onSignedOut) f(err);
    }
    throw err;
  }
  return data;
}

export const get = (p) => api('GET', p);
export const post = (p, b = {}) => api('POST', p, b);
export const patch = (p, b) => api('PATCH', p, b);
export const put = (p, b = {}) => api('PUT', p, b);
export const del = (p) => api('DELETE', p);

/** Every item of a list endpoint (follows next_cursor; at most `max`). */
export async function all(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(path + sep + 'limit=200' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** Upload a file for a message (`POST /uploads`); resolves to the attachment object. */
export async function upload(file) {
  const c = csrf();
  const headers = { 'content-type': file.type || 'application/octet-stream' };
  if (c) headers[c.header] = c.token;
  let res;
  try {
    res = await fetch('/api/v1/uploads?name=' + encodeURIComponent(file.name || 'file'), {
      method: 'POST', headers, credentials: 'same-origin', body: file,
    });
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached.' });
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
