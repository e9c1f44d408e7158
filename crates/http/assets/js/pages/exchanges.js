// Exchanges: the paged listing with the add-exchange form, and an exchange's page (its
// bindings both ways, add a binding, publish a message, delete).

import { get, put, post, del, path } from '../api.js';
import { h, fill, href, link, section, facts, chip, toast, confirmDialog } from '../dom.js';
import { exchangeLabel, exchangePathName, tableText } from '../format.js';
import { pagedList } from '../list.js';
import { field, text, select, tableEditor, form, MESSAGE_PROPERTIES } from '../forms.js';
import { knownVhosts } from '../session.js';
import { features, bindingsTable } from './queues.js';

const TYPES = ['direct', 'fanout', 'topic', 'headers'];

export async function exchangesPage(ctx) {
  ctx.title('Exchanges');
  const vhost = ctx.vhost;
  const list = pagedList({
    key: 'exchanges',
    noun: 'exchanges',
    endpoint: () => (vhost ? path`exchanges/${vhost}` : 'exchanges'),
    columns: [
      { label: 'Name', sort: 'name', cell: (x) => link(exchangeLabel(x.name), 'exchanges', x.vhost, exchangePathName(x.name)) },
      vhost ? null : { label: 'Virtual host', sort: 'vhost', cell: (x) => x.vhost },
      { label: 'Type', sort: 'type', cell: (x) => chip(x.type, 'kind') },
      { label: 'Features', cell: features },
    ].filter(Boolean),
  });
  const args = tableEditor('Arguments', ['alternate-exchange']);
  const add = form({
    submit: 'Add exchange',
    children: [
      field('Virtual host', select('vhost', knownVhosts().map((v) => [v, v]), vhost || '/')),
      field('Name', text('name', { required: true, placeholder: 'events' })),
      field('Type', select('type', TYPES.map((t) => [t, t]), 'direct')),
      field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
      field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
      field('Internal', select('internal', [['false', 'No'], ['true', 'Yes']], 'false')),
      args.el,
    ],
    action: async (v) => {
      if (!v.name.trim()) throw new Error('An exchange needs a name.');
      await put(path`exchanges/${v.vhost}/${v.name}`, {
        type: v.type,
        durable: v.durable === 'true',
        auto_delete: v.auto_delete === 'true',
        internal: v.internal === 'true',
        arguments: args.value(),
      });
      args.reset();
      list.load();
      return `Exchange ${v.name} declared`;
    },
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Exchanges'),
      h('p', { class: 'muted subtitle' }, vhost ? `In virtual host ${vhost}` : 'In all virtual hosts')),
    section(null, list.el),
    h('details', { class: 'panel disclosure' }, h('summary', null, 'Add an exchange'), add));
  await ctx.every(list.load);
}

function publishForm(vhost, name) {
  const headers = tableEditor('Headers');
  const props = tableEditor('Properties', MESSAGE_PROPERTIES);
  const outcome = h('div', { class: 'publish-outcome', role: 'status', id: 'publish-outcome' });
  const f = form({
    title: null,
    submit: 'Publish message',
    reset: false,
    cls: 'publish-form',
    children: [
      field('Routing key', text('routing_key')),
      field('Delivery mode', select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1')),
      headers.el,
      props.el,
      field('Payload', h('textarea', { name: 'payload', rows: '5', spellcheck: 'false' })),
      field('Payload encoding', select('payload_encoding', [['string', 'String (UTF-8)'], ['base64', 'Base64']], 'string')),
    ],
    action: async (v) => {
      const properties = { delivery_mode: Number(v.delivery_mode), ...props.value() };
      const hs = headers.value();
      if (Object.keys(hs).length) properties.headers = hs;
      const r = await post(path`exchanges/${vhost}/${name}/publish`, {
        routing_key: v.routing_key,
        payload: v.payload,
        payload_encoding: v.payload_encoding,
        properties,
      });
      fill(outcome, r.routed
        ? h('span', { class: 'good' }, 'Message published and routed to at least one queue.')
        : h('span', { class: 'warn' }, 'Message published, but not routed: no binding matched.'));
      return null;
    },
  });
  return h('div', null, f, outcome);
}

export async function exchangePage(ctx) {
  const { vhost, name } = ctx.params;
  const base = path`exchanges/${vhost}/${name}`;
  const x = await get(base);
  if (!ctx.alive()) return;
  const label = exchangeLabel(x.name);
  ctx.title(`Exchange ${label}`);
  const isDefault = x.name === '';
  const builtIn = isDefault || x.name.startsWith('amq.');

  const from = h('div');
  const to = h('div');
  const loadBindings = async () => {
    const [source, destination] = await Promise.all([
      get(base + '/bindings/source'),
      get(base + '/bindings/destination'),
    ]);
    if (!ctx.alive()) return;
    fill(from, isDefault
      ? h('p', { class: 'muted' }, 'The default exchange is bound to every queue, with the queue\'s name as the routing key; these bindings cannot be changed.')
      : bindingsTable(vhost, source, loadBindings, { showSource: false, showDestination: true }));
    fill(to, bindingsTable(vhost, destination, loadBindings));
  };

  const args = tableEditor('Arguments');
  const bindForm = isDefault ? null : form({
    submit: 'Bind',
    children: [
      field('To', select('kind', [['q', 'Queue'], ['e', 'Exchange']], 'q')),
      field('Name', text('destination', { required: true })),
      field('Routing key', text('routing_key')),
      args.el,
    ],
    action: async (v) => {
      if (!v.destination.trim()) throw new Error('Name the queue or exchange to bind to.');
      await post(path`bindings/${vhost}/e/${x.name}/` + v.kind + path`/${v.destination}`,
        { routing_key: v.routing_key, arguments: args.value() });
      args.reset();
      await loadBindings();
      return 'Binding added';
    },
  });

  const deleteButton = builtIn ? null : h('button', {
    type: 'button', class: 'danger solid', id: 'delete-exchange',
    onclick: async () => {
      if (!await confirmDialog(`Delete the exchange ${x.name} and its bindings?`, 'Delete exchange')) return;
      try {
        await del(base);
        toast(`Exchange ${x.name} deleted`);
        location.hash = href('exchanges');
      } catch (e) { toast(e.message, 'bad'); }
    },
  }, 'Delete exchange');

  fill(ctx.main,
    h('div', { class: 'page-head' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/exchanges' }, 'Exchanges'), ' · virtual host ', h('code', null, vhost)),
      h('h1', null, 'Exchange ', h('span', { class: 'name' }, label)),
      h('p', { class: 'subtitle' }, chip(x.type, 'kind'), ' ', features(x))),
    h('div', { class: 'grid-2' },
      section('Details', facts([
        ['Virtual host', vhost],
        ['Type', x.type],
        ['Durable', x.durable ? 'yes' : 'no'],
        ['Auto delete', x.auto_delete ? 'yes' : 'no'],
        ['Internal', x.internal ? 'yes' : 'no'],
        ['Arguments', Object.keys(x.arguments || {}).length ? h('pre', { class: 'inline' }, tableText(x.arguments)) : h('span', { class: 'muted' }, 'none')],
      ])),
      section('Publish a message', x.internal
        ? h('p', { class: 'muted' }, 'Internal exchanges take messages only from other exchanges.')
        : publishForm(vhost, name))),
    section('Bindings from this exchange', from,
      bindForm ? h('details', { class: 'disclosure' }, h('summary', null, 'Add a binding'), bindForm) : null),
    section('Bindings to this exchange', to),
    deleteButton ? section('Delete', h('div', { class: 'danger-zone' },
      h('div', null, h('p', null, 'Deleting removes the exchange and every binding from or to it.'), deleteButton))) : null);
  await loadBindings();
  ctx.every(loadBindings);
}
