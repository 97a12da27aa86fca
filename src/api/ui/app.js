// The taskapi dashboard: plain ES modules, nothing loaded from elsewhere. Every number comes from the same API a
// client uses, with the logged-in user's token; the server enforces roles, the page only hides what a role cannot do.
const $ = (sel, root = document) => root.querySelector(sel);
const main = $('#main');
const state = {
  token: sessionStorage.getItem('tm-token'),
  role: sessionStorage.getItem('tm-role'),
  timer: 0,
};
const RANK = { viewer: 0, operator: 1, admin: 2 };
const can = (role) => RANK[state.role] >= RANK[role];

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function flash(text) {
  $('#flash').textContent = text;
  setTimeout(() => ($('#flash').textContent = ''), 4000);
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
      const { data } = await api('POST', '/api/v1/users/login', {
        username: f.get('username'),
        password: f.get('password'),
      });
      const claims = JSON.parse(atob(data.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      sessionStorage.setItem('tm-token', data.accessToken);
      sessionStorage.setItem('tm-role', claims.role);
      sessionStorage.setItem('tm-user', claims.sub);
      Object.assign(state, { token: data.accessToken, role: claims.role });
      location.hash = '#/tasks';
      render();
    } catch (err) {
      $('#login-error').textContent = err.message;
    }
  });
}

function spec(s) {
  return s.cron ?? (s.every !== undefined ? `every ${s.every}` : `once at ${s.runAt}`);
}

const sort = { key: 'createdAt', dir: 1 };
let search = '';

async function tasksView() {
  const { data } = await api('GET', '/api/v1/tasks?limit=1000');
  const rows = data.items
    .filter(
      (t) =>
        !search ||
        JSON.stringify([t.id, t.name, t.processor, spec(t.schedule)])
          .toLowerCase()
          .includes(search),
    )
    .sort((a, b) => (String(a[sort.key] ?? '') < String(b[sort.key] ?? '') ? -sort.dir : sort.dir));
  const cols = [
    ['id', 'Id'],
    ['processor', 'Processor'],
    ['schedule', 'Schedule'],
    ['timeZone', 'Zone'],
    ['status', 'Status'],
    ['nextRunAt', 'Next run'],
    ['lastRun', 'Last run'],
    ['group', 'Scheduler group'],
  ];
  const focus = document.activeElement?.id === 'search';
  main.innerHTML = `<h2>Tasks <small>(${data.total}, from the HTTP API)</small></h2>
    <input id="search" placeholder="search" value="${esc(search)}" />
    <table id="tasks"><thead><tr>${cols.map(([k, l]) => `<th data-key="${k}">${l}</th>`).join('')}</tr></thead><tbody>
    ${rows
      .map(
        (t) => `<tr class="row" data-id="${esc(t.id)}"><td>${esc(t.id)}</td><td>${esc(t.processor)}</td>
        <td>${esc(spec(t.schedule))}</td><td>${esc(t.timeZone)}</td><td class="${esc(t.status)}">${esc(t.status)}</td>
        <td>${esc(t.nextRunAt ?? '-')}</td><td class="${esc(t.lastRun?.state)}">${esc(t.lastRun ? `${t.lastRun.state} ${t.lastRun.scheduledFor}` : '-')}</td>
        <td>${esc(t.group)}</td></tr>`,
      )
      .join('')}</tbody></table>`;
  const input = $('#search');
  input.addEventListener('input', () => {
    search = input.value.toLowerCase();
    void tasksView();
  });
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
    tr.addEventListener('click', () => (location.hash = `#/task/${encodeURIComponent(tr.dataset.id)}`));
}

async function taskView(id) {
  const path = `/api/v1/tasks/${encodeURIComponent(id)}`;
  const [{ data: t, etag }, { data: next }, { data: runs }] = await Promise.all([
    api('GET', path),
    api('GET', `${path}/next?count=10`),
    api('GET', `${path}/runs`),
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
    ...(t.param === undefined ? {} : { param: t.param }),
    ...(t.payload === undefined ? {} : { payload: t.payload }),
  };
  main.innerHTML = `<h2>${esc(t.id)} <small class="${esc(t.status)}" id="task-status">${esc(t.status)}</small></h2>
    ${
      can('operator')
        ? `<p id="actions"><button id="trigger">Trigger now</button>
           <button id="toggle">${t.enabled ? 'Pause' : 'Resume'}</button><button id="delete">Delete</button></p>`
        : ''
    }
    <div class="grid"><section><h3>Definition</h3><pre>${esc(JSON.stringify(t, null, 2))}</pre>
      ${can('operator') ? `<h3>Edit</h3><textarea id="edit-text">${esc(draft ?? JSON.stringify(definition, null, 2))}</textarea><button id="save">Save</button>` : ''}</section>
    <section><h3>Next fires (${esc(next.timeZone)} / UTC)</h3><table id="next"><tbody>
      ${next.items.map((n) => `<tr><td>${esc(n.local)}</td><td>${esc(n.utc)}</td></tr>`).join('') || '<tr><td>none</td></tr>'}</tbody></table>
    <h3>Runs</h3><table id="runs"><thead><tr><th>Run</th><th>State</th><th>Attempts</th><th>Duration</th><th>Consumer</th><th>Error</th></tr></thead><tbody>
      ${runs.items
        .map(
          (
            r,
          ) => `<tr data-task-id="${esc(r.taskId)}"><td>${esc(r.scheduledFor)}</td><td class="${esc(r.state)}">${esc(r.state)}</td><td>${r.attempts}</td>
          <td>${esc(r.durationMs ?? '')}</td><td>${esc(r.consumer ? `${r.consumer.host}:${r.consumer.pid}` : '')}</td><td>${esc(r.error ?? '')}</td></tr>`,
        )
        .join('')}</tbody></table></section></div>`;
  if (!can('operator')) return;
  const act = async (question, fn) => {
    if (!confirm(question)) return;
    try {
      flash(await fn());
      await taskView(id);
    } catch (err) {
      flash(`failed: ${err.message}`);
    }
  };
  $('#trigger').onclick = () =>
    act(`Fire ${t.id} now?`, async () => `fired as ${(await api('POST', `${path}/trigger`)).data.taskId}`);
  $('#toggle').onclick = () =>
    act(`${t.enabled ? 'Pause' : 'Resume'} ${t.id}?`, async () => {
      await api('PATCH', path, { enabled: !t.enabled }, { 'if-match': etag });
      return t.enabled ? 'paused' : 'resumed';
    });
  $('#delete').onclick = () =>
    act(`Delete ${t.id}? Its future fires stop.`, async () => {
      await api('DELETE', path, undefined, { 'if-match': etag });
      location.hash = '#/tasks';
      return 'deleted';
    });
  $('#save').onclick = () =>
    act(`Save the changed definition of ${t.id}?`, async () => {
      await api('PUT', path, JSON.parse($('#edit-text').value), { 'if-match': etag });
      return 'saved';
    });
}

let dlqTopic = 'taskTopic';

async function failuresView() {
  const focus = document.activeElement?.id === 'dlq-topic';
  let body;
  try {
    const { data } = await api('GET', `/api/v1/dlq/${encodeURIComponent(dlqTopic)}`);
    body = `<p>${data.waiting} waiting, ${data.replayed} replayed ${
      can('operator') && data.waiting > 0 ? '<button id="replay-all">Replay all waiting</button>' : ''
    }</p><table id="dlq"><thead><tr><th>Position</th><th>Task</th><th>Reason</th><th>Attempts</th><th>Failed at</th><th>From</th><th>Error</th><th></th></tr></thead><tbody>
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
  main.innerHTML = `<h2>Failures</h2><label>Task topic <input id="dlq-topic" value="${esc(dlqTopic)}" /></label>${body}`;
  const input = $('#dlq-topic');
  input.addEventListener('change', () => {
    dlqTopic = input.value;
    void failuresView();
  });
  if (focus) input.focus();
  const replay = async (selector, question) => {
    if (!confirm(question)) return;
    try {
      const { data } = await api('POST', `/api/v1/dlq/${encodeURIComponent(dlqTopic)}/replay`, selector);
      flash(`replayed ${data.replayed.length}`);
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

async function healthView() {
  const ready = await fetch('/api/readyz').then(async (r) => ({ status: r.status, body: await r.json() }));
  main.innerHTML = `<h2>Health</h2><p id="ready" class="${ready.status === 200 ? 'FINISHED' : 'FAILED'}">
    ${ready.status === 200 ? `ready: ${ready.body.tasks} task(s) in view` : esc(ready.body.detail)}</p>`;
}

async function render() {
  clearInterval(state.timer);
  $('#who').innerHTML = state.token
    ? `${esc(sessionStorage.getItem('tm-user'))} (${esc(state.role)}) <button id="logout">Log out</button>`
    : '';
  if (state.token) $('#logout').onclick = logout;
  if (!state.token) return loginView();
  const [, page, arg] = (location.hash || '#/tasks').split('/');
  const view =
    page === 'task'
      ? () => taskView(decodeURIComponent(arg ?? ''))
      : page === 'failures'
        ? failuresView
        : page === 'health'
          ? healthView
          : tasksView;
  const refresh = () => view().catch((err) => flash(err.message));
  await refresh();
  // Live: the page refreshes itself every 2 s (no full reload); an open edit keeps its text.
  state.timer = setInterval(refresh, 2000);
}

window.addEventListener('hashchange', render);
void render();
