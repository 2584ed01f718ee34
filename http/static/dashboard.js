/* The operator's dashboard: counts per state, companies table, actions. textContent only. */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var sessions = [];

  var showMessage = wafleet.showMessage;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function renderCounts(m) {
    var counts = m.sessions || {};
    Array.prototype.forEach.call(document.querySelectorAll(".count-n"), function (n) {
      n.textContent = String(counts[n.dataset.state] || 0);
    });
    $("companies").textContent = String(m.companies);
    $("restarts").textContent = String(m.restarts);
  }

  function matches(s) {
    var want = $("filter-status").value;
    if (want && s.status !== want) return false;
    var q = $("search").value.trim().toLowerCase();
    if (!q) return true;
    return [s.companyId, s.phoneNumber || "", s.name || ""].some(function (v) {
      return String(v).toLowerCase().indexOf(q) >= 0;
    });
  }

  function renderRows() {
    var body = $("rows");
    var frag = document.createDocumentFragment();
    var shown = sessions.filter(matches);
    shown.forEach(function (s) {
      var tr = el("tr", { "data-company": s.companyId, "data-status": s.status });
      var tdName = el("td", { "data-label": "Company" });
      tdName.appendChild(el("a", { href: "/connect/" + encodeURIComponent(s.companyId) }, s.companyId));
      tr.appendChild(tdName);
      var tdStatus = el("td", { "data-label": "Status" });
      var badge = el("span", { "class": "badge status-" + s.status }, s.status.replace("_", " "));
      tdStatus.appendChild(badge);
      if (s.blockedUntil) tdStatus.appendChild(el("span", { "class": "err-at" }, "until " + wafleet.when(s.blockedUntil)));
      tr.appendChild(tdStatus);
      tr.appendChild(el("td", { "data-label": "Phone" }, s.phoneNumber ? "+" + s.phoneNumber : "—"));
      tr.appendChild(el("td", { "data-label": "Restarts", "class": "restarts" }, s.restarts || 0));
      var tdErr = el("td", { "data-label": "Last error" });
      if (s.lastError) {
        tdErr.appendChild(el("span", { "class": "err-reason" }, s.lastError.reason || "error"));
        if (s.lastError.message) tdErr.appendChild(document.createTextNode(": " + s.lastError.message));
        if (s.lastError.at) tdErr.appendChild(el("span", { "class": "err-at" }, wafleet.when(s.lastError.at)));
      } else {
        tdErr.textContent = "—";
      }
      tr.appendChild(tdErr);
      var tdAct = el("td", { "data-label": "Actions" });
      var box = el("div", { "class": "actions" });
      ["reconnect", "stop", "cleanup"].forEach(function (action) {
        var b = el("button", { type: "button", "class": "small", "data-action": action,
          "aria-label": action + " " + s.companyId }, action);
        box.appendChild(b);
      });
      tdAct.appendChild(box);
      tr.appendChild(tdAct);
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    $("empty").hidden = shown.length > 0;
  }

  /* A status event moves its row and the counts at once; the debounced refresh then reconciles. */
  function applyEvent(type, data) {
    if (type !== "status" || !data || !data.companyId || !data.state) return;
    var known = document.getElementById("count-" + data.state);
    if (!known) return;
    var found = sessions.filter(function (s) { return s.companyId === data.companyId; })[0];
    if (!found || found.status === data.state) return;
    found.status = data.state;
    found.connected = data.state === "connected";
    var tally = {};
    sessions.forEach(function (s) { tally[s.status] = (tally[s.status] || 0) + 1; });
    Array.prototype.forEach.call(document.querySelectorAll(".count-n"), function (n) {
      n.textContent = String(tally[n.dataset.state] || 0);
    });
    renderRows();
  }

  function refresh() {
    return Promise.all([
      wafleet.api("GET", "/api/whatsapp/metrics"),
      wafleet.api("GET", "/api/whatsapp/sessions")
    ]).then(function (results) {
      var m = results[0], s = results[1];
      if (m.status === 401 || m.status === 403) {
        showMessage("Your login is no longer valid: reload the page to log in again.", true);
        return;
      }
      if (m.ok && m.data) renderCounts(m.data);
      if (s.ok && s.data) { sessions = s.data.sessions || []; renderRows(); }
    }).catch(function () { showMessage("The server cannot be reached; retrying…", true); });
  }

  $("rows").addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    var company = button.closest("tr").dataset.company;
    if (action === "cleanup" && !window.confirm("Log " + company + " out of WhatsApp and wipe its login?")) return;
    button.disabled = true;
    wafleet.api("POST", "/api/whatsapp/sessions/" + encodeURIComponent(company) + "/" + action, {})
      .then(function (res) {
        button.disabled = false;
        showMessage(res.ok ? action + " " + company + ": " + (res.data && res.data.status) : wafleet.errorText(res), !res.ok);
        kick();
      });
  });
  $("filter-status").addEventListener("change", renderRows);
  $("search").addEventListener("input", renderRows);

  refresh();
  var kick = wafleet.live("/api/whatsapp/events", refresh, $("live"), 200, applyEvent);
})();
