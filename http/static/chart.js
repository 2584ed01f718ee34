/* Small SVG charts of per-minute series: lines and bars, an axis with the maximum and the time
   span. Our own ~100 lines instead of a library: nothing to vendor, nothing from a CDN, and the
   page's Content-Security-Policy (no inline styles) holds because colours come from classes. */
"use strict";
var wachart = (function () {
  var NS = "http://www.w3.org/2000/svg";
  var W = 320, H = 130, LEFT = 34, RIGHT = 6, TOP = 8, BOTTOM = 20;

  function node(tag, attrs, text) {
    var n = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  /* 1, 2, 5, 10, 20, 50…: the smallest such number at or above v (at least 1). */
  function niceMax(v) {
    if (!(v > 1)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function clock(ms) {
    var d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  /* figure: the <figure> to fill (its data-title names the chart); spec: {from, to (ms), series:
     [{name, kind: "line"|"bars", cls, values: [v|null per minute from `from`]}]} */
  function draw(figure, spec) {
    var n = Math.max(1, Math.round((spec.to - spec.from) / 60000));
    var max = 0;
    spec.series.forEach(function (s) {
      s.values.forEach(function (v) { if (v !== null && v > max) max = v; });
    });
    var top = niceMax(max);
    var pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    var x = function (i) { return LEFT + (i + 0.5) * pw / n; };
    var y = function (v) { return TOP + ph - (v / top) * ph; };

    var title = figure.dataset.title;
    var latest = spec.series.map(function (s) {
      var last = null;
      for (var i = s.values.length - 1; i >= 0 && last === null; i--) last = s.values[i];
      return (spec.series.length > 1 ? s.name + " " : "") + (last === null ? "–" : last);
    }).join(" · ");
    var svg = node("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "class": "chart-svg",
      "aria-label": title + ", last " + Math.round(n / 60 * 10) / 10 + " h, maximum " + max + ", now " + latest });
    svg.appendChild(node("title", {}, title));
    svg.appendChild(node("line", { x1: LEFT, x2: W - RIGHT, y1: TOP + ph, y2: TOP + ph, "class": "axis" }));
    svg.appendChild(node("line", { x1: LEFT, x2: W - RIGHT, y1: TOP, y2: TOP, "class": "grid" }));
    svg.appendChild(node("text", { x: LEFT - 4, y: TOP + 4, "class": "tick", "text-anchor": "end" }, top));
    svg.appendChild(node("text", { x: LEFT - 4, y: TOP + ph, "class": "tick", "text-anchor": "end" }, 0));
    svg.appendChild(node("text", { x: LEFT, y: H - 4, "class": "tick" }, clock(spec.from)));
    svg.appendChild(node("text", { x: W - RIGHT, y: H - 4, "class": "tick", "text-anchor": "end" }, clock(spec.to)));

    spec.series.forEach(function (s) {
      if (s.kind === "bars") {
        var bw = Math.max(0.6, pw / n * 0.8);
        s.values.forEach(function (v, i) {
          if (!v) return;
          svg.appendChild(node("rect", { x: x(i) - bw / 2, y: y(v), width: bw, height: TOP + ph - y(v),
            "class": "bar " + s.cls, "data-minute": i }));
        });
        return;
      }
      var d = "", pen = false;
      s.values.forEach(function (v, i) {
        if (v === null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        // a minute with no known neighbour would be an invisible line: a dot
        var prev = i > 0 ? s.values[i - 1] : null, next = i + 1 < s.values.length ? s.values[i + 1] : null;
        if (prev === null && next === null) {
          svg.appendChild(node("circle", { cx: x(i), cy: y(v), r: 2, "class": "dot " + s.cls }));
        }
        pen = true;
      });
      if (d) svg.appendChild(node("path", { d: d, "class": "line " + s.cls }));
    });

    var caption = document.createElement("figcaption");
    var strong = document.createElement("strong");
    strong.textContent = title;
    caption.appendChild(strong);
    caption.appendChild(document.createTextNode(" now: " + latest));
    figure.replaceChildren(caption, svg);
    figure.dataset.max = String(max);
    figure.dataset.points = String(n);
  }

  return { draw: draw, niceMax: niceMax };
})();
