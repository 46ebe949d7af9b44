/* ubench leaderboard: sortable tables and the trade-off plots (Vega-Lite through vega-embed).
   Data reaches this script only as JSON (script type="application/json") and leaves it only
   through Vega's own rendering; nothing here writes HTML from data. */
(function () {
  "use strict";

  function key(td, numeric) {
    var v = td ? td.getAttribute("data-v") : null;
    if (v === null || v === "") return null;
    if (!numeric) return v.toLowerCase();
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }

  function sortTable(table, th) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var col = heads.indexOf(th);
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir;
    if (current === "ascending") dir = -1;
    else if (current === "descending") dir = 1;
    else dir = th.getAttribute("data-better") === "high" ? -1 : 1;  /* best first */
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var refs = rows.filter(function (r) { return r.classList.contains("ref"); });
    var rest = rows.filter(function (r) { return !r.classList.contains("ref"); });
    rest.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === null && y === null) return 0;
      if (x === null) return 1;   /* missing values last, whatever the direction */
      if (y === null) return -1;
      return x < y ? -dir : x > y ? dir : 0;
    });
    refs.concat(rest).forEach(function (r) { body.appendChild(r); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortTable(table, th); });
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll(".plot-box"), function (box) {
    var holder = box.querySelector("script.specs");
    var vis = box.querySelector(".vis");
    var select = box.querySelector("select.pair-select");
    if (!holder || !vis || !select) return;
    var specs = JSON.parse(holder.textContent);
    var view = null;
    function show(i) {
      if (view) { view.finalize(); view = null; }
      Array.prototype.forEach.call(box.querySelectorAll(".corner"), function (c) {
        c.hidden = c.getAttribute("data-pair") !== String(i);
      });
      vegaEmbed(vis, specs[i], {
        renderer: "svg",
        actions: { export: true, source: false, compiled: false, editor: false }
      }).then(function (result) {
        view = result;
        vis.setAttribute("data-rendered", String(i));
      }).catch(function (err) { console.error("trade-off plot: " + err); });
    }
    select.addEventListener("change", function () { show(Number(select.value)); });
    show(0);
  });
})();
