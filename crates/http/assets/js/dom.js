// Building the page. Everything is made with createElement and text nodes: nothing the broker
// or a user supplied is ever parsed as HTML, so there is nothing to escape by hand.

/**
 * h('a', {href: '#/x', class: 'link', onclick: fn}, 'text', child, [more, children])
 * Strings and numbers become text nodes; null, undefined and false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      } else if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') {
        el[k] = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A link inside the app: `#/` followed by the segments, each percent-encoded. */
export function href(...segments) {
  return '#/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

export function link(text, ...segments) {
  return h('a', { href: href(...segments) }, text);
}

/** A table: columns are {label, num, cls}; rows are arrays of cells (nodes or text). */
export function table(columns, rows, { empty = 'Nothing here yet.', cls } = {}) {
  const head = h('tr', null, columns.map((c) =>
    h('th', { class: [c.num && 'num', c.cls], scope: 'col' }, c.label)));
  const body = rows.length
    ? rows.map((cells) => h('tr', null, cells.map((cell, i) =>
      h('td', { class: [columns[i] && columns[i].num && 'num', columns[i] && columns[i].cls] }, cell))))
    : [h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty))];
  return h('div', { class: ['table-wrap', cls] },
    h('table', null, h('thead', null, head), h('tbody', null, body)));
}

/** A panel with a heading. */
export function section(title, ...children) {
  return h('section', { class: 'panel' }, title ? h('h2', null, title) : null, ...children);
}

/** Key/value pairs as a definition list. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) =>
    h('div', null, h('dt', null, k), h('dd', null, v))));
}

export function chip(text, cls) {
  return h('span', { class: ['chip', cls], title: text }, text);
}

/** Shows a short message in the corner for a few seconds. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: ['toast', kind] }, message);
  box.appendChild(el);
  // A few at a time: quick work must not bury the page under notices.
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => el.classList.add('leaving'), 3500);
  setTimeout(() => el.remove(), 4000);
}

/** A modal yes/no question; resolves true when confirmed. */
export function confirmDialog(message, okLabel = 'OK', danger = true) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm' });
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    append(dialog, [
      h('p', null, message),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: danger ? 'danger solid' : 'primary', onclick: () => done(true) }, okLabel)),
    ]);
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
