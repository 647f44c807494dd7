// Drives the dashboard page in Debian's headless Chromium and watches one breaker open and close,
// or one balancer's instances.
//
//   node dashboard-e2e.mjs --url http://127.0.0.1:PORT/ --command payments \
//        --screenshot out.png [--timeout-ms 60000]
//   node dashboard-e2e.mjs --url http://127.0.0.1:PORT/ --balancer payments --ejected payments-b \
//        --screenshot out.png [--timeout-ms 60000]
//
// Command mode prints, one line each, as they happen: `SAW CARD`, `SAW OPEN`, `SAW CLOSED`, then
// `OK` (exit 0). Balancer mode prints `SAW BALANCER`, then `OK` once the balancer's card lists its
// instances with the --ejected one ejected until a time to come and the others active, and no
// command card shows an instance. On any failure a line starting `FAIL:` (exit 1). The caller drives traffic from these lines:
// failing calls until `SAW OPEN`, successful ones after. Page console errors and uncaught page
// errors go to stderr; an uncaught page error fails the run.
//
// Uses playwright-core only (no bundled browser): Chromium at /usr/bin/chromium, or CHROMIUM_PATH.
import { writeSync } from 'node:fs';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const POLL_MS = 100;

function say(line) {
  writeSync(1, line + '\n'); // synchronous: the caller reacts to each line as it comes
}

function warn(line) {
  writeSync(2, line + '\n');
}

function parseArgs(argv) {
  const args = { timeoutMs: 60000 };
  const names = {
    '--url': 'url', '--command': 'command', '--balancer': 'balancer', '--ejected': 'ejected',
    '--screenshot': 'screenshot', '--timeout-ms': 'timeoutMs',
  };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s, 2);
    if (!(flag in names)) throw new Error(`unknown argument ${flag}`);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
    }
    args[names[flag]] = value;
  }
  for (const required of ['url', 'screenshot']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  if (!args.command === !args.balancer) throw new Error('give one of --command or --balancer');
  if (args.balancer && !args.ejected) throw new Error('--balancer needs --ejected');
  args.timeoutMs = Number(args.timeoutMs);
  if (!Number.isFinite(args.timeoutMs) || args.timeoutMs <= 0) throw new Error('--timeout-ms must be a positive number');
  return args;
}

// Runs in the page: what the DOM shows about the command (names compared as data, not selectors).
function snapshot(name) {
  const card = Array.from(document.querySelectorAll('.command-card'))
    .find((el) => el.getAttribute('data-command') === name);
  const status = document.getElementById('connection-status');
  const transitions = Array.from(document.querySelectorAll('#transitions .transition'))
    .filter((li) => li.getAttribute('data-command') === name)
    .map((li) => ({ from: li.getAttribute('data-from'), to: li.getAttribute('data-to'), text: li.textContent.trim() }));
  const page = {
    status: status ? status.getAttribute('data-status') : null,
    statusText: status ? status.textContent.replace(/\s+/g, ' ').trim() : null,
    cards: Array.from(document.querySelectorAll('.command-card')).slice(0, 12).map((el) => el.getAttribute('data-command')),
    cardCount: document.querySelectorAll('.command-card').length,
    transitions,
  };
  if (!card) return { exists: false, ...page };
  const pctCells = Array.from(card.querySelectorAll('.latency-execute .pct'));
  return {
    exists: true,
    ...page,
    state: card.getAttribute('data-state'),
    seen: card.getAttribute('data-seen-states'),
    errorPercentage: card.getAttribute('data-error-percentage'),
    circle: !!card.querySelector('svg circle.health-circle'),
    sparkline: !!card.querySelector('svg polyline.sparkline'),
    sparkPoints: (card.querySelector('svg polyline.sparkline')?.getAttribute('points') || '').split(' ').filter(Boolean).length,
    percentiles: pctCells.map((td) => td.textContent.trim()),
  };
}

// Runs in the page: what the DOM shows about one balancer's instances.
function balancerSnapshot(name) {
  const card = Array.from(document.querySelectorAll('.balancer-card'))
    .find((el) => el.getAttribute('data-service') === name);
  const section = document.getElementById('balancers-section');
  const commandNames = Array.from(document.querySelectorAll('.command-card')).map((el) => el.getAttribute('data-command'));
  if (!card) return { exists: false, sectionHidden: section ? section.hidden : null, commandNames };
  const rows = Array.from(card.querySelectorAll('tr.instance')).map((tr) => ({
    id: tr.getAttribute('data-instance'),
    state: tr.getAttribute('data-state'),
    until: Number(tr.getAttribute('data-ejected-until') || 0),
    cells: Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim()),
  }));
  return {
    exists: true,
    sectionHidden: section.hidden,
    source: card.getAttribute('data-source'),
    headings: Array.from(card.querySelectorAll('th')).map((th) => th.textContent.trim()),
    rows,
    commandNames,
    now: Date.now(),
  };
}

function checkBalancer(s, ejected) {
  const problems = [];
  if (!s.exists) return ['no balancer card'];
  if (s.sectionHidden) problems.push('the upstream instances section is hidden');
  const expected = ['instance', 'address', 'zone', 'state', 'latency', 'failures', 'in flight', 'share', 'requests', 'ejections', 'weight'];
  if (JSON.stringify(s.headings) !== JSON.stringify(expected)) problems.push(`headings ${JSON.stringify(s.headings)}`);
  const out = s.rows.find((r) => r.id === ejected);
  if (!out) problems.push(`no row for ${ejected}`);
  else {
    if (out.state !== 'ejected') problems.push(`${ejected} shows ${out.state}`);
    if (!(out.until > s.now)) problems.push(`${ejected} is not ejected until a time to come (${out.until})`);
    if (!/^ejected until \d\d:\d\d:\d\d$/.test(out.cells[3] || '')) problems.push(`${ejected}'s state cell reads ${JSON.stringify(out.cells[3])}`);
  }
  const others = s.rows.filter((r) => r.id !== ejected);
  if (others.length < 1 || others.some((r) => r.state !== 'active')) problems.push(`other rows: ${JSON.stringify(others.map((r) => [r.id, r.state]))}`);
  for (const r of s.rows) {
    if (r.cells.length !== expected.length || r.cells.some((c) => c === '')) problems.push(`row ${r.id} has empty cells ${JSON.stringify(r.cells)}`);
    if (!/ ms$/.test(r.cells[4] || '') || !/ %$/.test(r.cells[7] || '')) problems.push(`row ${r.id}: latency/share cells ${r.cells[4]} ${r.cells[7]}`);
  }
  if (others.some((r) => !(parseFloat(r.cells[7]) > 0))) problems.push('an active instance shows no share of traffic');
  const leaked = s.commandNames.filter((n) => s.rows.some((r) => n && n.includes(r.id)));
  if (leaked.length) problems.push(`instance breakers shown as commands: ${leaked.join(', ')}`);
  return problems;
}

function describe(s) {
  if (!s) return 'nothing (page not readable)';
  const status = `connection ${s.status} ("${s.statusText}")`;
  if (!s.exists) {
    return `no such card; ${s.cardCount} command cards [${s.cards.join(', ')}]; ${status}`;
  }
  const log = s.transitions.map((t) => `${t.from || '∅'}→${t.to}`).join(', ') || 'none';
  return `data-state=${s.state} data-seen-states="${s.seen}" data-error-percentage=${s.errorPercentage}; `
    + `transitions for it: ${log}; ${status}`;
}

class Failure extends Error {}

function checkFinal(s) {
  const problems = [];
  if (!s.exists) return ['the card is gone'];
  const seen = (s.seen || '').split(/\s+/);
  if (!seen.includes('OPEN') && !seen.includes('FORCED_OPEN')) problems.push('data-seen-states lacks OPEN');
  if (!seen.includes('CLOSED')) problems.push('data-seen-states lacks CLOSED');
  if (!s.transitions.some((t) => t.to === 'OPEN' || t.to === 'FORCED_OPEN')) problems.push('#transitions has no item going to OPEN');
  if (!s.transitions.some((t) => t.to === 'CLOSED')) problems.push('#transitions has no item going to CLOSED');
  if (!s.circle) problems.push('no health circle (svg circle.health-circle) in the card');
  if (!s.sparkline) problems.push('no sparkline (svg polyline.sparkline) in the card');
  const shown = s.percentiles.filter((v) => /\d/.test(v));
  if (s.percentiles.length !== 9 || shown.length !== 9) {
    problems.push(`latency percentile cells show ${shown.length} values of 9 (${JSON.stringify(s.percentiles)})`);
  }
  if (s.status !== 'connected') problems.push(`connection status is ${s.status}, not connected`);
  return problems;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    say(`FAIL: ${e.message}`);
    warn('usage: node dashboard-e2e.mjs --url URL (--command NAME | --balancer NAME --ejected ID) --screenshot PNG [--timeout-ms N]');
    return 1;
  }
  const deadline = Date.now() + args.timeoutMs;
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  const pageErrors = [];
  let browser;
  let page;
  let last = null;

  async function look(fn = snapshot, arg = args.command) {
    last = await page.evaluate(fn, arg);
    return last;
  }

  async function waitFor(what, predicate, fn = snapshot, arg = args.command) {
    for (;;) {
      if (pageErrors.length) throw new Failure(`page threw an uncaught exception: ${pageErrors[0]}`);
      let s = null;
      try {
        s = await look(fn, arg);
      } catch (e) {
        // A navigation in flight destroys the context; try again on the next poll.
        if (!/context|navigat/i.test(String(e.message))) throw e;
      }
      if (s && predicate(s)) return s;
      if (Date.now() > deadline) {
        throw new Failure(`timed out after ${args.timeoutMs} ms waiting for ${what}; the page showed: ${fn === snapshot ? describe(last) : JSON.stringify(last)}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  try {
    try {
      browser = await chromium.launch({
        executablePath,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: Math.max(1000, deadline - Date.now()),
      });
    } catch (e) {
      throw new Failure(`cannot launch Chromium at ${executablePath}: ${e.message.split('\n')[0]}`);
    }
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error') warn(`page console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => {
      const text = err && err.stack ? err.stack : String(err);
      pageErrors.push(text.split('\n')[0]);
      warn(`page uncaught exception: ${text}`);
    });
    page.on('crash', () => pageErrors.push('the page crashed'));

    try {
      const response = await page.goto(args.url, { waitUntil: 'domcontentloaded', timeout: Math.max(1000, deadline - Date.now()) });
      if (response && !response.ok()) throw new Failure(`GET ${args.url} answered ${response.status()}`);
    } catch (e) {
      if (e instanceof Failure) throw e;
      throw new Failure(`cannot open ${args.url}: ${e.message.split('\n')[0]}`);
    }

    if (args.balancer) {
      await waitFor(`the balancer card [data-service="${args.balancer}"]`, (s) => s.exists, balancerSnapshot, args.balancer);
      say('SAW BALANCER');
      let problems = [];
      const settleBy = Math.min(deadline, Date.now() + 10000);
      for (;;) {
        const s = await page.evaluate(balancerSnapshot, args.balancer);
        problems = checkBalancer(s, args.ejected);
        if (pageErrors.length) problems.push(`page threw an uncaught exception: ${pageErrors[0]}`);
        if (!problems.length || Date.now() > settleBy) break;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      if (problems.length) throw new Failure(problems.join('; '));
      await page.evaluate(() => document.getElementById('balancers-section').scrollIntoView());
      await page.screenshot({ path: args.screenshot, fullPage: true });
      say('OK');
      return 0;
    }

    const cardSel = `command card [data-command="${args.command}"]`;
    await waitFor(`the ${cardSel}`, (s) => s.exists);
    say('SAW CARD');
    await waitFor(`${cardSel} to show data-state OPEN`, (s) => s.exists && (s.state === 'OPEN' || s.state === 'FORCED_OPEN'));
    say('SAW OPEN');
    await waitFor(`${cardSel} to show data-state CLOSED`, (s) => s.exists && s.state === 'CLOSED');
    say('SAW CLOSED');

    // The DOM must have kept the story: states seen, transitions logged, parts drawn. Cards far
    // off screen are drawn lazily, so bring this one into view and allow a moment to settle.
    await page.evaluate((name) => {
      const card = Array.from(document.querySelectorAll('.command-card'))
        .find((el) => el.getAttribute('data-command') === name);
      if (card) card.scrollIntoView({ block: 'center' });
    }, args.command);
    const settleBy = Math.min(deadline, Date.now() + 5000);
    let problems;
    let s;
    for (;;) {
      s = await look();
      problems = checkFinal(s);
      if (pageErrors.length) problems.push(`page threw an uncaught exception: ${pageErrors[0]}`);
      if (!problems.length || Date.now() > settleBy) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (problems.length) throw new Failure(`${problems.join('; ')}; the page showed: ${describe(s)}`);

    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: args.screenshot, fullPage: true });
    say('OK');
    return 0;
  } catch (e) {
    const message = e instanceof Failure ? e.message : `unexpected error: ${e && e.stack ? e.stack : e}`;
    say(`FAIL: ${message.replace(/\n/g, ' | ')}`);
    if (page) {
      try {
        await page.screenshot({ path: args.screenshot, fullPage: true, timeout: 10000 });
        warn(`screenshot of the failure saved to ${args.screenshot}`);
      } catch (shotError) {
        warn(`no screenshot: ${shotError.message.split('\n')[0]}`);
      }
    }
    return 1;
  } finally {
    if (browser) {
      await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    }
  }
}

process.exit(await main());
