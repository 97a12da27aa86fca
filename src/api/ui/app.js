// The taskapi dashboard: plain ES modules, nothing loaded from elsewhere. Every number comes from the same API a
// client uses, with the logged-in user's token; the server enforces roles, the page only hides what a role cannot do.
const $ = (sel, root = document) => root.querySelector(sel);
const main = $('#main');
const state = {
  token: sessionStorage.getItem('tm-token'),
  role: sessionStorage.getItem('tm-role'),
  timer: 0,
  /** Counts the pages opened: a render overtaken by a later one (a hash change while it drew) stops there. */
  shown: 0,
};
const RANK = { viewer: 0, operator: 1, admin: 2 };
const can = (role) => RANK[state.role] >= RANK[role];

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A schedule's next fires: each nominal instant, and with jitter when it is due (`… due …`). */
function nextTexts(r) {
  return r.nextFireTimes.map((t, i) => (r.nextDueTimes?.[i] ? `${t} due ${r.nextDueTimes[i]}` : t));
}

/** The schedule options a task's edit box shows when set (with its kind, zone and misfire policy). */
const EDITABLE_OPTIONS = ['jitter', 'startAt', 'endAt', 'maxRuns', 'calendars', 'overlap', 'keepFinished'];

/** What a schedule's overlap policy does, in words (the default, queue, is not shown). */
const OVERLAP_TEXT = {
  skip: 'Overlap skip: a run that comes while the previous one is running or waiting ends SKIPPED',
  replace: 'Overlap replace: a new run cancels the one still running',
  allow: 'Overlap allow: runs may run side by side',
};

/**
 * A schedule's active window, limit and exclusion calendars, when set (`ended` once past endAt or at maxRuns); its
 * next fires already leave out the dates its calendars exclude.
 */
function windowText(s) {
  const parts = [
    s.startAt ? `from ${s.startAt}` : '',
    s.endAt ? `until ${s.endAt}` : '',
    s.maxRuns ? `${s.runCount ?? '?'} of at most ${s.maxRuns} runs` : '',
    s.calendars?.length ? `except on the dates of ${s.calendars.join(', ')}` : '',
  ].filter(Boolean);
  const overlap =
    s.overlap && s.overlap !== 'queue' ? `<p id="overlap">${esc(OVERLAP_TEXT[s.overlap])}</p>` : '';
  return (parts.length === 0 ? '' : `<p id="window">Fires ${esc(parts.join(', '))}</p>`) + overlap;
}

let flashTimer;
/** Shows an outcome for 4 s; a newer one replaces it and gets its own 4 s. */
function flash(text) {
  $('#flash').textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => ($('#flash').textContent = ''), 4000);
}

async function api(method, path, body, headers = {}) {
  const res = await fetch(path, {
    method,
    headers: {
      ...(state.token ? { authorization: `Bearer ${state.token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status === 401 && path !== '/api/v1/users/login') {
    logout();
    throw new Error('session ended: log in again');
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(data?.detail ?? `${res.status}`);
  return { data, etag: res.headers.get('etag') };
}

function logout() {
  sessionStorage.clear();
  state.token = state.role = null;
  render();
}

function loginView() {
  main.innerHTML = `<form class="login" id="login"><h2>Log in</h2>
    <input name="username" placeholder="user name" autocomplete="username" required />
    <input name="password" type="password" placeholder="password" autocomplete="current-password" required />
    <button type="submit">Log in</button><p id="login-error" class="failed"></p></form>`;
  $('#login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      await logIn(f.get('username'), f.get('password'));
    } catch (err) {
      $('#login-error').textContent = err.message;
    }
  });
}

async function logIn(username, password) {
  const { data } = await api('POST', '/api/v1/users/login', { username, password });
  const claims = JSON.parse(atob(data.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  sessionStorage.setItem('tm-token', data.accessToken);
  sessionStorage.setItem('tm-role', claims.role);
  sessionStorage.setItem('tm-user', claims.sub);
  if (data.passwordChangeRequired) sessionStorage.setItem('tm-must-change', '1');
  else sessionStorage.removeItem('tm-must-change');
  Object.assign(state, { token: data.accessToken, role: claims.role });
  location.hash = '#/tasks';
  render();
}

/** A password taskapi was given in its environment: the API refuses everything else until it is changed. */
function passwordView() {
  const user = sessionStorage.getItem('tm-user');
  main.innerHTML = `<form class="login" id="change-password"><h2>Choose a new password</h2>
    <p>The password of ${esc(user)} was set from taskapi's environment: choose your own before anything else.</p>
    <input name="current" type="password" placeholder="current password" autocomplete="current-password" required />
    <input name="password" type="password" placeholder="new password (at least 8 characters)" autocomplete="new-password" minlength="8" required />
    <input name="again" type="password" placeholder="new password again" autocomplete="new-password" required />
    <button type="submit">Change password</button><p id="change-error" class="failed"></p></form>`;
  $('#change-password').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    if (f.get('password') !== f.get('again')) {
      $('#change-error').textContent = 'the two new passwords differ';
      return;
    }
    try {
      await api('PUT', `/api/v1/users/${encodeURIComponent(user)}`, {
        currentPassword: f.get('current'),
        password: f.get('password'),
      });
      // The change ends the tokens issued before it: log in again with the new password.
      await logIn(user, f.get('password'));
      flash('password changed');
    } catch (err) {
      $('#change-error').textContent = err.message;
    }
  });
}

/**
 * Pages of a list the API pages by cursor: `cursors[i]` starts page i (none for the first). Its buttons go forward
 * along nextCursor and back along the cursors seen.
 */
function pager(name) {
  const p = { cursors: [undefined], at: 0 };
  p.query = () => (p.cursors[p.at] ? `&cursor=${encodeURIComponent(p.cursors[p.at])}` : '');
  p.reset = () => Object.assign(p, { cursors: [undefined], at: 0 });
  p.html = (data) => {
    p.cursors[p.at + 1] = data.nextCursor;
    if (p.at === 0 && !data.nextCursor) return '';
    return `<p class="pager" id="${name}-pager">${data.total} in all, page ${p.at + 1}
      <button id="${name}-prev"${p.at === 0 ? ' disabled' : ''}>Previous</button>
      <button id="${name}-next"${data.nextCursor ? '' : ' disabled'}>Next</button></p>`;
  };
  p.wire = (again) => {
    for (const [dir, step] of [
      ['prev', -1],
      ['next', 1],
    ]) {
      const b = $(`#${name}-${dir}`);
      if (b)
        b.onclick = () => {
          p.at += step;
          void again();
        };
    }
  };
  return p;
}

const sort = { key: 'id', dir: 1 };
let search = '';
const schedulePages = pager('schedules');

/**
 * The overview: every schedule, from the files the schedulers read and from this API, in one table. The server
 * searches and pages (1000 rows a page); the page's rows sort here.
 */
async function tasksView() {
  const { data } = await api(
    'GET',
    `/api/v1/schedules?limit=1000${search ? `&q=${encodeURIComponent(search)}` : ''}${schedulePages.query()}`,
  );
  const text = (r) =>
    ({
      schedule: `${r.description} ${r.spec}`,
      next: r.nextFireTimes[0] ?? '',
      lastRun: r.lastRun ? `${r.lastRun.scheduledFor} ${r.lastRun.state}` : '',
    })[sort.key] ?? String(r[sort.key] ?? '');
  const rows = data.items.sort((a, b) => (text(a) < text(b) ? -sort.dir : text(a) > text(b) ? sort.dir : 0));
  const cols = [
    ['id', 'Id'],
    ['source', 'Source'],
    ['schedule', 'Schedule'],
    ['timeZone', 'Zone'],
    ['state', 'State'],
    ['next', 'Next runs'],
    ['lastRun', 'Last run'],
    ['owner', 'Owner'],
    ['group', 'Scheduler group'],
  ];
  const fromFiles = data.items.filter((r) => r.source === 'file').length;
  const focus = document.activeElement?.id === 'search';
  const shown = data.total > data.items.length ? `; ${data.items.length} of ${data.total} shown` : '';
  main.innerHTML = `<h2>Schedules <small>(${fromFiles} from schedule files, ${data.items.length - fromFiles} from the HTTP API${shown})</small></h2>
    <input id="search" placeholder="search" value="${esc(search)}" />${schedulePages.html(data)}
    <table id="tasks"><thead><tr>${cols.map(([k, l]) => `<th data-key="${k}">${l}${sort.key === k ? (sort.dir > 0 ? ' ▲' : ' ▼') : ''}</th>`).join('')}</tr></thead><tbody>
    ${rows
      .map(
        (
          r,
        ) => `<tr class="row" data-id="${esc(r.id)}" data-source="${esc(r.source)}" data-group="${esc(r.group)}">
        <td>${esc(r.id)}</td><td>${r.source === 'api' ? 'API' : 'file'}</td>
        <td>${esc(r.description)}<br /><code>${esc(r.spec)}</code></td><td>${esc(r.timeZone)}</td>
        <td class="${esc(r.state)}">${esc(r.state)}</td><td>${nextTexts(r).map(esc).join('<br />') || '-'}</td>
        <td class="${esc(r.lastRun?.state)}">${esc(r.lastRun ? `${r.lastRun.state} ${r.lastRun.scheduledFor}` : '-')}</td>
        <td class="owner">${esc(r.owner ?? 'no instance')}</td><td>${esc(r.group)}</td></tr>`,
      )
      .join('')}</tbody></table>`;
  const input = $('#search');
  input.addEventListener('input', () => {
    search = input.value.toLowerCase();
    schedulePages.reset();
    void tasksView();
  });
  schedulePages.wire(tasksView);
  if (focus) {
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
  for (const th of main.querySelectorAll('th'))
    th.addEventListener('click', () => {
      sort.dir = sort.key === th.dataset.key ? -sort.dir : 1;
      sort.key = th.dataset.key;
      void tasksView();
    });
  for (const tr of main.querySelectorAll('tr.row'))
    tr.addEventListener(
      'click',
      () =>
        (location.hash =
          tr.dataset.source === 'api'
            ? `#/task/${encodeURIComponent(tr.dataset.id)}`
            : `#/schedule/${encodeURIComponent(tr.dataset.group)}/${encodeURIComponent(tr.dataset.id)}`),
    );
}

const FINAL_RUN = new Set(['FINISHED', 'FAILED', 'CANCELLED', 'SKIPPED']);

/**
 * A schedule's runs, each linking to its run view under `base` (the schedule's page); operators get a Cancel button
 * on each run that has not ended.
 */
function runsTable(runs, base) {
  return `<h3>Runs</h3><table id="runs"><thead><tr><th>Run</th><th>State</th><th>Attempts</th><th>Duration</th><th>Consumer</th><th>Error</th><th></th></tr></thead><tbody>
    ${runs
      .map(
        (
          r,
        ) => `<tr data-task-id="${esc(r.taskId)}"><td><a class="run-link" href="${esc(`${base}/run/${encodeURIComponent(r.taskId)}`)}">${esc(r.scheduledFor)}</a></td><td class="${esc(r.state)}">${esc(r.state)}</td><td>${r.attempts}</td>
        <td>${esc(r.durationMs ?? '')}</td><td>${esc(r.consumer ? `${r.consumer.host}:${r.consumer.pid}` : '')}</td><td>${esc(r.cancelled ?? r.skipped ?? r.error ?? '')}</td>
        <td>${can('operator') && !FINAL_RUN.has(r.state) ? `<button class="cancel" data-task-id="${esc(r.taskId)}">Cancel</button>` : ''}</td></tr>`,
      )
      .join('')}</tbody></table>`;
}

/** The Cancel buttons of a runs table: each asks, then requests the cancel of its run under `path`. */
function wireCancels(path, again) {
  for (const b of main.querySelectorAll('#runs button.cancel'))
    b.onclick = () =>
      act(
        `Cancel run ${b.dataset.taskId}? If it is waiting it never starts; if it runs, it is stopped.`,
        async () =>
          (await api('POST', `${path}/runs/${encodeURIComponent(b.dataset.taskId)}/cancel`, {})).data.message,
        again,
      );
}

/** Asks, acts, says the outcome, and shows the page again. */
async function act(question, fn, again) {
  if (!confirm(question)) return;
  try {
    flash(await fn());
  } catch (err) {
    flash(`failed: ${err.message}`);
  }
  await again();
}

/** What one audit entry says was done, in words (`changed` lists the fields a change set; `enabled` a pause or resume). */
function auditWhat(e) {
  const run = e.taskId ? ` ${e.taskId}` : '';
  switch (e.action) {
    case 'task.created':
      return 'created';
    case 'task.changed': {
      const fields = (e.changed ?? []).filter((f) => f !== 'enabled');
      const toggled = e.enabled === false ? 'paused' : e.enabled === true ? 'resumed' : '';
      const changed = fields.length ? `changed ${fields.join(', ')}` : toggled ? '' : 'changed';
      return [toggled, changed].filter(Boolean).join('; ');
    }
    case 'task.deleted':
      return 'deleted';
    case 'task.triggered':
    case 'schedule.triggered':
      return `triggered${run}`;
    case 'task.cancelled':
    case 'schedule.cancelled':
      return `cancelled run${run}`;
    case 'task.backfilled':
      return `backfilled ${e.backfill?.from} to ${e.backfill?.to} (${e.backfill?.published} published)`;
    case 'schedule.paused':
      return 'paused';
    case 'schedule.resumed':
      return 'resumed';
    case 'dlq.replayed':
      return `replayed${run} from ${e.dlq} (${e.entry})`;
    case 'alert.acknowledged':
      return `acknowledged the ${e.alertKind} alert of${run}`;
    case 'calendar.changed':
    case 'calendar.deleted':
      return `${e.action.slice('calendar.'.length)} calendar ${e.calendar}`;
    default:
      return e.action;
  }
}

/** Who did what when: audit entries, newest first; `subjects` adds the column of what each is about. */
function auditTable(items, subjects = false) {
  const subject = (e) => e.task ?? e.schedule ?? (e.calendar ? `calendar ${e.calendar}` : '');
  return `<table id="audit"><thead><tr><th>When (UTC)</th><th>Who</th><th>What</th>${subjects ? '<th>Task or schedule</th><th>Group</th>' : ''}</tr></thead><tbody>
    ${
      items
        .map(
          (e) =>
            `<tr data-action="${esc(e.action)}"><td>${esc(e.at)}</td><td>${esc(e.user)}</td><td>${esc(auditWhat(e))}</td>${
              subjects ? `<td>${esc(subject(e))}</td><td>${esc(e.group ?? '')}</td>` : ''
            }</tr>`,
        )
        .join('') || `<tr><td colspan="${subjects ? 5 : 3}">none</td></tr>`
    }</tbody></table>`;
}

/** The audit entries of one task or schedule (the newest 20 taskapi keeps), as its page shows them. */
async function auditOf(id, group) {
  const { data } = await api('GET', `/api/v1/audit?task=${encodeURIComponent(id)}&limit=20`);
  // A schedule file's entry: the same id in another group is another schedule (a DLQ replay names no group).
  const items = group ? data.items.filter((e) => e.group === undefined || e.group === group) : data.items;
  return `<h3>Audit</h3>${auditTable(items)}`;
}

/** A schedule file's entry: what its owner reports, its runs, and trigger / pause / resume through the owner. */
async function scheduleView(group, id) {
  const path = `/api/v1/schedules/${encodeURIComponent(group)}/${encodeURIComponent(id)}`;
  const [{ data: s }, audit] = await Promise.all([api('GET', path), auditOf(id, group)]);
  const again = () => scheduleView(group, id);
  main.innerHTML = `<h2>${esc(s.id)} <small class="${esc(s.state)}" id="task-status">${esc(s.state)}</small>
    <small>from a schedule file, group ${esc(s.group)}, fired by ${esc(s.owner ?? 'no instance')}</small></h2>
    ${
      can('operator')
        ? `<p id="actions"><button id="trigger">Trigger now</button>
           <button id="toggle">${s.state === 'paused' ? 'Resume' : 'Pause'}</button></p>`
        : ''
    }
    <div class="grid"><section><h3>Schedule</h3><p>${esc(s.description)} (<code>${esc(s.spec)}</code>, ${esc(s.timeZone)}${s.jitter ? `, jitter ${s.jitter}s` : ''})</p>${windowText(s)}
      <p>processor ${esc(s.processor)} on topic ${esc(s.topic)}; last fired ${esc(s.lastFiredAt ?? 'never')}</p>
      <h3>Next fires (UTC)</h3><table id="next"><tbody>${
        nextTexts(s)
          .map((t) => `<tr><td>${esc(t)}</td></tr>`)
          .join('') || '<tr><td>none</td></tr>'
      }</tbody></table></section>
    <section>${runsTable(s.runs, `#/schedule/${encodeURIComponent(group)}/${encodeURIComponent(id)}`)}${audit}</section></div>`;
  if (!can('operator')) return;
  wireCancels(path, again);
  $('#trigger').onclick = () =>
    act(`Fire ${s.id} now?`, async () => (await api('POST', `${path}/trigger`)).data.message, again);
  const verb = s.state === 'paused' ? 'resume' : 'pause';
  $('#toggle').onclick = () =>
    act(
      `${verb === 'pause' ? 'Pause' : 'Resume'} ${s.id}?`,
      async () => (await api('POST', `${path}/${verb}`)).data.message,
      again,
    );
}

async function taskView(id) {
  const path = `/api/v1/tasks/${encodeURIComponent(id)}`;
  const [{ data: t, etag }, { data: next }, { data: runs }, audit] = await Promise.all([
    api('GET', path),
    api('GET', `${path}/next?count=10`),
    api('GET', `${path}/runs`),
    auditOf(id),
  ]);
  const editing = $('#edit-text');
  const draft = editing && document.activeElement === editing ? editing.value : undefined;
  const definition = {
    name: t.name,
    processor: t.processor,
    topic: t.topic,
    schedule: t.schedule,
    timeZone: t.timeZone,
    misfire: t.misfire,
    enabled: t.enabled,
    // The options it has set: a save without them would drop them (PUT replaces the definition).
    ...Object.fromEntries(
      ['param', 'payload', ...EDITABLE_OPTIONS].filter((k) => t[k] !== undefined).map((k) => [k, t[k]]),
    ),
  };
  main.innerHTML = `<h2>${esc(t.id)} <small class="${esc(t.status)}" id="task-status">${esc(t.status)}</small></h2>
    ${
      can('operator')
        ? `<p id="actions"><button id="trigger">Trigger now</button>
           <button id="toggle">${t.enabled ? 'Pause' : 'Resume'}</button><button id="delete">Delete</button>
           <label>Overlap <select id="overlap">${['queue', 'skip', 'replace', 'allow']
             .map((o) => `<option${o === (t.overlap ?? 'queue') ? ' selected' : ''}>${o}</option>`)
             .join('')}</select></label></p>`
        : ''
    }
    <div class="grid"><section><h3>Definition</h3><pre>${esc(JSON.stringify(t, null, 2))}</pre>
      ${can('operator') ? `<h3>Edit</h3><textarea id="edit-text">${esc(draft ?? JSON.stringify(definition, null, 2))}</textarea><button id="save">Save</button>` : ''}</section>
    <section><h3>Next fires (${esc(next.timeZone)} / UTC)</h3><table id="next"><tbody>
      ${next.items.map((n) => `<tr><td>${esc(n.local)}</td><td>${esc(n.jitteredFor ? `${n.utc} due ${n.jitteredFor}` : n.utc)}</td></tr>`).join('') || '<tr><td>none</td></tr>'}</tbody></table>
    ${runsTable(runs.items, `#/task/${encodeURIComponent(id)}`)}${audit}</section></div>`;
  if (!can('operator')) return;
  const again = () => taskView(id);
  wireCancels(path, again);
  $('#trigger').onclick = () =>
    act(
      `Fire ${t.id} now?`,
      async () => `fired as ${(await api('POST', `${path}/trigger`)).data.taskId}`,
      again,
    );
  $('#toggle').onclick = () =>
    act(
      `${t.enabled ? 'Pause' : 'Resume'} ${t.id}?`,
      async () => {
        await api('PATCH', path, { enabled: !t.enabled }, { 'if-match': etag });
        return t.enabled ? 'paused' : 'resumed';
      },
      again,
    );
  $('#overlap').onchange = (e) => {
    const overlap = e.target.value;
    void act(
      `Set the overlap policy of ${t.id} to ${overlap}?`,
      async () => {
        await api('PATCH', path, { overlap }, { 'if-match': etag });
        return `overlap ${overlap}`;
      },
      again,
    );
  };
  $('#delete').onclick = () =>
    act(
      `Delete ${t.id}? Its future fires stop.`,
      async () => {
        await api('DELETE', path, undefined, { 'if-match': etag });
        location.hash = '#/tasks';
        return 'deleted';
      },
      async () => undefined,
    );
  $('#save').onclick = () =>
    act(
      `Save the changed definition of ${t.id}?`,
      async () => {
        await api('PUT', path, JSON.parse($('#edit-text').value), { 'if-match': etag });
        return 'saved';
      },
      again,
    );
}

/** A run's progress as the processor last reported it (ctx.progress), or nothing. */
function progressText(p) {
  if (!p) return '';
  const pct = Math.round(p.fraction * 100);
  return `<p id="run-progress"><progress max="100" value="${pct}"></progress> <span class="pct">${pct}%</span>
    ${esc(p.message ?? '')} <small>(${esc(p.at)})</small></p>`;
}

/**
 * One run of a schedule (`path`: its API path, `back`: its page): state, progress and log, refreshed with the page
 * every 2 s while it runs. The log view stays scrolled to its end unless scrolled up.
 */
async function runView(path, back, taskId, runsOf) {
  const [run, { data: log }] = await Promise.all([
    runsOf().then((runs) => runs.find((r) => r.taskId === taskId)),
    api('GET', `${path}/runs/${encodeURIComponent(taskId)}/logs`),
  ]);
  const old = $('#run-log');
  const atEnd = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 4;
  const top = old?.scrollTop ?? 0;
  const dropped = log.dropped.lines + log.dropped.bytes > 0;
  main.innerHTML = `<h2>Run <code>${esc(taskId)}</code> <small class="${esc(run?.state ?? '')}" id="run-state">${esc(run?.state ?? 'not seen')}</small></h2>
    <p><a href="${esc(back)}">back</a>${run ? ` attempts ${run.attempts}${run.durationMs === undefined ? '' : `, ${run.durationMs} ms`}${run.consumer ? ` on ${esc(`${run.consumer.host}:${run.consumer.pid}`)}` : ''}` : ''}</p>
    ${progressText(run?.progress)}
    ${run?.error || run?.cancelled ? `<p class="failed">${esc(run.cancelled ?? run.error)}</p>` : ''}
    <h3>Log</h3>${log.note ? `<p id="run-log-note">${esc(log.note)}</p>` : ''}
    ${dropped ? `<p id="run-dropped">… ${log.dropped.lines} earlier line(s), ${log.dropped.bytes} byte(s) not kept (a run keeps its last 1,000 lines or 64 KiB)</p>` : ''}
    <pre id="run-log">${log.items.map((l) => `<span class="log-${esc(l.stream)}">${esc(`${l.at} #${l.attempt} ${l.stream.padEnd(8)} ${l.text}`)}</span>`).join('\n')}</pre>`;
  const pre = $('#run-log');
  pre.scrollTop = atEnd ? pre.scrollHeight : top;
}

let dlqTopic = 'taskTopic';
/** What was typed in the topic field and not yet confirmed (Enter, or leaving the field): every redraw keeps it. */
let dlqTyped;
let dlqState = '';
const dlqPages = pager('dlq');

/** The failures page: its topic field and state filter, then `body`. */
function showFailures(body) {
  const typing = document.activeElement?.id === 'dlq-topic' ? document.activeElement : undefined;
  const caret = typing ? [typing.selectionStart, typing.selectionEnd] : undefined;
  const states = ['', 'waiting', 'replayed']
    .map((s) => `<option value="${s}"${s === dlqState ? ' selected' : ''}>${s || 'all'}</option>`)
    .join('');
  main.innerHTML = `<h2>Failures</h2><label>Task topic <input id="dlq-topic" value="${esc(dlqTyped ?? dlqTopic)}" /></label>
    <label>Show <select id="dlq-state">${states}</select></label>${body}`;
  const input = $('#dlq-topic');
  input.addEventListener('input', () => (dlqTyped = input.value));
  input.addEventListener('change', () => {
    dlqTopic = input.value;
    dlqTyped = undefined;
    dlqPages.reset();
    void failuresView();
  });
  $('#dlq-state').addEventListener('change', (e) => {
    dlqState = e.target.value;
    dlqPages.reset();
    void failuresView();
  });
  dlqPages.wire(failuresView);
  if (caret) {
    input.focus();
    input.setSelectionRange(caret[0], caret[1]);
  }
}

/** A task topic's DLQ, 100 entries a page (all, or only those waiting or replayed). */
async function failuresView() {
  // The topic field first: reading a long DLQ from its start can take seconds, and the operator may want another.
  if (!$('#dlq-topic')) showFailures(`<p>reading the DLQ of ${esc(dlqTopic)}…</p>`);
  const topic = dlqTopic;
  let body;
  try {
    const { data } = await api(
      'GET',
      `/api/v1/dlq/${encodeURIComponent(dlqTopic)}?limit=100${dlqState ? `&state=${dlqState}` : ''}${dlqPages.query()}`,
    );
    body = `<p>${data.waiting} waiting, ${data.replayed} replayed ${
      can('operator') && data.waiting > 0 ? '<button id="replay-all">Replay all waiting</button>' : ''
    }</p>${dlqPages.html(data)}<table id="dlq"><thead><tr><th>Position</th><th>Task</th><th>Reason</th><th>Attempts</th><th>Failed at</th><th>From</th><th>Error</th><th></th></tr></thead><tbody>
    ${data.items
      .map(
        (
          e,
        ) => `<tr data-task-id="${esc(e.taskId)}"><td>${esc(e.position)}</td><td>${esc(e.taskId ?? e.key)}</td><td class="failed">${esc(e.reason)}</td>
        <td>${esc(e.attempts)}</td><td>${esc(e.failedAt)}</td><td>${esc(`${e.original.topic}/${e.original.partition}@${e.original.offset}`)}</td>
        <td>${esc(e.error)}</td><td>${e.replayedBy ? 'replayed' : can('operator') ? `<button class="replay" data-position="${esc(e.position)}">Replay</button>` : 'waiting'}</td></tr>`,
      )
      .join('')}</tbody></table>`;
  } catch (err) {
    body = `<p class="failed">${esc(err.message)}</p>`;
  }
  // The field changed to another topic while this one was read: that topic's answer shows instead.
  if (topic !== dlqTopic) return;
  showFailures(body);
  const replay = async (selector, question) => {
    if (!confirm(question)) return;
    try {
      const { data } = await api('POST', `/api/v1/dlq/${encodeURIComponent(dlqTopic)}/replay`, selector);
      const refused = data.refused ?? [];
      flash(
        `replayed ${data.replayed.length}${refused.length ? `; refused ${refused.length}: ${refused.map((r) => r.detail).join('; ')}` : ''}`,
      );
    } catch (err) {
      flash(`failed: ${err.message}`);
    }
    await failuresView();
  };
  for (const b of main.querySelectorAll('button.replay'))
    b.onclick = () => replay({ position: b.dataset.position }, `Replay ${b.dataset.position}?`);
  const all = $('#replay-all');
  if (all) all.onclick = () => replay({ all: true }, 'Replay every waiting task?');
}

/** The open alerts of schedules (failed, skipped, missed, late, overrun runs, and runs past their deadline), newest first; operators acknowledge them. */
async function alertsView() {
  const { data } = await api('GET', '/api/v1/alerts');
  main.innerHTML = `<h2>Alerts <small>${data.items.length} open</small></h2>${
    data.items.length === 0
      ? '<p id="no-alerts">No open alerts.</p>'
      : `<table id="alerts"><thead><tr><th>Raised (UTC)</th><th>Kind</th><th>Schedule</th><th>Run</th><th>Reason</th><th>By</th><th></th></tr></thead><tbody>${data.items
          .map(
            (a) =>
              `<tr data-alert="${esc(a.id)}"><td>${esc(a.at)}</td><td class="${a.kind === 'failed' ? 'failed' : ''}">${esc(a.kind)}</td><td>${esc(a.scheduleId)}</td><td>${esc(a.taskId)}</td><td>${esc(a.reason)}</td><td>${esc(a.raisedBy)}</td>
        <td>${can('operator') ? `<button class="ack" data-alert="${esc(a.id)}">Acknowledge</button>` : ''}</td></tr>`,
          )
          .join('')}</tbody></table>`
  }`;
  for (const b of main.querySelectorAll('button.ack'))
    b.onclick = () =>
      act(
        'Acknowledge this alert? It leaves the open list; the audit trail keeps who did it.',
        async () => {
          await api('POST', `/api/v1/alerts/${encodeURIComponent(b.dataset.alert)}/ack`);
          return 'acknowledged';
        },
        alertsView,
      );
}

const AUDIT_FILTERS = [
  ['task', 'task or schedule id'],
  ['group', 'scheduler group'],
  ['actor', 'user'],
  ['action', 'action (task.changed, schedule, …)'],
  ['since', 'since (2026-12-01T09:00:00Z)'],
];
const auditFilter = {};
const auditPages = pager('audit');

/**
 * The audit page: recent entries of every task, schedule and calendar, filtered and paged by the server. Its filter
 * fields are drawn once (a refresh redraws only the entries below them, so typing is never interrupted); a field
 * applies when it is confirmed (Enter, or leaving it).
 */
async function auditView() {
  if (!$('#audit-filters')) {
    main.innerHTML = `<h2>Audit <small>who did what when</small></h2><p id="audit-filters">${AUDIT_FILTERS.map(
      ([k, label]) =>
        `<input id="audit-${k}" data-filter="${k}" placeholder="${esc(label)}" value="${esc(auditFilter[k] ?? '')}" />`,
    ).join(' ')}</p><div id="audit-body"><p>reading…</p></div>`;
    for (const input of main.querySelectorAll('#audit-filters input'))
      input.addEventListener('change', () => {
        auditFilter[input.dataset.filter] = input.value.trim();
        auditPages.reset();
        void auditView();
      });
  }
  const query = AUDIT_FILTERS.map(([k]) => k)
    .filter((k) => auditFilter[k])
    .map((k) => `&${k}=${encodeURIComponent(auditFilter[k])}`)
    .join('');
  let body;
  try {
    const { data } = await api('GET', `/api/v1/audit?limit=100${query}${auditPages.query()}`);
    const note =
      data.status === 'no-topic'
        ? '<p class="FAILED" id="audit-status">taskmanager.audit does not exist: nothing is audited until it is created.</p>'
        : `<p id="audit-status">${data.total} matching of the ${data.kept} newest entries kept (at most ${data.keep}${data.oldest ? `, since ${esc(data.oldest)}` : ''})${data.status === 'reading' ? '; still reading' : ''}</p>`;
    body = `${note}${auditPages.html(data)}${auditTable(data.items, true)}`;
  } catch (err) {
    body = `<p class="failed">${esc(err.message)}</p>`;
  }
  const target = $('#audit-body');
  if (!target) return; // another page was opened meanwhile
  target.innerHTML = body;
  auditPages.wire(auditView);
}

/**
 * A small line chart of per-second series (SVG, no library): one polyline per series, scaled to the largest. Colours
 * are classes of style.css (`tone-…`): the Content-Security-Policy allows no inline style.
 */
function chart(id, title, series, unit) {
  const w = 600;
  const h = 90;
  const n = series[0].values.length;
  const max = Math.max(1, ...series.flatMap((x) => x.values));
  const x = (i) => ((i / Math.max(1, n - 1)) * w).toFixed(1);
  const y = (v) => (h - (v / max) * (h - 4) - 2).toFixed(1);
  const last = (v) => v.values.at(-1) ?? 0;
  return `<figure class="chart" id="${id}"><figcaption>${esc(title)}, last ${n} s (max ${max} ${unit})
    ${series.map((s) => `<span class="tone-${s.tone}">■ ${esc(s.name)} ${last(s)}</span>`).join(' ')}</figcaption>
    <svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}">
    ${series
      .map(
        (s) =>
          `<polyline class="tone-${s.tone}" data-series="${esc(s.name)}" points="${s.values.map((v, i) => `${x(i)},${y(v)}`).join(' ')}" />`,
      )
      .join('')}</svg></figure>`;
}

async function healthView() {
  const ready = await fetch('/api/readyz').then(async (r) => ({ status: r.status, body: await r.json() }));
  const readyLine = `<h2>Health</h2><p id="ready" class="${ready.status === 200 ? 'FINISHED' : 'FAILED'}">
    ${ready.status === 200 ? `ready: ${ready.body.tasks} task(s) in view` : esc(ready.body.detail)}</p>`;
  // Readiness at once on the first draw: the cluster's state below can take seconds (it asks every group).
  if (!$('#ready')) main.innerHTML = `${readyLine}<p>asking the cluster…</p>`;
  let c;
  try {
    c = (await api('GET', '/api/v1/cluster')).data;
  } catch (err) {
    // Kafka away: readiness says why; the rest waits for it.
    main.innerHTML = `${readyLine}<p class="FAILED">${esc(err.message)}</p>`;
    return;
  }
  const r = c.rates;
  // Groups named by API tasks with no instance running: one line, not a row each.
  const idle = c.schedulers.filter((g) => !g.running).map((g) => g.group);
  const instance = (i) =>
    `<span class="instance ${i.ready ? 'FINISHED' : 'FAILED'}">${esc(`${i.host}:${i.pid}`)} [${i.partitions.join(',')}]${i.ready ? '' : ` ${esc(i.reason)}`}</span>`;
  const unanswered = (g) =>
    g.unansweredPartitions.length
      ? `<span class="FAILED">[${g.unansweredPartitions.join(',')}]</span>`
      : 'none';
  const schedulers = c.schedulers
    .filter((g) => g.running)
    .map(
      (g) =>
        `<tr class="scheduler-group"><td>${esc(g.group)}</td><td>${
          g.instances.map(instance).join('<br />') ||
          '<span class="FAILED">running, but no instance answered within 2 s</span>'
        }</td><td>${unanswered(g)}</td></tr>`,
    )
    .join('');
  const consumers = c.consumers
    .map(
      (
        g,
      ) => `<section class="consumer-group" data-group="${esc(g.group)}"><h4>${esc(g.group)} <small>${esc(g.state)}, ${g.members.length} member(s), lag ${esc(g.totalLag)}</small></h4>
      ${g.error ? `<p class="FAILED">${esc(g.error)}</p>` : ''}<ul>${g.members.map((m) => `<li>${esc(m.clientId)} ${esc(m.host)}: ${esc(m.partitions.join(' '))}</li>`).join('')}</ul>
      <table class="lag"><thead><tr><th>Partition</th><th>Committed</th><th>End</th><th>Lag</th><th>Owner</th></tr></thead><tbody>
      ${g.partitions.map((p) => `<tr><td>${esc(`${p.topic}/${p.partition}`)}</td><td>${esc(p.committed ?? '-')}</td><td>${esc(p.end)}</td><td class="${p.lag === '0' ? '' : 'QUEUED'}">${esc(p.lag)}</td><td>${esc(p.owner ?? '-')}</td></tr>`).join('')}
      </tbody></table></section>`,
    )
    .join('');
  main.innerHTML = `${readyLine}
    <div class="grid">${chart(
      'tasks-chart',
      'Tasks per second',
      [
        { name: 'fired', tone: 'blue', values: r.fired },
        { name: 'finished', tone: 'green', values: r.finished },
        { name: 'failed', tone: 'red', values: r.failed },
      ],
      '/s',
    )}${chart(
      'lag-chart',
      'Fire lag (ms)',
      [
        { name: 'mean', tone: 'blue', values: r.fireLagMeanMs },
        { name: 'max', tone: 'amber', values: r.fireLagMaxMs },
      ],
      'ms',
    )}</div>
    <h3>Scheduler groups</h3><table id="schedulers"><thead><tr><th>Group</th><th>Instances [state partitions]</th><th>Unanswered partitions</th></tr></thead><tbody>${schedulers}</tbody></table>
    ${idle.length ? `<p id="idle-groups" class="FAILED">No instance running in group(s) ${esc(idle.join(', '))}: their API tasks fire nowhere.</p>` : ''}
    <h3>Consumer groups</h3><div id="consumers">${consumers || '<p>none with members</p>'}</div>`;
}

/** The page a hash names: `#/task/ID`, `#/schedule/GROUP/ID`, each with `/run/TASKID` for a run, `#/failures`, … */
function viewOf(hash) {
  const parts = hash.split('/');
  const at = (i) => decodeURIComponent(parts[i] ?? '');
  const back = (n) => parts.slice(0, n).join('/');
  if (parts[1] === 'task') {
    if (parts[3] !== 'run') return () => taskView(at(2));
    const path = `/api/v1/tasks/${encodeURIComponent(at(2))}`;
    return () => runView(path, back(3), at(4), async () => (await api('GET', `${path}/runs`)).data.items);
  }
  if (parts[1] === 'schedule') {
    if (parts[4] !== 'run') return () => scheduleView(at(2), at(3));
    const path = `/api/v1/schedules/${encodeURIComponent(at(2))}/${encodeURIComponent(at(3))}`;
    return () => runView(path, back(4), at(5), async () => (await api('GET', path)).data.runs);
  }
  const pages = { failures: failuresView, alerts: alertsView, audit: auditView, health: healthView };
  return Object.hasOwn(pages, parts[1] ?? '') ? pages[parts[1]] : tasksView;
}

async function render() {
  clearInterval(state.timer);
  const shown = ++state.shown;
  $('#who').innerHTML = state.token
    ? `${esc(sessionStorage.getItem('tm-user'))} (${esc(state.role)}) <button id="logout">Log out</button>`
    : '';
  if (state.token) $('#logout').onclick = logout;
  if (!state.token) return loginView();
  if (sessionStorage.getItem('tm-must-change')) return passwordView();
  const view = viewOf(location.hash || '#/tasks');
  const refresh = () =>
    (shown === state.shown ? view() : Promise.resolve()).catch((err) => flash(err.message));
  await refresh();
  // Another page was opened while this one drew: that page's render refreshes it, and this one stops here (its
  // timer would redraw this page over that one every 2 s).
  if (shown !== state.shown) return;
  // Live: the page refreshes itself every 2 s (no full reload); an open edit keeps its text.
  state.timer = setInterval(refresh, 2000);
}

window.addEventListener('hashchange', render);
void render();
