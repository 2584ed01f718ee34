% rebase('base.tpl', title=title)
<section class="card narrow">
  <h1>{{title}}</h1>
  <p>{{message}}</p>
</section>
