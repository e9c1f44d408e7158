// Numbers, rates, sizes and times as people read them.

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return integer.format(n);
}

/** A rate per second, `12.5/s`. */
export function rate(details) {
  const r = typeof details === 'number' ? details : details && details.rate;
  if (r === null || r === undefined) return '–';
  return decimal.format(r) + '/s';
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return (i === 0 ? integer.format(v) : decimal.format(v)) + ' ' + units[i];
}

export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A millisecond timestamp as local date and time. */
export function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The default exchange is named "" in AMQP and amq.default in the API's paths. */
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

export function exchangePathName(name) {
  return name === '' ? 'amq.default' : name;
}

/** An AMQP table (arguments, headers) as `k: v` lines. */
export function tableText(obj) {
  if (!obj || typeof obj !== 'object') return '';
  return Object.entries(obj).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n');
}
