// Form pieces: labelled fields, an editor for AMQP tables (arguments, headers), and a form
// that shows the API's answer.

import { h, fill, toast } from './dom.js';

export function field(label, control, hint) {
  return h('label', { class: 'field' },
    h('span', { class: 'label' }, label),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

export function text(name, attrs = {}) {
  return h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', ...attrs });
}

export function select(name, options, selected) {
  return h('select', { name }, options.map(([value, label]) =>
    h('option', { value, selected: value === selected }, label)));
}

export function yesNo(name, yes) {
  return select(name, [['true', 'Yes'], ['false', 'No']], yes ? 'true' : 'false');
}

/**
 * Rows of key, value and type, for queue arguments, binding arguments and message headers.
 * A new empty row appears when the last one is typed in.
 */
export function tableEditor(label = 'Arguments', suggestions = []) {
  const rows = h('div', { class: 'kv-rows' });
  const listId = 'kv-' + Math.random().toString(36).slice(2);
  const datalist = h('datalist', { id: listId }, suggestions.map((s) => h('option', { value: s })));
  const addRow = () => {
    const key = h('input', { type: 'text', class: 'kv-key', placeholder: 'key', list: listId, 'aria-label': `${label} key` });
    const value = h('input', { type: 'text', class: 'kv-value', placeholder: 'value', 'aria-label': `${label} value` });
    const type = h('select', { class: 'kv-type', 'aria-label': `${label} type` },
      h('option', { value: 'string' }, 'String'),
      h('option', { value: 'number' }, 'Number'),
      h('option', { value: 'boolean' }, 'Boolean'));
    const row = h('div', { class: 'kv-row' }, key, h('span', { class: 'eq' }, '='), value, type);
    const grow = () => { if (row === rows.lastElementChild && key.value) addRow(); };
    key.addEventListener('input', grow);
    value.addEventListener('input', grow);
    rows.appendChild(row);
  };
  addRow();
  return {
    el: h('div', { class: 'field' }, h('span', { class: 'label' }, label), rows, datalist),
    value() {
      const out = {};
      for (const row of rows.children) {
        const k = row.querySelector('.kv-key').value.trim();
        if (!k) continue;
        const raw = row.querySelector('.kv-value').value;
        const type = row.querySelector('.kv-type').value;
        if (type === 'number') {
          const n = Number(raw);
          if (raw.trim() === '' || Number.isNaN(n)) throw new Error(`${label}: ${k} is not a number`);
          out[k] = n;
        } else if (type === 'boolean') {
          out[k] = /^(true|yes|1)$/i.test(raw.trim());
        } else {
          out[k] = raw;
        }
      }
      return out;
    },
    reset() { fill(rows); addRow(); },
  };
}

/**
 * A form whose submit runs `action(values, formElement)`; its resolved string (if any) is
 * shown as a success toast, a thrown error inline. `values` has each named control's value
 * (checkboxes as booleans).
 */
export function form({ title, action, submit = 'Add', cls, children, reset = true }) {
  const error = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary' }, submit);
  const el = h('form', { class: ['form', cls], novalidate: true },
    title ? h('h3', null, title) : null,
    h('div', { class: 'fields' }, children),
    error,
    h('div', { class: 'actions' }, button));
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const values = {};
    for (const c of el.elements) {
      if (!c.name) continue;
      values[c.name] = c.type === 'checkbox' ? c.checked : c.value;
    }
    button.disabled = true;
    error.hidden = true;
    try {
      const message = await action(values, el);
      if (reset) el.reset();
      if (message) toast(message);
    } catch (err) {
      error.hidden = false;
      fill(error, err.message);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** The names the API knows as message properties (besides headers). */
export const MESSAGE_PROPERTIES = [
  'content_type', 'content_encoding', 'priority', 'correlation_id', 'reply_to',
  'expiration', 'message_id', 'timestamp', 'type', 'user_id', 'app_id', 'cluster_id',
];

export const QUEUE_ARGUMENTS = [
  'x-message-ttl', 'x-expires', 'x-max-length', 'x-max-length-bytes', 'x-overflow',
  'x-dead-letter-exchange', 'x-dead-letter-routing-key', 'x-max-priority', 'x-queue-type',
  'x-single-active-consumer', 'x-queue-mode',
];
