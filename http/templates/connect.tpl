% rebase('base.tpl', title='Connect ' + name, scripts=['common.js', 'connect.js'])
<div id="page" data-company="{{company_id}}" hidden></div>
<header class="bar">
  <h1>WhatsApp for {{name}}</h1>
  <span id="live" class="conn" data-state="connecting" role="status" title="Whether this page receives the session's changes as they happen"><span class="conn-dot" aria-hidden="true"></span><span id="live-text">Connecting to live updates…</span></span>
  <form method="post" action="/connect/{{company_id}}/logout"><button type="submit" class="link">Log out</button></form>
</header>

<section class="card" aria-labelledby="status-heading">
  <h2 id="status-heading" class="visually-hidden">Status</h2>
  <div id="status" class="status status-unknown" role="status" aria-live="polite">
    <span id="status-label" class="status-label">Loading…</span>
    <span id="status-detail" class="status-detail"></span>
  </div>
  <div class="actions">
    <button type="button" id="initialize" class="primary">Connect with a QR code</button>
  </div>
  <p id="message" class="alert" role="alert" hidden></p>
</section>

<section class="card" id="qr-card" hidden aria-labelledby="qr-heading">
  <h2 id="qr-heading">Scan with WhatsApp</h2>
  <p class="hint">On your phone: WhatsApp → Settings → Linked devices → Link a device.</p>
  <img id="qr" alt="QR code to link WhatsApp" width="280" height="280">
  <p id="qr-expiry" class="hint"></p>
</section>

<section class="card" id="pair-card" aria-labelledby="pair-heading">
  <h2 id="pair-heading">Or link with a phone number</h2>
  <p id="pair-why" class="alert" hidden></p>
  <form id="pair-form" class="stack" novalidate>
    <label for="phone">Phone number (country code and digits, no +)</label>
    <input id="phone" name="phone" type="tel" inputmode="numeric" autocomplete="tel" placeholder="5511999998888" value="{{phone or ''}}" required>
    <button type="submit" class="primary" id="pair-button">Get a pairing code</button>
  </form>
  <div id="pair-result" hidden>
    <p class="hint">On your phone: Linked devices → Link with phone number instead, then type:</p>
    <p id="pairing-code" class="pairing-code" aria-live="polite"></p>
    <p id="pair-expiry" class="hint"></p>
    <p class="hint">Each code counts against {{max_codes}} codes an hour for this company: use this one before asking for another.</p>
  </div>
</section>
