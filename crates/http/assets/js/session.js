// What the pages share about the session: the virtual hosts the user may see (for choosers),
// refreshed when an administrator adds or deletes one.

import { get } from './api.js';

let vhosts = [];
const listeners = new Set();

export function knownVhosts() {
  return vhosts;
}

export async function refreshVhosts() {
  try {
    vhosts = (await get('vhosts')).map((v) => v.name).sort();
  } catch {
    vhosts = [];
  }
  listeners.forEach((f) => f(vhosts));
  return vhosts;
}

export function onVhostsChange(fn) {
  listeners.add(fn);
}
