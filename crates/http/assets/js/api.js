// The management API, over fetch with HTTP basic auth. The credentials live in
// sessionStorage: they last as long as the tab and are never written to disk by us.

const KEY = 'warren.credentials';

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
  }
}

function basic(user, password) {
  const utf8 = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of utf8) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** A path under /api/ with each interpolated value percent-encoded as one segment. */
export function path(strings, ...values) {
  let out = '';
  strings.forEach((s, i) => {
    out += s;
    if (i < values.length) out += segment(values[i]);
  });
  return out;
}

export function segment(value) {
  return encodeURIComponent(String(value));
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

let onUnauthorised = () => {};
export function whenUnauthorised(fn) { onUnauthorised = fn; }

async function request(method, apiPath, body, headers, auth) {
  const h = {
    Accept: 'application/json',
    // Keeps the browser's own login dialog away (the API then leaves out WWW-Authenticate).
    'X-Requested-With': 'XMLHttpRequest',
    Authorization: 'Basic ' + auth,
    ...headers,
  };
  const init = { method, headers: h, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch('api/' + apiPath, init);
  } catch (e) {
    throw new ApiError(0, 'The broker did not answer: ' + e.message);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const reason = data && typeof data === 'object' ? (data.reason || data.error) : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, reason);
  }
  return data;
}

/** Checks credentials with /api/whoami and keeps them if they work. */
export async function signIn(user, password) {
  const auth = basic(user, password);
  const me = await request('GET', 'whoami', undefined, {}, auth);
  sessionStorage.setItem(KEY, auth);
  return me;
}

export async function api(method, apiPath, body, headers = {}) {
  const auth = sessionStorage.getItem(KEY);
  if (auth === null) {
    onUnauthorised();
    throw new ApiError(401, 'Not signed in');
  }
  try {
    return await request(method, apiPath, body, headers, auth);
  } catch (e) {
    // Only a failed login means the credentials went bad; other 401s are refused operations.
    if (e.status === 401 && /Login failed/.test(e.message)) onUnauthorised();
    throw e;
  }
}

export const get = (p) => api('GET', p);
export const put = (p, body = {}) => api('PUT', p, body);
export const post = (p, body = {}) => api('POST', p, body);
export const del = (p, headers) => api('DELETE', p, undefined, headers);
