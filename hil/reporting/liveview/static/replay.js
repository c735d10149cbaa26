/* report.html's replay: the run's plant animated from the data embedded in the page
   (<script id="replay-data" type="application/json">), with play, pause, scrub and speed, a
   time cursor on the trajectory plots (click a plot to seek) and the run's events marked.
   Needs plant.js; no network. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const D = JSON.parse($("replay-data").textContent);
  const lay = HilPlant.layout(D.plant || {});
  const MARK = {safety: "#c92a2a", deadline_gate: "#c92a2a", watchdog: "#f08c00",
                clear: "#2b8a3e", gains: "#7048e8"};
  const marks = D.events.map((e) => ({t: e.time, color: MARK[e.kind] || "#495057"}));
  const t0 = D.t.length ? D.t[0] : 0, t1 = D.t.length ? D.t[D.t.length - 1] : 0;
  const names = lay.names, units = lay.units;
  const series = (rate) => names.map((n, i) => i).filter((i) => HilPlant.isRate(names[i], units[i]) === rate)
    .map((i) => ({name: names[i], unit: units[i], values: D.state.map((row) => row[i])}));
  // One plot per input, its limits dashed.
  const plots = [["replay-pos", series(false)], ["replay-rate", series(true)],
    ...D.inputs.map((u, k) => [`replay-input-${k}`,
      [{name: u.name, unit: u.unit, values: u.values, color: "#c92a2a"}], [u.low, u.high]])];
  let frame = 0, playing = false, last = null, now = t0;

  function frameAt(t) {  // the last frame at or before t
    let lo = 0, hi = D.t.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (D.t[mid] <= t) lo = mid; else hi = mid - 1; }
    return lo;
  }

  function show() {
    if (!D.t.length) return;
    HilPlant.draw($("replay-plant"), lay, D.state[frame], D.safe[frame]);
    $("replay-time").textContent = `${D.t[frame].toFixed(3)} s`;
    $("replay-scrub").value = String(frame);
    $("replay-state").textContent = names.map((n, i) => {
      const v = D.state[frame][i];
      return `${n} ${v === null ? "–" : v.toFixed(4)} ${units[i] || ""}`.trim();
    }).concat(D.inputs.map((u) => `${u.name} ${(u.values[frame] ?? NaN).toFixed(3)} ${u.unit}`))
      .join(",  ");
    for (const [id, s, limits] of plots) {
      HilPlant.plot($(id), D.t, s, {t0, t1, cursor: D.t[frame], marks, limits});
    }
  }

  function seek(t) { now = Math.min(Math.max(t, t0), t1); frame = frameAt(now); show(); }

  function tick(ms) {
    if (!playing) return;
    if (last !== null) now += ((ms - last) / 1000) * Number($("replay-speed").value);
    last = ms;
    if (now >= t1) { now = t1; playing = false; $("replay-play").textContent = "play"; }
    frame = frameAt(now); show();
    if (playing) requestAnimationFrame(tick);
  }

  $("replay-play").addEventListener("click", () => {
    playing = !playing;
    $("replay-play").textContent = playing ? "pause" : "play";
    if (playing) { if (now >= t1) now = t0; last = null; requestAnimationFrame(tick); }
  });
  $("replay-scrub").max = String(Math.max(D.t.length - 1, 0));
  $("replay-scrub").addEventListener("input", (e) => { frame = Number(e.target.value); now = D.t[frame]; show(); });
  for (const [id] of plots) {
    $(id).addEventListener("click", (e) => {
      const c = e.target, r = c.getBoundingClientRect(), x = (e.clientX - r.left) * (c.width / r.width);
      seek(t0 + ((x - 48) / (c.width - 56)) * (t1 - t0));
    });
  }
  const list = $("replay-events");
  D.events.forEach((e) => {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = "#replay"; a.textContent = `${e.time.toFixed(3)} s  ${e.kind}: ${e.label}`;
    a.style.color = MARK[e.kind] || "#495057";
    a.addEventListener("click", (ev) => { ev.preventDefault(); seek(e.time); });
    li.appendChild(a); list.appendChild(li);
  });
  window.hilReplay = {seek, get frame() { return frame; }, get playing() { return playing; }};
  show();
})();
