/* opdoc knowledge base: browser-side behaviour, all offline.
 *
 * - Math: every `.arithmatex` element written by pymdownx.arithmatex (generic mode) is typeset with
 *   the local KaTeX copy (assets/vendor/katex/). Only those elements are touched, so a dollar sign in
 *   prose or code is never taken for math.
 * - Sorting: tables marked `data-opdoc-sortable` (the index page's, marked by opdoc/site_hooks.py)
 *   sort by a column when its header is clicked (or focused and Enter/Space pressed); a second
 *   click reverses. Columns whose cells are all magnitudes such as "430.84 GFLOPs", "1.2 MiB",
 *   "3,145,728", "2.5 M parameters" or "26.30 M parameters (26,296,320)" (the exact figure in
 *   brackets is used) sort by value; other columns sort as text, numbers inside compared as numbers. Empty cells and
 *   dashes always sort last. A cell (or an element inside it) may carry `data-sort` to override.
 *
 * - Mermaid: diagrams keep their natural size (useMaxWidth off); opdoc.css lets a wide one scroll.
 *
 * Math and sorting run on every page material shows, including pages reached by instant navigation
 * (`document$` emits once per page).
 */
(function () {
  "use strict";

  // ---------------------------------------------------------------- math
  var MATH_DELIMITERS = [
    { left: "\\(", right: "\\)", display: false },
    { left: "\\[", right: "\\]", display: true },
  ];

  function renderMath(root) {
    if (typeof window.renderMathInElement !== "function") return;
    var nodes = root.querySelectorAll(".arithmatex:not([data-opdoc-math])");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      node.setAttribute("data-opdoc-math", "");
      window.renderMathInElement(node, {
        delimiters: MATH_DELIMITERS,
        throwOnError: false, // a formula KaTeX cannot parse shows in red (.katex-error), with the reason as its title
      });
    }
  }

  // ------------------------------------------------------------- sorting
  var PREFIXES = {
    "": 1,
    k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 1024, Mi: Math.pow(1024, 2), Gi: Math.pow(1024, 3), Ti: Math.pow(1024, 4),
    Pi: Math.pow(1024, 5), Ei: Math.pow(1024, 6),
  };
  // number, optional prefix, optional unit; the unit list is what opdoc pages print.
  var MAGNITUDE = new RegExp(
    "^([-+\u2212]?(?:\\d[\\d,\u2009\u202f]*(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?)" +
      "\\s*(Ki|Mi|Gi|Ti|Pi|Ei|[kKMGTPE])?" +
      "\\s*(FLOPs?|FLOP/s|MACs?|bytes?|B|parameters?|params?|tokens?|elements?|%|\u00d7|x)?$"
  );
  // "430.84 GFLOPs (430,838,906,880)": the exact figure in brackets wins over the rounded one.
  var WITH_EXACT = /^(.*?)\s*\(([-+\u2212]?\d[\d,\u2009\u202f]*(?:\.\d+)?)\)$/;
  var EMPTY = /^(?:|[-\u2013\u2014\u2012]|n\/a|none)$/i;

  // The value of a magnitude string, or null when it is not one.
  function parseMagnitude(text) {
    var exact = WITH_EXACT.exec(text.trim());
    if (exact && parseMagnitude(exact[1]) !== null) return parseMagnitude(exact[2]);
    var match = MAGNITUDE.exec(text.trim());
    if (!match) return null;
    var digits = match[1].replace(/[,\u2009\u202f]/g, "").replace("\u2212", "-");
    var value = parseFloat(digits);
    if (isNaN(value)) return null;
    return value * PREFIXES[match[2] || ""];
  }

  function cellKey(cell) {
    var holder = cell.hasAttribute("data-sort") ? cell : cell.querySelector("[data-sort]");
    var text = holder ? holder.getAttribute("data-sort") : cell.textContent;
    return text.replace(/\s+/g, " ").trim();
  }

  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function sortTable(table, column, descending) {
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var entries = rows.map(function (row, index) {
      var cell = row.cells[column];
      var key = cell ? cellKey(cell) : "";
      return { row: row, index: index, key: key, empty: EMPTY.test(key), value: parseMagnitude(key) };
    });
    var numeric = entries.every(function (e) { return e.empty || e.value !== null; });
    entries.sort(function (a, b) {
      if (a.empty !== b.empty) return a.empty ? 1 : -1; // blanks last in both directions
      var order = 0;
      if (!a.empty) {
        order = numeric ? a.value - b.value : collator.compare(a.key, b.key);
        if (descending) order = -order;
      }
      return order || a.index - b.index; // stable
    });
    entries.forEach(function (e) { body.appendChild(e.row); });
  }

  function headerCells(table) {
    var head = table.tHead;
    if (!head || !head.rows.length) return [];
    return Array.prototype.slice.call(head.rows[head.rows.length - 1].cells);
  }

  function makeSortable(table) {
    if (table.hasAttribute("data-opdoc-sort-ready")) return;
    table.setAttribute("data-opdoc-sort-ready", "");
    var headers = headerCells(table);
    headers.forEach(function (th, column) {
      th.setAttribute("role", "columnheader"); // material styles the sort icons for this role
      th.setAttribute("aria-sort", "none");
      th.setAttribute("tabindex", "0");
      th.title = "Sort by this column";
      function activate() {
        var descending = th.getAttribute("aria-sort") === "ascending";
        headers.forEach(function (other) { other.setAttribute("aria-sort", "none"); });
        sortTable(table, column, descending);
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      }
      th.addEventListener("click", activate);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          activate();
        }
      });
    });
  }

  function enableSorting(root) {
    var tables = root.querySelectorAll("table[data-opdoc-sortable]");
    for (var i = 0; i < tables.length; i++) makeSortable(tables[i]);
  }

  // ------------------------------------------------------------- mermaid
  // material initialises mermaid itself (after this script ran) with useMaxWidth left on, which
  // scales a wide diagram down to the column: large sequence diagrams then read at about 6 px. Every
  // diagram keeps its natural size instead and scrolls inside its box (opdoc.css).
  function naturalSizeMermaid() {
    var mermaid = window.mermaid;
    if (!mermaid || typeof mermaid.initialize !== "function" || mermaid.opdocNaturalSize) return;
    var initialize = mermaid.initialize;
    mermaid.initialize = function (config) {
      var merged = Object.assign({}, config);
      ["sequence", "flowchart", "class", "state", "er", "gantt"].forEach(function (kind) {
        merged[kind] = Object.assign({}, merged[kind], { useMaxWidth: false });
      });
      return initialize.call(mermaid, merged);
    };
    mermaid.opdocNaturalSize = true;
  }
  naturalSizeMermaid();

  // ---------------------------------------------------------------- glue
  function onPage() {
    renderMath(document.body);
    enableSorting(document.body);
  }

  // Exposed for tests and the console; not an API anyone else relies on.
  window.opdoc = { parseMagnitude: parseMagnitude };

  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(onPage);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onPage);
  } else {
    onPage();
  }
})();
