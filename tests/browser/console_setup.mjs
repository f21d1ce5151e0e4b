// First run on an empty database: / offers the setup form; it creates the workspace and
// its admin and logs them in; logout leads to the login form, which logs back in; a
// second visit no longer offers setup.
import { run, newPage, check, env } from './lib.mjs';
import { checkClean } from './console_lib.mjs';

await run(async (browser) => {
  const base = env('PARLEY_URL');
  const page = await newPage(browser);
  const res = await page.goto(base + '/');
  check(res.headers()['content-security-policy'].includes("default-src 'self'"), 'the console has its CSP');
  await page.waitForSelector('input[name=workspace_name]');
  check((await page.textContent('h1')).includes('Set up'), 'the setup page shows');
  // Bad input is refused with the server's reason.
  await page.fill('input[name=workspace_name]', 'Acme');
  await page.fill('input[name=name]', 'Ada Admin');
  await page.fill('input[name=email]', 'ada@example.com');
  await page.fill('input[name=password]', 'short');
  await page.evaluate(() => { document.querySelector('input[name=password]').minLength = 0; });
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('.error').textContent.includes('password'));
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('button[type=submit]');
  await page.waitForSelector('.view-link[data-view=mine]');
  await page.waitForSelector('#list-empty');
  check((await page.textContent('.views')).includes('No inbox yet'), 'a fresh workspace says how to start');

  // Log out, then log in again.
  await page.click('.me');
  await page.click('#logout');
  await page.waitForSelector('input[name=password]');
  check(!(await page.locator('input[name=workspace_name]').count()), 'setup is not offered any more');
  await page.fill('input[name=email]', 'ada@example.com');
  await page.fill('input[name=password]', 'wrong password');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('.error').textContent.length > 0);
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('button[type=submit]');
  await page.waitForSelector('.view-link[data-view=mine]');

  // A reload keeps the session.
  await page.reload();
  await page.waitForSelector('.view-link[data-view=mine]');
  // Another browser gets the login page, not setup.
  const other = await newPage(browser);
  await other.goto(base + '/');
  await other.waitForSelector('input[name=password]');
  check(!(await other.locator('input[name=workspace_name]').count()), 'no setup once set up');
  checkClean(page);
});
