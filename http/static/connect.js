/* The company's connect page: live status, QR image, pairing code. Renders with textContent only. */
"use strict";
(function () {
  var company = document.getElementById("page").dataset.company;
  var base = "/api/whatsapp/sessions/" + encodeURIComponent(company);
  var $ = function (id) { return document.getElementById(id); };
  var qrRound = null, qrExpires = null, pairExpires = null, pairShownCode = null;

  var DETAIL = {
    stopped: "Not connected. Press the button to start.",
    starting: "Starting…",
    qr: "Scan the QR code below with WhatsApp on your phone.",
    pairing: "Type the pairing code on your phone.",
    connected: "Connected.",
    reconnecting: "The connection dropped; reconnecting by itself…",
    blocked: "Pairing codes are blocked for now.",
    logged_out: "WhatsApp logged this device out. Press the button to link again with a new QR code.",
    failed: "The session stopped after repeated errors. Press the button to try again."
  };

  var showMessage = wafleet.showMessage;

  function render(s) {
    var state = s.status || "unknown";
    $("status").className = "status status-" + state;
    $("status").dataset.state = state;
    var label = state === "qr" ? "QR code" : state.replace("_", " ");
    $("status-label").textContent = label.charAt(0).toUpperCase() + label.slice(1);
    var detail = DETAIL[state] || "";
    if (state === "connected" && s.phoneNumber) detail = "Connected as +" + s.phoneNumber + ".";
    if (state === "blocked") {
      detail = s.blockedUntil
        ? "Too many pairing codes: blocked until " + wafleet.when(s.blockedUntil) +
          " (" + Math.ceil(wafleet.secondsUntil(s.blockedUntil) / 60) + " min)."
        : DETAIL.blocked;
    }
    if ((state === "failed" || state === "logged_out" || state === "reconnecting") && s.lastError && s.lastError.message) {
      detail += " Last error: " + s.lastError.message;
    }
    $("status-detail").textContent = detail;

    $("pair-card").hidden = state === "connected" || state === "blocked";
    var init = $("initialize");
    init.hidden = state === "connected";
    init.disabled = ["starting", "qr", "pairing", "connected", "reconnecting"].indexOf(state) >= 0;
    init.textContent = state === "logged_out" ? "Link again with a new QR code" :
      (state === "failed" ? "Try again" : "Connect with a QR code");

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
    } else if (state === "connected") {
      $("pair-result").hidden = true; pairExpires = null; pairShownCode = null;
    }
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
    tick();
  }

  function tick() {
    if (pairExpires !== null) {
      var left = Math.max(0, Math.round((pairExpires - Date.now()) / 1000));
      $("pair-expiry").textContent = left > 0 ? "Expires in " + left + " s" : "This code has expired: ask for a new one.";
    }
    if (qrExpires) {
      var q = wafleet.secondsUntil(qrExpires);
      $("qr-expiry").textContent = q > 0 ? "A new code appears in " + q + " s" : "Refreshing the code…";
    }
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

  $("initialize").addEventListener("click", function () {
    showMessage("");
    wafleet.api("POST", base + "/initialize", {}).then(function (res) {
      if (!res.ok) showMessage(wafleet.errorText(res), true);
      refresh();
    });
  });

  $("pair-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var phone = $("phone").value.replace(/[\s+()-]/g, "");
    if (!phone) { showMessage("Enter the phone number first.", true); $("phone").focus(); return; }
    $("pair-button").disabled = true;
    showMessage("");
    wafleet.api("POST", base + "/pairing-code", { phoneNumber: phone }).then(function (res) {
      $("pair-button").disabled = false;
      if (res.ok && res.data && res.data.pairingCode) {
        showPairing(res.data.pairingCode, res.data.expiresIn || 60);
      } else {
        showMessage(wafleet.errorText(res), true);
      }
      refresh();
    }).catch(function () { $("pair-button").disabled = false; showMessage("The server cannot be reached.", true); });
  });

  $("qr").addEventListener("error", function () { $("qr").removeAttribute("src"); qrRound = null; });

  refresh();
  wafleet.live(base + "/events", refresh, $("live"), 50);
})();
