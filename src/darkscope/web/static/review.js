// Keyboard labelling on the review page: j/k move, d/s/o label the selected item, x skips it,
// u undoes your newest label. Labels and undo submit the same forms a click would (no other
// API). A skipped item moves to the end of the list and stays there for this browser tab
// (sessionStorage), so the page reloaded after the next label does not bring it back on top.
(function () {
  "use strict";
  const body = document.querySelector("#queue tbody");
  const KEY = "darkscope-skipped";
  let skipped = [];
  try { skipped = JSON.parse(sessionStorage.getItem(KEY) || "[]"); } catch (e) { skipped = []; }
  function id(row) { return row.dataset.src + ":" + row.dataset.window; }
  let rows = Array.from(document.querySelectorAll("#queue tr.item"));
  // skipped items last, in the order they were skipped
  rows.filter(function (r) { return skipped.indexOf(id(r)) >= 0; })
    .sort(function (a, b) { return skipped.indexOf(id(a)) - skipped.indexOf(id(b)); })
    .forEach(function (r) { body.appendChild(r); });
  rows = Array.from(document.querySelectorAll("#queue tr.item"));
  let at = 0;
  function select(i) {
    if (!rows.length) return;
    rows[at].classList.remove("selected");
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows[at].classList.add("selected");
    rows[at].scrollIntoView({block: "nearest"});
  }
  function press(value) {
    const row = rows[at];
    if (!row) return;
    const button = row.querySelector('button[value="' + value + '"]');
    if (button) button.click();
  }
  function skip() {
    const row = rows[at];
    if (!row || rows.length < 2) return;
    skipped = skipped.filter(function (k) { return k !== id(row); }).concat([id(row)]);
    sessionStorage.setItem(KEY, JSON.stringify(skipped.slice(-500)));
    row.classList.remove("selected");
    body.appendChild(row);
    rows = Array.from(document.querySelectorAll("#queue tr.item"));
    select(at);
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    const keys = {d: "ddos", s: "scan", o: "other"};
    if (keys[event.key]) { press(keys[event.key]); }
    else if (event.key === "j") { select(at + 1); }
    else if (event.key === "k") { select(at - 1); }
    else if (event.key === "x") { skip(); }
    else if (event.key === "u") {
      const undo = document.getElementById("undo-form");
      if (undo) undo.submit();
    } else { return; }
    event.preventDefault();
  });
  select(0);
})();
