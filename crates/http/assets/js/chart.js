// A small time-series line chart drawn on a <canvas>: a few series over the last minutes,
// with a y axis of round numbers and clock times along the bottom.

const PAD = { left: 56, right: 12, top: 10, bottom: 24 };
const GRID = '#e9ecf1';
const AXIS_TEXT = '#6a7280';
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `x`. */
function niceStep(x) {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function short(v) {
  if (v >= 1e9) return (v / 1e9).toFixed(v % 1e9 ? 1 : 0) + 'G';
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
  return String(Math.round(v * 100) / 100);
}

export class LineChart {
  /**
   * series: [{key, label, color}]; windowMs: how much history is shown; integer: counts.
   */
  constructor(canvas, { series, windowMs = 5 * 60 * 1000, integer = false }) {
    this.canvas = canvas;
    this.integer = integer;
    this.series = series;
    this.windowMs = windowMs;
    this.points = [];
    if (typeof ResizeObserver !== 'undefined') {
      this.observer = new ResizeObserver(() => this.draw());
      this.observer.observe(canvas);
    }
  }

  /** points: [{t: ms, values: {key: number}}], oldest first. */
  update(points) {
    this.points = points;
    this.draw();
  }

  destroy() {
    if (this.observer) this.observer.disconnect();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    g.font = FONT;

    const now = this.points.length ? this.points[this.points.length - 1].t : Date.now();
    const t0 = now - this.windowMs;
    const visible = this.points.filter((p) => p.t >= t0);
    let max = 0;
    for (const p of visible) for (const s of this.series) max = Math.max(max, p.values[s.key] || 0);
    // Counts get whole-number ticks (at least 0 to 4), rates at least 0 to 1.
    const floor = this.integer ? 4 : 1;
    let step = niceStep(Math.max(max, floor) / 4);
    if (this.integer) step = Math.max(1, Math.round(step));
    const top = Math.max(step * Math.ceil(max / step), step);

    const x0 = PAD.left;
    const x1 = w - PAD.right;
    const y0 = hgt - PAD.bottom;
    const y1 = PAD.top;
    const x = (t) => x0 + ((t - t0) / this.windowMs) * (x1 - x0);
    const y = (v) => y0 - (v / top) * (y0 - y1);

    // Horizontal grid and y labels.
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const py = Math.round(y(v)) + 0.5;
      g.strokeStyle = GRID;
      g.beginPath(); g.moveTo(x0, py); g.lineTo(x1, py); g.stroke();
      g.fillStyle = AXIS_TEXT;
      g.fillText(short(v), x0 - 8, py);
    }
    // A clock time at each whole minute.
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const minute = 60 * 1000;
    for (let t = Math.ceil(t0 / minute) * minute; t <= now; t += minute) {
      const px = Math.round(x(t)) + 0.5;
      g.strokeStyle = GRID;
      g.beginPath(); g.moveTo(px, y0); g.lineTo(px, y0 + 4); g.stroke();
      const d = new Date(t);
      const label = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
      g.fillStyle = AXIS_TEXT;
      g.fillText(label, px, y0 + 7);
    }
    g.strokeStyle = '#c9d0da';
    g.beginPath(); g.moveTo(x0, y0 + 0.5); g.lineTo(x1, y0 + 0.5); g.stroke();

    if (!visible.length) {
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillStyle = AXIS_TEXT;
      g.fillText('Waiting for the first sample…', (x0 + x1) / 2, (y0 + y1) / 2);
      return;
    }
    for (const s of this.series) {
      const pts = visible.map((p) => [x(p.t), y(p.values[s.key] || 0)]);
      // A light wash under the line, then the line.
      g.globalAlpha = 0.07;
      g.fillStyle = s.color;
      g.beginPath();
      g.moveTo(pts[0][0], y0);
      for (const [px, py] of pts) g.lineTo(px, py);
      g.lineTo(pts[pts.length - 1][0], y0);
      g.closePath();
      g.fill();
      g.globalAlpha = 1;
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.beginPath();
      pts.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
      g.stroke();
      const [lx, ly] = pts[pts.length - 1];
      g.beginPath(); g.arc(lx, ly, 2.5, 0, Math.PI * 2); g.fillStyle = s.color; g.fill();
    }
  }
}
