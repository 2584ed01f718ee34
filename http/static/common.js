/* Shared helpers for the wafleet pages: fetch JSON with the login cookie, live events. */
"use strict";
var wafleet = (function () {
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: r.ok, status: r.status, data: data, retryAfter: r.headers.get("Retry-After") };
      });
    });
  }

  function errorText(res) {
    var msg = res.data && res.data.error && res.data.error.message;
    var text = msg || ("request failed (HTTP " + res.status + ")");
    // Said once: the server's own message may already say when to try again.
    if (res.status === 429 && res.retryAfter && !/try again/i.test(text)) {
      var s = parseInt(res.retryAfter, 10);
      if (!isNaN(s)) text += " (try again in " + Math.ceil(s / 60) + " min)";
    }
    return text;
  }

  /* The connection indicator: a dot and a sentence saying whether changes arrive by themselves. */
  var LIVE_TEXT = {
    connecting: "Connecting to live updates…",
    open: "Live: changes appear as they happen",
    reconnecting: "Live updates interrupted: reconnecting…",
    polling: "Live updates unavailable: refreshing every 2 s"
  };

  /* Live updates: EventSource on `url`; on any event call onEvent (debounced). When the stream
     is unavailable (e.g. 404 or the server is restarting) fall back to polling and retry.
     onOpen runs each time the stream (re)opens: what happened while it was down is not replayed
     to the page, so the page reconciles then. */
  function live(url, onEvent, indicator, debounceMs, onData, onOpen) {
    var timer = null, poller = null, source = null;
    function received(ev) {
      if (onData && ev && ev.data) {
        try { onData(ev.type, JSON.parse(ev.data)); } catch (e) { /* not JSON: just refresh */ }
      }
      kick();
    }
    function kick() {
      if (timer) return;
      timer = setTimeout(function () { timer = null; onEvent(); }, debounceMs);
    }
    function say(state) {
      if (!indicator) return;
      indicator.dataset.state = state;
      var text = indicator.querySelector("[id$='-text']") || indicator;
      text.textContent = LIVE_TEXT[state];
    }
    function startPolling() {
      if (poller) return;
      say("polling");
      poller = setInterval(onEvent, 2000);
    }
    function stopPolling() { if (poller) { clearInterval(poller); poller = null; } }
    function open() {
      if (!window.EventSource) { startPolling(); return; }
      source = new EventSource(url, { withCredentials: true });
      source.onopen = function () { stopPolling(); say("open"); kick(); if (onOpen) onOpen(); };
      ["status", "qr", "pairing-code", "message"].forEach(function (t) {
        source.addEventListener(t, received);
      });
      source.onmessage = received;
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) {
          startPolling();
          setTimeout(open, 10000);
        } else {
          say("reconnecting");
        }
      };
    }
    open();
    return kick;
  }

  // The page's one message line (#message): hidden when empty, red for errors.
  function showMessage(text, isError) {
    var el = document.getElementById("message");
    if (!text) { el.hidden = true; el.textContent = ""; return; }
    el.textContent = text;
    el.className = "alert" + (isError ? " alert-error" : "");
    el.hidden = false;
  }

  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  function secondsUntil(iso) {
    var d = new Date(iso);
    return isNaN(d) ? 0 : Math.max(0, Math.round((d.getTime() - Date.now()) / 1000));
  }

  return {
    api: api, errorText: errorText, live: live, showMessage: showMessage, when: when, secondsUntil: secondsUntil
  };
})();
