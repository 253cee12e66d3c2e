// The comparison page: reads /compare/options, sends /compare, renders the columns. Its state lives in the
// URL (the same parameters /compare takes), so a link reproduces a comparison.
"use strict";

const $ = (selector) => document.querySelector(selector);
const DEFAULT_MODES = ["bm25", "semantic", "hybrid", "hybrid"];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, isError) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", Boolean(isError));
}

function buildChoices(options) {
  const fieldset = $("#column-choices");
  for (let i = 0; i < options.max_columns; i++) {
    const choice = $("#column-choice").content.firstElementChild.cloneNode(true);
    choice.querySelector(".choice-label").textContent = `Column ${i + 1}:`;
    const mode = choice.querySelector(".mode");
    const system = choice.querySelector(".system");
    mode.id = `mode-${i}`;
    system.id = `system-${i}`;
    for (const name of options.modes) mode.append(new Option(name, name));
    for (const s of options.systems) system.append(new Option(`${s.name} (${s.encoder})`, s.name));
    mode.value = DEFAULT_MODES[i] || "hybrid";
    // the last default column shows the second system, when there is one: base next to trained
    system.value = options.systems[i === options.max_columns - 1 && options.systems.length > 1 ? 1 : 0].name;
    fieldset.append(choice);
  }
  const users = $("#users");
  // listed only with `serve --list-users`; a masked user's value is a token the server maps back to the id
  for (const user of options.users) users.append(new Option(`${user.label} · ${user.event_count} events`, user.user_id));
}

function showColumnCount() {
  const count = Number($("#column-count").value);
  document.querySelectorAll(".choice").forEach((choice, i) => { choice.hidden = i >= count; });
}

function currentParams() {
  const params = new URLSearchParams();
  params.set("query", $("#query").value);
  const count = Number($("#column-count").value);
  for (let i = 0; i < count; i++) params.append("column", `${$(`#mode-${i}`).value}:${$(`#system-${i}`).value}`);
  if ($("#user").value.trim()) params.set("user_id", $("#user").value.trim());
  for (const spec of $("#filters").value.split(";")) if (spec.trim()) params.append("filter", spec.trim());
  params.set("k", $("#k").value || "10");
  return params;
}

function restore(params) {
  $("#query").value = params.get("query") || "";
  $("#user").value = params.get("user_id") || "";
  $("#filters").value = params.getAll("filter").join("; ");
  if (params.get("k")) $("#k").value = params.get("k");
  const columns = params.getAll("column");
  if (columns.length) {
    $("#column-count").value = String(Math.min(columns.length, document.querySelectorAll(".choice").length));
    columns.forEach((spec, i) => {
      const [mode, system] = spec.split(":");
      if ($(`#mode-${i}`)) $(`#mode-${i}`).value = mode;
      if ($(`#system-${i}`) && system) $(`#system-${i}`).value = system;
    });
  }
  showColumnCount();
}

function moveBadge(hit, first) {
  if (first) return null;
  if (hit.moved_by === null) return element("span", "move new", "new");
  if (hit.moved_by > 0) return element("span", "move up", `↑${hit.moved_by}`);
  if (hit.moved_by < 0) return element("span", "move down", `↓${-hit.moved_by}`);
  return element("span", "move", "=");
}

function gradeBadge(hit, judged) {
  if (!judged) return null;
  if (hit.grade === null) return element("span", "grade", "unjudged");
  return element("span", `grade ${hit.grade > 0 ? "relevant" : "irrelevant"}`, `grade ${hit.grade}`);
}

function renderColumn(column, index, comparison) {
  const section = element("section", "column");
  section.setAttribute("aria-label", `${column.mode} with ${column.system}`);
  section.append(element("h2", "", `${column.mode} · ${column.system}`));
  const meta = element("p", "meta", `${column.used_mode}${column.path ? ` (${column.path} side)` : ""}, ${column.took_ms} ms`);
  if (column.fallback_reason) meta.append(" ", element("span", "fallback", `fallback: ${column.fallback_reason}`));
  if (comparison.judged) {
    const ndcg = column.ndcg_at_10 === null ? "n/a" : column.ndcg_at_10.toFixed(3);
    meta.append(" ", element("span", "ndcg", `NDCG@10 ${ndcg}`));
  }
  section.append(meta);
  const list = element("ol");
  for (const hit of column.hits) {
    const item = element("li");
    item.dataset.productId = hit.id;
    for (const badge of [moveBadge(hit, index === 0), gradeBadge(hit, comparison.judged)]) if (badge) item.append(badge);
    item.append(element("span", "title", hit.title));
    const details = [hit.category_path.join(" > "), hit.brand, hit.price === null ? "" : `price ${hit.price.toFixed(2)}`,
                     `score ${hit.score.toFixed(3)}`].filter(Boolean).join(" · ");
    item.append(element("div", "details", details));
    list.append(item);
  }
  if (!column.hits.length) list.append(element("li", "details", "no hits"));
  section.append(list);
  return section;
}

async function run() {
  const params = currentParams();
  history.replaceState(null, "", `?${params}`);
  setStatus("Searching…");
  let response, body;
  try {
    response = await fetch(`/compare?${params}`);
    body = await response.json();
  } catch (error) {
    setStatus(`the server did not answer (${error.message}); is tbhns serve running?`, true);
    return;
  }
  if (!response.ok) {
    const details = (body.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
    setStatus(`${body.error}${details ? `: ${details}` : ""}`, true);
    return;
  }
  const results = $("#results");
  results.replaceChildren(...body.columns.map((column, i) => renderColumn(column, i, body)));
  results.style.setProperty("--columns", String(body.columns.length));
  const judged = body.judged ? "graded by the loaded judgments" : "no judgments for this query";
  setStatus(`${body.columns.length} columns for “${body.query}”${body.user_id ? ` as ${body.user_id}` : ""}; ${judged}.`);
}

async function start() {
  const response = await fetch("/compare/options");
  const options = await response.json();
  if (!response.ok) {
    setStatus(options.error || "the server could not list its systems", true);
    return;
  }
  buildChoices(options);
  restore(new URLSearchParams(location.search));
  $("#column-count").addEventListener("change", showColumnCount);
  $("#compare-form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  const judgments = options.judged_queries === null ? "no judgments loaded" : `judgments for ${options.judged_queries} queries`;
  const users = options.user_list === "off" ? "users not listed (serve --list-users)" : `${options.users.length} user(s) listed`;
  setStatus(`${options.systems.length} system(s), ${users}, ${judgments}.`);
  if ($("#query").value) run();
  $("#query").focus();
}

start();
