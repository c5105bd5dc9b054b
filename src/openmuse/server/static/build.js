"use strict";
// The Build view (mode `build`), used by app.js: el, api and setStatus are app.js's helpers.

// Build mode: the checks, a preview in a sandboxed frame served by the server with its own
// CSP (an opaque origin: no access to this app's storage, key or API), a download, the source.
function renderBuild(t) {
  const box = el("div", "build");
  const made = t.template ? `template ${t.template}` : t.source;
  const checks = ((t.report || {}).checks || []);
  const ok = checks.filter((c) => c.passed).length;
  const head = t.checked ? `${ok}/${checks.length} checks passed` : "not checked";
  box.append(el("div", "build-head", `Built from ${made} · ${head} · ${t.repairs} repair${t.repairs === 1 ? "" : "s"} · ${(t.bytes / 1000).toFixed(1)} kB`));
  const ul = el("ul", "checks");
  for (const c of checks) ul.append(el("li", c.passed ? "pass" : "fail", `${c.passed ? "✓" : "✗"} ${c.name}${c.detail ? ": " + c.detail : ""}`));
  box.append(ul);
  if (t.sketch && t.sketch.mean_iou !== undefined) box.append(el("div", "meta", `Layout from the sketch: ${t.sketch.boxes.length} boxes, mean IoU ${t.sketch.mean_iou.toFixed(2)}`));
  const frame = document.createElement("iframe");
  frame.className = "preview";
  frame.title = "Preview of the built page";
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("referrerpolicy", "no-referrer");
  api("/v1/previews", { method: "POST", body: JSON.stringify({ html: t.html }) })
    .then((r) => r.json()).then((p) => { if (p.url) frame.src = p.url; })
    .catch((e) => setStatus("preview: " + e.message, true));
  const name = (t.path || "").split(/[\\/]/).pop() || `${t.template || "page"}.html`;
  const dl = el("button", "download", "Download " + name);
  dl.type = "button";
  dl.addEventListener("click", () => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([t.html], { type: "text/html" }));
    a.download = name;
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  const src = el("details");
  src.append(el("summary", null, "Source"), el("pre", "trace", t.html));
  box.append(frame, dl, src);
  return box;
}
