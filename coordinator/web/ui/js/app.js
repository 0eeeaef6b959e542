// The dashboard's entry point: login, logout and the routes of the
// #/ fragment. Each page is a mount(main, ...params) that returns its
// unmount (timers and event streams stop there).

import {api, onUnauthorized} from './api.js';
import * as jobs from './jobs.js';
import * as job from './job.js';
import * as nodes from './nodes.js';
import * as submit from './submit.js';

const routes = [
  [/^#\/jobs$/, jobs.mount, 'jobs'],
  [/^#\/jobs\/([^/]+)$/, job.mount, 'jobs'],
  [/^#\/submit$/, submit.mount, 'submit'],
  [/^#\/nodes$/, nodes.mount, 'nodes'],
];

const $ = (id) => document.getElementById(id);
let unmount = null;

function route() {
  if (unmount) unmount();
  unmount = null;
  $('banner').hidden = true;
  for (const [re, mount, tab] of routes) {
    const m = location.hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === tab);
    unmount = mount($('main'), ...m.slice(1).map(decodeURIComponent)) || null;
    return;
  }
  location.replace('#/jobs');
}

function showApp() {
  $('login').hidden = true;
  $('top').hidden = false;
  $('main').hidden = false;
  route();
}

function showLogin(message) {
  if (unmount) unmount();
  unmount = null;
  $('top').hidden = true;
  $('main').hidden = true;
  $('main').replaceChildren();
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-token').focus();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('login-token');
  try {
    await api('/v1/session', {method: 'POST', body: {token: input.value}});
  } catch (err) {
    $('login-error').textContent = err.message;
    input.select();
    return;
  }
  input.value = '';
  showApp();
});

$('logout').addEventListener('click', async () => {
  try {
    await api('/v1/session', {method: 'DELETE'});
  } catch (err) {
    if (err.status !== 401) { // a 401: the session had ended already
      $('banner').textContent = 'Log out failed: ' + err.message;
      $('banner').hidden = false;
      return;
    }
  }
  showLogin('Logged out.');
});

// A 401 shows the login once; it says why unless the app was never shown.
onUnauthorized(() => {
  if ($('login').hidden) showLogin($('top').hidden ? '' : 'Your session has ended: sign in again.');
});

window.addEventListener('hashchange', () => {
  if ($('login').hidden) route();
});

// /v1/nodes answers on every coordinator, leader or not: it tells a
// valid session from none (a 401 has shown the login already).
api('/v1/nodes').then(showApp, (err) => {
  if (err.status !== 401) showApp();
});
