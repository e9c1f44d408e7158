// Connections (listing, a connection's page with its channels, close) and channels.

import { get, del, path } from '../api.js';
import { h, fill, link, href, section, table, facts, chip, toast, confirmDialog } from '../dom.js';
import { num, bytes, when } from '../format.js';
import { pagedList } from '../list.js';
import { field, text, form } from '../forms.js';

function client(c) {
  const p = c.client_properties || {};
  const name = [p.product, p.version].filter(Boolean).join(' ');
  return name || h('span', { class: 'muted' }, 'unknown');
}

const speed = (details) => (details && details.rate !== undefined ? bytes(details.rate) + '/s' : '–');

export async function connectionsPage(ctx) {
  ctx.title('Connections');
  const vhost = ctx.vhost;
  const list = pagedList({
    key: 'connections',
    noun: 'connections',
    endpoint: () => (vhost ? path`vhosts/${vhost}/connections` : 'connections'),
    columns: [
      { label: 'Name', sort: 'name', cell: (c) => link(c.user_provided_name ? `${c.name} (${c.user_provided_name})` : c.name, 'connections', c.name) },
      vhost ? null : { label: 'Virtual host', sort: 'vhost', cell: (c) => c.vhost },
      { label: 'User', sort: 'user', cell: (c) => c.user },
      { label: 'Client', cell: client },
      { label: 'State', cell: (c) => chip(c.state, c.state === 'running' ? 'good' : 'warn') },
      { label: 'Channels', sort: 'channels', num: true, cell: (c) => num(c.channels) },
      { label: 'From client', sort: 'recv_oct_details.rate', num: true, cell: (c) => speed(c.recv_oct_details) },
      { label: 'To client', sort: 'send_oct_details.rate', num: true, cell: (c) => speed(c.send_oct_details) },
    ].filter(Boolean),
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Connections'),
      h('p', { class: 'muted subtitle' }, vhost ? `In virtual host ${vhost}` : 'In all virtual hosts')),
    section(null, list.el));
  await ctx.every(list.load);
}

function channelColumns(showConnection) {
  return [
    { label: 'Channel', sort: 'name', cell: (c) => (showConnection ? link(c.name, 'connections', c.connection_details.name) : `Channel ${c.number}`) },
    showConnection ? { label: 'Virtual host', sort: 'vhost', cell: (c) => c.vhost } : null,
    showConnection ? { label: 'User', sort: 'user', cell: (c) => c.user } : null,
    { label: 'Mode', cell: (c) => h('span', { class: 'chips' }, c.confirm ? chip('C', 'feature') : null, c.transactional ? chip('T', 'feature') : null) },
    { label: 'Prefetch', sort: 'prefetch_count', num: true, cell: (c) => num(c.prefetch_count) },
    { label: 'Unacked', sort: 'messages_unacknowledged', num: true, cell: (c) => num(c.messages_unacknowledged) },
    { label: 'Consumers', sort: 'consumer_count', num: true, cell: (c) => num(c.consumer_count) },
    { label: 'Published', sort: 'message_stats.publish', num: true, cell: (c) => num(c.message_stats && c.message_stats.publish) },
    { label: 'Delivered', sort: 'message_stats.deliver_get', num: true, cell: (c) => num(c.message_stats && c.message_stats.deliver_get) },
    { label: 'Acked', sort: 'message_stats.ack', num: true, cell: (c) => num(c.message_stats && c.message_stats.ack) },
  ].filter(Boolean);
}

export async function channelsPage(ctx) {
  ctx.title('Channels');
  const vhost = ctx.vhost;
  const list = pagedList({
    key: 'channels',
    noun: 'channels',
    endpoint: () => (vhost ? path`vhosts/${vhost}/channels` : 'channels'),
    columns: channelColumns(true),
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Channels'),
      h('p', { class: 'muted subtitle' }, 'C: publisher confirms, T: transactional')),
    section(null, list.el));
  await ctx.every(list.load);
}

export async function connectionPage(ctx) {
  const { name } = ctx.params;
  ctx.title(`Connection ${name}`);
  const base = path`connections/${name}`;
  let c = await get(base);
  if (!ctx.alive()) return;
  const details = h('div');
  const channels = h('div');
  const draw = () => {
    const p = c.client_properties || {};
    fill(details, h('div', { class: 'grid-2' },
      section('Details', facts([
        ['User', c.user],
        ['Virtual host', c.vhost],
        ['Client', client(c)],
        c.user_provided_name ? ['Connection name', c.user_provided_name] : null,
        ['Peer', `${c.peer_host}:${c.peer_port}`],
        ['Connected at', when(c.connected_at)],
        ['Protocol', c.protocol],
        ['TLS', c.ssl ? `${c.ssl_protocol}, ${c.ssl_cipher}` : 'no'],
        c.peer_cert_subject ? ['Client certificate', c.peer_cert_subject] : null,
        ['Authentication', c.auth_mechanism],
        ['Heartbeat', `${num(c.timeout)} s`],
        ['Frame max', `${num(c.frame_max)} bytes`],
        ['Channel max', num(c.channel_max)],
        p.platform ? ['Platform', p.platform] : null,
      ])),
      section('Traffic', facts([
        ['Received', `${bytes(c.recv_oct)} in ${num(c.recv_cnt)} frames`],
        ['Receiving', speed(c.recv_oct_details)],
        ['Sent', `${bytes(c.send_oct)} in ${num(c.send_cnt)} frames`],
        ['Sending', speed(c.send_oct_details)],
        ['Channels', num(c.channels)],
      ]))));
  };
  const loadChannels = async () => {
    const chs = await get(base + '/channels');
    if (!ctx.alive()) return;
    const cols = channelColumns(false);
    fill(channels, table(cols, chs.map((ch) => cols.map((col) => col.cell(ch))), { empty: 'No channels open.' }));
  };
  const closeForm = form({
    submit: 'Close connection',
    reset: false,
    cls: 'close-form',
    children: [field('Reason', text('reason', { value: 'Closed via management UI' }), 'Sent to the client with reply code 320 CONNECTION_FORCED')],
    action: async (v) => {
      if (!await confirmDialog(`Close the connection ${name}?`, 'Close connection')) return null;
      await del(base, { 'X-Reason': v.reason });
      toast('Connection closed');
      location.hash = href('connections');
      return null;
    },
  });
  closeForm.querySelector('button[type=submit]').className = 'danger solid';
  draw();
  fill(ctx.main,
    h('div', { class: 'page-head' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/connections' }, 'Connections')),
      h('h1', null, 'Connection ', h('span', { class: 'name' }, name))),
    details,
    section('Channels', channels),
    section('Close this connection', closeForm));
  await loadChannels();
  ctx.every(async () => {
    try {
      c = await get(base);
    } catch (e) {
      if (e.status === 404 && ctx.alive()) fill(details, h('p', { class: 'form-error' }, 'This connection has closed.'));
      throw e;
    }
    if (ctx.alive()) draw();
    await loadChannels();
  });
}
