// Shared helpers for the headless-Chromium tests and the render benchmark: a temp
// HERMES_HOME, the real binary (CLI + `serve`), and a Chromium launched through
// playwright-core (installed by scripts/browser-test into target/browser-node; it never
// downloads a browser — it drives the Debian `chromium` package).
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
export const repo = path.resolve(here, '..', '..');
const target = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
export const bin = path.resolve(process.env.HK_BIN || path.join(target, 'debug', 'hermes-kanban'));
const nodeDir = path.resolve(process.env.HK_NODE_DIR || path.join(target, 'browser-node'));
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
];

export function tempHome() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hk-browser-'));
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    HERMES_HOME: path.join(dir, 'hermes'),
    NO_COLOR: '1',
    TZ: 'UTC',
  };
  const cli = (...args) => execFileSync(bin, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const json = (...args) => JSON.parse(cli(...args, '--json'));
  return { dir, env, cli, json };
}

// Start `hermes-kanban serve` on a free loopback port; resolves to { url, stop }.
export function serve(env, extraArgs = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['serve', '--bind', '127.0.0.1:0', ...extraArgs], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + err)), 15000);
    child.stderr.on('data', (d) => {
      err += d;
      const m = /serving on (http:\/\/[^\s]+?)\s/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1].replace(/\/$/, ''), stop: () => child.kill('SIGTERM'), child });
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('serve exited ' + code + ': ' + err)); });
  });
}

export async function browser() {
  if (!fs.existsSync('/usr/bin/chromium')) throw new Error('/usr/bin/chromium is missing (apt-get install chromium)');
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

// A tiny test runner that prints the plain "N passed, N failed" closing line.
export function runner() {
  const results = [];
  return {
    async test(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        results.push({ name, ok: true });
        console.log(`ok   - ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        results.push({ name, ok: false });
        console.log(`FAIL - ${name}: ${e && e.stack ? e.stack : e}`);
      }
    },
    done() {
      const passed = results.filter((r) => r.ok).length;
      const failed = results.length - passed;
      console.log(`browser: ${passed} passed, ${failed} failed`);
      return failed;
    },
  };
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}
