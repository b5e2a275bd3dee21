// Keyboard labelling on the review page: j/k move, d/s/o label the selected item, x skips it,
// u undoes your newest label. Each key submits the same form a click would (no other API).
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("#queue tr.item"));
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
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    const keys = {d: "ddos", s: "scan", o: "other"};
    if (keys[event.key]) { press(keys[event.key]); }
    else if (event.key === "j" || event.key === "x") { select(at + 1); }
    else if (event.key === "k") { select(at - 1); }
    else if (event.key === "u") {
      const undo = document.getElementById("undo-form");
      if (undo) undo.submit();
    } else { return; }
    event.preventDefault();
  });
  select(0);
})();
