// A listing that the API sorts, filters and pages (page, page_size, name, use_regex, sort,
// sort_reverse), so that the browser only ever holds one page: 10,000 queues cost what 100 do.

import { get, query } from './api.js';
import { h, fill, debounce } from './dom.js';
import { num } from './format.js';

const PAGE_SIZES = [20, 50, 100, 200, 500];

// Where each listing was left (filter, sort, page), kept while the tab lives.
const remembered = new Map();

/**
 * options:
 *   key        remembers this listing's state under that name
 *   endpoint   () => the API path to list (without query)
 *   columns    [{label, sort (API field), num, cell: (item) => node or text, title}]
 *   sort       the default sort field, reverse: its default direction
 *   columnsParam  the fields to ask for (the API's `columns`), optional
 *   noun       'queues', for "1–20 of 300 queues"
 *   toolbar    extra nodes placed beside the filter
 */
export function pagedList(options) {
  const state = remembered.get(options.key) || {
    page: 1,
    pageSize: 20,
    name: '',
    regex: false,
    sort: options.sort || 'name',
    reverse: Boolean(options.reverse),
  };
  remembered.set(options.key, state);

  const status = h('span', { class: 'list-status' });
  const error = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });

  const headRow = h('tr');
  const drawHead = () => fill(headRow, options.columns.map((c) => {
    const sorted = c.sort && state.sort === c.sort;
    const label = c.sort
      ? h('button', {
        type: 'button',
        class: ['sort', sorted && 'sorted'],
        title: `Sort by ${c.label.toLowerCase()}`,
        onclick: () => {
          if (state.sort === c.sort) state.reverse = !state.reverse;
          else { state.sort = c.sort; state.reverse = Boolean(c.num); }
          state.page = 1;
          drawHead();
          load();
        },
      }, c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, sorted ? (state.reverse ? '▼' : '▲') : ''))
      : c.label;
    return h('th', {
      class: [c.num && 'num'],
      scope: 'col',
      'aria-sort': sorted ? (state.reverse ? 'descending' : 'ascending') : null,
      title: c.title,
    }, label);
  }));
  drawHead();

  const filter = h('input', {
    type: 'search',
    class: 'filter',
    placeholder: 'Filter by name',
    'aria-label': 'Filter by name',
    value: state.name,
    oninput: debounce(() => { state.name = filter.value; state.page = 1; load(); }, 250),
  });
  const regex = h('input', {
    type: 'checkbox',
    checked: state.regex,
    onchange: () => { state.regex = regex.checked; state.page = 1; load(); },
  });
  const size = h('select', {
    'aria-label': 'Items per page',
    onchange: () => { state.pageSize = Number(size.value); state.page = 1; load(); },
  }, PAGE_SIZES.map((n) => h('option', { value: String(n), selected: n === state.pageSize }, `${n} per page`)));

  const el = h('div', { class: 'list', dataset: { list: options.key } },
    h('div', { class: 'toolbar' },
      filter,
      h('label', { class: 'check' }, regex, 'Regex'),
      options.toolbar || null,
      h('span', { class: 'spacer' }),
      status,
      size),
    error,
    h('div', { class: 'table-wrap' }, h('table', null, h('thead', null, headRow), tbody)),
    pager);

  let seq = 0;
  async function load() {
    const mine = ++seq;
    const params = {
      page: state.page,
      page_size: state.pageSize,
      name: state.name,
      use_regex: state.name && state.regex ? 'true' : '',
      sort: state.sort,
      sort_reverse: state.reverse ? 'true' : '',
      columns: options.columnsParam,
    };
    let data;
    try {
      data = await get(options.endpoint() + query(params));
    } catch (e) {
      if (mine !== seq) return;
      if (e.status === 400 && /page out of range/.test(e.message) && state.page > 1) {
        state.page = 1;
        load();
        return;
      }
      error.hidden = false;
      fill(error, e.message);
      return;
    }
    if (mine !== seq) return;
    error.hidden = true;
    render(data);
  }

  function render(data) {
    const cols = options.columns;
    fill(tbody, data.items.length
      ? data.items.map((item) => h('tr', null, cols.map((c) =>
        h('td', { class: [c.num && 'num', c.cls] }, c.cell(item)))))
      : h('tr', { class: 'empty' }, h('td', { colspan: cols.length },
        state.name ? 'Nothing matches the filter.' : `No ${options.noun} yet.`)));
    const first = data.filtered_count ? (data.page - 1) * data.page_size + 1 : 0;
    const last = (data.page - 1) * data.page_size + data.item_count;
    fill(status,
      `${num(first)}–${num(last)} of ${num(data.filtered_count)} ${options.noun}`,
      data.filtered_count !== data.total_count ? ` (filtered from ${num(data.total_count)})` : '');
    const go = (p) => () => { state.page = p; load(); };
    const pages = Math.max(data.page_count, 1);
    fill(pager,
      h('button', { type: 'button', class: 'secondary', disabled: data.page <= 1, onclick: go(1), title: 'First page' }, '«'),
      h('button', { type: 'button', class: 'secondary', disabled: data.page <= 1, onclick: go(data.page - 1) }, '‹ Previous'),
      h('span', { class: 'page-no' }, `Page ${num(data.page)} of ${num(pages)}`),
      h('button', { type: 'button', class: 'secondary', disabled: data.page >= pages, onclick: go(data.page + 1) }, 'Next ›'),
      h('button', { type: 'button', class: 'secondary', disabled: data.page >= pages, onclick: go(pages), title: 'Last page' }, '»'));
  }

  return { el, load };
}
