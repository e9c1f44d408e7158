// The shell: sign-in, the sidebar and top bar, the virtual host chooser, and hash routing
// (#/queues/%2F/orders): each route renders into <main> and may poll while it is shown.

import { get, signIn, signOut, signedIn, whenUnauthorised } from './api.js';
import { h, fill, href } from './dom.js';
import { refreshVhosts, onVhostsChange } from './session.js';
import { startSampling, stopSampling, overviewPage } from './pages/overview.js';
import { queuesPage, queuePage } from './pages/queues.js';
import { exchangesPage, exchangePage } from './pages/exchanges.js';
import { connectionsPage, connectionPage, channelsPage } from './pages/connections.js';
import { usersPage, userPage, vhostsPage, vhostPage, permissionsPage } from './pages/admin.js';
import { policiesPage } from './pages/policies.js';

/** How often pages poll the API (RabbitMQ's UI and statistics interval: 5 s). */
const REFRESH_MS = 5000;
const VHOST_KEY = 'warren.vhost';

const routes = [
  { path: [], page: overviewPage, nav: 'overview' },
  { path: ['connections'], page: connectionsPage, nav: 'connections' },
  { path: ['connections', ':name'], page: connectionPage, nav: 'connections' },
  { path: ['channels'], page: channelsPage, nav: 'channels' },
  { path: ['exchanges'], page: exchangesPage, nav: 'exchanges' },
  { path: ['exchanges', ':vhost', ':name'], page: exchangePage, nav: 'exchanges' },
  { path: ['queues'], page: queuesPage, nav: 'queues' },
  { path: ['queues', ':vhost', ':name'], page: queuePage, nav: 'queues' },
  { path: ['users'], page: usersPage, nav: 'users', admin: true },
  { path: ['users', ':name'], page: userPage, nav: 'users', admin: true },
  { path: ['vhosts'], page: vhostsPage, nav: 'vhosts', admin: true },
  { path: ['vhosts', ':name'], page: vhostPage, nav: 'vhosts', admin: true },
  { path: ['permissions'], page: permissionsPage, nav: 'permissions', admin: true },
  { path: ['policies'], page: policiesPage, nav: 'policies', policymaker: true },
];

const NAV = [
  ['overview', 'Overview', []],
  ['connections', 'Connections', ['connections']],
  ['channels', 'Channels', ['channels']],
  ['exchanges', 'Exchanges', ['exchanges']],
  ['queues', 'Queues', ['queues']],
];
const ADMIN_NAV = [
  ['users', 'Users', ['users']],
  ['vhosts', 'Virtual hosts', ['vhosts']],
  ['permissions', 'Permissions', ['permissions']],
  ['policies', 'Policies', ['policies']],
];
/** What a policymaker who is not an administrator sees under Admin. */
const POLICYMAKER_NAV = [
  ['policies', 'Policies', ['policies']],
];

const app = document.getElementById('app');
let me = null; // {name, tags, admin, monitor}
let vhosts = [];
let current = null; // the route being shown: {timers, leave}
let shell = null; // {main, nav, vhostSelect, refreshed}

function selectedVhost() {
  const v = sessionStorage.getItem(VHOST_KEY);
  return v && vhosts.includes(v) ? v : '';
}

onVhostsChange((list) => {
  const changed = list.join('\n') !== vhosts.join('\n');
  vhosts = list;
  if (shell && changed) drawVhostSelect();
});

function drawVhostSelect() {
  const chosen = selectedVhost();
  fill(shell.vhostSelect,
    h('option', { value: '', selected: chosen === '' }, 'All virtual hosts'),
    vhosts.map((v) => h('option', { value: v, selected: v === chosen }, v)));
}

// ---- sign-in

function showLogin(message) {
  stopSampling();
  leaveRoute();
  shell = null;
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autofocus: true, spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password' });
  const error = h('div', { class: 'form-error', role: 'alert', hidden: !message }, message || '');
  const button = h('button', { type: 'submit', class: 'primary wide' }, 'Sign in');
  const formEl = h('form', { class: 'login-card', id: 'login' },
    h('div', { class: 'login-brand' }, h('img', { src: 'static/favicon.svg', alt: '', width: 36, height: 36 }),
      h('div', null, h('div', { class: 'brand-name' }, 'Warren'), h('div', { class: 'muted' }, 'Management'))),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Username'), user),
    h('label', { class: 'field' }, h('span', { class: 'label' }, 'Password'), password),
    error,
    button);
  formEl.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      const who = await signIn(user.value, password.value);
      await enter(who);
    } catch (err) {
      error.hidden = false;
      fill(error, err.status === 401 ? `Sign-in refused: ${err.message}` : err.message);
      button.disabled = false;
    }
  });
  fill(app, h('div', { class: 'login' }, formEl));
  document.title = 'Sign in · Warren';
  user.focus();
}

async function enter(who) {
  me = {
    name: who.name,
    tags: who.tags || [],
  };
  me.admin = me.tags.includes('administrator');
  me.monitor = me.admin || me.tags.includes('monitoring');
  me.policymaker = me.admin || me.tags.includes('policymaker');
  await refreshVhosts();
  buildShell();
  startSampling();
  route();
}

function logout(message) {
  signOut();
  me = null;
  showLogin(message);
}

// ---- the shell

function buildShell() {
  const navLink = ([key, label, segs]) =>
    h('a', { href: href(...segs), dataset: { nav: key } }, label);
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    NAV.map(navLink),
    me.admin ? [h('div', { class: 'nav-heading' }, 'Admin'), ADMIN_NAV.map(navLink)] : null,
    !me.admin && me.policymaker ? [h('div', { class: 'nav-heading' }, 'Admin'), POLICYMAKER_NAV.map(navLink)] : null);
  const vhostSelect = h('select', {
    'aria-label': 'Virtual host',
    id: 'vhost-select',
    onchange: () => { sessionStorage.setItem(VHOST_KEY, vhostSelect.value); route(); },
  });
  const refreshed = h('span', { class: 'refreshed muted', title: 'Pages refresh every 5 seconds' });
  const version = h('div', { class: 'sidebar-foot muted' });
  const main = h('main', { id: 'page', tabindex: '-1' });
  fill(app, h('div', { class: 'shell' },
    h('aside', { class: 'sidebar' },
      h('a', { class: 'brand', href: '#/' }, h('img', { src: 'static/favicon.svg', alt: '', width: 26, height: 26 }), 'Warren'),
      nav,
      version),
    h('div', { class: 'body' },
      h('header', { class: 'topbar' },
        h('label', { class: 'vhost-choice' }, h('span', { class: 'muted' }, 'Virtual host'), vhostSelect),
        h('span', { class: 'spacer' }),
        refreshed,
        h('span', { class: 'whoami', title: me.tags.join(', ') || 'no tags' },
          h('span', { class: 'avatar', 'aria-hidden': 'true' }, (me.name[0] || '?').toUpperCase()), me.name),
        h('button', { type: 'button', class: 'secondary small', id: 'logout', onclick: () => logout() }, 'Sign out')),
      main)));
  shell = { main, nav, vhostSelect, refreshed, version };
  drawVhostSelect();
  get('overview').then((o) => {
    fill(version, `${o.product_name || 'Warren'} ${o.product_version || ''}`, h('br'),
      `RabbitMQ ${o.rabbitmq_version} API`, h('br'), o.cluster_name || '');
  }).catch(() => {});
}

function leaveRoute() {
  if (!current) return;
  current.timers.forEach(clearInterval);
  current.leavers.forEach((f) => { try { f(); } catch { /* already gone */ } });
  current = null;
}

function match(segments) {
  for (const r of routes) {
    if (r.path.length !== segments.length) continue;
    const params = {};
    const ok = r.path.every((p, i) => {
      if (p.startsWith(':')) { params[p.slice(1)] = segments[i]; return true; }
      return p === segments[i];
    });
    if (ok) return { route: r, params };
  }
  return null;
}

function route() {
  if (!shell) return;
  leaveRoute();
  // Someone may have added or deleted a vhost meanwhile (here, elsewhere, over AMQP tools).
  refreshVhosts();
  const raw = location.hash.replace(/^#\/?/, '');
  let segments;
  try {
    segments = raw ? raw.split('/').map(decodeURIComponent) : [];
  } catch {
    segments = ['not found'];
  }
  const found = match(segments);
  const main = shell.main;
  for (const a of shell.nav.querySelectorAll('a')) {
    a.classList.toggle('active', Boolean(found) && a.dataset.nav === found.route.nav);
    if (found && a.dataset.nav === found.route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  fill(main);
  if (!found || (found.route.admin && !me.admin) || (found.route.policymaker && !me.policymaker)) {
    fill(main, h('div', { class: 'page-head' }, h('h1', null, 'Not found')),
      h('p', null, 'There is no such page. ', h('a', { href: '#/' }, 'Back to the overview.')));
    return;
  }
  const here = { timers: [], leavers: [] };
  current = here;
  const ctx = {
    main,
    params: found.params,
    vhost: selectedVhost(),
    me,
    alive: () => current === here,
    /** Runs fn now and then every REFRESH_MS while this page is shown and the tab visible. */
    every(fn, ms = REFRESH_MS) {
      const tick = async () => {
        if (current !== here || document.hidden) return;
        try {
          await fn();
          if (current === here) fill(shell.refreshed, 'Updated ' + new Date().toLocaleTimeString());
        } catch (e) {
          if (current === here) fill(shell.refreshed, 'Update failed: ' + e.message);
        }
      };
      here.timers.push(setInterval(tick, ms));
      return tick();
    },
    onLeave(fn) { here.leavers.push(fn); },
    title(text) { document.title = `${text} · Warren`; },
  };
  Promise.resolve(found.route.page(ctx)).catch((e) => {
    if (current !== here) return;
    fill(main, h('div', { class: 'page-head' }, h('h1', null, e.status === 404 ? 'Not found' : 'Something went wrong')),
      h('p', { class: 'form-error' }, e.message));
  });
  main.focus({ preventScroll: true });
}

whenUnauthorised(() => { if (me) logout('Your session ended: please sign in again.'); });
window.addEventListener('hashchange', route);

async function boot() {
  if (signedIn()) {
    try {
      await enter(await get('whoami'));
      return;
    } catch (e) {
      signOut();
      showLogin(e.status === 401 ? null : e.message);
      return;
    }
  }
  showLogin();
}

boot();
