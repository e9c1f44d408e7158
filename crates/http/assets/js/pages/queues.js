// Queues: the paged listing with the add-queue form, and a queue's own page (counts,
// consumers, bindings, get messages, purge, delete).

import { get, put, post, del, path } from '../api.js';
import { h, fill, link, href, section, table, facts, chip, toast, confirmDialog } from '../dom.js';
import { num, rate, bytes, exchangeLabel, tableText } from '../format.js';
import { pagedList } from '../list.js';
import { field, text, select, tableEditor, form, QUEUE_ARGUMENTS } from '../forms.js';
import { knownVhosts } from '../session.js';

/** Short marks for a queue's or an exchange's flags; each explains itself on hover. */
export function features(item) {
  const mark = (label, title) => {
    const c = chip(label, 'feature');
    c.title = title;
    return c;
  };
  const args = item.arguments && Object.keys(item.arguments).length ? item.arguments : null;
  return h('span', { class: 'chips' },
    item.durable ? mark('D', 'Durable') : null,
    item.auto_delete ? mark('AD', 'Auto-delete') : null,
    item.exclusive ? mark('Excl', 'Exclusive') : null,
    item.internal ? mark('I', 'Internal') : null,
    args ? mark('Args', tableText(args)) : null);
}

const stat = (item, k) => (item.message_stats ? item.message_stats[k] : undefined);

export async function queuesPage(ctx) {
  ctx.title('Queues');
  const vhost = ctx.vhost;
  const columns = [
    { label: 'Name', sort: 'name', cell: (q) => link(q.name || '(unnamed)', 'queues', q.vhost, q.name) },
    vhost ? null : { label: 'Virtual host', sort: 'vhost', cell: (q) => q.vhost },
    { label: 'Features', cell: features },
    { label: 'Ready', sort: 'messages_ready', num: true, cell: (q) => num(q.messages_ready) },
    { label: 'Unacked', sort: 'messages_unacknowledged', num: true, cell: (q) => num(q.messages_unacknowledged) },
    { label: 'Total', sort: 'messages', num: true, cell: (q) => num(q.messages) },
    { label: 'Consumers', sort: 'consumers', num: true, cell: (q) => num(q.consumers) },
    { label: 'Incoming', sort: 'message_stats.publish_details.rate', num: true, cell: (q) => rate(stat(q, 'publish_details')) },
    { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, cell: (q) => rate(stat(q, 'deliver_get_details')) },
    { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, cell: (q) => rate(stat(q, 'ack_details')) },
  ].filter(Boolean);
  const list = pagedList({
    key: 'queues',
    noun: 'queues',
    endpoint: () => (vhost ? path`queues/${vhost}` : 'queues'),
    columns,
    columnsParam: 'name,vhost,durable,auto_delete,exclusive,arguments,consumers,messages,'
      + 'messages_ready,messages_unacknowledged,message_stats.publish_details,'
      + 'message_stats.deliver_get_details,message_stats.ack_details',
  });
  const args = tableEditor('Arguments', QUEUE_ARGUMENTS);
  const vhostChoice = select('vhost', knownVhosts().map((v) => [v, v]), vhost || '/');
  const add = form({
    submit: 'Add queue',
    children: [
      field('Virtual host', vhostChoice),
      field('Name', text('name', { required: true, placeholder: 'orders' })),
      field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
      field('Auto delete', select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false')),
      args.el,
    ],
    action: async (v) => {
      if (!v.name.trim()) throw new Error('A queue needs a name.');
      await put(path`queues/${v.vhost}/${v.name}`, {
        durable: v.durable === 'true',
        auto_delete: v.auto_delete === 'true',
        arguments: args.value(),
      });
      args.reset();
      list.load();
      return `Queue ${v.name} declared`;
    },
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Queues'),
      h('p', { class: 'muted subtitle' }, vhost ? `In virtual host ${vhost}` : 'In all virtual hosts')),
    section(null, list.el),
    h('details', { class: 'panel disclosure' }, h('summary', null, 'Add a queue'), add));
  await ctx.every(list.load);
}

function consumersTable(q) {
  const rows = (q.consumer_details || []).map((c) => [
    h('code', null, c.consumer_tag),
    link(c.channel_details.name, 'connections', c.channel_details.connection_name),
    c.ack_required ? 'manual' : 'auto',
    num(c.prefetch_count),
    c.exclusive ? 'yes' : 'no',
    c.activity_status || 'up',
  ]);
  return table([
    { label: 'Consumer tag' }, { label: 'Channel' }, { label: 'Ack' },
    { label: 'Prefetch', num: true }, { label: 'Exclusive' }, { label: 'Status' },
  ], rows, { empty: 'No consumers.' });
}

function bindingsTable(vhost, bindings, reload, { showSource = true, showDestination = false } = {}) {
  const rows = bindings.map((b) => {
    const implicit = b.source === '';
    const unbind = implicit
      ? h('span', { class: 'muted small' }, 'implicit')
      : h('button', {
        type: 'button',
        class: 'secondary small',
        onclick: async () => {
          try {
            const kind = b.destination_type === 'queue' ? 'q' : 'e';
            await del(path`bindings/${vhost}/e/${b.source}/${kind}/${b.destination}/${b.properties_key}`);
            toast('Binding removed');
            reload();
          } catch (e) {
            toast(e.message, 'bad');
          }
        },
      }, 'Unbind');
    const dest = b.destination_type === 'queue'
      ? link(b.destination, 'queues', vhost, b.destination)
      : link(b.destination, 'exchanges', vhost, b.destination);
    return [
      showSource ? (implicit ? h('span', { class: 'muted' }, exchangeLabel('')) : link(b.source, 'exchanges', vhost, b.source)) : null,
      showDestination ? h('span', null, dest, ' ', chip(b.destination_type, 'kind')) : null,
      h('code', null, b.routing_key),
      h('pre', { class: 'inline' }, tableText(b.arguments)),
      unbind,
    ].filter((c) => c !== null);
  });
  const cols = [
    showSource ? { label: 'From exchange' } : null,
    showDestination ? { label: 'To' } : null,
    { label: 'Routing key' }, { label: 'Arguments' }, { label: '', cls: 'actions-col' },
  ].filter(Boolean);
  return table(cols, rows, { empty: 'No bindings.' });
}
export { bindingsTable };

/** An `<input list>` of the exchanges in a vhost, for binding forms. */
export function exchangeChooser(vhost, name) {
  const id = 'exchanges-' + Math.random().toString(36).slice(2);
  const input = text(name, { list: id, required: true, placeholder: 'amq.direct' });
  const options = h('datalist', { id });
  get(path`exchanges/${vhost}` + '?columns=name').then((xs) => {
    fill(options, xs.filter((x) => x.name !== '').map((x) => h('option', { value: x.name })));
  }).catch(() => {});
  return h('span', { class: 'combo' }, input, options);
}

function messageCard(m, i) {
  const props = m.properties || {};
  const propRows = Object.entries(props).map(([k, v]) => [k, typeof v === 'object' ? tableText(v) : String(v)]);
  return h('article', { class: 'message' },
    h('header', null, h('strong', null, `Message ${i + 1}`),
      m.redelivered ? chip('redelivered', 'warn') : null,
      h('span', { class: 'muted small' }, `${num(m.message_count)} left in the queue`)),
    facts([
      ['Exchange', exchangeLabel(m.exchange)],
      ['Routing key', h('code', null, m.routing_key)],
      ['Properties', propRows.length ? h('pre', { class: 'inline' }, propRows.map(([k, v]) => `${k}: ${v}`).join('\n')) : h('span', { class: 'muted' }, 'none')],
      ['Payload', `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
    ]),
    h('pre', { class: 'payload' }, m.payload));
}

export async function queuePage(ctx) {
  const { vhost, name } = ctx.params;
  ctx.title(`Queue ${name}`);
  const base = path`queues/${vhost}/${name}`;
  let q = await get(base);
  if (!ctx.alive()) return;

  const head = h('div', { class: 'page-head' });
  const stats = h('div', { class: 'stats' });
  const details = h('div');
  const consumers = h('div');
  const bindings = h('div');

  const drawHead = () => fill(head,
    h('div', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' · virtual host ', h('code', null, vhost)),
    h('h1', null, 'Queue ', h('span', { class: 'name' }, q.name)),
    h('p', { class: 'subtitle' }, chip(q.type || 'classic', 'kind'), ' ', features(q)));

  const drawStats = () => {
    fill(stats,
      statBox('Ready', num(q.messages_ready)),
      statBox('Unacked', num(q.messages_unacknowledged)),
      statBox('Total', num(q.messages)),
      statBox('Consumers', num(q.consumers)),
      statBox('Incoming', rate(stat(q, 'publish_details'))),
      statBox('Deliver / get', rate(stat(q, 'deliver_get_details'))),
      statBox('Ack', rate(stat(q, 'ack_details'))),
      statBox('Memory', bytes(q.memory)));
    fill(details, facts([
      ['Virtual host', vhost],
      ['Durable', q.durable ? 'yes' : 'no'],
      ['Auto delete', q.auto_delete ? 'yes' : 'no'],
      ['Exclusive', q.exclusive ? (q.owner_pid_details ? link(q.owner_pid_details.name, 'connections', q.owner_pid_details.name) : 'yes') : 'no'],
      ['Arguments', Object.keys(q.arguments || {}).length ? h('pre', { class: 'inline' }, tableText(q.arguments)) : h('span', { class: 'muted' }, 'none')],
      ['Policy', q.policy || h('span', { class: 'muted' }, 'none')],
      ['Operator policy', q.operator_policy || h('span', { class: 'muted' }, 'none')],
      ['Effective policy definition', Object.keys(q.effective_policy_definition || {}).length
        ? h('pre', { class: 'inline' }, tableText(q.effective_policy_definition)) : h('span', { class: 'muted' }, 'none')],
      ['Ready bytes', bytes(q.message_bytes_ready)],
      ['Published', num(stat(q, 'publish'))],
      ['Delivered', num(stat(q, 'deliver_get'))],
      ['State', q.state],
    ]));
    fill(consumers, consumersTable(q));
  };

  const loadBindings = async () => {
    const bs = await get(base + '/bindings');
    if (ctx.alive()) fill(bindings, bindingsTable(vhost, bs, loadBindings));
  };

  const args = tableEditor('Arguments');
  const bindForm = form({
    submit: 'Bind',
    children: [
      field('From exchange', exchangeChooser(vhost, 'source')),
      field('Routing key', text('routing_key')),
      args.el,
    ],
    action: async (v) => {
      if (!v.source.trim()) throw new Error('Name the exchange to bind from.');
      await post(path`bindings/${vhost}/e/${v.source}/q/${name}`, { routing_key: v.routing_key, arguments: args.value() });
      args.reset();
      await loadBindings();
      return 'Binding added';
    },
  });

  const results = h('div', { class: 'messages', id: 'get-results' });
  const getForm = form({
    submit: 'Get messages',
    reset: false,
    cls: 'get-form',
    children: [
      field('Ack mode', select('ackmode', [
        ['ack_requeue_true', 'Nack message, requeue'],
        ['ack_requeue_false', 'Automatic ack (remove)'],
        ['reject_requeue_true', 'Reject, requeue'],
        ['reject_requeue_false', 'Reject, no requeue (remove)'],
      ], 'ack_requeue_true')),
      field('Encoding', select('encoding', [['auto', 'Auto: string or base64'], ['base64', 'base64']], 'auto')),
      field('Messages', h('input', { type: 'number', name: 'count', min: '1', max: '1000', value: '1' })),
      field('Truncate at', h('input', { type: 'number', name: 'truncate', min: '0', value: '50000' }), 'bytes'),
    ],
    action: async (v) => {
      const got = await post(base + '/get', {
        count: Number(v.count) || 1,
        ackmode: v.ackmode,
        encoding: v.encoding,
        truncate: v.truncate === '' ? null : Number(v.truncate),
      });
      fill(results, got.length ? got.map(messageCard) : h('p', { class: 'muted', id: 'queue-empty' }, 'The queue is empty.'));
      refresh();
      return null;
    },
  });

  const danger = section('Purge or delete',
    h('div', { class: 'danger-zone' },
      h('div', null,
        h('p', null, 'Purging removes every ready message; unacknowledged ones stay with their consumers.'),
        h('button', {
          type: 'button', class: 'danger', id: 'purge',
          onclick: async () => {
            if (!await confirmDialog(`Purge every ready message from ${name}?`, 'Purge')) return;
            try {
              await del(base + '/contents');
              toast(`Queue ${name} purged`);
              refresh();
            } catch (e) { toast(e.message, 'bad'); }
          },
        }, 'Purge messages')),
      h('div', null,
        h('p', null, 'Deleting removes the queue, its messages and its bindings.'),
        h('button', {
          type: 'button', class: 'danger solid', id: 'delete-queue',
          onclick: async () => {
            if (!await confirmDialog(`Delete the queue ${name} and its ${num(q.messages)} messages?`, 'Delete queue')) return;
            try {
              await del(base);
              toast(`Queue ${name} deleted`);
              location.hash = href('queues');
            } catch (e) { toast(e.message, 'bad'); }
          },
        }, 'Delete queue'))));

  drawHead();
  drawStats();
  fill(ctx.main, head, stats,
    h('div', { class: 'grid-2' }, section('Details', details), section('Consumers', consumers)),
    section('Bindings', bindings, h('details', { class: 'disclosure' }, h('summary', null, 'Add a binding'), bindForm)),
    section('Get messages', h('p', { class: 'muted small' }, 'Getting messages is destructive unless they are requeued; requeued messages come back marked redelivered.'), getForm, results),
    danger);

  const refresh = async () => {
    try {
      q = await get(base);
    } catch (e) {
      if (e.status === 404 && ctx.alive()) fill(stats, h('p', { class: 'form-error' }, 'This queue no longer exists.'));
      throw e;
    }
    if (ctx.alive()) drawStats();
  };
  await loadBindings();
  ctx.every(async () => { await refresh(); await loadBindings(); });
}

export function statBox(label, value) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label' }, label));
}
