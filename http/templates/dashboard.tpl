% rebase('base.tpl', title='wafleet dashboard', scripts=['common.js', 'chart.js', 'dashboard.js'])
<header class="bar">
  <h1>wafleet fleet</h1>
  <span id="live" class="conn" data-state="connecting" role="status" title="Whether this page receives the fleet's changes as they happen"><span class="conn-dot" aria-hidden="true"></span><span id="live-text">Connecting to live updates…</span></span>
  <form method="post" action="/logout"><button type="submit" class="link">Log out</button></form>
</header>

<section class="card" aria-labelledby="counts-heading">
  <h2 id="counts-heading">Sessions by state</h2>
  <ul class="counts" id="counts">
    % for state in states:
    <li class="count status-{{state}}"><span class="count-n" id="count-{{state}}" data-state="{{state}}">–</span><span class="count-label">{{state.replace('_', ' ')}}</span></li>
    % end
  </ul>
  <p class="hint"><span id="companies">–</span> companies · <span id="restarts">–</span> restarts</p>
</section>

<section class="card" id="charts-card" aria-labelledby="charts-heading">
  <div class="bar">
    <h2 id="charts-heading">Last hours</h2>
    <label class="inline">Show
      <select id="chart-range">
        <option value="60">1 hour</option>
        <option value="360" selected>6 hours</option>
        <option value="1440">24 hours</option>
      </select>
    </label>
  </div>
  <p id="charts-note" class="hint" hidden></p>
  <div class="charts">
    <figure class="chart" id="chart-connected" data-title="Connected sessions"></figure>
    <figure class="chart" id="chart-messages" data-title="Messages per minute"></figure>
    <figure class="chart" id="chart-restarts" data-title="Restarts per minute"></figure>
    <figure class="chart" id="chart-errors" data-title="Errors per minute"></figure>
  </div>
</section>

<section class="card" aria-labelledby="companies-heading">
  <h2 id="companies-heading">Companies</h2>
  <div class="filters">
    <label for="filter-status">Status</label>
    <select id="filter-status">
      <option value="">all</option>
      % for state in states:
      <option value="{{state}}">{{state.replace('_', ' ')}}</option>
      % end
    </select>
    <label for="search">Search</label>
    <input id="search" type="search" placeholder="company id, name or phone" autocomplete="off" maxlength="200">
  </div>
  <p id="message" class="alert" role="alert" hidden></p>
  <div class="table-wrap">
    <table id="sessions">
      <thead><tr><th scope="col">Company</th><th scope="col">Status</th><th scope="col">Phone</th><th scope="col">Restarts</th><th scope="col">Last error</th><th scope="col">Actions</th></tr></thead>
      <tbody id="rows"></tbody>
    </table>
  </div>
  <p id="empty" class="hint" hidden>No company matches.</p>
  <nav class="pager" aria-label="Pages of companies">
    <button type="button" id="prev" class="small" disabled>← Previous</button>
    <span id="range" class="hint" aria-live="polite"></span>
    <button type="button" id="next" class="small" disabled>Next →</button>
  </nav>
</section>
