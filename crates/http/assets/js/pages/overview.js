// The overview: totals, queued messages and message rates as live charts, the node and its
// listeners. /api/overview is polled every 5 s for as long as the user is signed in, so the
// charts have a few minutes of history whichever page was open meanwhile.

import { get } from '../api.js';
import { h, fill, section, table, facts, chip } from '../dom.js';
import { num, rate, bytes, duration } from '../format.js';
import { LineChart } from '../chart.js';

const SAMPLE_MS = 5000;
/** Ten minutes at one sample every 5 s. */
const KEEP = 120;

const history = [];
const listeners = new Set();
let timer = null;
let latest = null;

async function sample() {
  if (document.hidden) return;
  try {
    latest = await get('overview');
  } catch {
    return;
  }
  const ms = latest.message_stats || {};
  const q = latest.queue_totals || {};
  const r = (k) => (ms[k + '_details'] ? ms[k + '_details'].rate : 0);
  history.push({
    t: Date.now(),
    values: {
      ready: q.messages_ready || 0,
      unacked: q.messages_unacknowledged || 0,
      total: q.messages || 0,
      publish: r('publish'),
      deliver: r('deliver_get'),
      ack: r('ack'),
      confirm: r('confirm'),
      redeliver: r('redeliver'),
    },
  });
  while (history.length > KEEP) history.shift();
  listeners.forEach((f) => f(latest));
}

export function startSampling() {
  stopSampling();
  history.length = 0;
  sample();
  timer = setInterval(sample, SAMPLE_MS);
}

export function stopSampling() {
  if (timer) clearInterval(timer);
  timer = null;
}

const QUEUED = [
  { key: 'ready', label: 'Ready', color: '#d4901e' },
  { key: 'unacked', label: 'Unacked', color: '#2f6fbd' },
  { key: 'total', label: 'Total', color: '#8a94a3' },
];
const RATES = [
  { key: 'publish', label: 'Publish', color: '#2f8f5b' },
  { key: 'deliver', label: 'Deliver / get', color: '#2f6fbd' },
  { key: 'ack', label: 'Ack', color: '#8e5cc2' },
  { key: 'confirm', label: 'Confirm', color: '#d4901e' },
  { key: 'redeliver', label: 'Redeliver', color: '#c8553d' },
];

function chartPanel(title, series, unit, id) {
  const canvas = h('canvas', { id, class: 'chart', role: 'img', 'aria-label': `${title} over the last five minutes` });
  const legend = h('ul', { class: 'legend' });
  const chart = new LineChart(canvas, { series, integer: unit !== '/s' });
  const update = () => {
    chart.update(history);
    canvas.dataset.points = String(history.length);
    const last = history.length ? history[history.length - 1].values : {};
    fill(legend, series.map((s) => h('li', null,
      h('span', { class: 'swatch', 'aria-hidden': 'true', dataset: { color: s.color } }),
      h('span', { class: 'legend-label' }, s.label),
      h('span', { class: 'legend-value' }, unit === '/s' ? rate(last[s.key] || 0) : num(last[s.key] || 0)))));
    // Colours through CSSOM: the page's CSP allows no inline style attributes.
    legend.querySelectorAll('.swatch').forEach((el) => { el.style.background = el.dataset.color; });
  };
  return { el: section(title, h('div', { class: 'chart-box' }, canvas), legend), update, chart };
}

function stat(label, value, link) {
  const v = h('div', { class: 'stat-value' }, value);
  return h(link ? 'a' : 'div', { class: 'stat', href: link || null }, v, h('div', { class: 'stat-label' }, label));
}

export async function overviewPage(ctx) {
  ctx.title('Overview');
  const totals = h('div', { class: 'stats', id: 'totals' });
  const queued = chartPanel('Queued messages', QUEUED, '', 'chart-queued');
  const rates = chartPanel('Message rates', RATES, '/s', 'chart-rates');
  const node = h('div');
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Overview'), h('p', { class: 'muted subtitle' }));
  fill(ctx.main, head, totals, h('div', { class: 'grid-2' }, queued.el, rates.el), node);

  const drawTotals = (o) => {
    if (!o) return;
    fill(head.querySelector('.subtitle'), `${o.cluster_name} · ${o.product_name} ${o.product_version} · RabbitMQ ${o.rabbitmq_version} compatible`);
    const t = o.object_totals || {};
    const q = o.queue_totals || {};
    fill(totals,
      stat('Connections', num(t.connections), '#/connections'),
      stat('Channels', num(t.channels), '#/channels'),
      stat('Exchanges', num(t.exchanges), '#/exchanges'),
      stat('Queues', num(t.queues), '#/queues'),
      stat('Consumers', num(t.consumers)),
      stat('Ready', num(q.messages_ready)),
      stat('Unacked', num(q.messages_unacknowledged)),
      stat('Total messages', num(q.messages)));
  };
  if (!ctx.me.monitor) {
    rates.el.appendChild(h('p', { class: 'muted small' }, 'Message rates are shown to users tagged monitoring or administrator.'));
  }
  const onSample = (o) => {
    if (!ctx.alive()) return;
    drawTotals(o);
    queued.update();
    rates.update();
  };
  listeners.add(onSample);
  ctx.onLeave(() => {
    listeners.delete(onSample);
    queued.chart.destroy();
    rates.chart.destroy();
  });
  drawTotals(latest);
  queued.update();
  rates.update();
  if (!latest) await sample();

  if (ctx.me.monitor) {
    await ctx.every(async () => {
      const [n] = await get('nodes');
      if (!n || !ctx.alive()) return;
      const alarms = [n.mem_alarm && chip('memory alarm', 'bad'), n.disk_free_alarm && chip('disk alarm', 'bad')].filter(Boolean);
      fill(node, h('div', { class: 'grid-2' },
        section('Node',
          facts([
            ['Name', n.name],
            ['Uptime', duration(n.uptime)],
            ['Memory', `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark`],
            ['File descriptors', `${num(n.fd_used)} of ${num(n.fd_total)}`],
            ['Processors', num(n.processors)],
            ['Alarms', alarms.length ? alarms : chip('none', 'good')],
          ])),
        section('Listeners',
          table([{ label: 'Protocol' }, { label: 'Address' }, { label: 'Port', num: true }],
            (n.listeners || []).map((l) => [l.protocol, l.ip_address, String(l.port)])))));
    });
  }
}
