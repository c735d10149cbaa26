/* The plant drawn from its description, and time plots; shared by the live view and the
   replay in report.html. Nothing here knows a particular plant: names, units and lengths
   come from the description (state_names, state_units, params).

   - A rate is a state named "..._dot" or in a unit per second ("rad/s", "m/s").
   - A state in metres that is not a rate is a cart's position: the first one
     puts a cart on a track.
   - States in radians that are not rates are links, angles from upright, + toward +x,
     absolute (as the DIP's), chained from the cart's pivot or from a fixed pivot.
   - Link lengths: the params whose names end in "length_m", in order; else 0.3 m each.
   - Neither: one bar per state, the generic view. */
(function (root) {
  "use strict";
  const COLORS = {cart: "#1c7ed6", link: "#e8590c", mass: "#343a40", track: "#868e96",
                  safe: "#c92a2a", text: "#343a40"};
  const SERIES = ["#1c7ed6", "#e8590c", "#2b8a3e", "#ae3ec9", "#f59f00", "#0c8599",
                  "#c2255c", "#5c940d"];

  function isRate(name, unit) {
    return /_dot$/.test(name) || /\/s$/.test(unit || "");
  }

  function layout(plant) {
    const names = plant.state_names || [], units = plant.state_units || [];
    const params = plant.params || {};
    const cart = names.findIndex((n, i) => units[i] === "m" && !isRate(n, units[i]));
    const links = names.map((n, i) => i)
      .filter((i) => units[i] === "rad" && !isRate(names[i], units[i]));
    const given = Object.keys(params).filter((k) => /length_m$/.test(k))
      .map((k) => Number(params[k])).filter((v) => v > 0);
    const lengths = links.map((_, k) => (k < given.length ? given[k] : 0.3));
    const kind = links.length ? (cart >= 0 ? "cart-pendulum" : "pendulum") : "bars";
    const reach = lengths.reduce((a, b) => a + b, 0);
    const track = Number(plant.track_limit_m || params.track_limit_m || 0) || Math.max(1.0, 2 * reach);
    return {kind, names, units, cart, links, lengths, reach, track};
  }

  function fit(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return ctx;
  }

  /* Draw `state` (array, null for a non-finite value) as `lay` says; `safe` tints the cart. */
  function draw(canvas, lay, state, safe) {
    const ctx = fit(canvas), W = canvas.width, H = canvas.height;
    if (!state) return;
    if (lay.kind === "bars") return drawBars(ctx, W, H, lay, state);
    const half = lay.kind === "cart-pendulum" ? lay.track + 0.25 : lay.reach * 1.3;
    const scale = Math.min(W / (2 * half), (H * 0.78) / (lay.reach * (lay.kind === "pendulum" ? 2.2 : 1.15) + 0.2));
    const groundY = lay.kind === "pendulum" ? H / 2 : H * 0.82;
    const px = (x) => W / 2 + x * scale, py = (y) => groundY - y * scale;
    let x = 0;
    if (lay.kind === "cart-pendulum") {
      x = state[lay.cart] ?? 0;
      ctx.strokeStyle = COLORS.track; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.moveTo(px(-lay.track), groundY + 14); ctx.lineTo(px(lay.track), groundY + 14); ctx.stroke();
      for (const end of [-lay.track, lay.track]) {
        ctx.beginPath(); ctx.moveTo(px(end), groundY + 4); ctx.lineTo(px(end), groundY + 24); ctx.stroke();
      }
      const cw = Math.max(36, 0.3 * scale), ch = Math.max(18, 0.12 * scale);
      ctx.fillStyle = safe ? COLORS.safe : COLORS.cart;
      ctx.fillRect(px(x) - cw / 2, groundY - ch / 2, cw, ch);
    } else {
      ctx.fillStyle = COLORS.mass;
      ctx.beginPath(); ctx.arc(px(0), py(0), 6, 0, 2 * Math.PI); ctx.fill();
    }
    let ox = x, oy = 0;
    ctx.lineCap = "round";
    lay.links.forEach((i, k) => {
      const th = state[i] ?? 0, L = lay.lengths[k];
      const ex = ox + L * Math.sin(th), ey = oy + L * Math.cos(th);
      ctx.strokeStyle = COLORS.link; ctx.lineWidth = Math.max(6, 0.035 * scale);
      ctx.beginPath(); ctx.moveTo(px(ox), py(oy)); ctx.lineTo(px(ex), py(ey)); ctx.stroke();
      ctx.fillStyle = COLORS.mass;
      ctx.beginPath(); ctx.arc(px(ex), py(ey), Math.max(4, 0.02 * scale), 0, 2 * Math.PI); ctx.fill();
      ox = ex; oy = ey;
    });
    if (lay.kind === "pendulum") {
      ctx.fillStyle = COLORS.text; ctx.font = "12px sans-serif";
      ctx.fillText("angles from upright (generic view)", 8, 16);
    }
  }

  function drawBars(ctx, W, H, lay, state) {
    const n = state.length, bh = Math.min(28, (H - 20) / Math.max(n, 1));
    ctx.font = "12px sans-serif";
    state.forEach((v, i) => {
      const y = 10 + i * bh, mag = Math.tanh(Math.abs(v ?? 0)) * (W / 2 - 90);
      ctx.fillStyle = COLORS.link;
      ctx.fillRect(W / 2 + ((v ?? 0) < 0 ? -mag : 0), y + 4, mag, bh - 8);
      ctx.fillStyle = COLORS.text;
      ctx.fillText(`${lay.names[i] || i} ${lay.units[i] || ""}`, 6, y + bh / 2 + 4);
    });
  }

  /* A time plot: `t` (s), `series` [{name, unit, values}], optional `cursor` time,
     `marks` [{t, color}] (events) and `limits` [low, high] (an input's, dashed; null where
     not known). Returns the x mapping for click-to-seek. */
  function plot(canvas, t, series, opts) {
    opts = opts || {};
    const ctx = fit(canvas), W = canvas.width, H = canvas.height;
    const left = 48, right = 8, top = 18, bottom = 18;
    const t0 = opts.t0 ?? (t.length ? t[0] : 0), t1 = opts.t1 ?? (t.length ? t[t.length - 1] : 1);
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const v of s.values) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const limits = (opts.limits || []).filter((v) => v !== null && v !== undefined && isFinite(v));
    for (const v of limits) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!isFinite(lo)) { lo = -1; hi = 1; }
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
    const X = (v) => left + ((v - t0) / Math.max(t1 - t0, 1e-9)) * (W - left - right);
    const Y = (v) => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
    ctx.strokeStyle = "#dee2e6"; ctx.lineWidth = 1;
    ctx.strokeRect(left, top, W - left - right, H - top - bottom);
    ctx.fillStyle = COLORS.text; ctx.font = "11px sans-serif";
    ctx.fillText(hi.toPrecision(3), 2, top + 8); ctx.fillText(lo.toPrecision(3), 2, H - bottom);
    ctx.fillText(`${t0.toFixed(2)} s`, left, H - 4); ctx.fillText(`${t1.toFixed(2)} s`, W - right - 48, H - 4);
    for (const m of opts.marks || []) {
      if (m.t < t0 || m.t > t1) continue;
      ctx.strokeStyle = m.color; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(X(m.t), top); ctx.lineTo(X(m.t), H - bottom); ctx.stroke();
    }
    ctx.strokeStyle = "#868e96"; ctx.lineWidth = 1; ctx.setLineDash([5, 4]);
    for (const v of limits) {  // on a pixel row: crisp
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(W - right, y); ctx.stroke();
    }
    ctx.setLineDash([]);
    let legend = left + 4;
    series.forEach((s, k) => {
      const color = s.color || SERIES[k % SERIES.length];
      ctx.strokeStyle = color; ctx.lineWidth = 1.3; ctx.beginPath();
      let pen = false;
      for (let j = 0; j < t.length; j++) {
        const v = s.values[j];
        if (v === null || !isFinite(v)) { pen = false; continue; }
        if (pen) ctx.lineTo(X(t[j]), Y(v)); else { ctx.moveTo(X(t[j]), Y(v)); pen = true; }
      }
      ctx.stroke();
      const label = `${s.name}${s.unit ? ` (${s.unit})` : ""}`;
      ctx.fillStyle = color; ctx.fillText(label, legend, 12);
      legend += ctx.measureText(label).width + 12;
    });
    if (opts.cursor !== undefined && opts.cursor !== null) {
      ctx.strokeStyle = "#212529"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(X(opts.cursor), top); ctx.lineTo(X(opts.cursor), H - bottom); ctx.stroke();
    }
    return {t0, t1, left, right, width: W};
  }

  root.HilPlant = {COLORS, SERIES, isRate, layout, draw, plot};
})(typeof window !== "undefined" ? window : globalThis);
