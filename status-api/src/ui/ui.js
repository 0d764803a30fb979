// dockstate's live page: follows status-api through the long poll of GET /status and shows the containers,
// the drift and the baseline, without reloading. Names, labels and details are data from the host, never
// markup: every value goes into the page through textContent and createElement, never parsed as HTML.
"use strict";

/** How long one long poll may wait for a change (the API takes 0 to 60). */
const LONG_POLL_SECONDS = 30;
/** The shortest time between two refreshes, so that a host that changes all the time cannot make it spin. */
const MIN_GAP_MS = 250;
/** Retry after a failed request: 1 s, doubled each time, at most 10 s. */
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 10000;
/** How often the ages ("3 h ago") are written again. */
const TICK_MS = 10000;

const STATES = new Set(["created", "running", "paused", "restarting", "removing", "exited", "dead"]);
const HEALTHS = new Set(["none", "starting", "healthy", "unhealthy"]);
/** How a last exit came about (`exit_cause`), in words. */
const EXIT_CAUSES = {
  natural: "by itself",
  requested: "stopped on request",
  oom: "killed by the OOM killer",
  unseen: "not seen by status-api",
};

/** An answer that is not 2xx, with its `{error, message}` body when it has one. */
class HttpError extends Error {
  constructor(path, status, body) {
    super(body && body.message ? body.message : `${path} answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

const byId = (id) => document.getElementById(id);

/** A new element holding `text` as text. */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  if (className) {
    node.className = className;
  }
  return node;
}

/** Replaces the children of `node` with `children`. */
function fill(node, children) {
  node.replaceChildren(...children);
}

/** GET `path` as JSON; an HttpError when it is not 2xx, a TypeError when the server cannot be reached. */
async function getJson(path, waitSeconds) {
  const abort = new AbortController();
  // A connection that silently died would hold a fetch for minutes: give up a while after the poll's wait.
  const timer = setTimeout(() => abort.abort(), (waitSeconds + 15) * 1000);
  try {
    const response = await fetch(path, {
      cache: "no-store",
      headers: { accept: "application/json" },
      signal: abort.signal,
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      throw new HttpError(path, response.status, body);
    }
    return body;
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "–" for no time. */
function ago(iso) {
  const then = Date.parse(iso);
  if (!iso || Number.isNaN(then)) {
    return "–";
  }
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** `2026-12-02 07:17:32 UTC` for an RFC 3339 UTC time; the text as it is for anything else. */
function exact(iso) {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$/.exec(iso || "");
  return match ? `${match[1]} ${match[2]} UTC` : String(iso);
}

/** A node that shows the age of `iso` and keeps it current (see `tick`); the exact time on hover. */
function age(tag, iso, className) {
  const node = el(tag, ago(iso), className);
  if (iso) {
    node.dataset.since = iso;
    node.title = exact(iso);
  }
  return node;
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) {
    node.textContent = ago(node.dataset.since);
  }
}

/** A coloured pill; the class comes from a fixed list, whatever the value says. */
function pill(value, prefix, known) {
  const text = value === undefined || value === null ? "–" : String(value);
  return el("span", text, `pill ${prefix}-${known.has(text) ? text : "other"}`);
}

function renderVerdict(drift) {
  const verdict = byId("verdict");
  if (drift.problem) {
    verdict.textContent = drift.short;
    verdict.className = "badge badge-unknown";
  } else if (drift.in_sync) {
    verdict.textContent = "in sync";
    verdict.className = "badge badge-ok";
  } else if (drift.items.every((item) => item.kind === "completed")) {
    // Only jobs that finished: nothing to heal, nothing the controller will do.
    verdict.textContent = `${drift.items.length} completed`;
    verdict.className = "badge badge-unknown";
  } else {
    verdict.textContent = `${drift.items.length} drift`;
    verdict.className = "badge badge-drift";
  }
  document.title = `${verdict.textContent} · dockstate`;
}

function renderSummary(status, snapshot) {
  const engine = status.engine;
  byId("engine").textContent = engine ? `${engine.kind} ${engine.version}` : "not answering yet";
  const scope = snapshot ? snapshot.scope : status.scope;
  byId("scope").textContent = scope || "the whole host";
  if (snapshot) {
    fill(byId("baseline"), [age("span", snapshot.taken_at), el("span", exact(snapshot.taken_at), "detail")]);
    byId("members").textContent = String(snapshot.containers.length);
  } else {
    fill(byId("baseline"), [el("span", "no snapshot yet")]);
    byId("members").textContent = "–";
  }
  const notReady = byId("not-ready");
  notReady.hidden = status.ready !== false;
  notReady.textContent = status.ready === false ? `Not ready: ${status.not_ready_reason || "unknown"}` : "";
  byId("revision").textContent = String(status.revision);
}

function renderDrift(drift) {
  const none = byId("drift-none");
  const list = byId("drift");
  if (drift.problem) {
    none.hidden = false;
    none.textContent = drift.problem;
    fill(list, []);
    return;
  }
  none.hidden = !drift.in_sync;
  none.textContent = "In sync: the host is as its snapshot was.";
  fill(
    list,
    drift.items.map((item) => {
      const classes = [item.policy === "observe" ? "policy-observe" : "", item.kind === "completed" ? "kind-completed" : "", item.kind === "stale_image" ? "kind-stale" : ""];
      const row = el("li", null, classes.filter(Boolean).join(" "));
      row.dataset.kind = item.kind;
      row.dataset.name = item.name;
      const policy = item.policy && item.policy !== "heal" ? ` (policy ${item.policy})` : "";
      row.append(el("span", item.kind, "kind"), el("span", item.name + policy, "name"), el("span", item.detail, "detail"));
      if (item.changes && item.changes.length) {
        row.append(changeList(item.changes));
      }
      return row;
    }),
  );
}

/** A `changed` item's changes, one line each: the field, and the snapshot's and the current value. */
function changeList(changes) {
  const list = el("ul", null, "changes");
  for (const change of changes) {
    const field = change.key ? `${change.field} ${change.key}` : change.field;
    const line = el("li");
    line.dataset.field = field;
    const before = change.snapshot ?? null;
    const after = change.current ?? null;
    let what;
    if (before === null && after === null) {
      // An environment value or a command line: never shown, only that it changed.
      what = `${change.change} (value not shown)`;
    } else if (change.change === "added") {
      what = `added: ${after}`;
    } else if (change.change === "removed") {
      what = `removed (was ${before})`;
    } else {
      what = `${before} → ${after}`;
    }
    line.append(el("span", field, "field"), el("span", what, "values"));
    list.append(line);
  }
  return list;
}

function labelList(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const details = el("details", null, "labels");
  details.append(el("summary", entries.length === 1 ? "1 label" : `${entries.length} labels`));
  const list = el("ul");
  for (const [key, value] of entries) {
    list.append(el("li", value === "" ? key : `${key}=${value}`));
  }
  details.append(list);
  return details;
}

function cell(label, children, className) {
  const td = el("td", null, className);
  td.dataset.label = label;
  td.append(...children);
  return td;
}

/** The last exit in words: `0, by itself`; `–` while it runs or when it never ran. */
function lastExit(c) {
  if (c.exit_code === null || c.exit_code === undefined) {
    return "–";
  }
  const cause = EXIT_CAUSES[c.exit_cause];
  return cause ? `${c.exit_code}, ${cause}` : String(c.exit_code);
}

function renderContainers(containers) {
  byId("container-count").textContent = `(${containers.length})`;
  const rows = containers.map((c) => {
    const row = el("tr");
    row.dataset.name = c.name;
    row.dataset.state = c.state;
    const name = cell("Name", [el("span", c.name)], "name");
    if (Object.keys(c.labels || {}).length > 0) {
      name.append(labelList(c.labels));
    }
    row.append(
      name,
      cell("State", [pill(c.state, "state", STATES)]),
      cell("Health", [pill(c.health, "health", HEALTHS)]),
      cell("Image", [el("span", c.image, "mono")], "image"),
      cell("In snapshot", [el("span", c.in_snapshot ? "yes" : "no", `pill snap-${c.in_snapshot ? "yes" : "no"}`)]),
      cell("Restarts", [el("span", c.restart_count)], "number"),
      cell("Started", [c.started_at ? age("span", c.started_at) : el("span", "never")]),
      cell("Last exit", [el("span", lastExit(c))], "exit"),
    );
    if (c.restart_policy) {
      row.title = `restart policy: ${c.restart_policy}`;
    }
    return row;
  });
  fill(document.querySelector("#containers tbody"), rows);
}

/** The snapshot summary, or null when there is none yet. */
async function readSnapshot(status) {
  if (!status.snapshot_taken_at) {
    return null;
  }
  try {
    return await getJson("/snapshot", 0);
  } catch (error) {
    if (error instanceof HttpError) {
      return null;
    }
    throw error;
  }
}

/** The drift, or `{problem, short}` when status-api serves none (no snapshot yet, another scope). */
async function readDrift(status) {
  if (!status.snapshot_taken_at) {
    return { problem: "No snapshot yet: it is taken as soon as the engine answers.", short: "no snapshot" };
  }
  try {
    return await getJson("/drift", 0);
  } catch (error) {
    if (error instanceof HttpError) {
      const short = error.body && error.body.error === "scope_mismatch" ? "scope mismatch" : "no drift";
      return { problem: error.message, short };
    }
    throw error;
  }
}

const seen = { revision: null, takenAt: null, snapshot: null };

/** One turn: wait for the revision after the one shown (at once the first time), then show it. */
async function refresh() {
  const poll = seen.revision === null ? "" : `&since=${seen.revision}&wait=${LONG_POLL_SECONDS}`;
  const status = await getJson(`/status?all=true${poll}`, LONG_POLL_SECONDS);
  if (status.revision === seen.revision) {
    return; // The wait ran out with nothing new.
  }
  if (seen.revision === null || status.snapshot_taken_at !== seen.takenAt) {
    seen.snapshot = await readSnapshot(status);
    seen.takenAt = status.snapshot_taken_at;
  }
  const drift = await readDrift(status);
  renderVerdict(drift);
  renderSummary(status, seen.snapshot);
  renderDrift(drift);
  renderContainers(status.containers || []);
  seen.revision = status.revision;
}

function showConnected() {
  document.body.classList.remove("disconnected");
  byId("banner").hidden = true;
}

function showDisconnected(error, retryMs) {
  document.body.classList.add("disconnected");
  // What is shown may be out of date: say so, and redraw everything once status-api answers again.
  seen.revision = null;
  const verdict = byId("verdict");
  verdict.textContent = "disconnected";
  verdict.className = "badge badge-unknown";
  const banner = byId("banner");
  const why = error instanceof HttpError ? error.message : "status-api cannot be reached";
  banner.textContent = `Disconnected (${why}); retrying in ${Math.round(retryMs / 1000)} s…`;
  banner.hidden = false;
}

async function follow() {
  let backoff = BACKOFF_FIRST_MS;
  for (;;) {
    const started = Date.now();
    try {
      await refresh();
      showConnected();
      backoff = BACKOFF_FIRST_MS;
      await sleep(Math.max(0, MIN_GAP_MS - (Date.now() - started)));
    } catch (error) {
      showDisconnected(error, backoff);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
}

setInterval(tick, TICK_MS);
follow();
