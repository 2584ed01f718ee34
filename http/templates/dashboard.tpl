% rebase('base.tpl', title='wafleet dashboard', scripts=['common.js', 'dashboard.js'])
<header class="bar">
  <h1>wafleet fleet</h1>
  <form method="post" action="/logout"><button type="submit" class="link">Log out</button></form>
</header>

<section class="card" aria-labelledby="counts-heading">
  <h2 id="counts-heading">Sessions by state</h2>
  <ul class="counts" id="counts">
    % for state in states:
    <li class="count status-{{state}}"><span class="count-n" id="count-{{state}}" data-state="{{state}}">–</span><span class="count-label">{{state.replace('_', ' ')}}</span></li>
    % end
  </ul>
  <p class="hint"><span id="companies">–</span> companies · <span id="restarts">–</span> restarts · <span id="live">connecting to live updates…</span></p>
</section>

<section class="card" aria-labelledby="companies-heading">
  <h2 id="companies-heading">Companies</h2>
  <div class="filters">
    <label for="filter-status">Status</label>
    <select id="filter-status">
      <option value="">all</option>
      % for state in states:
      <option value="{{state}}">{{state}}</option>
      % end
    </select>
    <label for="search">Search</label>
    <input id="search" type="search" placeholder="company or phone" autocomplete="off">
  </div>
  <p id="message" class="alert" role="alert" hidden></p>
  <div class="table-wrap">
    <table id="sessions">
      <thead><tr><th scope="col">Company</th><th scope="col">Status</th><th scope="col">Phone</th><th scope="col">Restarts</th><th scope="col">Last error</th><th scope="col">Actions</th></tr></thead>
      <tbody id="rows"></tbody>
    </table>
  </div>
  <p id="empty" class="hint" hidden>No company matches.</p>
</section>
