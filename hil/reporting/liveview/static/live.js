/* The live page: one WebSocket to the page's own host (/ws), read-only. It keeps the last
   WINDOW_S seconds of the decimated series, draws the plant and the plots on each update
   (30-60 a second at most: one plot per input, its limits dashed), and writes the run id,
   the run time, the latest state and inputs and the loop's health as text. An update's
   `input` is a list, one value per input of the hello's `inputs`. */
(function () {
  "use strict";
  const WINDOW_S = 10, MAX_EVENTS = 50;
  const $ = (id) => document.getElementById(id);
  const S = {hello: null, lay: null, t: [], state: [], input: [], events: 0, latest: null};

  function fmt(v, digits) {
    return v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + v.toFixed(digits);
  }

  function onHello(h) {
    S.hello = h;
    S.lay = HilPlant.layout(h.plant || {});
    $("run-id").textContent = h.run_id || "–";
    const names = (h.plant && h.plant.name) || "plant";
    $("plant-note").textContent = `${names}: ${S.lay.kind} view` +
      (h.rate_hz ? `, ${h.rate_hz.toFixed(0)} Hz, ${h.mode || ""}` : "");
    const body = $("state").tBodies[0];
    body.innerHTML = "";
    (h.plant.state_names || []).forEach((n, i) => {
      const tr = body.insertRow();
      tr.insertCell().textContent = n;
      const v = tr.insertCell(); v.id = `s-${i}`; v.textContent = "–";
      tr.insertCell().textContent = (h.plant.state_units || [])[i] || "";
    });
    const plots = $("plot-inputs");
    plots.innerHTML = "";
    (h.inputs || []).forEach((u, k) => {
      const row = body.insertRow();
      row.insertCell().textContent = u.name;
      const v = row.insertCell(); v.id = `s-input-${k}`; v.textContent = "–";
      row.insertCell().textContent = u.unit || "";
      const canvas = document.createElement("canvas");
      canvas.id = `plot-input-${k}`; canvas.width = 960; canvas.height = 120;
      plots.appendChild(canvas);
    });
    S.t = []; S.state = []; S.input = [];
  }

  function onUpdate(u) {
    for (const e of u.events || []) addEvent(e);
    if (u.t === undefined) return;
    const s = u.series;
    for (let j = 0; j < s.t.length; j++) {
      S.t.push(s.t[j]); S.state.push(s.state[j]); S.input.push(s.input[j]);
    }
    const cut = S.t.findIndex((t) => t >= u.t - WINDOW_S);
    if (cut > 0) { S.t.splice(0, cut); S.state.splice(0, cut); S.input.splice(0, cut); }
    S.latest = u;
    $("run-time").textContent = `${u.t.toFixed(3)} s`;
    u.state.forEach((v, i) => { const c = $(`s-${i}`); if (c) c.textContent = fmt(v, 4); });
    u.input.forEach((v, k) => { const c = $(`s-input-${k}`); if (c) c.textContent = fmt(v, 3); });
    const h = u.health;
    $("h-steps").textContent = String(h.steps);
    $("h-misses").textContent = `${h.misses} (${(100 * h.miss_ratio).toFixed(2)} %)`;
    $("h-rt").textContent = h.round_trip_p50_us === null ? "–" :
      `${h.round_trip_p50_us.toFixed(0)} / ${h.round_trip_p99_us.toFixed(0)} µs`;
    $("h-watchdog").textContent = h.watchdog ? "TRIPPED (latched)" : "ok";
    $("h-watchdog").className = h.watchdog ? "bad" : "";
    $("h-safety").textContent = h.safety ? "gate tripped: safe output" : h.safe ? "safe output" : "ok";
    $("h-safety").className = h.safe ? "bad" : "";
    const status = $("status");
    status.textContent = h.final ? "run ended" : h.safe ? "live: SAFE STATE" : "live";
    status.className = "status " + (h.safe ? "safe" : "live");
    redraw();
  }

  function addEvent(e) {
    const list = $("events"), li = document.createElement("li");
    li.textContent = `${e.timestamp || ""} ${e.process || ""} ${e.level}: ${e.event} ${e.detail || ""}`;
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
  }

  function redraw() {
    if (!S.lay || !S.latest) return;
    HilPlant.draw($("plant"), S.lay, S.latest.state, S.latest.health.safe);
    const names = S.lay.names, units = S.lay.units;
    const pick = (rate) => names.map((n, i) => i).filter((i) => HilPlant.isRate(names[i], units[i]) === rate)
      .map((i) => ({name: names[i], unit: units[i], values: S.state.map((row) => row[i])}));
    const span = {t0: Math.max(0, S.latest.t - WINDOW_S), t1: Math.max(S.latest.t, WINDOW_S)};
    HilPlant.plot($("plot-pos"), S.t, pick(false), span);
    HilPlant.plot($("plot-rate"), S.t, pick(true), span);
    (S.hello.inputs || []).forEach((u, k) => {
      HilPlant.plot($(`plot-input-${k}`), S.t, [{name: u.name, unit: u.unit,
        values: S.input.map((row) => row[k]), color: "#c92a2a"}], {...span, limits: [u.low, u.high]});
    });
  }

  function connect() {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => { $("status").textContent = "connected, waiting for the plant…"; };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "hello") onHello(msg);
      else if (msg.type === "update" && S.hello) onUpdate(msg);
    };
    ws.onclose = () => {
      const status = $("status");
      if (!S.latest || !S.latest.health.final) status.textContent = "disconnected: retrying…";
      status.className = "status";
      setTimeout(connect, 1000);
    };
  }
  connect();
})();
