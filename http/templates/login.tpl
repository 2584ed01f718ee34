% rebase('base.tpl', title=title)
<section class="card narrow">
  <h1>{{heading}}</h1>
  % if error:
  <p class="alert alert-error" role="alert">{{error}}</p>
  % end
  <form method="post" action="{{action}}" class="stack">
    <label for="token">{{label}}</label>
    <input id="token" name="token" type="password" autocomplete="off" required autofocus spellcheck="false">
    <button type="submit" class="primary">Log in</button>
  </form>
  <p class="hint">The token is kept in a secure cookie on this device; it never appears in the address bar.</p>
</section>
