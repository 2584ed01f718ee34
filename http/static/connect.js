/* The company's connect page: live status, QR image, pairing code. Renders with textContent only. */
"use strict";
(function () {
  var company = document.getElementById("page").dataset.company;
  var base = "/api/whatsapp/sessions/" + encodeURIComponent(company);
  var $ = function (id) { return document.getElementById(id); };
  var qrRound = null, qrExpires = null, pairExpires = null, pairShownCode = null;
  var banEnds = null, asking = false, last = null;

  var DETAIL = {
    stopped: "Not connected. Press the button to start.",
    starting: "Starting…",
    qr: "Scan the QR code below with WhatsApp on your phone.",
    pairing: "Type the pairing code on your phone.",
    connected: "Connected.",
    reconnecting: "The connection dropped; reconnecting by itself…",
    blocked: "Pairing codes are paused for now.",
    logged_out: "WhatsApp logged this device out. Press the button to link again with a new QR code.",
    failed: "The session stopped after repeated errors. Press the button to try again."
  };

  /* Why a session stopped or failed, when the reason says more than the state (lastError.reason). */
  var REASON = {
    qr_exhausted: "The QR codes ran out: none was scanned in time. Link with your phone number below instead, or start again with a new QR code.",
    auth: "WhatsApp refused this company's credentials. Update them, then press the button to try again.",
    too_many_restarts: "The session stopped after repeated errors. Press the button to try again."
  };

  var showMessage = wafleet.showMessage;

  function minutesUntil(when) {
    return Math.max(1, Math.ceil(wafleet.secondsUntil(when) / 60));
  }

  /* WhatsApp's temporary ban: its end (an ISO time or epoch ms) if WhatsApp gave one. */
  function banText(error) {
    var until = error.until;
    if (until !== undefined && until !== null && !isNaN(new Date(until))) {
      banEnds = new Date(until).getTime();
      if (banEnds > Date.now()) {
        return "WhatsApp has temporarily banned this number. The ban ends " + wafleet.when(banEnds) +
          " (in " + minutesUntil(banEnds) + " min); the session reconnects by itself then.";
      }
      var ended = banEnds;
      banEnds = null;  // over: nothing left to wait for
      return "WhatsApp temporarily banned this number; the ban ended " + wafleet.when(ended) +
        ". The session reconnects by itself, or press the button.";
    }
    banEnds = null;
    return "WhatsApp has temporarily banned this number and did not say until when. Try again later.";
  }

  function detailFor(s) {
    var state = s.status;
    var reason = s.lastError && s.lastError.reason;
    banEnds = null;
    if (state === "connected") return s.phoneNumber ? "Connected as +" + s.phoneNumber + "." : DETAIL.connected;
    if (state === "blocked") {
      return s.blockedUntil
        ? "Too many pairing codes were asked for. New codes and QR codes can be asked for again at " +
          wafleet.when(s.blockedUntil) + " (in " + minutesUntil(s.blockedUntil) + " min)."
        : DETAIL.blocked;
    }
    if (state === "failed" && reason === "banned") return banText(s.lastError);
    if ((state === "failed" || state === "stopped") && REASON[reason]) return REASON[reason];
    var detail = DETAIL[state] || "";
    if ((state === "failed" || state === "logged_out" || state === "reconnecting") && s.lastError && s.lastError.message) {
      detail += " Last error: " + s.lastError.message;
    }
    return detail;
  }

  function render(s) {
    last = s;
    var state = s.status || "unknown";
    var reason = s.lastError && s.lastError.reason;
    $("status").className = "status status-" + state;
    $("status").dataset.state = state;
    $("status").dataset.reason = reason || "";
    var label = state === "qr" ? "QR code" : state.replace("_", " ");
    if (state === "failed" && reason === "banned") label = "Banned by WhatsApp";
    $("status-label").textContent = label.charAt(0).toUpperCase() + label.slice(1);
    $("status-detail").textContent = detailFor(s);

    $("pair-card").hidden = state === "connected" || state === "blocked";
    var exhausted = state === "stopped" && reason === "qr_exhausted";
    $("pair-card").classList.toggle("offered", exhausted);
    $("pair-why").hidden = !exhausted;
    $("pair-why").textContent = exhausted ? "The QR codes ran out. Enter the phone number of the WhatsApp account to link and get a code to type on that phone." : "";

    var init = $("initialize");
    init.hidden = state === "connected";
    // blocked: QR codes wait for the cooldown too; banned: WhatsApp refuses until the ban ends
    init.disabled = ["starting", "qr", "pairing", "connected", "reconnecting", "blocked"].indexOf(state) >= 0 ||
      (banEnds !== null && banEnds > Date.now());
    init.textContent = state === "logged_out" ? "Link again with a new QR code" :
      (exhausted ? "Start again with a new QR code" : (state === "failed" ? "Try again" : "Connect with a QR code"));

    if (state === "qr" && s.qr) {
      $("qr-card").hidden = false;
      qrExpires = s.qr.expiresAt;
      refreshQrImage();
    } else {
      $("qr-card").hidden = true;
      $("qr").removeAttribute("src");
      qrRound = null; qrExpires = null;
    }
    if (state === "pairing" && s.pairingCode && s.pairingCode.code) {
      showPairing(s.pairingCode.code, wafleet.secondsUntil(s.pairingCode.expiresAt));
    } else if (state !== "pairing") {
      $("pair-result").hidden = true; pairExpires = null; pairShownCode = null;
    }
    tick();
  }

  function refreshQrImage() {
    wafleet.api("GET", base + "/qr").then(function (res) {
      if (!res.ok || !res.data) return;
      var round = res.data.round;
      if (round !== qrRound) {
        qrRound = round;
        $("qr").src = base + "/qr?round=" + encodeURIComponent(round);
      }
      if (res.data.expiresAt) qrExpires = res.data.expiresAt;
    });
  }

  function showPairing(code, seconds) {
    if (code !== pairShownCode) {
      pairShownCode = code;
      $("pairing-code").textContent = code;
      pairExpires = Date.now() + seconds * 1000;
    }
    $("pair-result").hidden = false;
  }

  /* Seconds the shown pairing code still lives (0: none, or expired). */
  function codeLeft() {
    return pairExpires === null ? 0 : Math.max(0, Math.round((pairExpires - Date.now()) / 1000));
  }

  function tick() {
    var left = codeLeft();
    if (pairExpires !== null) {
      $("pair-expiry").textContent = left > 0 ? "Expires in " + left + " s" : "This code has expired: ask for a new one.";
    }
    // Each code spends one of the company's codes for the hour: no second one while one is live.
    var button = $("pair-button");
    button.disabled = asking || left > 0;
    button.textContent = left > 0 ? "Get a pairing code (available in " + left + " s)" : "Get a pairing code";
    if (qrExpires) {
      var q = wafleet.secondsUntil(qrExpires);
      $("qr-expiry").textContent = q > 0 ? "A new code appears in " + q + " s" : "Refreshing the code…";
    }
    if (banEnds !== null && banEnds <= Date.now() && last) { banEnds = null; render(last); }
  }
  setInterval(tick, 1000);

  function refresh() {
    return wafleet.api("GET", base + "/status").then(function (res) {
      if (res.ok && res.data) { render(res.data); return; }
      if (res.status === 401 || res.status === 403) {
        showMessage("Your login is no longer valid: reload the page to log in again.", true);
      } else {
        showMessage(wafleet.errorText(res), true);
      }
    }).catch(function () { showMessage("The server cannot be reached; retrying…", true); });
  }

  /* A refusal the status line already explains (the pairing-code cooldown) is not said twice. */
  function failed(res) {
    if (res.status === 429 && last && last.status === "blocked") { showMessage(""); return; }
    showMessage(wafleet.errorText(res), true);
  }

  $("initialize").addEventListener("click", function () {
    showMessage("");
    wafleet.api("POST", base + "/initialize", {}).then(function (res) {
      refresh().then(function () { if (!res.ok) failed(res); });
    });
  });

  $("pair-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (codeLeft() > 0) return;
    var phone = $("phone").value.replace(/[\s+()-]/g, "");
    if (!phone) { showMessage("Enter the phone number first.", true); $("phone").focus(); return; }
    asking = true; tick();
    showMessage("");
    wafleet.api("POST", base + "/pairing-code", { phoneNumber: phone }).then(function (res) {
      asking = false;
      if (res.ok && res.data && res.data.pairingCode) showPairing(res.data.pairingCode, res.data.expiresIn || 60);
      tick();
      refresh().then(function () { if (!res.ok) failed(res); });
    }).catch(function () { asking = false; tick(); showMessage("The server cannot be reached.", true); });
  });

  $("qr").addEventListener("error", function () { $("qr").removeAttribute("src"); qrRound = null; });

  refresh();
  wafleet.live(base + "/events", refresh, $("live"), 50);
})();
