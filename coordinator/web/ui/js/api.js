// The coordinator's /v1 API, called with the session cookie.

import {clock} from './dom.js';

// APIError is a refused call: the HTTP status, the error code and message
// of the body (wire.APIError) and its field errors.
export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    let msg = e.message || 'HTTP ' + status;
    if (e.leader) msg += ' (the leader is ' + e.leader + ')';
    super(msg);
    this.status = status;
    this.code = e.code || '';
    this.fields = e.fields || [];
  }
}

let unauthorized = () => {};

// onUnauthorized sets what a 401 outside the login does (show the login).
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// api calls path and returns the decoded JSON body (null for 204), or
// throws an APIError.
export async function api(path, {method = 'GET', body} = {}) {
  const init = {method, cache: 'no-store', credentials: 'same-origin', headers: {}};
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, {error: {message: 'the coordinator cannot be reached (' + e.message + ')'}});
  }
  const date = Date.parse(res.headers.get('Date'));
  if (Math.abs(date - clock.now()) > 2000) clock.sync(date); // Date has whole seconds
  if (res.status === 401 && path !== '/v1/session') unauthorized();
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}

// poll runs fn now and then every ms after it settles, until the returned
// stop is called.
export function poll(ms, fn) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    await fn();
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// cancelJob asks before it cancels job id; it returns the new status, or
// null when the user said no.
export async function cancelJob(job) {
  if (!confirm('Cancel job ' + (job.name || job.id) + '? Frames already rendered are kept.')) return null;
  return api('/v1/jobs/' + encodeURIComponent(job.id) + '/cancel', {method: 'POST'});
}
