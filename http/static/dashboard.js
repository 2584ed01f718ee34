/* The operator's dashboard at fleet scale: counts per state, charts of the last hours, and one
   page of companies at a time, searched and filtered by the server. The fleet's event stream
   updates the rows on screen one by one; nothing refetches the whole fleet. textContent only. */
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var PAGE_SIZE = 50;
  var SEARCH_DELAY_MS = 150;
  var CHART_EVERY_MS = 60000;

  /* What an operator may do in each state (data-action: the API verb). Nothing where the verb
     would be refused or pointless: no stop on a stopped session, no reconnect on a connected one;
     a pairing cooldown ends by itself. */
  var ACTIONS = {
    stopped: [["reconnect", "Start"], ["cleanup", "Log out"]],
    starting: [["stop", "Stop"], ["cleanup", "Log out"]],
    qr: [["stop", "Stop"], ["cleanup", "Log out"]],
    pairing: [["stop", "Stop"], ["cleanup", "Log out"]],
    connected: [["stop", "Stop"], ["cleanup", "Log out"]],
    reconnecting: [["reconnect", "Reconnect now"], ["stop", "Stop"], ["cleanup", "Log out"]],
    blocked: [],
    logged_out: [["reconnect", "Link again"]],
    failed: [["reconnect", "Reconnect"], ["cleanup", "Log out"]]
  };
  var CONFIRM = { cleanup: "Log {id} out of WhatsApp and wipe its login?" };

  var shown = {};          // companyId -> the session as last rendered (this page only)
  var cursors = [""];      // cursors[i]: where page i starts
  var pageIndex = 0, nextCursor = null, listSeq = 0, total = 0;
  var counts = null;
  var pendingRows = {}, rowTimer = null;

  var showMessage = wafleet.showMessage;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // -- counts ----------------------------------------------------------------------------------
  function paintCounts() {
    Array.prototype.forEach.call(document.querySelectorAll(".count-n"), function (n) {
      n.textContent = counts ? String(counts[n.dataset.state] || 0) : "–";
    });
  }

  function refreshCounts() {
    return wafleet.api("GET", "/api/whatsapp/metrics").then(function (m) {
      if (m.status === 401 || m.status === 403) {
        showMessage("Your login is no longer valid: reload the page to log in again.", true);
        return;
      }
      if (!m.ok || !m.data) return;
      counts = {};
      Object.keys(m.data.sessions || {}).forEach(function (k) { counts[k] = m.data.sessions[k]; });
      paintCounts();
      $("companies").textContent = Number(m.data.companies).toLocaleString();
      $("restarts").textContent = Number(m.data.restarts).toLocaleString();
    }).catch(function () { showMessage("The server cannot be reached; retrying…", true); });
  }

  // -- rows --------------------------------------------------------------------------------------
  function row(s) {
    var tr = el("tr", { "data-company": s.companyId, "data-status": s.status });
    var tdName = el("td", { "data-label": "Company" });
    var link = el("a", { href: "/connect/" + encodeURIComponent(s.companyId), "class": "cname" }, s.name || s.companyId);
    tdName.appendChild(link);
    tdName.appendChild(el("span", { "class": "cid" }, s.companyId));
    tr.appendChild(tdName);
    var tdStatus = el("td", { "data-label": "Status" });
    tdStatus.appendChild(el("span", { "class": "badge status-" + s.status }, s.status.replace("_", " ")));
    if (s.blockedUntil) tdStatus.appendChild(el("span", { "class": "err-at" }, "until " + wafleet.when(s.blockedUntil)));
    tr.appendChild(tdStatus);
    tr.appendChild(el("td", { "data-label": "Phone", "class": "nowrap" }, s.phoneNumber ? "+" + s.phoneNumber : "—"));
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
    (ACTIONS[s.status] || []).forEach(function (pair) {
      box.appendChild(el("button", { type: "button", "class": "small", "data-action": pair[0],
        "aria-label": pair[1] + " " + (s.name || s.companyId) }, pair[1]));
    });
    if (!box.childNodes.length) box.appendChild(el("span", { "class": "hint" }, "—"));
    tdAct.appendChild(box);
    tr.appendChild(tdAct);
    return tr;
  }

  /* Replace one company's row in place (if it is on this page). */
  function updateRow(s) {
    var old = shown[s.companyId];
    if (!old) return;
    s.name = s.name || old.name;
    shown[s.companyId] = s;
    var tr = $("rows").querySelector("tr[data-company='" + CSS.escape(s.companyId) + "']");
    if (tr) tr.replaceWith(row(s));
  }

  function renderPage(list) {
    shown = {};
    var frag = document.createDocumentFragment();
    list.forEach(function (s) { shown[s.companyId] = s; frag.appendChild(row(s)); });
    $("rows").replaceChildren(frag);
    $("empty").hidden = list.length > 0;
    var first = pageIndex * PAGE_SIZE;
    $("range").textContent = list.length
      ? (first + 1).toLocaleString() + "–" + (first + list.length).toLocaleString() + " of " + total.toLocaleString()
      : "";
    $("prev").disabled = pageIndex === 0;
    $("next").disabled = !nextCursor;
  }

  function loadPage() {
    var seq = ++listSeq;
    var params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursors[pageIndex]) params.set("cursor", cursors[pageIndex]);
    if ($("filter-status").value) params.set("status", $("filter-status").value);
    var q = $("search").value.trim();
    if (q) params.set("q", q);
    return wafleet.api("GET", "/api/whatsapp/sessions?" + params.toString()).then(function (res) {
      if (seq !== listSeq) return;  // a newer search or page is on its way
      if (!res.ok || !res.data) { showMessage(wafleet.errorText(res), true); return; }
      total = res.data.total;
      nextCursor = res.data.nextCursor;
      renderPage(res.data.sessions || []);
      // For measurements (User Timing): when this page of rows was on screen.
      performance.clearMarks("wafleet:rows");
      performance.mark("wafleet:rows");
    }).catch(function () { showMessage("The server cannot be reached; retrying…", true); });
  }

  function firstPage() { cursors = [""]; pageIndex = 0; return loadPage(); }

  /* Rows on screen whose session changed: fetch just those, coalesced. */
  function fetchRows() {
    rowTimer = null;
    var ids = Object.keys(pendingRows);
    pendingRows = {};
    ids.forEach(function (id) {
      if (!shown[id]) return;
      wafleet.api("GET", "/api/whatsapp/sessions/" + encodeURIComponent(id) + "/status").then(function (res) {
        if (res.ok && res.data) { delete res.data.history; updateRow(res.data); }
      });
    });
  }

  /* A status event moves the counts at once when the company's last state is known, and the
     company's row if it is on this page; the debounced counts refresh then reconciles. */
  function applyEvent(type, data) {
    if (type !== "status" || !data || !data.companyId || !data.state) return;
    if (!document.getElementById("count-" + data.state)) return;
    var known = shown[data.companyId];
    if (!known) return;
    if (known.status !== data.state && counts) {
      counts[known.status] = Math.max(0, (counts[known.status] || 0) - 1);
      counts[data.state] = (counts[data.state] || 0) + 1;
      paintCounts();
    }
    var quick = {};
    Object.keys(known).forEach(function (k) { quick[k] = known[k]; });
    quick.status = data.state;
    quick.connected = data.state === "connected";
    updateRow(quick);
    pendingRows[data.companyId] = true;
    if (!rowTimer) rowTimer = setTimeout(fetchRows, 100);
  }

  // -- charts ------------------------------------------------------------------------------------
  function loadCharts() {
    var minutes = parseInt($("chart-range").value, 10);
    return wafleet.api("GET", "/api/whatsapp/metrics/timeseries?minutes=" + minutes).then(function (res) {
      if (res.status === 404) {
        $("charts-note").textContent = "This node keeps no timeseries.";
        $("charts-note").hidden = false;
        return;
      }
      if (!res.ok || !res.data) return;
      $("charts-note").hidden = true;
      var now = Math.floor(Date.now() / 60000);
      var first = now - minutes + 1;
      var blank = function (fill) { var a = []; for (var i = 0; i < minutes; i++) a.push(fill); return a; };
      var s = { connected: blank(null), messagesIn: blank(0), messagesOut: blank(0), restarts: blank(0), errors: blank(0) };
      (res.data.points || []).forEach(function (p) {
        var i = Math.floor(new Date(p.t).getTime() / 60000) - first;
        if (i < 0 || i >= minutes) return;
        Object.keys(s).forEach(function (k) { if (typeof p[k] === "number") s[k][i] = p[k]; });
      });
      var span = { from: first * 60000, to: (now + 1) * 60000 };
      var draw = function (id, series) { wachart.draw($(id), { from: span.from, to: span.to, series: series }); };
      draw("chart-connected", [{ name: "connected", kind: "line", cls: "s-ok", values: s.connected }]);
      draw("chart-messages", [
        { name: "in", kind: "line", cls: "s-info", values: s.messagesIn },
        { name: "out", kind: "line", cls: "s-ok", values: s.messagesOut }
      ]);
      draw("chart-restarts", [{ name: "restarts", kind: "bars", cls: "s-warn", values: s.restarts }]);
      draw("chart-errors", [{ name: "errors", kind: "bars", cls: "s-bad", values: s.errors }]);
    });
  }

  // -- controls ----------------------------------------------------------------------------------
  $("rows").addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    var company = button.closest("tr").dataset.company;
    if (CONFIRM[action] && !window.confirm(CONFIRM[action].replace("{id}", company))) return;
    button.disabled = true;
    wafleet.api("POST", "/api/whatsapp/sessions/" + encodeURIComponent(company) + "/" + action, {})
      .then(function (res) {
        button.disabled = false;
        showMessage(res.ok ? button.textContent + " " + company + ": " + (res.data && res.data.status) : wafleet.errorText(res), !res.ok);
        if (res.ok && res.data) { delete res.data.history; updateRow(res.data); }
        refreshCounts();
      });
  });
  var searchTimer = null;
  $("search").addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(firstPage, SEARCH_DELAY_MS);
  });
  $("filter-status").addEventListener("change", firstPage);
  $("next").addEventListener("click", function () {
    if (!nextCursor) return;
    cursors[pageIndex + 1] = nextCursor;
    pageIndex += 1;
    loadPage();
  });
  $("prev").addEventListener("click", function () {
    if (pageIndex === 0) return;
    pageIndex -= 1;
    loadPage();
  });
  $("chart-range").addEventListener("change", loadCharts);

  refreshCounts();
  loadPage();
  loadCharts();
  setInterval(loadCharts, CHART_EVERY_MS);
  var opened = 0;
  // After the stream was down, events may have been missed: reconcile this page once.
  var reconcile = function () { if (opened++ > 0) loadPage(); };
  wafleet.live("/api/whatsapp/events", refreshCounts, $("live"), 300, applyEvent, reconcile);
})();
