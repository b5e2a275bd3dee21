// Feature map: drag a rectangle over the dots to list those host-windows with links to their
// IP pages (a click on one dot opens its page directly).
(function () {
  const svg = document.getElementById("feature-map");
  const list = document.getElementById("map-selection");
  if (!svg || !list) return;
  let start = null;
  let box = null;
  const point = (event) => {
    const p = svg.createSVGPoint();
    p.x = event.clientX;
    p.y = event.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  };
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.tagName === "circle") return;
    start = point(event);
    box = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    box.setAttribute("class", "brush");
    svg.appendChild(box);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start) return;
    const now = point(event);
    box.setAttribute("x", Math.min(start.x, now.x));
    box.setAttribute("y", Math.min(start.y, now.y));
    box.setAttribute("width", Math.abs(now.x - start.x));
    box.setAttribute("height", Math.abs(now.y - start.y));
  });
  window.addEventListener("pointerup", () => {
    if (!start) return;
    const x = +box.getAttribute("x"), y = +box.getAttribute("y");
    const w = +box.getAttribute("width"), h = +box.getAttribute("height");
    const seen = new Map();
    for (const dot of svg.querySelectorAll("circle[data-ip]")) {
      const cx = +dot.getAttribute("cx"), cy = +dot.getAttribute("cy");
      if (cx >= x && cx <= x + w && cy >= y && cy <= y + h) {
        seen.set(dot.dataset.ip, dot.dataset.verdict);
      }
    }
    list.replaceChildren();
    for (const [ip, verdict] of seen) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/ip/" + encodeURIComponent(ip);
      link.textContent = ip;
      item.append(link, " " + verdict);
      list.append(item);
    }
    document.getElementById("map-count").textContent = seen.size + " hosts selected";
    box.remove();
    start = null;
  });
})();
