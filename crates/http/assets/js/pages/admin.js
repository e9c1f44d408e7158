// Administration: users (add, delete, tags, password), virtual hosts (add, delete) and
// permissions (set, clear). Administrators only, as in the API.

import { get, put, del, path } from '../api.js';
import { h, fill, link, href, section, table, facts, chip, toast, confirmDialog } from '../dom.js';
import { num } from '../format.js';
import { pagedList } from '../list.js';
import { field, text, select, form } from '../forms.js';
import { knownVhosts, refreshVhosts } from '../session.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

function tagChips(tags) {
  const list = Array.isArray(tags) ? tags : String(tags || '').split(',').filter(Boolean);
  return list.length ? h('span', { class: 'chips' }, list.map((t) => chip(t, 'tag'))) : h('span', { class: 'muted' }, 'none');
}

/** A text field for tags with a button per well-known tag that adds it. */
function tagsField(initial = '') {
  const input = text('tags', { value: initial, placeholder: 'administrator, monitoring' });
  const add = (t) => () => {
    const have = input.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!have.includes(t)) have.push(t);
    input.value = have.join(', ');
  };
  return field('Tags', h('span', { class: 'tags-input' }, input,
    h('span', { class: 'tag-buttons' }, TAGS.map((t) => h('button', { type: 'button', class: 'link-button', onclick: add(t) }, t)))),
  'Comma-separated. This UI lets in users tagged management, policymaker, monitoring or administrator.');
}

const tagList = (s) => s.split(',').map((t) => t.trim()).filter(Boolean);

function permissionRows(perms, reload, { showUser = true, showVhost = true } = {}) {
  return perms.map((p) => [
    showUser ? link(p.user, 'users', p.user) : null,
    showVhost ? link(p.vhost, 'vhosts', p.vhost) : null,
    h('code', null, p.configure),
    h('code', null, p.write),
    h('code', null, p.read),
    h('button', {
      type: 'button', class: 'secondary small',
      onclick: async () => {
        if (!await confirmDialog(`Clear the permissions of ${p.user} in ${p.vhost}?`, 'Clear')) return;
        try {
          await del(path`permissions/${p.vhost}/${p.user}`);
          toast('Permissions cleared');
          reload();
        } catch (e) { toast(e.message, 'bad'); }
      },
    }, 'Clear'),
  ].filter((c) => c !== null));
}

function permissionColumns({ showUser = true, showVhost = true } = {}) {
  return [
    showUser ? { label: 'User' } : null,
    showVhost ? { label: 'Virtual host' } : null,
    { label: 'Configure' }, { label: 'Write' }, { label: 'Read' }, { label: '', cls: 'actions-col' },
  ].filter(Boolean);
}

/** The set-permission form; `fixed` pins the user or the vhost. */
function permissionForm(users, reload, fixed = {}) {
  const children = [];
  if (!fixed.user) children.push(field('User', select('user', users.map((u) => [u, u]), users[0])));
  if (!fixed.vhost) children.push(field('Virtual host', select('vhost', knownVhosts().map((v) => [v, v]), '/')));
  children.push(
    field('Configure regexp', text('configure', { value: '.*' })),
    field('Write regexp', text('write', { value: '.*' })),
    field('Read regexp', text('read', { value: '.*' })));
  return form({
    title: 'Set permission',
    submit: 'Set permission',
    cls: 'permission-form',
    children,
    action: async (v, el) => {
      const user = fixed.user || v.user;
      const vhost = fixed.vhost || v.vhost;
      await put(path`permissions/${vhost}/${user}`, { configure: v.configure, write: v.write, read: v.read });
      await reload();
      setTimeout(() => {
        for (const n of ['configure', 'write', 'read']) el.elements[n].value = '.*';
      });
      return `Permissions of ${user} in ${vhost} set`;
    },
  });
}

// ---- users

export async function usersPage(ctx) {
  ctx.title('Users');
  const perms = await get('permissions');
  const access = new Map();
  for (const p of perms) access.set(p.user, [...(access.get(p.user) || []), p.vhost]);
  const list = pagedList({
    key: 'users',
    noun: 'users',
    endpoint: () => 'users',
    columns: [
      { label: 'Name', sort: 'name', cell: (u) => link(u.name, 'users', u.name) },
      { label: 'Tags', cell: (u) => tagChips(u.tags) },
      { label: 'Can access virtual hosts', cell: (u) => (access.get(u.name) || []).join(', ') || h('span', { class: 'muted' }, 'none') },
      { label: 'Has password', cell: (u) => (u.password_hash ? 'yes' : 'no') },
    ],
  });
  const add = form({
    title: 'Add a user',
    submit: 'Add user',
    cls: 'add-user',
    children: [
      field('Username', text('name', { required: true })),
      field('Password', h('input', { type: 'password', name: 'password', autocomplete: 'new-password' }), 'Leave empty for a user who cannot log in with a password.'),
      tagsField(),
    ],
    action: async (v) => {
      if (!v.name.trim()) throw new Error('A user needs a name.');
      const body = { tags: tagList(v.tags) };
      if (v.password) body.password = v.password;
      await put(path`users/${v.name}`, body);
      list.load();
      return `User ${v.name} added`;
    },
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Users')),
    section(null, list.el),
    section(null, add));
  await ctx.every(list.load);
}

export async function userPage(ctx) {
  const { name } = ctx.params;
  ctx.title(`User ${name}`);
  let user = await get(path`users/${name}`);
  const users = [name];
  const perms = h('div');
  const head = h('div', { class: 'page-head' });
  const drawHead = () => fill(head,
    h('div', { class: 'crumbs' }, h('a', { href: '#/users' }, 'Users')),
    h('h1', null, 'User ', h('span', { class: 'name' }, user.name)),
    h('p', { class: 'subtitle' }, tagChips(user.tags)));
  const loadPerms = async () => {
    const ps = await get(path`users/${name}/permissions`);
    if (ctx.alive()) fill(perms, table(permissionColumns({ showUser: false }), permissionRows(ps, loadPerms, { showUser: false }), { empty: 'No permissions: this user can use no virtual host.' }));
  };
  const update = form({
    title: 'Update this user',
    submit: 'Update user',
    reset: false,
    cls: 'update-user',
    children: [
      field('New password', h('input', { type: 'password', name: 'password', autocomplete: 'new-password' }), 'Leave empty to keep the password.'),
      tagsField((user.tags || []).join(', ')),
    ],
    action: async (v, el) => {
      const body = { tags: tagList(v.tags) };
      if (v.password) body.password = v.password;
      await put(path`users/${name}`, body);
      el.elements.password.value = '';
      user = await get(path`users/${name}`);
      drawHead();
      return `User ${name} updated`;
    },
  });
  const remove = h('button', {
    type: 'button', class: 'danger solid', id: 'delete-user',
    onclick: async () => {
      if (!await confirmDialog(`Delete the user ${name}? Their connections stay open until they close.`, 'Delete user')) return;
      try {
        await del(path`users/${name}`);
        toast(`User ${name} deleted`);
        location.hash = href('users');
      } catch (e) { toast(e.message, 'bad'); }
    },
  }, 'Delete user');
  drawHead();
  fill(ctx.main, head,
    section('Permissions', perms, permissionForm(users, loadPerms, { user: name })),
    h('div', { class: 'grid-2' }, section(null, update),
      section('Delete', h('div', { class: 'danger-zone' }, h('div', null, h('p', null, 'Deleting a user removes their permissions too.'), remove)))));
  await loadPerms();
}

// ---- virtual hosts

export async function vhostsPage(ctx) {
  ctx.title('Virtual hosts');
  const list = pagedList({
    key: 'vhosts',
    noun: 'virtual hosts',
    endpoint: () => 'vhosts',
    columns: [
      { label: 'Name', sort: 'name', cell: (v) => link(v.name, 'vhosts', v.name) },
      { label: 'Description', cell: (v) => v.description || '' },
      { label: 'Tags', cell: (v) => tagChips(v.tags) },
      { label: 'Ready', sort: 'messages_ready', num: true, cell: (v) => num(v.messages_ready) },
      { label: 'Unacked', sort: 'messages_unacknowledged', num: true, cell: (v) => num(v.messages_unacknowledged) },
      { label: 'Total', sort: 'messages', num: true, cell: (v) => num(v.messages) },
    ],
  });
  const add = form({
    title: 'Add a virtual host',
    submit: 'Add virtual host',
    cls: 'add-vhost',
    children: [
      field('Name', text('name', { required: true })),
      field('Description', text('description')),
      field('Tags', text('tags', { placeholder: 'production, eu' })),
    ],
    action: async (v) => {
      if (!v.name.trim()) throw new Error('A virtual host needs a name.');
      await put(path`vhosts/${v.name}`, { description: v.description, tags: tagList(v.tags) });
      await refreshVhosts();
      list.load();
      return `Virtual host ${v.name} added`;
    },
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Virtual hosts')),
    section(null, list.el),
    section(null, add));
  await ctx.every(list.load);
}

export async function vhostPage(ctx) {
  const { name } = ctx.params;
  ctx.title(`Virtual host ${name}`);
  const v = await get(path`vhosts/${name}`);
  const users = (await get('users')).map((u) => u.name).sort();
  const perms = h('div');
  const loadPerms = async () => {
    const ps = await get(path`vhosts/${name}/permissions`);
    if (ctx.alive()) fill(perms, table(permissionColumns({ showVhost: false }), permissionRows(ps, loadPerms, { showVhost: false }), { empty: 'No user may use this virtual host.' }));
  };
  const remove = h('button', {
    type: 'button', class: 'danger solid', id: 'delete-vhost',
    onclick: async () => {
      if (!await confirmDialog(`Delete the virtual host ${name} with all its queues, exchanges and messages? Its connections are closed.`, 'Delete virtual host')) return;
      try {
        await del(path`vhosts/${name}`);
        await refreshVhosts();
        toast(`Virtual host ${name} deleted`);
        location.hash = href('vhosts');
      } catch (e) { toast(e.message, 'bad'); }
    },
  }, 'Delete virtual host');
  fill(ctx.main,
    h('div', { class: 'page-head' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/vhosts' }, 'Virtual hosts')),
      h('h1', null, 'Virtual host ', h('span', { class: 'name' }, v.name)),
      h('p', { class: 'subtitle' }, v.description || '', ' ', tagChips(v.tags))),
    h('div', { class: 'grid-2' },
      section('Messages', facts([
        ['Ready', num(v.messages_ready)],
        ['Unacked', num(v.messages_unacknowledged)],
        ['Total', num(v.messages)],
        ['Default queue type', v.default_queue_type],
      ])),
      section('Delete', h('div', { class: 'danger-zone' }, h('div', null, h('p', null, 'Deleting removes everything in it.'), remove)))),
    section('Permissions', perms, users.length ? permissionForm(users, loadPerms, { vhost: name }) : null));
  await loadPerms();
}

// ---- permissions

export async function permissionsPage(ctx) {
  ctx.title('Permissions');
  const users = (await get('users')).map((u) => u.name).sort();
  const holder = h('div');
  const load = async () => {
    const ps = await get('permissions');
    if (ctx.alive()) fill(holder, table(permissionColumns(), permissionRows(ps, load), { empty: 'No permissions set.' }));
  };
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Permissions'),
      h('p', { class: 'muted subtitle' }, 'What each user may configure, write to and read from, per virtual host: regular expressions over resource names.')),
    section(null, holder),
    section(null, users.length ? permissionForm(users, load) : h('p', { class: 'muted' }, 'Add a user first.')));
  await ctx.every(load);
}
