// run.js: MQTT.js in a real browser (Debian's chromium, driven by playwright-core) against
// culex over ws:// and wss://. The page subscribes, publishes (a short and a 100 kB
// payload, QoS 1) and must get its messages back; a screenshot of the page is saved as a
// test artefact (CULEX_BROWSER_ARTIFACTS, default ./artifacts).
//
//   CULEX_TEST_BROKER=/path/to/culex node run.js
//
// Exit status: 0 passed, 1 failed, 77 skipped (no chromium or no node_modules: run
// ./install.sh). Talks only to 127.0.0.1; stops the broker it started by its PID; bounded
// by a 90 s watchdog.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, execFileSync } = require('child_process');

const SKIP = 77;
const BROKER = process.env.CULEX_TEST_BROKER;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.CULEX_BROWSER_ARTIFACTS || path.join(__dirname, 'artifacts');
const MQTT_BUNDLE = path.join(__dirname, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js');

function skip(why) {
  console.log('SKIP: ' + why);
  process.exit(SKIP);
}

if (!BROKER || !fs.existsSync(BROKER)) skip('CULEX_TEST_BROKER is not set to the culex binary');
if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' is not installed (run tests/browser/install.sh)');
if (!fs.existsSync(MQTT_BUNDLE)) skip('node_modules missing (run tests/browser/install.sh)');
const { chromium } = require('playwright-core');

let broker = null;
let browser = null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'culex-browser-'));

function cleanup() {
  if (broker && broker.exitCode === null) {
    try { process.kill(broker.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

const watchdog = setTimeout(() => {
  console.error('FAIL: the browser test did not finish within 90 s');
  cleanup();
  process.exit(1);
}, 90000);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function waitPort(port) {
  for (let i = 0; i < 200; i++) {
    if (broker.exitCode !== null) throw new Error('broker exited with ' + broker.exitCode);
    if (await accepts(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('broker not listening on ' + port);
}

function makeCertificate() {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.crt',
    '-days', '2', '-subj', '/CN=localhost', '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost'], { cwd: tmp, stdio: 'ignore' });
}

// Runs in the page: connect, subscribe, publish, receive, disconnect.
async function pageRound(url) {
  const log = (s) => { document.getElementById('log').textContent += s + '\n'; };
  const client = mqtt.connect(url, {
    protocolVersion: 5, clientId: 'chromium-' + Math.random().toString(16).slice(2),
    connectTimeout: 5000, reconnectPeriod: 0,
  });
  await new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  log('connected to ' + url);
  const topic = 'browser/' + Math.random().toString(16).slice(2);
  const got = [];
  const done = new Promise((resolve) => {
    client.on('message', (t, payload) => {
      got.push(payload.length);
      log('message on ' + t + ': ' + payload.length + ' bytes');
      if (got.length === 2) resolve();
    });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  await client.publishAsync(topic, 'hello from chromium', { qos: 1 });
  await client.publishAsync(topic, new Uint8Array(100000).fill(120), { qos: 1 });
  await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error(
    'messages did not come back')), 5000))]);
  await client.endAsync();
  log('round trip over ' + url + ' ok');
  return got;
}

async function main() {
  makeCertificate();
  const wsPort = await freePort();
  const wssPort = await freePort();
  const conf = path.join(tmp, 'culex.conf');
  fs.writeFileSync(conf, [
    'workers 2', 'allow_anonymous true', 'log_type all',
    `listener ${wsPort} 127.0.0.1`, 'protocol websockets',
    `listener ${wssPort} 127.0.0.1`, 'protocol websockets',
    'certfile ' + path.join(tmp, 'server.crt'), 'keyfile ' + path.join(tmp, 'server.key'),
  ].join('\n') + '\n');
  const out = fs.openSync(path.join(tmp, 'broker.log'), 'w');
  broker = spawn(BROKER, ['-c', conf], { stdio: ['ignore', out, out] });
  await waitPort(wsPort);
  await waitPort(wssPort);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu'] });
  // The test certificate is self-signed: the browser context is told to accept it.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.setContent('<html><body><h1>culex: MQTT.js over WebSockets</h1>' +
    '<pre id="log"></pre></body></html>');
  await page.addScriptTag({ path: MQTT_BUNDLE });
  for (const url of [`ws://127.0.0.1:${wsPort}/mqtt`, `wss://127.0.0.1:${wssPort}/mqtt`]) {
    const got = await page.evaluate(pageRound, url);
    if (got.length !== 2 || !got.includes(19) || !got.includes(100000))
      throw new Error('unexpected messages over ' + url + ': ' + JSON.stringify(got));
    console.log('ok: ' + url);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, 'browser-websockets.png');
  await page.screenshot({ path: shot });
  console.log('screenshot: ' + shot);
  await browser.close();
  browser = null;

  process.kill(broker.pid, 'SIGTERM');
  const code = await new Promise((resolve) => broker.on('exit', (c, sig) => resolve(sig || c)));
  const log = fs.readFileSync(path.join(tmp, 'broker.log'), 'utf8');
  if (code !== 0) throw new Error('broker exited with ' + code + '\n' + log);
  for (const needle of ['WebSocket connection from 127.0.0.1:', 'TLS handshake with']) {
    if (!log.includes(needle)) throw new Error('broker log lacks "' + needle + '"\n' + log);
  }
}

main().then(() => {
  clearTimeout(watchdog);
  cleanup();
  console.log('PASS');
  process.exit(0);
}, async (e) => {
  console.error('FAIL: ' + (e && e.stack || e));
  try {
    console.error(fs.readFileSync(path.join(tmp, 'broker.log'), 'utf8'));
  } catch (x) { /* no log */ }
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
  cleanup();
  process.exit(1);
});
