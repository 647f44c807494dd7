// Breakwater stream dashboard: the instances behind each client-side balancer, from the
// stream's `BreakwaterBalancer` extension events (one per balancer and source).
//
// Loaded before app.js, which hands it every such event (`breakwaterBalancers.ingest`) and
// tells it when the page switches source (`clear`). Same rules as app.js: no inline styles or
// scripts, text from the network only through textContent and attributes.
'use strict';

window.breakwaterBalancers = (() => {
  // A balancer whose events stop (it was dropped, or its source went) leaves the page.
  const GONE_AFTER_MS = 10000;
  const STATE_ORDER = { ejected: 0, probing: 1, active: 2 };
  const section = () => document.getElementById('balancers-section');
  const list = () => document.getElementById('balancers');
  const countEl = () => document.getElementById('balancer-count');

  const balancers = new Map(); // source + name -> { data, lastSeen, el }
  let scheduled = false;

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const str = (v) => (typeof v === 'string' ? v : '');
  const timeFmt = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function ingest(d) {
    if (!isObject(d) || typeof d.name !== 'string' || !Array.isArray(d.instances)) return;
    const key = str(d.source) + '\u0000' + d.name;
    let entry = balancers.get(key);
    if (!entry) {
      entry = { el: null };
      balancers.set(key, entry);
    }
    entry.data = d;
    entry.lastSeen = Date.now();
    schedule();
  }

  function clear() {
    for (const entry of balancers.values()) entry.el?.remove();
    balancers.clear();
    schedule();
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(render);
  }

  function stateText(i) {
    if (i.state === 'ejected') {
      const until = num(i.ejectedUntil);
      return until ? `ejected until ${timeFmt.format(new Date(until))}` : 'ejected';
    }
    return i.state;
  }

  function instanceRow(i) {
    const state = STATE_ORDER[i.state] === undefined ? 'unknown' : i.state;
    const tr = el('tr', `instance state-${state}`);
    tr.setAttribute('data-instance', str(i.id));
    tr.setAttribute('data-state', state);
    if (state === 'ejected' && num(i.ejectedUntil)) tr.setAttribute('data-ejected-until', String(num(i.ejectedUntil)));
    const zone = str(i.zone) + (i.local ? ' (local)' : '');
    const cells = [
      ['inst-id', str(i.id)],
      ['inst-addr', str(i.authority)],
      ['inst-zone', zone || '—'],
      ['inst-state', stateText(i)],
      ['inst-latency num', `${num(i.latencyMs).toFixed(num(i.latencyMs) < 10 ? 2 : 1)} ms`],
      ['inst-failures num', `${(num(i.failureRate) * 100).toFixed(1)} %`],
      ['inst-inflight num', String(num(i.inFlight))],
      ['inst-share num', `${(num(i.share) * 100).toFixed(1)} %`],
      ['inst-requests num', String(num(i.requests))],
      ['inst-ejections num', String(num(i.ejections))],
      ['inst-weight num', String(num(i.weight))],
    ];
    for (const [className, text] of cells) tr.append(el('td', className, text));
    tr.title = `${str(i.id)} at ${str(i.authority)}`;
    return tr;
  }

  const HEADINGS = ['instance', 'address', 'zone', 'state', 'latency', 'failures', 'in flight', 'share', 'requests', 'ejections', 'weight'];

  function card(d) {
    const article = el('article', 'card balancer-card');
    article.setAttribute('data-service', d.name);
    if (d.source) article.setAttribute('data-source', str(d.source));
    const head = el('div', 'card-head');
    const titles = el('div', 'titles');
    titles.append(el('h3', '', d.name));
    if (d.source) titles.append(el('div', 'cmd-group muted', `seen from ${str(d.source)}`));
    head.append(titles);
    const badges = el('div', 'state-box');
    const instances = d.instances.filter(isObject);
    const out = instances.filter((i) => i.state !== 'active').length;
    badges.append(el('span', `badge ${out ? 'state-OPEN' : 'state-CLOSED'}`, `${instances.length - out}/${instances.length} active`));
    if (d.panic === true) {
      const panic = el('span', 'badge state-FORCED_OPEN balancer-panic', 'panic: all instances in use');
      panic.title = 'fewer instances are healthy than the panic threshold: ejections are not honoured';
      badges.append(panic);
    }
    if (typeof d.zone === 'string') {
      const share = typeof d.localShare === 'number' ? `, ${(d.localShare * 100).toFixed(0)} % kept local` : '';
      badges.append(el('span', 'state-mix', `zone ${d.zone}${share}`));
    }
    head.append(badges);
    article.append(head);

    const table = el('table', 'instances');
    const headRow = el('tr');
    for (const h of HEADINGS) headRow.append(el('th', '', h));
    const thead = el('thead');
    thead.append(headRow);
    table.append(thead);
    const body = el('tbody');
    instances
      .slice()
      .sort((a, b) => (STATE_ORDER[a.state] ?? 3) - (STATE_ORDER[b.state] ?? 3) || str(a.id).localeCompare(str(b.id)))
      .forEach((i) => body.append(instanceRow(i)));
    table.append(body);
    article.append(table);
    if (num(d.instancesOmitted) > 0) {
      article.append(el('p', 'muted', `${num(d.instancesOmitted)} more active instances not listed`));
    }
    return article;
  }

  function render() {
    scheduled = false;
    const now = Date.now();
    for (const [key, entry] of balancers) {
      if (now - entry.lastSeen > GONE_AFTER_MS) {
        entry.el?.remove();
        balancers.delete(key);
      }
    }
    const container = list();
    const wrapper = section();
    if (!container || !wrapper) return;
    const keys = Array.from(balancers.keys()).sort();
    for (const key of keys) {
      const entry = balancers.get(key);
      const next = card(entry.data);
      if (entry.el) entry.el.replaceWith(next);
      entry.el = next;
    }
    // Keep the cards in key order.
    for (const key of keys) container.append(balancers.get(key).el);
    wrapper.hidden = balancers.size === 0;
    const count = countEl();
    if (count) count.textContent = balancers.size ? `(${balancers.size})` : '';
  }

  setInterval(schedule, 2000);
  return { ingest, clear };
})();
