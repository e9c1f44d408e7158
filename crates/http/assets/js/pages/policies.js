// Policies and operator policies: the lists (every vhost, or the one chosen), and forms to set
// and clear them. Policies are for users tagged policymaker or administrator; operator policies
// for administrators, as in the API.

import { get, put, del, path } from '../api.js';
import { h, fill, link, section, table, toast, confirmDialog } from '../dom.js';
import { field, text, select, tableEditor, form } from '../forms.js';
import { knownVhosts } from '../session.js';

/** The keys RabbitMQ 3.10 accepts in a policy, and in an operator policy. */
const POLICY_KEYS = [
  'message-ttl', 'expires', 'max-length', 'max-length-bytes', 'overflow',
  'dead-letter-exchange', 'dead-letter-routing-key', 'alternate-exchange', 'queue-mode',
  'queue-version', 'delivery-limit', 'max-in-memory-length', 'max-in-memory-bytes',
  'ha-mode', 'ha-params', 'ha-sync-mode', 'queue-master-locator',
];
const OPERATOR_KEYS = [
  'message-ttl', 'expires', 'max-length', 'max-length-bytes', 'delivery-limit',
  'max-in-memory-length', 'max-in-memory-bytes',
];

const KINDS = {
  policies: { title: 'User policies', noun: 'policy', keys: POLICY_KEYS },
  'operator-policies': { title: 'Operator policies', noun: 'operator policy', keys: OPERATOR_KEYS },
};

/** A definition as key = value chips, one per line. */
function definitionCell(definition) {
  return h('div', { class: 'definition' }, Object.entries(definition).map(([k, v]) =>
    h('div', null, h('code', null, k), ' = ', h('code', null, JSON.stringify(v)))));
}

function policyRows(kind, items, reload) {
  return items.map((p) => [
    link(p.vhost, 'vhosts', p.vhost),
    h('span', { class: 'name' }, p.name),
    h('code', null, p.pattern),
    p['apply-to'],
    definitionCell(p.definition),
    String(p.priority),
    h('button', {
      type: 'button', class: 'secondary small',
      onclick: async () => {
        if (!await confirmDialog(`Clear the ${KINDS[kind].noun} ${p.name} in ${p.vhost}?`, 'Clear')) return;
        try {
          await del(path`${kind}/${p.vhost}/${p.name}`);
          toast(`${p.name} cleared`);
          reload();
        } catch (e) { toast(e.message, 'bad'); }
      },
    }, 'Clear'),
  ]);
}

const COLUMNS = [
  { label: 'Virtual host' }, { label: 'Name' }, { label: 'Pattern' }, { label: 'Apply to' },
  { label: 'Definition' }, { label: 'Priority', num: true }, { label: '', cls: 'actions-col' },
];

/** The API's reason for a refusal, without the HTML escaping the policies endpoint adds. */
function unescape(message) {
  return message.replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

function policyForm(kind, reload, vhost) {
  const definition = tableEditor('Definition', KINDS[kind].keys);
  const vhosts = knownVhosts();
  return form({
    title: `Set ${KINDS[kind].noun === 'policy' ? 'a policy' : 'an operator policy'}`,
    submit: 'Set',
    cls: `${kind}-form`,
    children: [
      field('Virtual host', select('vhost', vhosts.map((v) => [v, v]), vhost || '/')),
      field('Name', text('name', { required: true })),
      field('Pattern', text('pattern', { required: true, placeholder: '^orders\\.' }),
        'A regular expression searched for in queue and exchange names.'),
      field('Apply to', select('apply_to', [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']], 'all')),
      field('Priority', text('priority', { value: '0', inputmode: 'numeric' }),
        'Of the policies matching a name, the highest priority applies (only one).'),
      definition.el,
    ],
    action: async (v) => {
      if (!v.name.trim()) throw new Error('A policy needs a name.');
      const priority = Number(v.priority || 0);
      if (Number.isNaN(priority)) throw new Error('The priority is a number.');
      try {
        await put(path`${kind}/${v.vhost}/${v.name}`, {
          pattern: v.pattern, 'apply-to': v.apply_to, priority, definition: definition.value(),
        });
      } catch (e) {
        throw new Error(unescape(e.message));
      }
      definition.reset();
      await reload();
      return `${v.name} set`;
    },
  });
}

export async function policiesPage(ctx) {
  ctx.title('Policies');
  const kinds = ctx.me.admin ? ['policies', 'operator-policies'] : ['policies'];
  const holders = {};
  const load = async () => {
    for (const kind of kinds) {
      const items = await get(ctx.vhost ? path`${kind}/${ctx.vhost}` : kind);
      if (ctx.alive()) {
        fill(holders[kind], table(COLUMNS, policyRows(kind, items, load),
          { empty: `No ${KINDS[kind].noun === 'policy' ? 'policies' : 'operator policies'}.` }));
      }
    }
  };
  const sections = kinds.map((kind) => {
    holders[kind] = h('div', { id: `${kind}-list` });
    return section(KINDS[kind].title, holders[kind], policyForm(kind, load, ctx.vhost));
  });
  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', null, 'Policies'),
      h('p', { class: 'muted subtitle' },
        'Settings for the queues and exchanges whose names match a pattern, applied as they change. ',
        'Operator policies cap what policies and queue arguments ask for.')),
    ...sections);
  await ctx.every(load);
}
