// Breakwater stream dashboard: live circuit breakers and bulkheads from a Hystrix event stream.
//
// Plain browser JavaScript, no dependencies: served from the binary under a strict CSP
// (script-src 'self', style-src 'self'), so no inline scripts/styles, no eval, and styles are
// set only through the CSSOM. Text from the network goes through textContent/attributes only.
//
// Data flow: EventSource message -> ingest() updates a per-card model (state tracking and the
// transitions log happen here, per event) -> scheduleRender() -> at most one render per
// animation frame, touching only the cards whose data changed, in place.
'use strict';

(() => {
  const PERCENTILES = ['0', '25', '50', '75', '90', '95', '99', '99.5', '100'];
  // Higher is worse; the card's overall state is the worst state any host reports.
  const SEVERITY = {
    FORCED_OPEN: 6, OPEN: 5, HALF_OPEN: 4, FORCED_CLOSED: 3, DISABLED: 2, METRICS_ONLY: 1, CLOSED: 0,
  };
  const KNOWN_STATES = new Set(Object.keys(SEVERITY));
  // States worth a log line when a command is first seen in them (no "from" state yet).
  const ALERT_STATES = new Set(['OPEN', 'HALF_OPEN', 'FORCED_OPEN']);
  const SPARK_SAMPLES = 60;
  const MAX_TRANSITIONS = 200;
  const STALE_AFTER_MS = 30000;
  const SORTS = new Set(['severity', 'errors', 'volume', 'latency', 'name']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    source: $('source'),
    sort: $('sort'),
    filter: $('filter'),
    status: $('connection-status'),
    statusText: $('connection-text'),
    lastEvent: $('last-event'),
    summary: $('summary'),
    commands: $('commands'),
    commandsEmpty: $('commands-empty'),
    commandCount: $('command-count'),
    bulkheads: $('bulkheads'),
    bulkheadsEmpty: $('bulkheads-empty'),
    bulkheadCount: $('bulkhead-count'),
    transitions: $('transitions'),
    transitionsEmpty: $('transitions-empty'),
    commandTemplate: $('command-template'),
    bulkheadTemplate: $('bulkhead-template'),
  };

  // ---------------------------------------------------------------- URL state and token

  const pageQuery = new URLSearchParams(location.search);
  const hashQuery = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = (key) => pageQuery.get(key) ?? hashQuery.get(key);

  // The token is passed on exactly as it appears in the page's own URL (still encoded), so the
  // server sees the same bytes the user gave it.
  const rawToken = (() => {
    for (const pair of location.search.replace(/^\?/, '').split('&')) {
      if (pair.startsWith('access_token=')) return pair.slice('access_token='.length);
    }
    return null;
  })();

  function withToken(url) {
    if (rawToken === null) return url;
    const hashAt = url.indexOf('#');
    const base = hashAt >= 0 ? url.slice(0, hashAt) : url;
    return base + (base.includes('?') ? '&' : '?') + 'access_token=' + rawToken;
  }

  const view = {
    source: fromUrl('source'),
    sort: SORTS.has(fromUrl('sort')) ? fromUrl('sort') : 'severity',
    filter: fromUrl('filter') || '',
  };

  // Rewrites ?source=&sort=&filter= in place, keeping every other parameter (the token) verbatim.
  function saveViewToUrl() {
    const kept = location.search.replace(/^\?/, '').split('&')
      .filter((p) => p && !/^(source|sort|filter)=/.test(p));
    const ours = new URLSearchParams();
    if (view.source) ours.set('source', view.source);
    if (view.sort !== 'severity') ours.set('sort', view.sort);
    if (view.filter) ours.set('filter', view.filter);
    const query = kept.concat(ours.toString() ? [ours.toString()] : []).join('&');
    const url = location.pathname + (query ? '?' + query : '');
    if (url !== location.pathname + location.search) history.replaceState(null, '', url);
  }

  // ---------------------------------------------------------------- value helpers

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const oneFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  function num(v) {
    if (typeof v === 'number') return Number.isFinite(v) ? v : 0;
    if (typeof v === 'string' && v.trim() !== '') {
      const n = Number(v);
      return Number.isFinite(n) ? n : 0;
    }
    return 0;
  }

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const isTrue = (v) => v === true || v === 'true';

  // Aggregated values: {"value": hosts, ...}. Returns [[value, count], ...], most common first.
  function valueCounts(v, hosts) {
    if (isObject(v)) {
      return Object.entries(v)
        .map(([k, n]) => [k, num(n)])
        .filter(([, n]) => n > 0)
        .sort((a, b) => b[1] - a[1]);
    }
    if (v === undefined) return [];
    return [[v === null ? 'null' : String(v), hosts]];
  }

  // How many hosts report this value (e.g. 'true') for a plain or aggregated property.
  function countOf(v, value, hosts) {
    if (isObject(v)) return num(v[value]);
    if (v === undefined || v === null) return 0;
    return String(v) === value ? hosts : 0;
  }

  // A numeric property, plain or aggregated (then the most common value).
  function numProp(v) {
    if (isObject(v)) {
      const counts = valueCounts(v, 1);
      return counts.length ? num(counts[0][0]) : 0;
    }
    return num(v);
  }

  function fmtCount(n) {
    return intFmt.format(Math.round(n));
  }

  function fmtRate(n) {
    return n < 10 ? oneFmt.format(Math.round(n * 10) / 10) : intFmt.format(Math.round(n));
  }

  // Milliseconds in at most 4 characters, for the narrow latency cells: 346, 1.35s -> 1.3s,
  // 12.3s -> 12s, 95 s -> 1.6m. The cell's title keeps the exact value.
  function fmtMs(ms) {
    const v = Math.round(ms);
    if (v < 1000) return String(v);
    if (v < 9950) return (v / 1000).toFixed(1) + 's';
    if (v < 59500) return Math.round(v / 1000) + 's';
    if (v < 595000) return (v / 60000).toFixed(1) + 'm';
    return Math.round(v / 60000) + 'm';
  }

  // Plain value, or "a 2 / b 1" for aggregated values that hosts disagree on.
  function fmtMixed(v, hosts, unit = '') {
    if (v === undefined) return '—';
    if (isObject(v)) {
      const counts = valueCounts(v, hosts);
      if (counts.length === 1) return counts[0][0] + unit;
      return counts.map(([k, n]) => `${k}${unit} ×${n}`).join(' / ');
    }
    if (v === null) return '—';
    return String(v) + unit;
  }

  function clock(ms) {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  const stateLabel = (s) => s.replace(/_/g, ' ');
  const stateClass = (s) => 'state-' + (KNOWN_STATES.has(s) ? s : 'UNKNOWN');
  const severity = (s) => (s in SEVERITY ? SEVERITY[s] : 0.5);

  // Sets text only when it changed (no DOM read, no needless layout).
  function setText(el, text) {
    if (el.__text !== text) {
      el.__text = text;
      el.textContent = text;
    }
  }

  function setAttr(el, name, value) {
    const key = '__attr_' + name;
    if (el[key] !== value) {
      el[key] = value;
      el.setAttribute(name, value);
    }
  }

  function setClass(el, prefix, value) {
    const key = '__class_' + prefix;
    if (el[key] !== value) {
      if (el[key]) el.classList.remove(el[key]);
      if (value) el.classList.add(value);
      el[key] = value;
    }
  }

  // ---------------------------------------------------------------- health colour

  // Hystrix: green -> #FFCC00 -> #FF9900 -> red over error % 0/25/40/50, i.e. 0, .5, .8 and 1
  // of its default 50% threshold; here scaled to each breaker's own threshold.
  const COLOUR_STOPS = [[0, [44, 160, 44]], [0.5, [255, 204, 0]], [0.8, [255, 153, 0]], [1, [214, 39, 40]]];

  function healthColour(errorPct, threshold) {
    const t = Math.max(0, errorPct) / (threshold > 0 ? threshold : 50);
    if (t >= 1) return rgb(COLOUR_STOPS[3][1]);
    for (let i = 1; i < COLOUR_STOPS.length; i++) {
      const [x1, c1] = COLOUR_STOPS[i];
      if (t <= x1) {
        const [x0, c0] = COLOUR_STOPS[i - 1];
        const f = (t - x0) / (x1 - x0);
        return rgb(c0.map((c, j) => c + (c1[j] - c) * f));
      }
    }
    return rgb(COLOUR_STOPS[3][1]);
  }

  const rgb = (c) => `rgb(${c.map((x) => Math.round(x)).join(',')})`;

  // Hystrix: radius on a sqrt scale of the per-host rate over 0..400 req/s.
  function healthRadius(ratePerHost) {
    const f = Math.sqrt(Math.min(Math.max(ratePerHost, 0), 400) / 400);
    return 6 + (29 - 6) * f;
  }

  // ---------------------------------------------------------------- command model

  function commandState(d, hosts) {
    const explicit = d.circuitBreakerState;
    let counts;
    if (explicit !== undefined && explicit !== null) {
      counts = valueCounts(explicit, hosts);
    } else {
      // Java Hystrix: no explicit state, derive it from the flags (per host, when aggregated).
      let left = hosts;
      const take = (n) => {
        const t = Math.max(0, Math.min(left, n));
        left -= t;
        return t;
      };
      const disabled = take(countOf(d.propertyValue_circuitBreakerEnabled, 'false', hosts));
      const forcedOpen = take(countOf(d.propertyValue_circuitBreakerForceOpen, 'true', hosts));
      const forcedClosed = take(countOf(d.propertyValue_circuitBreakerForceClosed, 'true', hosts));
      const open = take(countOf(d.isCircuitBreakerOpen, 'true', hosts) - forcedOpen);
      counts = [['DISABLED', disabled], ['FORCED_OPEN', forcedOpen], ['FORCED_CLOSED', forcedClosed],
        ['OPEN', open], ['CLOSED', left]].filter(([, n]) => n > 0);
    }
    counts.sort((a, b) => severity(b[0]) - severity(a[0]) || b[1] - a[1]);
    const overall = counts.length ? counts[0][0] : 'CLOSED';
    const mixed = counts.length > 1 ? counts.map(([s, n]) => `${s} ${n}`).join(' / ') : '';
    return { overall, mixed, counts };
  }

  const CONFIG = [
    ['volume threshold', (d, h) => fmtMixed(d.propertyValue_circuitBreakerRequestVolumeThreshold, h)],
    ['error threshold', (d, h) => fmtMixed(d.propertyValue_circuitBreakerErrorThresholdPercentage, h, '%')],
    ['sleep window', (d, h) => fmtMixed(d.propertyValue_circuitBreakerSleepWindowInMilliseconds, h, ' ms')],
    ['timeout', (d, h) => fmtMixed(d.propertyValue_executionTimeoutInMilliseconds !== undefined
      ? d.propertyValue_executionTimeoutInMilliseconds
      : d.propertyValue_executionIsolationThreadTimeoutInMilliseconds, h, ' ms')],
    ['isolation', (d, h) => fmtMixed(d.propertyValue_executionIsolationStrategy, h)],
    ['max concurrent', (d, h) => fmtMixed(d.propertyValue_executionIsolationSemaphoreMaxConcurrentRequests, h)],
    ['force open', (d, h) => fmtMixed(d.propertyValue_circuitBreakerForceOpen, h)],
    ['force closed', (d, h) => fmtMixed(d.propertyValue_circuitBreakerForceClosed, h)],
    ['enabled', (d, h) => fmtMixed(d.propertyValue_circuitBreakerEnabled, h)],
    ['window', (d, h) => fmtMixed(d.propertyValue_metricsRollingStatisticalWindowInMilliseconds, h, ' ms')],
  ];

  function latencyOf(mean, map, hosts) {
    const m = isObject(map) ? map : {};
    return { mean: num(mean) / hosts, values: PERCENTILES.map((k) => num(m[k]) / hosts) };
  }

  function sameLatency(a, b) {
    if (Math.round(a.mean) !== Math.round(b.mean)) return false;
    return a.values.every((v, i) => Math.round(v) === Math.round(b.values[i]));
  }

  function commandModel(d) {
    const hosts = Math.max(1, Math.round(num(d.reportingHosts)) || 1);
    const windowMs = numProp(d.propertyValue_metricsRollingStatisticalWindowInMilliseconds) || 10000;
    const requests = num(d.requestCount);
    const errors = num(d.errorCount);
    // Summed across hosts, the percentage would be meaningless: recompute it from the counts.
    const errorPct = hosts > 1 || d.errorPercentage === undefined
      ? (requests > 0 ? Math.floor((errors * 100) / requests) : 0)
      : Math.round(num(d.errorPercentage));
    const rateCluster = requests / (windowMs / 1000);
    const execute = latencyOf(d.latencyExecute_mean, d.latencyExecute, hosts);
    const total = latencyOf(d.latencyTotal_mean, d.latencyTotal, hosts);
    const threshold = numProp(d.propertyValue_circuitBreakerErrorThresholdPercentage) || 50;
    return {
      data: d,
      name: d.name,
      group: typeof d.group === 'string' ? d.group : fmtMixed(d.group, hosts),
      hosts,
      requests,
      errorPct,
      threshold,
      rateCluster,
      rateHost: rateCluster / hosts,
      counts: {
        success: num(d.rollingCountSuccess),
        short: num(d.rollingCountShortCircuited),
        bad: num(d.rollingCountBadRequests),
        timeout: num(d.rollingCountTimeout),
        rejected: num(d.rollingCountSemaphoreRejected) + num(d.rollingCountThreadPoolRejected),
        failure: num(d.rollingCountFailure),
        fbSuccess: num(d.rollingCountFallbackSuccess),
        fbFailure: num(d.rollingCountFallbackFailure),
        fbMissing: num(d.rollingCountFallbackMissing),
      },
      concurrent: num(d.currentConcurrentExecutionCount),
      maxConcurrent: num(d.rollingMaxConcurrentExecutionCount),
      execute,
      total,
      showTotal: !sameLatency(execute, total),
      state: commandState(d, hosts),
    };
  }

  // ---------------------------------------------------------------- store

  const commands = new Map(); // name -> card
  const bulkheads = new Map(); // name -> card
  const dirty = new Set();
  const pendingTransitions = [];
  let orderDirty = true; // cards came, went, or the sort/filter changed: arrange now
  let orderStale = false; // values changed under a value sort: arrange at most once a second
  let lastArranged = 0;
  const RESORT_MS = 1000;
  let summaryDirty = true;
  let renderScheduled = false;
  let lastEventAt = 0;
  let resortTimer = null;

  function ingest(d) {
    if (!isObject(d) || typeof d.name !== 'string' || d.name === '') return;
    if (isTrue(d.deleteData)) {
      remove(d.type, d.name);
      return;
    }
    if (d.type === 'HystrixCommand') ingestCommand(d);
    else if (d.type === 'HystrixThreadPool') ingestBulkhead(d);
    else if (d.type === 'BreakwaterBalancer') window.breakwaterBalancers?.ingest(d);
  }

  function ingestCommand(d) {
    let card = commands.get(d.name);
    if (!card) {
      card = createCommandCard(d.name);
      commands.set(d.name, card);
      orderDirty = true;
    }
    const m = commandModel(d);
    card.model = m;
    card.lastSeen = Date.now();
    card.spark.push(m.rateCluster);
    if (card.spark.length > SPARK_SAMPLES) card.spark.shift();
    const state = m.state.overall;
    if (state !== card.state) {
      if (card.state !== null) logTransition(d.name, card.state, state);
      else if (ALERT_STATES.has(state)) logTransition(d.name, '', state);
      card.state = state;
      if (!card.seen.includes(state)) card.seen.push(state);
      summaryDirty = true;
    }
    if (view.sort !== 'name') orderStale = true;
    dirty.add(card);
  }

  function ingestBulkhead(d) {
    let card = bulkheads.get(d.name);
    if (!card) {
      card = createBulkheadCard(d.name);
      bulkheads.set(d.name, card);
      orderDirty = true;
    }
    card.data = d;
    card.numbers = bulkheadNumbers(d);
    card.lastSeen = Date.now();
    if (view.sort !== 'name') orderStale = true;
    dirty.add(card);
  }

  function remove(type, name) {
    if (type === undefined || type === 'HystrixCommand') dropCard(commands, name);
    if (type === undefined || type === 'HystrixThreadPool') dropCard(bulkheads, name);
  }

  function dropCard(map, name) {
    const card = map.get(name);
    if (!card) return;
    map.delete(name);
    dirty.delete(card);
    untrack(card);
    card.el.remove();
    orderDirty = true;
    summaryDirty = true;
  }

  function clearCards() {
    window.breakwaterBalancers?.clear();
    for (const map of [commands, bulkheads]) {
      for (const card of map.values()) {
        untrack(card);
        card.el.remove();
      }
      map.clear();
    }
    dirty.clear();
    orderDirty = true;
    summaryDirty = true;
  }

  function logTransition(name, from, to) {
    pendingTransitions.push({ name, from, to, at: Date.now() });
    if (pendingTransitions.length > MAX_TRANSITIONS) pendingTransitions.shift();
  }

  // ---------------------------------------------------------------- visibility

  // Only cards near the viewport get their numbers drawn; the others catch up when scrolled to.
  const visibility = 'IntersectionObserver' in window
    ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const card = entry.target.__card;
        if (!card) continue;
        card.visible = entry.isIntersecting;
        if (card.visible && card.behind) {
          dirty.add(card);
          scheduleRender();
        }
      }
    }, { rootMargin: '400px 0px' })
    : null;

  function track(card) {
    card.el.__card = card;
    // Drawn in full at first; the observer then says whether it is near the viewport.
    card.visible = true;
    card.behind = false;
    if (visibility) visibility.observe(card.el);
    return card;
  }

  function untrack(card) {
    if (visibility) visibility.unobserve(card.el);
  }

  // ---------------------------------------------------------------- DOM: command cards

  function createCommandCard(name) {
    const el = ui.commandTemplate.content.firstElementChild.cloneNode(true);
    el.setAttribute('data-command', name);
    const q = (sel) => el.querySelector(sel);
    const refs = {
      name: q('.cmd-name'),
      group: q('.cmd-group'),
      badge: q('.badge'),
      mix: q('.state-mix'),
      circle: q('.health-circle'),
      spark: q('.sparkline'),
      sparkArea: q('.spark-area'),
      sparkMax: q('.spark-max'),
      errPct: q('.err-pct'),
      rateHost: q('.rate-host'),
      rateCluster: q('.rate-cluster'),
      hosts: q('.hosts'),
      concCur: q('.conc-cur'),
      concMax: q('.conc-max'),
      latPerHost: q('.lat-per-host'),
      counts: {},
      execute: latencyRefs(q('.latency-execute')),
      total: latencyRefs(q('.latency-total')),
      config: [],
    };
    for (const dd of el.querySelectorAll('dd[data-count]')) refs.counts[dd.dataset.count] = dd;
    refs.details = q('.config');
    refs.configList = q('.config-list');
    refs.name.textContent = name;
    refs.name.title = name;
    const card = track({
      kind: 'command', name, el, refs, model: null, state: null, seen: [], spark: [], lastSeen: 0,
      stale: false, hidden: false,
    });
    // The configuration is built and kept current only while its block is open.
    refs.details.addEventListener('toggle', () => {
      if (refs.details.open && card.model) renderConfig(card);
    });
    return card;
  }

  function renderConfig(card) {
    const { refs, model } = card;
    if (!refs.config.length) {
      for (const [label] of CONFIG) {
        const row = document.createElement('div');
        const dt = document.createElement('dt');
        dt.textContent = label;
        const dd = document.createElement('dd');
        row.append(dt, dd);
        refs.configList.append(row);
        refs.config.push(dd);
      }
    }
    CONFIG.forEach(([, get], i) => {
      const text = get(model.data, model.hosts);
      setText(refs.config[i], text);
      // Values the hosts disagree on take a whole row.
      setClass(refs.config[i].parentElement, 'wide', text.includes(' / ') ? 'wide' : '');
    });
  }

  function latencyRefs(row) {
    return { row, mean: row.querySelector('.lat-mean'), cells: Array.from(row.querySelectorAll('.pct')) };
  }

  function renderLatency(refs, lat) {
    setText(refs.mean, fmtMs(lat.mean));
    lat.values.forEach((v, i) => {
      const cell = refs.cells[i];
      setText(cell, fmtMs(v));
      setAttr(cell, 'title', `p${PERCENTILES[i]}: ${Math.round(v)} ms`);
    });
  }

  // The test hooks and the card's state look: kept current for every card, on screen or not.
  function renderCommandHooks(card) {
    const m = card.model;
    const { el } = card;
    const state = m.state.overall;
    setAttr(el, 'data-state', state);
    setAttr(el, 'data-seen-states', card.seen.join(' '));
    setAttr(el, 'data-error-percentage', String(m.errorPct));
    setClass(el, 'state', stateClass(state));
  }

  function renderCommand(card) {
    const m = card.model;
    const { refs } = card;
    const state = m.state.overall;

    setText(refs.group, m.group);
    setText(refs.badge, stateLabel(state));
    setClass(refs.badge, 'state', stateClass(state));
    setText(refs.mix, m.state.mixed);

    const colour = healthColour(m.errorPct, m.threshold);
    setAttr(refs.circle, 'fill', colour);
    setAttr(refs.circle, 'r', healthRadius(m.rateHost).toFixed(1));
    setText(refs.errPct, m.errorPct + '%');
    setClass(refs.errPct, 'level', m.errorPct >= m.threshold ? 'err-high' : m.errorPct > 0 ? 'err-some' : '');
    setText(refs.rateHost, fmtRate(m.rateHost));
    setText(refs.rateCluster, fmtRate(m.rateCluster));
    setText(refs.hosts, m.hosts === 1 ? '1 host' : `${m.hosts} hosts`);
    setText(refs.concCur, fmtCount(m.concurrent));
    setText(refs.concMax, fmtCount(m.maxConcurrent));

    for (const key in refs.counts) {
      const value = m.counts[key];
      setText(refs.counts[key], fmtCount(value));
      setClass(refs.counts[key].parentElement, 'zero', value === 0 ? 'zero' : '');
    }

    renderSpark(card);
    setText(refs.latPerHost, m.hosts > 1 ? `, per host of ${m.hosts}` : '');
    renderLatency(refs.execute, m.execute);
    if (m.showTotal) renderLatency(refs.total, m.total);
    if (refs.total.row.hidden === m.showTotal) refs.total.row.hidden = !m.showTotal;
    if (refs.details.open) renderConfig(card);
  }

  function renderSpark(card) {
    const samples = card.spark;
    let max = 0;
    for (const v of samples) if (v > max) max = v;
    const scale = max > 0 ? max : 1;
    const step = 300 / (SPARK_SAMPLES - 1);
    const offset = SPARK_SAMPLES - samples.length;
    let points = '';
    for (let i = 0; i < samples.length; i++) {
      const x = (offset + i) * step;
      const y = 34 - (samples[i] / scale) * 27;
      points += `${x.toFixed(1)},${y.toFixed(1)} `;
    }
    points = points.trim();
    setAttr(card.refs.spark, 'points', points);
    const area = samples.length > 1
      ? `${(offset * step).toFixed(1)},35 ${points} 300.0,35`
      : '';
    setAttr(card.refs.sparkArea, 'points', area);
    setText(card.refs.sparkMax, `max ${fmtRate(max)}/s`);
  }

  // ---------------------------------------------------------------- DOM: bulkhead cards

  function createBulkheadCard(name) {
    const el = ui.bulkheadTemplate.content.firstElementChild.cloneNode(true);
    el.setAttribute('data-bulkhead', name);
    const q = (sel) => el.querySelector(sel);
    const refs = {
      name: q('.bh-name'),
      hosts: q('.bh-hosts'),
      ratio: q('.bh-ratio'),
      bar: q('.bar'),
      fill: q('.bar-fill'),
      active: q('.bh-active'),
      max: q('.bh-max'),
      executed: q('.bh-executed'),
      rejected: q('.bh-rejected'),
      maxActive: q('.bh-max-active'),
      queue: q('.bh-queue'),
    };
    refs.name.textContent = name;
    refs.name.title = name;
    return track({ kind: 'bulkhead', name, el, refs, data: null, lastSeen: 0, stale: false, hidden: false });
  }

  function bulkheadNumbers(d) {
    const active = num(d.currentActiveCount);
    const max = num(d.currentMaximumPoolSize) || num(d.currentCorePoolSize) || num(d.currentPoolSize);
    return {
      hosts: Math.max(1, Math.round(num(d.reportingHosts)) || 1),
      active,
      max,
      use: max > 0 ? active / max : 0,
      executed: num(d.rollingCountThreadsExecuted),
      rejected: num(d.rollingCountCommandRejections),
      maxActive: num(d.rollingMaxActiveThreads),
      queue: num(d.currentQueueSize),
    };
  }

  function renderBulkhead(card) {
    const n = card.numbers;
    const { refs } = card;
    setText(refs.hosts, n.hosts > 1 ? `· ${n.hosts} hosts` : '');
    setText(refs.ratio, `${fmtCount(n.active)} / ${fmtCount(n.max)}`);
    const pct = Math.min(100, Math.round(n.use * 100));
    const width = pct + '%';
    if (refs.fill.__width !== width) {
      refs.fill.__width = width;
      refs.fill.style.width = width; // CSSOM: allowed by style-src 'self'
    }
    setAttr(refs.bar, 'aria-valuenow', String(n.active));
    setAttr(refs.bar, 'aria-valuemax', String(n.max));
    setClass(refs.fill, 'level', n.use >= 1 ? 'full' : n.use >= 0.7 ? 'high' : '');
    setText(refs.active, fmtCount(n.active));
    setText(refs.max, fmtCount(n.max));
    setText(refs.executed, fmtCount(n.executed));
    setText(refs.rejected, fmtCount(n.rejected));
    setClass(refs.rejected.parentElement, 'zero', n.rejected === 0 ? 'zero' : '');
    setText(refs.maxActive, fmtCount(n.maxActive));
    setText(refs.queue, fmtCount(n.queue));
    setClass(card.el, 'rejecting', n.rejected > 0 ? 'rejecting' : '');
  }

  // ---------------------------------------------------------------- order and filter

  function matches(card, needle) {
    if (!needle) return true;
    if (card.name.toLowerCase().includes(needle)) return true;
    const group = card.model && card.model.group;
    return typeof group === 'string' && group.toLowerCase().includes(needle);
  }

  const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  function commandComparator(sort) {
    const m = (c) => c.model;
    switch (sort) {
      case 'name': return byName;
      case 'errors': return (a, b) => m(b).errorPct - m(a).errorPct || m(b).requests - m(a).requests || byName(a, b);
      case 'volume': return (a, b) => m(b).requests - m(a).requests || byName(a, b);
      case 'latency': return (a, b) => Math.round(m(b).execute.mean) - Math.round(m(a).execute.mean) || byName(a, b);
      default: return (a, b) => severity(b.state) - severity(a.state) || m(b).errorPct - m(a).errorPct || byName(a, b);
    }
  }

  function bulkheadComparator(sort) {
    const n = (c) => c.numbers;
    switch (sort) {
      case 'name': return byName;
      case 'volume': return (a, b) => n(b).executed - n(a).executed || byName(a, b);
      default: return (a, b) => n(b).rejected - n(a).rejected || n(b).use - n(a).use || byName(a, b);
    }
  }

  // Moves only the cards that are out of place; hides those the filter leaves out.
  function arrange(container, cards, comparator, needle) {
    const sorted = cards.sort(comparator);
    let shown = 0;
    let cursor = container.firstElementChild;
    for (const card of sorted) {
      const hide = !matches(card, needle);
      if (card.hidden !== hide) {
        card.hidden = hide;
        card.el.hidden = hide;
      }
      if (!hide) shown++;
      if (card.el === cursor) cursor = cursor.nextElementSibling;
      else container.insertBefore(card.el, cursor);
    }
    return shown;
  }

  function renderOrder() {
    const needle = view.filter.trim().toLowerCase();
    const cmdCards = Array.from(commands.values()).filter((c) => c.model);
    const shownCommands = arrange(ui.commands, cmdCards, commandComparator(view.sort), needle);
    const bhCards = Array.from(bulkheads.values()).filter((c) => c.numbers);
    const shownBulkheads = arrange(ui.bulkheads, bhCards, bulkheadComparator(view.sort), needle);
    setText(ui.commandCount, countLabel(shownCommands, cmdCards.length));
    setText(ui.bulkheadCount, countLabel(shownBulkheads, bhCards.length));
    ui.commandsEmpty.hidden = shownCommands > 0;
    setText(ui.commandsEmpty, cmdCards.length ? 'No circuit breaker matches the filter.' : 'Waiting for circuit breaker events…');
    ui.bulkheadsEmpty.hidden = shownBulkheads > 0;
    setText(ui.bulkheadsEmpty, bhCards.length ? 'No bulkhead matches the filter.' : 'No bulkhead events.');
  }

  const countLabel = (shown, total) => (shown === total ? `(${total})` : `(${shown} of ${total})`);

  // ---------------------------------------------------------------- transitions log

  function flushTransitions() {
    if (!pendingTransitions.length) return;
    const fragment = document.createDocumentFragment();
    // Newest first: the last pending is the newest, so it goes on top.
    for (let i = pendingTransitions.length - 1; i >= 0; i--) {
      const t = pendingTransitions[i];
      const li = document.createElement('li');
      li.className = `transition ${stateClass(t.to)}`;
      li.setAttribute('data-command', t.name);
      li.setAttribute('data-from', t.from);
      li.setAttribute('data-to', t.to);
      li.tabIndex = 0;
      li.title = 'show this breaker';
      const time = document.createElement('time');
      time.dateTime = new Date(t.at).toISOString();
      time.textContent = clock(t.at);
      const text = document.createElement('span');
      text.className = 'transition-text';
      text.textContent = `${t.name}: ${t.from || '(first seen)'} → ${t.to}`;
      li.append(time, ' ', text);
      fragment.append(li);
    }
    pendingTransitions.length = 0;
    ui.transitions.prepend(fragment);
    while (ui.transitions.children.length > MAX_TRANSITIONS) ui.transitions.lastElementChild.remove();
    ui.transitionsEmpty.hidden = true;
  }

  function noteInLog(text) {
    const li = document.createElement('li');
    li.className = 'transition-note';
    const time = document.createElement('time');
    time.textContent = clock(Date.now());
    li.append(time, ' ', text);
    ui.transitions.prepend(li);
    while (ui.transitions.children.length > MAX_TRANSITIONS) ui.transitions.lastElementChild.remove();
  }

  ui.transitions.addEventListener('click', (e) => revealFromLog(e.target));
  ui.transitions.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') revealFromLog(e.target);
  });

  function revealFromLog(target) {
    const li = target.closest && target.closest('li.transition');
    if (!li) return;
    const card = commands.get(li.getAttribute('data-command'));
    if (!card || card.hidden) return;
    card.el.scrollIntoView({ block: 'center', behavior: 'smooth' });
    card.el.classList.remove('flash');
    void card.el.offsetWidth; // restart the animation
    card.el.classList.add('flash');
  }

  // ---------------------------------------------------------------- summary

  function renderSummary() {
    const counts = {};
    for (const card of commands.values()) {
      if (card.state) counts[card.state] = (counts[card.state] || 0) + 1;
    }
    const frag = document.createDocumentFragment();
    const states = Object.keys(counts).sort((a, b) => severity(b) - severity(a));
    for (const s of states) {
      const chip = document.createElement('span');
      chip.className = `chip ${stateClass(s)}`;
      chip.textContent = `${stateLabel(s)} ${counts[s]}`;
      frag.append(chip);
    }
    ui.summary.replaceChildren(frag);
  }

  // ---------------------------------------------------------------- render loop

  function scheduleRender() {
    if (renderScheduled) return;
    renderScheduled = true;
    // Hidden tabs get no animation frames; still keep the page current, more slowly.
    if (document.hidden) setTimeout(render, 500);
    else requestAnimationFrame(render);
  }

  function render() {
    renderScheduled = false;
    flushTransitions();
    for (const card of dirty) {
      if (card.kind === 'command') renderCommandHooks(card);
      // Cards far off screen (or filtered out) keep their data and are drawn when they show.
      if (!card.visible) {
        card.behind = true;
        continue;
      }
      card.behind = false;
      if (card.kind === 'command') renderCommand(card);
      else renderBulkhead(card);
    }
    dirty.clear();
    const now = performance.now();
    if (orderStale && !orderDirty) {
      if (now - lastArranged >= RESORT_MS) orderDirty = true;
      else if (!resortTimer) {
        resortTimer = setTimeout(() => {
          resortTimer = null;
          scheduleRender();
        }, RESORT_MS - (now - lastArranged));
      }
    }
    if (orderDirty) {
      orderDirty = false;
      orderStale = false;
      lastArranged = now;
      renderOrder();
    }
    if (summaryDirty) {
      summaryDirty = false;
      renderSummary();
    }
  }

  // Once a second: "last event … ago", and dim cards whose data stopped coming.
  setInterval(() => {
    const now = Date.now();
    if (lastEventAt) {
      const ago = Math.round((now - lastEventAt) / 1000);
      setText(ui.lastEvent, `last event ${clock(lastEventAt)}${ago >= 3 ? ` (${ago} s ago)` : ''}`);
      setClass(ui.lastEvent, 'stale', ago >= 10 ? 'stale' : '');
    }
    for (const map of [commands, bulkheads]) {
      for (const card of map.values()) {
        const stale = now - card.lastSeen > STALE_AFTER_MS;
        if (stale !== card.stale) {
          card.stale = stale;
          card.el.classList.toggle('stale', stale);
        }
      }
    }
  }, 1000);

  // ---------------------------------------------------------------- connection

  let sources = [];
  let eventSource = null;
  let generation = 0;
  let retryTimer = null;
  let retryDelay = 2000;

  function setStatus(status, text) {
    setAttr(ui.status, 'data-status', status);
    setText(ui.statusText, text);
  }

  function onMessage(event) {
    lastEventAt = Date.now();
    const raw = event.data;
    if (typeof raw !== 'string' || raw === '') return;
    let payloads;
    try {
      payloads = [JSON.parse(raw)];
    } catch {
      // Several data: lines in one event arrive joined by newlines: one JSON object each.
      payloads = [];
      for (const line of raw.split('\n')) {
        try {
          if (line.trim()) payloads.push(JSON.parse(line));
        } catch {
          console.warn('dashboard: skipped an event that is not JSON:', line.slice(0, 200));
        }
      }
    }
    for (const p of payloads) ingest(p);
    scheduleRender();
  }

  function connect() {
    clearTimeout(retryTimer);
    if (eventSource) eventSource.close();
    const source = sources.find((s) => s.id === view.source) || sources[0];
    if (!source) {
      setStatus('error', 'no stream source');
      return;
    }
    const mine = ++generation;
    setStatus('reconnecting', `connecting to ${source.label}…`);
    const es = new EventSource(withToken(source.url));
    eventSource = es;
    es.onopen = () => {
      if (mine !== generation) return;
      retryDelay = 2000;
      setStatus('connected', 'connected');
    };
    es.onmessage = (e) => {
      if (mine === generation) onMessage(e);
    };
    es.onerror = () => {
      if (mine !== generation) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, a wrong content type): retry ourselves.
        const seconds = Math.round(retryDelay / 1000);
        setStatus('error', `stream failed, retrying in ${seconds} s`);
        retryTimer = setTimeout(() => {
          if (mine === generation) connect();
        }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        setStatus('reconnecting', 'reconnecting…');
      }
    };
  }

  function fillSourceSelect() {
    const options = sources.map((s) => {
      const o = document.createElement('option');
      o.value = s.id;
      o.textContent = s.label;
      return o;
    });
    ui.source.replaceChildren(...options);
    ui.source.value = view.source;
    ui.source.disabled = sources.length < 2;
  }

  async function loadSources() {
    let list = null;
    let preferred = null;
    try {
      const response = await fetch(withToken('dashboard/sources.json'), { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (isObject(body) && Array.isArray(body.sources)) {
        list = body.sources
          .filter((s) => isObject(s) && typeof s.id === 'string' && typeof s.url === 'string')
          .map((s) => ({ id: s.id, url: s.url, label: typeof s.label === 'string' ? s.label : s.id }));
        preferred = typeof body.default === 'string' ? body.default : null;
      }
    } catch (e) {
      console.warn('dashboard: cannot read dashboard/sources.json, using hystrix.stream:', e.message);
    }
    if (!list || !list.length) {
      list = [{ id: 'local', label: 'this instance', url: 'hystrix.stream' }];
    }
    sources = list;
    if (!sources.some((s) => s.id === view.source)) {
      view.source = sources.some((s) => s.id === preferred) ? preferred : sources[0].id;
    }
    fillSourceSelect();
    connect();
  }

  // ---------------------------------------------------------------- controls

  ui.sort.value = view.sort;
  ui.filter.value = view.filter;

  ui.source.addEventListener('change', () => {
    if (ui.source.value === view.source) return;
    view.source = ui.source.value;
    saveViewToUrl();
    clearCards();
    lastEventAt = 0;
    setText(ui.lastEvent, 'no events yet');
    setClass(ui.lastEvent, 'stale', '');
    const source = sources.find((s) => s.id === view.source);
    noteInLog(`source: ${source ? source.label : view.source}`);
    connect();
    scheduleRender();
  });

  ui.sort.addEventListener('change', () => {
    view.sort = SORTS.has(ui.sort.value) ? ui.sort.value : 'severity';
    saveViewToUrl();
    orderDirty = true;
    scheduleRender();
  });

  let filterTimer = null;
  ui.filter.addEventListener('input', () => {
    view.filter = ui.filter.value;
    orderDirty = true;
    scheduleRender();
    clearTimeout(filterTimer);
    filterTimer = setTimeout(saveViewToUrl, 300);
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && (dirty.size || orderDirty)) {
      renderScheduled = false;
      scheduleRender();
    }
  });

  loadSources();
})();
