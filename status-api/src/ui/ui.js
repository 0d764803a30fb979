// dockstate's live page: follows status-api through the long poll of GET /status and shows the containers,
// the drift and the baseline, without reloading; with a controller URL (status-api's --controller-url) it also
// polls status-controller's read-only GET /actions and shows its latest actions, its hold and its quarantines.
// The view (filter, chip, sort) lives in the URL's query, so a link or a reload shows the same view.
// Names, labels and details are data from the host, never markup: every value goes into the page through
// textContent and createElement, never parsed as HTML.
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
/** How often the controller's actions are read when nothing on the host changed. */
const CONTROLLER_POLL_MS = 5000;
/** The controller's newest actions shown. */
const ACTIONS_SHOWN = 15;
/** Restarts (by the engine, or starts by the controller within CRASH_WINDOW_MS) from which a container looks
 * like it is crash-looping. */
const CRASH_RESTARTS = 3;
const CRASH_WINDOW_MS = 15 * 60 * 1000;

const STATES = new Set(["created", "running", "paused", "restarting", "removing", "exited", "dead"]);
const HEALTHS = new Set(["none", "starting", "healthy", "unhealthy"]);
const POLICIES = new Set(["heal", "observe", "ignore"]);
const RESULTS = new Set(["ok", "noop", "gone", "conflict", "failed", "skipped", "quarantined"]);
/** Drift the controller acts on for a member whose policy is `heal`; the other kinds are reported only. */
const HEALED_KINDS = new Set(["stopped", "paused", "removed", "unhealthy", "unexpected", "orphaned"]);
/** How a last exit came about (`exit_cause`), in words. */
const EXIT_CAUSES = {
  natural: "by itself",
  requested: "stopped on request",
  oom: "killed by the OOM killer",
  unseen: "not seen by status-api",
};
/** The OCI title of dockstate's own images: its containers are marked and not counted as members. */
const OWN_TITLE = /^dockstate (status-api|status-controller)$/;
const SHOWS = ["all", "problems", "actionable"];

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

/** GET `url` as JSON; an HttpError when it is not 2xx, a TypeError when the server cannot be reached. */
async function getJson(url, waitSeconds) {
  const abort = new AbortController();
  // A connection that silently died would hold a fetch for minutes: give up a while after the poll's wait.
  const timer = setTimeout(() => abort.abort(), (waitSeconds + 15) * 1000);
  try {
    const response = await fetch(url, {
      cache: "no-store",
      credentials: "omit",
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
      throw new HttpError(url, response.status, body);
    }
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/** A pause that `wake()` can end early (the banner's "Retry now", a change the controller panel follows). */
class Pause {
  constructor() {
    this.resolve = null;
  }
  for(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake(), ms);
      this.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  wake() {
    const resolve = this.resolve;
    this.resolve = null;
    if (resolve) resolve();
  }
}

/** "just now", "42 s", "5 min", "3 h", "2 d"; null for no time. */
function span(iso) {
  const then = Date.parse(iso);
  if (!iso || Number.isNaN(then)) {
    return null;
  }
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

/** How an age reads: "5 min ago" (`ago`), "for 5 min" (`for`), "in 5 min" (`in`, a time to come). */
function agoText(iso, form) {
  if (form === "in") {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "–";
    const seconds = Math.max(0, Math.round((then - Date.now()) / 1000));
    return seconds < 60 ? `in ${seconds} s` : `in ${Math.ceil(seconds / 60)} min`;
  }
  const text = span(iso);
  if (text === null) return "–";
  if (form === "for") return text === "just now" ? "just now" : `for ${text}`;
  return text === "just now" ? text : `${text} ago`;
}

/** `2026-12-02 07:17:32 UTC` for an RFC 3339 UTC time; the text as it is for anything else. */
function exact(iso) {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$/.exec(iso || "");
  return match ? `${match[1]} ${match[2]} UTC` : String(iso);
}

/** A node that shows `prefix` and the age of `iso` and keeps it current (see `tick`); the exact time on hover. */
function age(tag, iso, className, prefix = "", form = "ago") {
  const node = el(tag, prefix + agoText(iso, form), className);
  if (iso) {
    node.dataset.since = iso;
    node.dataset.prefix = prefix;
    node.dataset.form = form;
    node.title = exact(iso);
  }
  return node;
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) {
    node.textContent = (node.dataset.prefix || "") + agoText(node.dataset.since, node.dataset.form);
  }
}

/** A coloured pill; the class comes from a fixed list, whatever the value says. */
function pill(value, prefix, known) {
  const text = value === undefined || value === null ? "–" : String(value);
  return el("span", text, `pill ${prefix}-${known.has(text) ? text : "other"}`);
}

/** The id of a member's row, for the links of the drift and controller panels. */
const rowId = (name) => `member-${name}`;

/** A link to a member's row: shows it (clearing a filter that hides it) and marks it for a moment. */
function memberLink(name, className) {
  const link = el("a", name, className);
  link.href = `#${rowId(name)}`;
  link.dataset.member = name;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    reveal(name);
  });
  return link;
}

// ---- what the page knows -----------------------------------------------------------------------------------

const seen = { revision: null, takenAt: null, snapshot: null, status: null, drift: null };
const controller = { url: "", actions: null, problem: null, signs: "", polled: new Pause() };

/** Whether a container is one of dockstate's own (status-api's, or by its image's title). */
function isOwn(container, status) {
  if (status && status.server_container_id && container.id === status.server_container_id) {
    return true;
  }
  const labels = container.labels || {};
  return OWN_TITLE.test(labels["org.opencontainers.image.title"] || "");
}

/** Whether the controller acts on this drift (policy `heal`, a kind it heals, or a `changed` member opted in). */
function isActionable(item) {
  if (item.policy !== "heal") return false;
  if (HEALED_KINDS.has(item.kind)) return true;
  if (item.kind !== "changed") return false;
  const container = ((seen.status && seen.status.containers) || []).find((c) => c.name === item.name);
  return Boolean(container && (container.labels || {})["dockstate.changed"] === "recreate");
}

/** The drift items by container name. */
function driftByName() {
  const byName = new Map();
  for (const item of (seen.drift && seen.drift.items) || []) {
    if (!byName.has(item.name)) byName.set(item.name, []);
    byName.get(item.name).push(item);
  }
  return byName;
}

/** Starts of `name` by the controller within the crash window, from its journal. */
function recentStarts(name) {
  const actions = (controller.actions && controller.actions.actions) || [];
  const since = Date.now() - CRASH_WINDOW_MS;
  return actions.filter(
    (record) => record.container === name && ["start", "restart", "recreate"].includes(record.action) && Date.parse(record.time) >= since,
  ).length;
}

/** What of the controller's answer the crash-loop signs depend on, as one string. */
function crashInputs() {
  const answer = controller.actions || {};
  const starts = (answer.actions || [])
    .filter((record) => ["start", "restart", "recreate"].includes(record.action))
    .map((record) => `${record.container}@${record.time}`);
  const quarantined = (answer.quarantined || []).map((q) => q.container);
  return JSON.stringify([starts, quarantined]);
}

function quarantineOf(name) {
  const quarantined = (controller.actions && controller.actions.quarantined) || [];
  return quarantined.find((q) => q.container === name) || null;
}

/** Why a container looks crash-looping, or null. */
function crashSign(c) {
  if (quarantineOf(c.name)) return "quarantined";
  if (c.state === "restarting") return "restarting";
  if ((c.restart_count || 0) >= CRASH_RESTARTS) return "crash loop";
  if (recentStarts(c.name) >= CRASH_RESTARTS) return "crash loop";
  return null;
}

/** Everything the table needs of one container, computed once per render. */
function describe(c, drifts) {
  const items = drifts.get(c.name) || [];
  const crash = crashSign(c);
  return {
    c,
    items,
    own: isOwn(c, seen.status),
    crash,
    actionable: items.some(isActionable),
    problem: items.length > 0 || c.health === "unhealthy" || ["restarting", "dead"].includes(c.state) || crash !== null,
  };
}

// ---- the view: filter, chip and sort, kept in the URL ------------------------------------------------------

const view = { q: "", show: "all", sort: "name", desc: false };

function readView() {
  const params = new URLSearchParams(window.location.search);
  view.q = params.get("q") || "";
  view.show = SHOWS.includes(params.get("show")) ? params.get("show") : "all";
  const sort = params.get("sort") || "name";
  view.desc = sort.startsWith("-");
  view.sort = SORTERS[sort.replace(/^-/, "")] ? sort.replace(/^-/, "") : "name";
}

function writeView() {
  const params = new URLSearchParams();
  if (view.q) params.set("q", view.q);
  if (view.show !== "all") params.set("show", view.show);
  if (view.sort !== "name" || view.desc) params.set("sort", (view.desc ? "-" : "") + view.sort);
  const query = params.toString();
  history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`);
}

const STATE_ORDER = ["dead", "restarting", "exited", "paused", "created", "removing", "running"];
const HEALTH_ORDER = ["unhealthy", "starting", "healthy", "none"];
const text = (value) => String(value ?? "");
/** When the container last changed state: its start while it runs, its exit once it stopped. */
const sinceTime = (c) => (["exited", "dead"].includes(c.state) ? c.finished_at : c.state === "created" ? c.created_at : c.started_at);

const SORTERS = {
  name: (d) => text(d.c.name),
  state: (d) => STATE_ORDER.indexOf(d.c.state),
  health: (d) => HEALTH_ORDER.indexOf(d.c.health),
  drift: (d) => -(d.items.length * 2 + (d.actionable ? 1 : 0)),
  image: (d) => text(d.c.image),
  policy: (d) => text(d.c.policy),
  member: (d) => (d.c.in_snapshot ? 0 : 1),
  restarts: (d) => -(d.c.restart_count || 0),
  since: (d) => -(Date.parse(sinceTime(d.c)) || 0),
  exit: (d) => (d.c.exit_code === null || d.c.exit_code === undefined ? Infinity : -d.c.exit_code),
};

function compare(a, b) {
  const key = SORTERS[view.sort];
  const x = key(a);
  const y = key(b);
  const order = typeof x === "string" ? x.localeCompare(y) : x - y;
  const ordered = order || text(a.c.name).localeCompare(text(b.c.name));
  return view.desc ? -ordered : ordered;
}

/** Whether `d` shows under the filter text: every word in its name, a label (`key=value`) or its image. */
function matches(d) {
  const words = view.q.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const labels = Object.entries(d.c.labels || {}).map(([key, value]) => `${key}=${value}`);
  const haystack = [d.c.name, d.c.image, ...labels].join("\n").toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function shown(d) {
  if (view.show === "problems" && !d.problem) return false;
  if (view.show === "actionable" && !d.actionable) return false;
  return matches(d);
}

/** Shows the row of `name`, clearing what hides it, and marks it for a moment. */
function reveal(name) {
  const described = describeAll().find((d) => d.c.name === name);
  if (described && !shown(described)) {
    view.q = "";
    view.show = "all";
    byId("filter").value = "";
    writeView();
    renderContainers();
  }
  const row = byId(rowId(name));
  if (!row) return;
  history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${rowId(name)}`);
  row.scrollIntoView({ block: "center" });
  row.classList.remove("flash");
  void row.offsetWidth; // restart the animation
  row.classList.add("flash");
}

// ---- rendering ---------------------------------------------------------------------------------------------

/** The drift, in three counts: what the controller acts on, observe-only, and reported only. */
function driftCounts(items) {
  const actionable = items.filter(isActionable).length;
  const observed = items.filter((item) => item.policy !== "heal").length;
  return { actionable, observed, reported: items.length - actionable - observed };
}

function renderVerdict(drift) {
  const verdict = byId("verdict");
  if (drift.problem) {
    verdict.textContent = drift.short;
    verdict.className = "badge badge-unknown";
  } else if (drift.in_sync) {
    verdict.textContent = "in sync";
    verdict.className = "badge badge-ok";
  } else {
    const { actionable, observed } = driftCounts(drift.items);
    if (actionable > 0) {
      const rest = drift.items.length - actionable;
      verdict.textContent = rest > 0 ? `${actionable} drift · ${rest} reported` : `${actionable} drift`;
      verdict.className = "badge badge-drift";
    } else if (drift.items.every((item) => item.kind === "completed")) {
      // Only jobs that finished: nothing to heal, nothing the controller will do.
      verdict.textContent = `${drift.items.length} completed`;
      verdict.className = "badge badge-unknown";
    } else {
      // Nothing the controller acts on: observe-only members, or kinds that are reported only.
      verdict.textContent = observed === drift.items.length ? `${observed} observed` : `${drift.items.length} reported`;
      verdict.className = "badge badge-observe";
    }
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
    const own = snapshot.containers.filter((c) => isOwn(c, status)).length;
    const members = [el("span", String(snapshot.containers.length - own), "count")];
    if (own) {
      members.push(el("span", `not counting dockstate's own ${own === 1 ? "container" : `${own} containers`}`, "detail"));
    }
    fill(byId("members"), members);
  } else {
    fill(byId("baseline"), [el("span", "no snapshot yet")]);
    fill(byId("members"), [el("span", "–", "count")]);
  }
  const notReady = byId("not-ready");
  notReady.hidden = status.ready !== false;
  notReady.textContent = status.ready === false ? `Not ready: ${status.not_ready_reason || "unknown"}` : "";
  byId("revision").textContent = String(status.revision);
}

function renderDrift(drift) {
  const none = byId("drift-none");
  const list = byId("drift");
  const count = byId("drift-count");
  if (drift.problem) {
    none.hidden = false;
    none.textContent = drift.problem;
    count.textContent = "";
    fill(list, []);
    return;
  }
  none.hidden = !drift.in_sync;
  none.textContent = "In sync: the host is as its snapshot was.";
  const { actionable, observed, reported } = driftCounts(drift.items);
  const parts = [];
  if (actionable) parts.push(`${actionable} for the controller`);
  if (observed) parts.push(`${observed} observe-only`);
  if (reported) parts.push(`${reported} reported only`);
  count.textContent = parts.length ? `(${parts.join(" · ")})` : "";
  fill(list, drift.items.map(driftLine));
}

function driftLine(item) {
  const acted = isActionable(item);
  const classes = [
    acted ? "actionable" : "reported",
    item.policy === "observe" ? "policy-observe" : "",
    item.kind === "completed" ? "kind-completed" : "",
    item.kind === "stale_image" ? "kind-stale" : "",
  ];
  const row = el("li", null, classes.filter(Boolean).join(" "));
  row.dataset.kind = item.kind;
  row.dataset.name = item.name;
  row.dataset.actionable = String(acted);
  const who = el("span", null, "who");
  who.append(item.kind === "removed" ? el("span", item.name, "name") : memberLink(item.name, "name"));
  if (item.policy && item.policy !== "heal") {
    who.append(el("span", ` (policy ${item.policy})`, "policy"));
  }
  const when = item.since ? age("span", item.since, "since", "", "for") : el("span", "", "since");
  row.append(el("span", item.kind, "kind"), who, el("span", item.detail, "detail"), when);
  if (item.changes && item.changes.length) {
    row.append(changeList(item.changes));
  }
  return row;
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

/** The containers whose labels the operator unfolded: a redraw keeps them unfolded. */
const openLabels = new Set();

function labelList(name, labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const details = el("details", null, "labels");
  details.open = openLabels.has(name);
  details.addEventListener("toggle", () => {
    if (details.open) openLabels.add(name);
    else openLabels.delete(name);
  });
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

/** An image reference that may break only after `/`, `:` and `@`, never inside a word. */
function imageText(image) {
  const node = el("span", null, "mono image-ref");
  const parts = String(image || "–").split(/(?<=[/:@])/);
  parts.forEach((part, index) => {
    if (index > 0) node.append(document.createElement("wbr"));
    node.append(document.createTextNode(part));
  });
  return node;
}

/** Published and exposed ports as `docker ps` shows them: `0.0.0.0:8080→80/tcp`, `80/tcp`. */
function portList(ports) {
  if (!Array.isArray(ports) || !ports.length) {
    return [el("span", "–", "muted")];
  }
  const seenPorts = new Set();
  const lines = [];
  for (const port of ports) {
    const inside = `${port.container_port}/${port.protocol || "tcp"}`;
    const line = port.host_port ? `${port.host_ip ? `${port.host_ip}:` : ""}${port.host_port}→${inside}` : inside;
    if (!seenPorts.has(line)) {
      seenPorts.add(line);
      lines.push(el("span", line, "port mono"));
    }
  }
  return lines;
}

/** When the container last changed state, in words: never "started" for one that has stopped. */
function sinceCell(c) {
  if (["exited", "dead"].includes(c.state)) {
    return c.finished_at ? age("span", c.finished_at, null, `${c.state} `) : el("span", c.state);
  }
  if (c.state === "created") {
    return c.created_at ? age("span", c.created_at, null, "created ") : el("span", "never started");
  }
  return c.started_at ? age("span", c.started_at, null, "started ") : el("span", "never");
}

function driftCell(d) {
  if (!d.items.length) {
    return [el("span", "–", "muted")];
  }
  return d.items.map((item) => {
    const node = el("span", null, `pill ${isActionable(item) ? "drift-act" : "drift-report"}`);
    node.append(el("span", item.kind));
    if (item.since) node.append(age("span", item.since, "since", " · ", "for"));
    return node;
  });
}

function restartsCell(d) {
  const children = [el("span", d.c.restart_count ?? 0, "count")];
  if (d.crash) {
    const sign = el("span", d.crash, `pill crash crash-${d.crash.replace(" ", "-")}`);
    const starts = recentStarts(d.c.name);
    sign.title = `${d.c.restart_count || 0} restarts by the engine; ${starts} starts by the controller in the last 15 min`;
    children.push(sign);
  }
  return children;
}

function containerRow(d) {
  const c = d.c;
  const row = el("tr", null, [d.own ? "own" : "", d.problem ? "problem" : ""].filter(Boolean).join(" "));
  row.id = rowId(c.name);
  row.dataset.name = c.name;
  row.dataset.state = c.state;
  const name = cell("Name", [el("span", c.name)], "name");
  if (d.own) {
    name.append(el("span", "dockstate", "pill own-mark"));
  }
  if (Object.keys(c.labels || {}).length > 0) {
    name.append(labelList(c.name, c.labels));
  }
  row.append(
    name,
    cell("State", [pill(c.state, "state", STATES)], "state"),
    cell("Health", [pill(c.health, "health", HEALTHS)], "health"),
    cell("Drift", driftCell(d), "drift-cell"),
    cell("Image", [imageText(c.image)], "image"),
    cell("Policy", [pill(c.policy, "pol", POLICIES)], "policy"),
    cell("Member", [el("span", c.in_snapshot ? "yes" : "no", `pill snap-${c.in_snapshot ? "yes" : "no"}`)], "member"),
    cell("Restarts", restartsCell(d), "restarts"),
    cell("Ports", portList(c.ports), "ports"),
    cell("Since", [sinceCell(c)], "since-cell"),
    cell("Last exit", [el("span", lastExit(c))], "exit"),
  );
  if (c.restart_policy) {
    row.title = `restart policy: ${c.restart_policy}`;
  }
  return row;
}

function describeAll() {
  const drifts = driftByName();
  return ((seen.status && seen.status.containers) || []).map((c) => describe(c, drifts));
}

function renderContainers() {
  const all = describeAll();
  const visible = all.filter(shown).sort(compare);
  byId("container-count").textContent = visible.length === all.length ? `(${all.length})` : `(${visible.length} of ${all.length})`;
  const counts = { all: all.length, problems: all.filter((d) => d.problem).length, actionable: all.filter((d) => d.actionable).length };
  for (const chip of document.querySelectorAll("#chips .chip")) {
    chip.setAttribute("aria-pressed", String(chip.dataset.show === view.show));
    chip.querySelector(".n").textContent = String(counts[chip.dataset.show]);
  }
  for (const th of document.querySelectorAll("#containers th[data-sort]")) {
    const sorted = th.dataset.sort === view.sort;
    th.setAttribute("aria-sort", sorted ? (view.desc ? "descending" : "ascending") : "none");
  }
  byId("no-match").hidden = visible.length > 0 || all.length === 0;
  fill(document.querySelector("#containers tbody"), visible.map(containerRow));
}

// ---- the controller panel ----------------------------------------------------------------------------------

function renderController() {
  const note = byId("controller-note");
  const body = byId("controller-body");
  if (!controller.url) {
    note.textContent =
      "Not configured: start status-api with --controller-url (environment STATUS_API_CONTROLLER_URL) set to " +
      "status-controller's address as this browser reaches it, and the controller with --cors-origin set to " +
      "this page's origin, to see its actions, its hold and its quarantines here.";
    body.hidden = true;
    return;
  }
  const answer = controller.actions;
  if (controller.problem) {
    note.textContent = `status-controller at ${controller.url} does not answer (${controller.problem}); retrying.` +
      (answer ? " What follows may be out of date." : "");
  } else {
    note.textContent = `From ${controller.url}/actions, read every few seconds and at every change.`;
  }
  body.hidden = !answer;
  if (!answer) return;
  renderHold(answer);
  renderQuarantines(answer.quarantined || []);
  const actions = (answer.actions || []).slice(0, ACTIONS_SHOWN);
  byId("actions-none").hidden = actions.length > 0;
  fill(byId("actions"), actions.map(actionLine));
}

function renderHold(answer) {
  const box = byId("hold");
  const hold = answer.hold;
  if (answer.hold_problem) {
    box.className = "hold hold-problem";
    fill(box, [el("strong", "The hold file cannot be read: "), el("span", answer.hold_problem)]);
  } else if (hold) {
    box.className = "hold held";
    fill(box, [
      el("strong", "Held for maintenance"),
      el("span", ` by ${hold.by}: ${hold.reason}. No action until `),
      el("span", exact(hold.until), "until"),
      age("span", hold.until, "muted", " (", "in"),
      el("span", ")", "muted"),
    ]);
  } else {
    box.className = "hold free";
    fill(box, [el("span", "No maintenance hold: the controller acts on drift.")]);
  }
}

function renderQuarantines(quarantined) {
  byId("quarantine-box").hidden = quarantined.length === 0;
  fill(
    byId("quarantines"),
    quarantined.map((q) => {
      const line = el("li");
      line.dataset.container = q.container;
      line.append(
        memberLink(q.container, "name"),
        el("span", ` left alone after ${q.attempts} attempts, until ${exact(q.until)} `),
        age("span", q.until, "muted", "(", "in"),
        el("span", ")", "muted"),
      );
      return line;
    }),
  );
}

function actionLine(record) {
  const line = el("li", null, `outcome-${RESULTS.has(record.result) ? record.result : "other"}`);
  line.dataset.container = record.container;
  line.dataset.action = record.action;
  line.dataset.result = record.result;
  const head = el("div", null, "head");
  head.append(
    age("span", record.time, "when"),
    el("span", record.action, "action"),
    memberLink(record.container, "name"),
    pill(record.result, "result", RESULTS),
  );
  if (record.dry_run) head.append(el("span", "dry run", "pill result-other"));
  line.append(head, el("div", record.reason, "reason"));
  if (record.detail) line.append(el("div", record.detail, "detail"));
  return line;
}

async function followController() {
  controller.url = (document.querySelector('meta[name="dockstate-controller"]') || {}).content || "";
  renderController();
  if (!controller.url) return;
  let backoff = CONTROLLER_POLL_MS;
  for (;;) {
    try {
      controller.actions = await getJson(`${controller.url}/actions?limit=50`, 0);
      controller.problem = null;
      backoff = CONTROLLER_POLL_MS;
    } catch (error) {
      controller.problem = error instanceof HttpError ? error.message : "cannot be reached";
      backoff = Math.min(backoff * 2, 60000);
    }
    renderController();
    // The table shows quarantines and the controller's starts (the crash-loop sign): redraw it only when
    // those changed, not at every poll.
    const signs = crashInputs();
    if (seen.status && signs !== controller.signs) renderContainers();
    controller.signs = signs;
    await controller.polled.for(backoff);
    await new Promise((resolve) => setTimeout(resolve, MIN_GAP_MS));
  }
}

// ---- following status-api ----------------------------------------------------------------------------------

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
    return { problem: "No snapshot yet: it is taken as soon as the engine answers.", short: "no snapshot", items: [] };
  }
  try {
    return await getJson("/drift", 0);
  } catch (error) {
    if (error instanceof HttpError) {
      const short = error.body && error.body.error === "scope_mismatch" ? "scope mismatch" : "no drift";
      return { problem: error.message, short, items: [] };
    }
    throw error;
  }
}

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
  seen.status = status;
  seen.drift = drift;
  renderVerdict(drift);
  renderSummary(status, seen.snapshot);
  renderDrift(drift);
  renderContainers();
  seen.revision = status.revision;
  // Something changed on the host: the controller may have acted on it.
  controller.polled.wake();
}

const retry = { pause: new Pause(), at: 0, why: "" };

function showConnected() {
  document.body.classList.remove("disconnected");
  byId("banner").hidden = true;
  retry.at = 0;
}

function bannerText() {
  const seconds = Math.max(0, Math.ceil((retry.at - Date.now()) / 1000));
  byId("banner-text").textContent =
    seconds > 0 ? `Disconnected (${retry.why}); retrying in ${seconds} s…` : `Disconnected (${retry.why}); retrying now…`;
}

function showDisconnected(error, retryMs) {
  document.body.classList.add("disconnected");
  // What is shown may be out of date: say so, and redraw everything once status-api answers again.
  seen.revision = null;
  const verdict = byId("verdict");
  verdict.textContent = "disconnected";
  verdict.className = "badge badge-unknown";
  retry.why = error instanceof HttpError ? error.message : "status-api cannot be reached";
  retry.at = Date.now() + retryMs;
  bannerText();
  byId("banner").hidden = false;
}

async function follow() {
  let backoff = BACKOFF_FIRST_MS;
  for (;;) {
    const started = Date.now();
    try {
      await refresh();
      showConnected();
      backoff = BACKOFF_FIRST_MS;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, MIN_GAP_MS - (Date.now() - started))));
    } catch (error) {
      showDisconnected(error, backoff);
      await retry.pause.for(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
}

// ---- wiring ------------------------------------------------------------------------------------------------

function wire() {
  readView();
  const filter = byId("filter");
  filter.value = view.q;
  filter.addEventListener("input", () => {
    view.q = filter.value.trim();
    writeView();
    renderContainers();
  });
  for (const chip of document.querySelectorAll("#chips .chip")) {
    chip.addEventListener("click", () => {
      view.show = chip.dataset.show;
      writeView();
      renderContainers();
    });
  }
  for (const th of document.querySelectorAll("#containers th[data-sort]")) {
    const button = el("button", th.textContent, "sort");
    button.type = "button";
    button.title = `Sort by ${th.textContent.toLowerCase()}`;
    th.replaceChildren(button);
    button.addEventListener("click", () => {
      view.desc = view.sort === th.dataset.sort ? !view.desc : false;
      view.sort = th.dataset.sort;
      writeView();
      renderContainers();
    });
  }
  byId("retry-now").addEventListener("click", () => {
    retry.at = Date.now();
    bannerText();
    retry.pause.wake();
  });
  setInterval(() => {
    if (retry.at) bannerText();
  }, 250);
  setInterval(tick, TICK_MS);
}

wire();
follow();
followController();
