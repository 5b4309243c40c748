// The dashboard's page script: plain browser JavaScript, no build step. Every call goes to the server's
// JSON API; a refused request (4xx) shows the server's message at the top of the page.
'use strict';

const $ = (id) => document.getElementById(id);
const messageBox = $('message');

let messageTimer;
/** Shows a message at the top of the page for 10 s (a click dismisses it). */
function show(text, ok = false) {
  messageBox.textContent = text;
  messageBox.className = ok ? 'ok' : '';
  messageBox.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => (messageBox.hidden = true), 10_000);
}
messageBox.addEventListener('click', () => (messageBox.hidden = true));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    show(`${response.status}: ${data.error}`);
    throw new Error(data.error);
  }
  return data;
}

/** Runs `work` with `button` disabled; errors are already shown by api(). */
async function busy(button, work) {
  button.disabled = true;
  try {
    await work();
  } catch {
    // shown
  } finally {
    button.disabled = false;
  }
}

function row(tbody, cells, first = true) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = String(cell);
    tr.append(td);
  }
  if (first) tbody.prepend(tr);
  else tbody.append(tr);
  return tr;
}

const numberOf = (input) => (input.value.trim() === '' ? NaN : Number(input.value));
const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: 1 }) : n);
const LABELS = { naive: 'Keyv get-then-set', getOrSet: 'ext.getOrSet', wrap: 'createPgCache().wrap', atomic: 'ext.incr' };

// Stampede
$('stampede-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const button = event.submitter;
  const mode = button.dataset.mode;
  const run = `${mode}-${Date.now()}`;
  busy(button, async () => {
    let done = false;
    $('stampede-live').textContent = '0';
    const live = setInterval(async () => {
      const { factoryCalls } = await fetch(`/api/stampede/live?run=${run}`).then((r) => r.json());
      if (!done && typeof factoryCalls === 'number') $('stampede-live').textContent = factoryCalls;
    }, 50);
    try {
      const r = await api('POST', '/api/stampede', { count: numberOf($('stampede-count')), mode, run }).catch((error) => {
        $('stampede-live').textContent = '- (refused: nothing ran)';
        throw error;
      });
      $('stampede-live').textContent = r.factoryCalls;
      const tr = row($('stampede-results'), [LABELS[mode], r.count, r.factoryCalls, r.distinctValues, r.ms]);
      tr.dataset.mode = mode;
      tr.children[2].className = r.factoryCalls === 1 ? 'good' : 'bad';
    } finally {
      done = true;
      clearInterval(live);
    }
  });
});

// Tags
/** '59 min 58 s', '2 h 5 min', '12 s': what a person reads, not 3598 s. */
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
async function refreshTags() {
  const { entries } = await api('GET', '/api/tags');
  const tbody = $('tags-list');
  tbody.replaceChildren();
  for (const e of entries) {
    const tr = row(tbody, [e.key, e.tags.join(', '), e.ttlMs === null ? 'never' : duration(e.ttlMs)], false);
    tr.dataset.key = e.key;
  }
}
$('tags-set-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy(event.submitter, async () => {
    await api('POST', '/api/tags/set', { key: $('tags-key').value, tags: $('tags-tags').value, value: $('tags-value').value });
    await refreshTags();
  });
});
$('tags-invalidate-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy(event.submitter, async () => {
    const r = await api('POST', '/api/tags/invalidate', { tags: $('tags-invalidate-tags').value, match: $('tags-match').value });
    $('tags-deleted').textContent = `${r.deleted} deleted`;
    await refreshTags();
  });
});

// Failover
$('failover-down').addEventListener('change', (event) => {
  api('POST', '/api/failover/outage', { down: event.target.checked }).catch(() => {});
});
$('failover-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy(event.submitter, async () => {
    const r = await api('POST', '/api/failover/fetch', { city: $('failover-city').value });
    const out = $('failover-result');
    out.dataset.source = r.source;
    if (r.source === 'error') {
      out.textContent = `error: ${r.error} (nothing retained to serve)`;
      out.className = 'bad';
      return;
    }
    const age = `${(r.ageMs / 1000).toFixed(1)} s old`;
    const what = { downstream: 'fresh from the service', cache: 'from the cache', stale: `STALE (expired ${(r.expiredMsAgo / 1000).toFixed(1)} s ago), served during the outage` }[r.source];
    out.textContent = `${r.value.city}: ${r.value.tempC} °C, ${what}, ${age}`;
    out.className = r.source === 'stale' ? 'bad' : 'good';
  });
});

// Counters
$('counters-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const mode = event.submitter.dataset.mode;
  busy(event.submitter, async () => {
    const r = await api('POST', '/api/counters', { count: numberOf($('counters-count')), mode });
    const tr = row($('counters-results'), [LABELS[mode], r.expected, r.total, r.lost, r.ms]);
    tr.dataset.mode = mode;
    tr.children[3].className = r.lost === 0 ? 'good' : 'bad';
  });
});

// Locks
for (const button of document.querySelectorAll('#locks-panel button')) {
  button.addEventListener('click', () => {
    const { worker, action } = button.dataset;
    busy(button, () => api('POST', `/api/locks/${action}`, { worker: Number(worker) }).then(refreshLocks));
  });
}
async function refreshLocks() {
  const s = await api('GET', '/api/locks');
  const crashed = s.holder?.worker === 'crashed';
  const holder = !s.holder ? 'free' : `${crashed ? 'held by a crashed process' : `held by worker ${s.holder.worker}`}, fencing token ${s.holder.token}`;
  const lease = s.leaseEndsInMs === null ? '' : `, lease ${crashed ? 'runs out' : 'ends'} in ${(s.leaseEndsInMs / 1000).toFixed(1)} s`;
  const waiting = s.waiting.length ? `; waiting: worker ${s.waiting.join(', ')}` : '';
  $('locks-state').textContent = `${s.locked ? 'locked' : 'unlocked'}: ${holder}${lease}${waiting}`;
  const log = $('locks-log');
  log.replaceChildren(...s.log.map((e) => Object.assign(document.createElement('li'), { textContent: `${new Date(e.at).toLocaleTimeString()} ${e.text}` })));
}

// Local tier
$('local-run').addEventListener('click', (event) => {
  busy(event.target, async () => {
    const r = await api('POST', '/api/local/run');
    const out = $('local-result');
    out.dataset.invalidatedAfterMs = r.invalidatedAfterMs ?? '';
    out.textContent =
      r.invalidatedAfterMs === null
        ? `A still read "${r.first}" after 5 s: its copy was not invalidated`
        : `A read "${r.first}"${r.servedFromMemory ? ' from memory' : ''}; B wrote; A read "${r.after}" ${r.invalidatedAfterMs} ms after B's write was acknowledged (${r.readsUntilSeen} reads).`;
  });
});

// Atomic with your data (PostgreSQL only)
const shown = (value) => (value === null ? 'nothing' : `"${value}"`);
for (const button of document.querySelectorAll('#atomic-panel button')) {
  button.addEventListener('click', () => {
    const { outcome } = button.dataset;
    const invalidate = button.id.startsWith('atomic-invalidate');
    busy(button, async () => {
      if (invalidate) {
        const r = await api('POST', '/api/pg/invalidate', { outcome });
        const out = $('atomic-invalidate-result');
        out.dataset.outcome = outcome;
        out.dataset.after = r.after === null ? 'gone' : 'cached';
        out.textContent = `${r.key} cached: ${shown(r.before)}. ${r.sql.join('; ')}. Before the writer ended, others still read ${shown(r.during)}; after ${outcome.toUpperCase()}, ${r.after === null ? `${r.key} is gone: the trigger deleted it in the writer's transaction` : `${r.key} is still cached: the trigger's delete rolled back with the UPDATE`}.`;
      } else {
        const r = await api('POST', '/api/pg/transaction', { outcome });
        const out = $('atomic-in-result');
        out.dataset.outcome = outcome;
        out.dataset.after = r.after === null ? 'gone' : 'visible';
        out.textContent = `ext.in(client).set('${r.key}') in a transaction: others read ${shown(r.during)} before it ended; after ${outcome.toUpperCase()}, ${r.after === null ? 'nothing: the write vanished with the transaction' : `${shown(r.after)}: committed with it`}.`;
      }
    });
  });
}

// Every writer reaches the local tier (PostgreSQL only)
$('foreign-run').addEventListener('click', (event) => {
  busy(event.target, async () => {
    const r = await api('POST', '/api/pg/foreign-write');
    const out = $('foreign-result');
    out.dataset.droppedAfterMs = r.droppedAfterMs ?? '';
    out.textContent =
      r.droppedAfterMs === null
        ? `The tier still answered "${r.first}" 5 s after the SQL write: its copy was not dropped`
        : `The tier answered "${r.first}"${r.fromMemory ? ' from memory' : ''}; plain SQL wrote "12"; the tier read "${r.after}" ${r.droppedAfterMs} ms later.`;
    $('foreign-sql').textContent = r.sql;
  });
});

// Live stats
/** 512 B, 0.6 KiB, 63.2 MB: the unit that keeps the number short. */
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${fmt(n / 1024)} KiB` : `${fmt(n / 1048576)} MB`);
async function refreshStats() {
  const s = await fetch('/api/stats').then((r) => r.json());
  if (s.error) return;
  for (const field of ['hits', 'misses', 'localHits', 'staleServed', 'factoryCalls', 'expiredDeleted']) $(`stat-${field}`).textContent = fmt(s[field]);
  $('stat-rows').textContent = fmt(s.rows);
  $('stat-liveRows').textContent = fmt(s.liveRows);
  $('stat-bytes').textContent = `${fmt(s.bytes / 1024)} KiB`;
  $('stat-indexBytes').textContent = `${fmt(s.indexBytes / 1024)} KiB`;
  $('stat-deadRows').textContent = s.deadRows === null ? 'n/a' : fmt(s.deadRows);
  const cap = s.capacity;
  $('stat-cap').textContent = cap ? `${bytes(cap.usedBytes)} of ${bytes(cap.maxSize)}, ${fmt(cap.usedEntries)} entries (${cap.eviction})` : 'no cap';
  $('stat-evicted').textContent = cap
    ? `${fmt(cap.evictedRows)}${cap.lastEviction ? ` (last: ${fmt(cap.lastEviction.rows)} at ${new Date(cap.lastEviction.at).toLocaleTimeString()})` : ''}`
    : '-';
}

$('cap-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy(event.submitter, async () => {
    const r = await api('POST', '/api/cap/fill', { mb: numberOf($('cap-mb')) });
    const cap = r.capacity;
    $('cap-result').textContent = `wrote ${fmt(r.entries)} entries (${fmt(r.bytes / 1048576)} MB)${cap ? `; the table holds ${fmt(cap.usedBytes / 1048576)} MB of its ${fmt(cap.maxSize / 1048576)} MB cap: past it, the sweeper evicts the least recently used within a second` : ''}`;
  });
});

// Benchmark
const charts = {};
function chart(id, title, labels, datasets) {
  charts[id]?.destroy();
  charts[id] = new Chart($(id), {
    type: 'bar',
    data: { labels, datasets },
    options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: title } } },
  });
}
const COLORS = ['#1d3557', '#457b9d', '#a8dadc', '#2a9d8f', '#e9c46a', '#e63946', '#8d99ae'];
/** The rounds' lowest and highest ops/s, and how far apart they are; one round has no spread to show. */
function spread(rounds) {
  if (!Array.isArray(rounds) || rounds.length < 2) return 'measured once: unknown';
  const low = Math.min(...rounds);
  const high = Math.max(...rounds);
  return `${fmt(low)} to ${fmt(high)} (${fmt(high / Math.max(low, 1))}x)`;
}
function drawBench(last) {
  if (!last) return;
  const measured = last.results.filter((r) => !r.scenario.startsWith('stampede'));
  const scenarios = [...new Set(measured.map((r) => r.scenario))];
  const targets = [...new Set(measured.map((r) => r.target))];
  const dataset = (field) =>
    targets.map((target, i) => ({
      label: target,
      backgroundColor: COLORS[i % COLORS.length],
      data: scenarios.map((s) => measured.find((r) => r.target === target && r.scenario === s)?.[field] ?? null),
    }));
  const of = `${last.rounds ?? 1} round${last.rounds === 1 || !last.rounds ? ': no spread known' : 's'}`;
  chart('bench-ops-chart', `ops/s, median of ${of} (higher is better; spread in the table)`, scenarios, dataset('opsPerSec'));
  chart('bench-latency-chart', `p50 latency, ms, of the median round (lower is better)`, scenarios, dataset('p50Ms'));
  const tbody = $('bench-results');
  tbody.replaceChildren();
  for (const r of last.results) row(tbody, [r.target, r.scenario, fmt(r.opsPerSec), spread(r.rounds), fmt(r.p50Ms), fmt(r.p99Ms), r.factoryCalls ?? '', r.note ?? ''], false);
  const skipped = Object.entries(last.skipped ?? {}).map(([t, why]) => `${t} ${why}`);
  $('bench-status').textContent = `last run ${last.finishedAt ?? ''}: ${fmt(last.ops)} operations per scenario, ${last.rounds ?? 1} round${last.rounds > 1 ? 's' : ''}, PostgreSQL ${last.postgres}, seed ${last.seed}${skipped.length ? `; ${skipped.join('; ')}` : ''}`;
  $('bench-panel').dataset.finishedAt = last.finishedAt ?? '';
}
let benchTimer;
async function refreshBench() {
  const s = await api('GET', '/api/bench');
  const bar = $('bench-progress');
  $('bench-start').disabled = s.running;
  if (s.running) {
    bar.hidden = false;
    bar.max = Math.max(1, s.total);
    bar.value = s.done;
    $('bench-status').textContent = `running: ${s.done} of ${s.total || '?'} measurements${s.current ? ` (${s.current})` : ''}`;
    benchTimer ??= setInterval(refreshBench, 500);
    return;
  }
  bar.hidden = true;
  clearInterval(benchTimer);
  benchTimer = undefined;
  if (s.error) show(s.error);
  drawBench(s.last);
}
$('bench-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy(event.submitter, async () => {
    await api('POST', '/api/bench/start', { ops: numberOf($('bench-ops')), rounds: numberOf($('bench-rounds')) });
    await refreshBench();
  });
});

refreshStats();
setInterval(refreshStats, 1000);
setInterval(() => refreshLocks().catch(() => {}), 500);
refreshTags().catch(() => {});
refreshLocks().catch(() => {});
refreshBench().catch(() => {});
