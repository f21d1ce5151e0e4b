// Shared helpers for the browser tests. Each test script is run by tests/api/browser.rs
// with PARLEY_URL (the server under test) and any test-specific variables in its
// environment; it exits non-zero (with a message) when a check fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');

/** Environment variable `name`, or fail the test. */
export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
}

/**
 * Headless Chromium with the flags this machine needs (see the env notes); Playwright gives
 * each launch a fresh temporary profile.
 */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A page that fails the test on any uncaught page error, and records console errors
 * (`page.consoleErrors`) so a test can assert there were none.
 */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext(opts);
  const page = await context.newPage();
  page.consoleErrors = [];
  page.pageErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => page.pageErrors.push(String(e)));
  return page;
}

/** Fail with `message` unless `cond`. */
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

/** Save a screenshot to docs/screenshots/<name>.png when PARLEY_SCREENSHOTS=1. */
export async function screenshot(pageOrLocator, name) {
  if (process.env.PARLEY_SCREENSHOTS !== '1') return;
  const dir = join(repoRoot, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await pageOrLocator.screenshot({ path: join(dir, `${name}.png`) });
}

/** Call the Parley HTTP API as `token` (bearer); returns the parsed JSON body. */
export async function api(method, path, { token, body } = {}) {
  const res = await fetch(`${env('PARLEY_URL')}/api/v1${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Run `fn(browser)` and exit 0, or print the error and exit 1. Always closes Chromium. */
export async function run(fn) {
  const browser = await launch();
  try {
    await fn(browser);
    console.log('ok');
  } catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
