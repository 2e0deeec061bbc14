// GET /: the status page. Static HTML and script, no build step and no data of its own: the
// script reads /v1/status with the bearer token, which it takes from the address's fragment
// (#token=..., never sent to the server) or from its form, and keeps for the browser tab only.
#include "liber/serve/status_page.h"

namespace liber::serve {

const char* status_page_html() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>liber serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  .sub { color: #666; margin-bottom: 1em; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(11em, 1fr)); gap: .6em; }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: .5em .7em; }
  .card b { display: block; font-size: 1.4em; }
  .card span { color: #666; font-size: .85em; }
  table { border-collapse: collapse; margin-top: 1em; width: 100%; }
  td, th { border-bottom: 1px solid #eee; padding: .3em .5em; text-align: left; vertical-align: top; }
  .verified { color: #176b2c; } .rejected { color: #a33; } .failed { color: #a60; }
  #error { color: #a33; }
</style>
</head>
<body>
<h1>liber serve</h1>
<div class="sub">Store <span id="store">-</span> &middot; pipeline <span id="state">-</span>
  &middot; scoring <span id="model">-</span> &middot; updated <span id="updated">never</span> <span id="error"></span></div>
<form id="login" hidden><input id="token" type="password" placeholder="bearer token" size="40">
  <button>Show</button></form>
<div class="grid" id="figures"></div>
<h2>Latest interest records</h2>
<table><thead><tr><th>user</th><th>seq</th><th>verdict</th><th>summary</th><th>reasons</th></tr></thead>
<tbody id="records"><tr><td colspan="5">none yet</td></tr></tbody></table>
<script>
"use strict";
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  sessionStorage.setItem("liber-token", fragment.get("token"));
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar
}
const login = document.getElementById("login");
login.addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("liber-token", document.getElementById("token").value);
  login.hidden = true;
  refresh();
});
function token() { return sessionStorage.getItem("liber-token") || ""; }
function ask(why) {
  login.hidden = false;
  document.getElementById("figures").replaceChildren();
  throw new Error(why);
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;  // never HTML: summaries are model output
  if (cls) td.className = cls;
  row.appendChild(td);
}
function figure(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const b = document.createElement("b");
  b.textContent = value;
  const span = document.createElement("span");
  span.textContent = label;
  div.append(b, span);
  return div;
}
async function refresh() {
  try {
    if (!token()) ask("enter the token");
    const r = await fetch("/v1/status", { headers: { Authorization: "Bearer " + token() } });
    if (r.status === 401) { sessionStorage.removeItem("liber-token"); ask("wrong token"); }
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    document.getElementById("store").textContent = s.store;
    document.getElementById("state").textContent = s.pipeline ? s.pipeline.state : "off (--no-learn)";
    document.getElementById("model").textContent = s.model
        ? s.model.backbone + " with " + (s.model.knowledge || "no knowledge") + ", test AUC " +
          (s.model.test_auc == null ? "n/a" : s.model.test_auc.toFixed(4))
        : "off (no --score-model)";
    const figures = document.getElementById("figures");
    figures.replaceChildren();
    for (const [label, value] of s.figures) figures.appendChild(figure(label, value));
    const body = document.getElementById("records");
    body.replaceChildren();
    for (const rec of s.latest) {
      const row = document.createElement("tr");
      cell(row, rec.user); cell(row, rec.seq); cell(row, rec.verdict, rec.verdict);
      cell(row, rec.summary); cell(row, rec.reasons.join("; "));
      body.appendChild(row);
    }
    if (!s.latest.length) body.innerHTML = '<tr><td colspan="5">none yet</td></tr>';
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "(" + e.message + ")";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)HTML";
}

}  // namespace liber::serve
