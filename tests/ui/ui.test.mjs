// Browser tests of the web UI: a real Warren (target/release/warren on free loopback ports
// with a fresh data directory), headless Chromium driven by playwright-core, data made
// through the management API and over AMQP. Screenshots of every page go to screenshots/.
//
//   cd tests/ui && npm ci && node --test
// Environment: WARREN_BIN (../../target/release/warren), CHROMIUM (/usr/bin/chromium).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import amqp from 'amqplib';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = process.env.WARREN_BIN || path.join(ROOT, 'target/release/warren');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(HERE, 'screenshots');
const AUTH = 'Basic ' + Buffer.from('guest:guest').toString('base64');

let broker;
let brokerLog;
let tmp;
let base;
let amqpUrl;
let httpsBase;
let amqpsUrl;
let caFile;
let context;
let page;
const scriptErrors = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retries `check` (which throws or returns false) until it passes or `ms` run out. */
async function eventually(what, check, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const ok = await check();
      if (ok !== false) return ok;
      last = new Error(`${what}: not yet`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last && last.message}`);
    await sleep(100);
  }
}

/** The management API, as guest. */
async function api(method, apiPath, body) {
  const resp = await fetch(`${base}api/${apiPath}`, {
    method,
    headers: { Authorization: AUTH, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

const q = (s) => encodeURIComponent(s);

async function publish(exchange, routingKey, payload) {
  const r = await api('POST', `exchanges/%2F/${q(exchange)}/publish`,
    { routing_key: routingKey, payload, payload_encoding: 'string', properties: {} });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.routed;
}

async function shot(name) {
  // From the top: a full-page capture of a scrolled page draws sticky bars mid-page. And
  // without the notices of earlier steps, which would cover the page.
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    document.getElementById('toasts').replaceChildren();
  });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function go(hash) {
  await page.goto(`${base}#/${hash}`);
}

/** Clicks the OK button of the UI's confirmation dialog. */
async function confirm(label) {
  await page.locator('dialog.confirm[open]').getByRole('button', { name: label }).click();
}

async function rowNames(listKey) {
  return page.locator(`[data-list="${listKey}"] tbody tr td:first-child`).allInnerTexts();
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-ui-'));
  const [amqpPort, httpPort] = [await freePort(), await freePort()];
  const [amqpsPort, httpsPort] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${httpPort}/`;
  amqpUrl = `amqp://guest:guest@127.0.0.1:${amqpPort}/`;
  httpsBase = `https://localhost:${httpsPort}/`;
  amqpsUrl = `amqps://guest:guest@localhost:${amqpsPort}/`;
  const certs = path.join(tmp, 'certs');
  await new Promise((resolve, reject) => {
    spawn(path.join(ROOT, 'tests/tls/make_certs.sh'), [certs], { stdio: 'inherit' })
      .on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`make_certs.sh: ${code}`))));
  });
  caFile = path.join(certs, 'ca.pem');
  brokerLog = fs.openSync(path.join(tmp, 'warren.log'), 'a');
  broker = spawn(BIN, [], {
    env: {
      ...process.env,
      WARREN_AMQP_PORT: String(amqpPort),
      WARREN_HTTP_PORT: String(httpPort),
      WARREN_PROMETHEUS_PORT: '0',
      WARREN_BIND: '127.0.0.1',
      WARREN_DATA_DIR: path.join(tmp, 'data'),
      WARREN_LOG: 'warn',
      WARREN_TLS_CERT_FILE: path.join(certs, 'server.pem'),
      WARREN_TLS_KEY_FILE: path.join(certs, 'server.key'),
      WARREN_AMQPS_PORT: String(amqpsPort),
      WARREN_HTTPS_PORT: String(httpsPort),
    },
    stdio: ['ignore', brokerLog, brokerLog],
  });
  await eventually('the broker to answer', async () => (await api('GET', 'overview')).status === 200, 30000);

  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 900 },
    // The HTTPS test's certificate comes from a CA of the test's own.
    ignoreHTTPSErrors: true,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(10000);
  page.on('pageerror', (e) => scriptErrors.push(e.message));
  // Refused requests (a wrong password, a deleted queue) are logged by the browser as
  // failed loads; those are expected. Anything else logged as an error is not.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) scriptErrors.push(m.text());
  });
  // A browser's own basic-auth prompt would mean the API challenged the UI's requests.
  page.on('dialog', (d) => { scriptErrors.push(`unexpected ${d.type()} dialog`); d.dismiss(); });
});

after(async () => {
  if (context) await context.close();
  if (broker && broker.exitCode === null) {
    broker.kill('SIGTERM');
    await Promise.race([new Promise((r) => broker.once('exit', r)), sleep(10000)]);
    if (broker.exitCode === null) broker.kill('SIGKILL');
  }
  if (brokerLog !== undefined) fs.closeSync(brokerLog);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the page and its assets are served with their content types', async () => {
  const index = await fetch(base);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(index.headers.get('content-security-policy'), /script-src 'self'/);
  const js = await fetch(`${base}static/js/app.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const etag = js.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${base}static/js/app.js`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  const css = await fetch(`${base}static/app.css`);
  assert.match(css.headers.get('content-type'), /^text\/css/);
});

test('sign in: a wrong password is refused in the page, the right one opens the overview', async () => {
  await page.goto(base);
  await page.locator('#login').waitFor();
  await shot('01-login');
  await page.fill('input[name=username]', 'guest');
  await page.fill('input[name=password]', 'wrong');
  await page.click('#login button[type=submit]');
  await page.locator('#login .form-error:not([hidden])').waitFor();
  assert.match(await page.locator('#login .form-error').innerText(), /Login failed/);
  await shot('02-login-refused');
  await page.fill('input[name=password]', 'guest');
  await page.click('#login button[type=submit]');
  await page.locator('#totals .stat').first().waitFor();
  assert.ok(await page.evaluate(() => sessionStorage.getItem('warren.credentials')));
  // A reload keeps the session (sessionStorage), no second sign-in.
  await page.reload();
  await page.locator('#totals .stat').first().waitFor();
});

test('overview: totals and a live message-rate chart', async () => {
  for (const name of ['ov-a', 'ov-b']) {
    assert.equal((await api('PUT', `queues/%2F/${name}`, {})).status, 201);
  }
  const conn = await amqp.connect(amqpUrl);
  const ch = await conn.createChannel();
  const body = Buffer.from('rate');
  // Publish steadily until the sampled publish rate (every 5 s) reaches the chart's legend.
  const pump = setInterval(() => { for (let i = 0; i < 20; i += 1) ch.sendToQueue('ov-a', body); }, 50);
  try {
    await go('');
    await eventually('a publish rate in the legend', async () => {
      const legend = await page.locator('section:has(#chart-rates) .legend').innerText();
      return /Publish\s+[1-9][\d,.]*\/s/.test(legend);
    }, 20000);
  } finally {
    clearInterval(pump);
  }
  await ch.close();
  await conn.close();
  const overview = (await api('GET', 'overview')).body;
  await eventually('the queue total', async () => {
    const text = await page.locator('#totals').innerText();
    return new RegExp(`${overview.object_totals.queues}\\s+Queues`).test(text);
  });
  const points = Number(await page.locator('#chart-rates').getAttribute('data-points'));
  assert.ok(points >= 2, `the chart has ${points} samples`);
  // The canvas has been drawn on: some pixels carry the publish line's green.
  const green = await page.evaluate(() => {
    const c = document.getElementById('chart-rates');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 0x2f) < 12 && Math.abs(d[i + 1] - 0x8f) < 12 && Math.abs(d[i + 2] - 0x5b) < 12) n += 1;
    return n;
  });
  assert.ok(green > 20, `publish line pixels: ${green}`);
  await shot('03-overview');
});

test('queues: the list sorts, filters and pages through the API', async () => {
  for (let i = 0; i < 45; i += 1) {
    const r = await api('PUT', `queues/%2F/list-${String(i).padStart(2, '0')}`, { durable: i % 2 === 0 });
    assert.equal(r.status, 201);
  }
  for (let i = 0; i < 5; i += 1) await publish('amq.default', 'list-40', `m${i}`);
  for (let i = 0; i < 3; i += 1) await publish('amq.default', 'list-07', `m${i}`);
  // A name that would be markup if it were ever parsed as HTML.
  const evil = '<img src=x onerror="window.__owned=1">';
  assert.equal((await api('PUT', `queues/%2F/${q(evil)}`, {})).status, 201);

  await go('queues');
  const status = page.locator('.list-status');
  await eventually('the first page', async () => /^1–20 of \d+ queues$/.test(await status.innerText()));
  assert.ok((await rowNames('queues')).includes(evil), 'the odd name shows as text');
  assert.equal(await page.evaluate(() => window.__owned), undefined);
  assert.equal(await page.locator('[data-list=queues] tbody img').count(), 0);

  await page.fill('[data-list=queues] input.filter', 'list-');
  await eventually('the filter', async () => /^1–20 of 45 queues \(filtered from \d+\)$/.test(await status.innerText()));
  assert.equal((await rowNames('queues'))[0], 'list-00');
  await shot('04-queues');

  await page.getByRole('button', { name: 'Next ›' }).click();
  await eventually('page 2', async () => (await rowNames('queues'))[0] === 'list-20');
  assert.match(await page.locator('.page-no').innerText(), /Page 2 of 3/);

  // Sorting by total puts the fullest queue first; again, last.
  await page.getByTitle('Sort by total').click();
  await eventually('sorted by total, most first', async () => {
    const names = await rowNames('queues');
    return names[0] === 'list-40' && names[1] === 'list-07';
  });
  assert.equal(await page.locator('th[aria-sort=descending]').textContent(), 'Total▼');
  await page.getByTitle('Sort by total').click();
  await eventually('sorted by total, fewest first', async () => {
    const names = await rowNames('queues');
    return names.length === 20 && !names.includes('list-40');
  });
  await page.getByTitle('Sort by name').click();

  await page.check('[data-list=queues] .toolbar input[type=checkbox]');
  await page.fill('[data-list=queues] input.filter', '^list-4[0-4]$');
  await eventually('the regex filter', async () => /^1–5 of 5 queues/.test(await status.innerText()));
  assert.deepEqual(await rowNames('queues'), ['list-40', 'list-41', 'list-42', 'list-43', 'list-44']);
  await page.fill('[data-list=queues] input.filter', '(');
  await page.locator('[data-list=queues] .form-error:not([hidden])').waitFor();
  await page.uncheck('[data-list=queues] .toolbar input[type=checkbox]');
  await page.fill('[data-list=queues] input.filter', '');
  await page.selectOption('[data-list=queues] select', '50');
  // 48 queues in all: one page of 50 holds them.
  await eventually('50 a page', async () => /^1–48 of 48 queues$/.test(await status.innerText()));
  assert.equal(await page.locator('[data-list=queues] tbody tr').count(), 48);
});

test('queues: the add-queue form declares a queue', async () => {
  await go('queues');
  await page.locator('summary', { hasText: 'Add a queue' }).click();
  await page.fill('form input[name=name]', 'added-in-ui');
  await page.selectOption('form select[name=durable]', 'false');
  await page.fill('form .kv-key >> nth=0', 'x-max-length');
  await page.fill('form .kv-value >> nth=0', '10');
  await page.selectOption('form .kv-type >> nth=0', 'number');
  await page.click('form button[type=submit]');
  await page.locator('.toast', { hasText: 'Queue added-in-ui declared' }).waitFor();
  const r = await api('GET', 'queues/%2F/added-in-ui');
  assert.equal(r.status, 200);
  assert.equal(r.body.durable, false);
  assert.deepEqual(r.body.arguments, { 'x-max-length': 10 });
});

test('queue page: get messages, bind, purge, delete', async () => {
  assert.equal((await api('PUT', 'queues/%2F/work', {})).status, 201);
  const payload = '<script>window.__owned=2</script> & "quotes"';
  for (let i = 0; i < 3; i += 1) await publish('amq.default', 'work', `${payload} #${i}`);
  await go('queues/%2F/work');
  await eventually('the counts', async () => /3\s+Ready/.test(await page.locator('.stats').innerText()));

  // Requeue mode: the messages are shown and stay.
  await page.fill('input[name=count]', '2');
  await page.click('.get-form button[type=submit]');
  await eventually('two messages', async () => (await page.locator('#get-results .message').count()) === 2);
  assert.equal(await page.locator('#get-results .payload').first().innerText(), `${payload} #0`);
  assert.equal(await page.evaluate(() => window.__owned), undefined);
  assert.equal((await api('GET', 'queues/%2F/work')).body.messages, 3);
  await shot('05-queue-get');

  // Automatic ack takes one off the queue.
  await page.selectOption('select[name=ackmode]', 'ack_requeue_false');
  await page.fill('input[name=count]', '1');
  await page.click('.get-form button[type=submit]');
  await eventually('one message removed', async () => (await api('GET', 'queues/%2F/work')).body.messages === 2);

  // A binding from amq.direct.
  await page.locator('summary', { hasText: 'Add a binding' }).click();
  await page.fill('input[name=source]', 'amq.direct');
  await page.fill('form:has(input[name=source]) input[name=routing_key]', 'work-key');
  await page.click('form:has(input[name=source]) button[type=submit]');
  await eventually('the binding row', async () => (await page.locator('td code', { hasText: 'work-key' }).count()) === 1);
  const bindings = (await api('GET', 'queues/%2F/work/bindings')).body;
  assert.ok(bindings.some((b) => b.source === 'amq.direct' && b.routing_key === 'work-key'));
  await shot('06-queue');
  // ... and unbinding it again.
  await page.locator('tr', { hasText: 'work-key' }).getByRole('button', { name: 'Unbind' }).click();
  await eventually('the binding gone', async () =>
    !(await api('GET', 'queues/%2F/work/bindings')).body.some((b) => b.source === 'amq.direct'));

  await page.click('#purge');
  await confirm('Purge');
  await eventually('the purge', async () => (await api('GET', 'queues/%2F/work')).body.messages === 0);
  await eventually('the page shows it', async () => /0\s+Ready/.test(await page.locator('.stats').innerText()));

  await page.click('#delete-queue');
  await confirm('Delete queue');
  await page.waitForURL(/#\/queues$/);
  assert.equal((await api('GET', 'queues/%2F/work')).status, 404);
});

test('exchanges: add one, bind a queue to it, publish a message that is routed', async () => {
  assert.equal((await api('PUT', 'queues/%2F/sink', {})).status, 201);
  await go('exchanges');
  await eventually('the exchanges list', async () => (await rowNames('exchanges')).includes('amq.topic'));
  await page.locator('summary', { hasText: 'Add an exchange' }).click();
  await page.fill('form input[name=name]', 'events');
  await page.selectOption('form select[name=type]', 'topic');
  await page.click('form button[type=submit]');
  await page.locator('.toast', { hasText: 'Exchange events declared' }).waitFor();
  assert.equal((await api('GET', 'exchanges/%2F/events')).body.type, 'topic');
  await page.fill('[data-list=exchanges] input.filter', 'amq.');
  await eventually('the filter', async () => (await rowNames('exchanges')).every((n) => n.startsWith('amq.')));
  await page.fill('[data-list=exchanges] input.filter', '');
  await eventually('all of them', async () => (await rowNames('exchanges')).includes('events'));
  await shot('07-exchanges');

  await page.locator('[data-list=exchanges] a', { hasText: /^events$/ }).click();
  await page.locator('h1', { hasText: 'Exchange events' }).waitFor();
  await page.locator('summary', { hasText: 'Add a binding' }).click();
  await page.fill('input[name=destination]', 'sink');
  await page.fill('form:has(input[name=destination]) input[name=routing_key]', 'order.*');
  await page.click('form:has(input[name=destination]) button[type=submit]');
  await eventually('the binding row', async () => (await page.locator('td code', { hasText: 'order.*' }).count()) === 1);

  const form = page.locator('form.publish-form');
  await form.locator('input[name=routing_key]').fill('order.created');
  await form.locator('.kv-key >> nth=0').fill('origin');
  await form.locator('.kv-value >> nth=0').fill('ui-test');
  await form.locator('textarea[name=payload]').fill('{"order": 1}');
  await form.locator('button[type=submit]').click();
  await eventually('routed', async () => /published and routed/.test(await page.locator('#publish-outcome').innerText()));
  await eventually('the message in the queue', async () => (await api('GET', 'queues/%2F/sink')).body.messages_ready === 1);
  const [msg] = (await api('POST', 'queues/%2F/sink/get', { count: 1, ackmode: 'ack_requeue_true', encoding: 'auto' })).body;
  assert.equal(msg.payload, '{"order": 1}');
  assert.equal(msg.routing_key, 'order.created');
  assert.deepEqual(msg.properties.headers, { origin: 'ui-test' });
  await shot('08-exchange');

  await form.locator('input[name=routing_key]').fill('invoice.created');
  await form.locator('button[type=submit]').click();
  await eventually('not routed', async () => /not routed/.test(await page.locator('#publish-outcome').innerText()));

  await page.click('#delete-exchange');
  await confirm('Delete exchange');
  await page.waitForURL(/#\/exchanges$/);
  assert.equal((await api('GET', 'exchanges/%2F/events')).status, 404);
});

test('connections and channels: list them, close a connection from its page', async () => {
  const conn = await amqp.connect(amqpUrl, { clientProperties: { connection_name: 'ui-client' } });
  const closed = new Promise((resolve) => {
    conn.on('error', (e) => resolve(e.message));
    conn.on('close', (e) => resolve(e ? e.message : 'closed'));
  });
  const ch = await conn.createChannel();
  await ch.prefetch(7);
  await ch.assertQueue('conn-q', { durable: false });
  await ch.consume('conn-q', () => {}, { consumerTag: 'ui-consumer' });

  await go('connections');
  const row = page.locator('[data-list=connections] tbody tr', { hasText: 'ui-client' });
  await row.waitFor();
  assert.match(await row.innerText(), /guest/);
  await shot('09-connections');

  await go('channels');
  await eventually('the channel', async () => /\b7\b/.test(await page.locator('[data-list=channels] tbody').innerText()));
  await shot('10-channels');

  await go('queues/%2F/conn-q');
  await page.locator('code', { hasText: 'ui-consumer' }).waitFor();

  await go('connections');
  await row.locator('a').click();
  await page.locator('h1', { hasText: 'Connection' }).waitFor();
  await eventually('its channel', async () => /Channel 1/.test(await page.locator('section:has(h2:text-is("Channels"))').innerText()));
  await shot('11-connection');
  await page.fill('input[name=reason]', 'closed by the UI test');
  await page.click('form.close-form button[type=submit]');
  await confirm('Close connection');
  const reason = await Promise.race([closed, sleep(5000).then(() => 'still open')]);
  assert.match(reason, /320|CONNECTION_FORCED|closed by the UI test/);
  await page.waitForURL(/#\/connections$/);
  await eventually('the list to lose it', async () => (await page.locator('[data-list=connections] tbody tr', { hasText: 'ui-client' }).count()) === 0);
});

test('admin: virtual hosts can be added and deleted', async () => {
  await go('vhosts');
  await page.fill('form.add-vhost input[name=name]', 'staging');
  await page.fill('form.add-vhost input[name=description]', 'for the UI test');
  await page.click('form.add-vhost button[type=submit]');
  await page.locator('.toast', { hasText: 'Virtual host staging added' }).waitFor();
  await eventually('the row', async () => (await rowNames('vhosts')).includes('staging'));
  assert.equal((await api('GET', 'vhosts/staging')).body.description, 'for the UI test');
  // The chooser in the top bar knows it now.
  assert.equal(await page.locator('#vhost-select option[value=staging]').count(), 1);
  await shot('12-vhosts');

  assert.equal((await api('PUT', 'vhosts/doomed', {})).status, 201);
  await go('vhosts/doomed');
  await page.click('#delete-vhost');
  await confirm('Delete virtual host');
  await page.waitForURL(/#\/vhosts$/);
  assert.equal((await api('GET', 'vhosts/doomed')).status, 404);
});

test('admin: users can be added, retagged, given permissions and deleted', async () => {
  await go('users');
  const add = page.locator('form.add-user');
  await add.locator('input[name=name]').fill('alice');
  await add.locator('input[name=password]').fill('s3cret');
  await add.getByRole('button', { name: 'management' }).click();
  await add.locator('button[type=submit]').click();
  await page.locator('.toast', { hasText: 'User alice added' }).waitFor();
  await eventually('the row', async () => (await rowNames('users')).includes('alice'));
  assert.deepEqual((await api('GET', 'users/alice')).body.tags, ['management']);
  await shot('13-users');

  await page.locator('[data-list=users] a', { hasText: /^alice$/ }).click();
  await page.locator('h1', { hasText: 'User alice' }).waitFor();
  const update = page.locator('form.update-user');
  await update.getByRole('button', { name: 'monitoring' }).click();
  await update.locator('button[type=submit]').click();
  await eventually('the new tags', async () =>
    JSON.stringify((await api('GET', 'users/alice')).body.tags) === '["management","monitoring"]');

  const perm = page.locator('form.permission-form');
  await perm.locator('select[name=vhost]').selectOption('staging');
  await perm.locator('input[name=configure]').fill('^alice\\.');
  await perm.locator('button[type=submit]').click();
  await eventually('the permission', async () => (await api('GET', 'permissions/staging/alice')).status === 200);
  assert.equal((await api('GET', 'permissions/staging/alice')).body.configure, '^alice\\.');
  await eventually('the row', async () => (await page.locator('section', { hasText: 'Permissions' }).locator('tbody tr', { hasText: 'staging' }).count()) === 1);
  await shot('14-user');

  // alice can sign in to the API with her password.
  const me = await fetch(`${base}api/whoami`, { headers: { Authorization: 'Basic ' + Buffer.from('alice:s3cret').toString('base64') } });
  assert.equal(me.status, 200);

  await page.locator('tr', { hasText: 'staging' }).getByRole('button', { name: 'Clear' }).click();
  await confirm('Clear');
  await eventually('the permission cleared', async () => (await api('GET', 'permissions/staging/alice')).status === 404);

  await page.click('#delete-user');
  await confirm('Delete user');
  await page.waitForURL(/#\/users$/);
  assert.equal((await api('GET', 'users/alice')).status, 404);
});

test('admin: permissions are set and cleared from the permissions page', async () => {
  assert.equal((await api('PUT', 'users/bob', { password: 'pw', tags: '' })).status, 201);
  await go('permissions');
  const perm = page.locator('form.permission-form');
  await perm.waitFor();
  await perm.locator('select[name=user]').selectOption('bob');
  await perm.locator('select[name=vhost]').selectOption('staging');
  await perm.locator('input[name=write]').fill('^bob-');
  await perm.locator('button[type=submit]').click();
  await eventually('the permission', async () => (await api('GET', 'permissions/staging/bob')).status === 200);
  const row = page.locator('tbody tr', { hasText: 'bob' });
  await eventually('the row', async () => (await row.count()) === 1);
  assert.match(await row.innerText(), /\^bob-/);
  await shot('15-permissions');
  await row.getByRole('button', { name: 'Clear' }).click();
  await confirm('Clear');
  await eventually('cleared', async () => (await api('GET', 'permissions/staging/bob')).status === 404);
  await eventually('the row gone', async () => (await row.count()) === 0);
});

test('policies: set one from the page, see it applied to a queue, clear it', async () => {
  assert.equal((await api('PUT', 'queues/%2F/ui-policy-q', { durable: false })).status, 201);
  await go('policies');
  const set = page.locator('form.policies-form');
  await set.waitFor();
  await set.locator('input[name=name]').fill('ui-cap');
  await set.locator('input[name=pattern]').fill('^ui-policy-');
  await set.locator('select[name=apply_to]').selectOption('queues');
  await set.locator('input[name=priority]').fill('3');
  await set.locator('.kv-key').first().fill('max-length');
  await set.locator('.kv-value').first().fill('5');
  await set.locator('.kv-type').first().selectOption('number');
  await set.locator('button[type=submit]').click();
  await eventually('the policy', async () => (await api('GET', 'policies/%2F/ui-cap')).status === 200);
  const row = page.locator('#policies-list tbody tr', { hasText: 'ui-cap' });
  await eventually('the row', async () => (await row.count()) === 1);
  assert.match(await row.innerText(), /max-length = 5/);
  // A refusal shows RabbitMQ's reason in the form, unescaped.
  await set.locator('input[name=name]').fill('ui-bad');
  await set.locator('input[name=pattern]').fill('x');
  await set.locator('.kv-key').first().fill('message-ttl');
  await set.locator('.kv-value').first().fill('abc');
  await set.locator('button[type=submit]').click();
  await eventually('the refusal', async () => /<<"abc">> is not a valid message TTL/.test(await set.locator('.form-error').innerText()));
  await shot('16-policies');
  // The queue's page shows the policy and what it sets.
  await go('queues/%2F/ui-policy-q');
  await eventually('the queue shows it', async () => /Policy\s+ui-cap/.test(await page.locator('main').innerText()));
  assert.match(await page.locator('main').innerText(), /max-length/);
  await shot('17-queue-policy');
  await go('policies');
  await row.getByRole('button', { name: 'Clear' }).click();
  await confirm('Clear');
  await eventually('cleared', async () => (await api('GET', 'policies/%2F/ui-cap')).status === 404);
  assert.equal((await api('DELETE', 'queues/%2F/ui-policy-q')).status, 204);
});

test('queues: 10,000 queues list, sort and page quickly', async () => {
  assert.equal((await api('PUT', 'vhosts/bulk', {})).status, 201);
  // Creating the vhost through the API gave its creator (guest) permissions already.
  assert.equal((await api('GET', 'permissions/bulk/guest')).status, 200);
  const conn = await amqp.connect(amqpUrl + 'bulk');
  const ch = await conn.createChannel();
  const declared = [];
  for (let i = 0; i < 10000; i += 1) {
    declared.push(ch.assertQueue(`bulk-${String(i).padStart(5, '0')}`, { durable: false }));
  }
  await Promise.all(declared);
  await conn.close();
  const r = await api('POST', 'exchanges/bulk/amq.default/publish',
    { routing_key: 'bulk-04321', payload: 'x', payload_encoding: 'string', properties: {} });
  assert.equal(r.body.routed, true);

  await go('queues');
  await page.locator('#vhost-select option[value=bulk]').waitFor({ state: 'attached' });
  await page.selectOption('#vhost-select', 'bulk');
  const status = page.locator('.list-status');
  const timed = async (what, action, check) => {
    const t0 = Date.now();
    await action();
    await eventually(what, check);
    const ms = Date.now() - t0;
    assert.ok(ms < 2500, `${what} took ${ms} ms`);
    return ms;
  };
  await page.fill('[data-list=queues] input.filter', '');
  await timed('the first page', () => page.selectOption('[data-list=queues] .toolbar select', '20'), async () => {
    const text = await status.innerText();
    assert.match(text, /^1–20 of 10,000 queues$/);
  });
  await timed('sorted by total', () => page.getByTitle('Sort by total').click(),
    async () => assert.deepEqual((await rowNames('queues')).slice(0, 2), ['bulk-04321', 'bulk-09999']));
  await page.getByTitle('Sort by name').click();
  await timed('the last page', () => page.getByTitle('Last page').click(),
    async () => (await rowNames('queues')).at(-1) === 'bulk-09999');
  assert.match(await page.locator('.page-no').innerText(), /Page 500 of 500/);
  await timed('a filter', () => page.fill('[data-list=queues] input.filter', 'bulk-0999'),
    async () => /^1–10 of 10 queues \(filtered from 10,000\)$/.test(await status.innerText()));
  await shot('16-queues-10000');
  await page.fill('[data-list=queues] input.filter', '');
  await page.selectOption('#vhost-select', '');
  assert.equal((await api('DELETE', 'vhosts/bulk')).status, 204);
});

test('a management user sees no admin pages; signing out forgets the credentials', async () => {
  assert.equal((await api('PUT', 'users/carol', { password: 'pw', tags: 'management' })).status, 201);
  await go('permissions');
  await page.locator('h1', { hasText: 'Permissions' }).waitFor();
  await page.click('#logout');
  await page.locator('#login').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('warren.credentials')), null);
  await page.fill('input[name=username]', 'carol');
  await page.fill('input[name=password]', 'pw');
  await page.click('#login button[type=submit]');
  // Signing in keeps the page that was asked for: here the permissions page, not for carol.
  await page.locator('h1', { hasText: 'Not found' }).waitFor();
  await go('');
  await page.locator('#totals .stat').first().waitFor();
  assert.equal(await page.locator('.nav a[data-nav=users]').count(), 0);
  await go('users');
  await page.locator('h1', { hasText: 'Not found' }).waitFor();
  await page.click('#logout');
  await page.locator('#login').waitFor();
});

test('over HTTPS: sign in, and an AMQPS connection shows its TLS session', async () => {
  const conn = await amqp.connect(amqpsUrl, {
    ca: [fs.readFileSync(caFile)],
    clientProperties: { connection_name: 'tls-client' },
  });
  try {
    const secure = await context.newPage();
    secure.on('pageerror', (e) => scriptErrors.push(e.message));
    await secure.goto(httpsBase);
    // The session of the plain-HTTP page is not shared with another origin: sign in again.
    await secure.locator('#login').waitFor();
    await secure.fill('input[name=username]', 'guest');
    await secure.fill('input[name=password]', 'guest');
    await secure.click('#login button[type=submit]');
    await secure.locator('#totals .stat').first().waitFor();
    await secure.goto(`${httpsBase}#/connections`);
    const row = secure.locator('[data-list=connections] tbody tr', { hasText: 'tls-client' });
    await row.waitFor();
    await row.locator('a').click();
    await secure.locator('h1', { hasText: 'Connection' }).waitFor();
    await eventually('the TLS session', async () => /tlsv1\.3, aes_256_gcm/.test(await secure.locator('main').innerText()));
    await secure.screenshot({ path: path.join(SHOTS, '18-connection-tls.png'), fullPage: true });
    await secure.close();
  } finally {
    await conn.close();
  }
});

test('no script errors on any page', () => {
  assert.deepEqual(scriptErrors, []);
});
