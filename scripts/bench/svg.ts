// A small SVG writer and the bench chart: grouped bars of decode tokens/s per model and quant,
// beside the roofline bound and the tokens/s onnxruntime-web's products would allow.
// Log-scale y axis: the figures span several orders of magnitude.

import type { BenchResult } from "./run";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const r1 = (n: number) => Math.round(n * 10) / 10;

/** Collects SVG elements; attributes are numbers or strings, text is escaped. */
export class Svg {
  private readonly parts: string[] = [];
  constructor(
    readonly width: number,
    readonly height: number,
  ) {}
  private el(tag: string, attrs: Record<string, string | number>, text?: string): void {
    const a = Object.entries(attrs).map(([k, v]) => `${k}="${typeof v === "number" ? r1(v) : esc(v)}"`).join(" ");
    this.parts.push(text === undefined ? `<${tag} ${a}/>` : `<${tag} ${a}>${esc(text)}</${tag}>`);
  }
  rect(x: number, y: number, w: number, h: number, fill: string, title?: string): void {
    if (title === undefined) this.el("rect", { x, y, width: w, height: h, fill });
    else this.parts.push(`<rect x="${r1(x)}" y="${r1(y)}" width="${r1(w)}" height="${r1(h)}" fill="${esc(fill)}"><title>${esc(title)}</title></rect>`);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1, dash?: string): void {
    this.el("line", { x1, y1, x2, y2, stroke, "stroke-width": width, ...(dash ? { "stroke-dasharray": dash } : {}) });
  }
  text(x: number, y: number, s: string, o: { size?: number; anchor?: "start" | "middle" | "end"; fill?: string; weight?: string; rotate?: number } = {}): void {
    this.el("text", {
      x,
      y,
      "font-size": o.size ?? 12,
      "text-anchor": o.anchor ?? "start",
      fill: o.fill ?? "#222",
      ...(o.weight ? { "font-weight": o.weight } : {}),
      ...(o.rotate ? { transform: `rotate(${o.rotate} ${r1(x)} ${r1(y)})` } : {}),
    }, s);
  }
  toString(): string {
    return [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" viewBox="0 0 ${this.width} ${this.height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
      `<rect x="0" y="0" width="${this.width}" height="${this.height}" fill="#ffffff"/>`,
      ...this.parts,
      "</svg>",
      "",
    ].join("\n");
  }
}

export interface BarSeries {
  name: string;
  color: string;
}

export interface BarGroup {
  label: string;
  /** One value per series; null draws nothing (and a note). */
  values: Array<number | null>;
  note?: string;
}

/** Grouped bars on a log10 axis. */
export function groupedBarChart(title: string, subtitle: string, series: BarSeries[], groups: BarGroup[], yLabel: string): string {
  const barW = 22;
  const groupGap = 26;
  const left = 70;
  const subtitleLines = 2; // room for a wrapped subtitle
  const top = 70 + 14 * subtitleLines;
  const plotH = 300;
  const groupW = series.length * barW + groupGap;
  const width = Math.max(820, left + groups.length * groupW + 30);
  const height = top + plotH + 80;
  const svg = new Svg(width, height);
  const values = groups.flatMap((g) => g.values).filter((v): v is number => v !== null && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 10))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 10))));
  const y = (v: number) => top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;

  svg.text(left, 24, title, { size: 16, weight: "bold" });
  // subtitle wrapped by an estimate of the text width (~5.8 px per character at 11 px)
  const perLine = Math.floor((width - left - 20) / 5.8);
  const lines: string[] = [];
  for (const word of subtitle.split(" ")) {
    if (lines.length && (lines[lines.length - 1] + " " + word).length <= perLine) lines[lines.length - 1] += " " + word;
    else lines.push(word);
  }
  lines.forEach((l, i) => svg.text(left, 42 + 14 * i, l, { size: 11, fill: "#555" }));
  const legendY = 42 + 14 * lines.length + 4;
  let lx = left;
  for (const s of series) {
    svg.rect(lx, legendY, 12, 12, s.color);
    svg.text(lx + 17, legendY + 10, s.name, { size: 12 });
    lx += 17 + s.name.length * 6.8 + 22;
  }
  for (let d = lo; d <= hi; d *= 10) {
    svg.line(left, y(d), width - 20, y(d), "#ccc");
    svg.text(left - 6, y(d) + 4, d >= 1 ? d.toLocaleString("en-US") : String(d), { size: 11, anchor: "end", fill: "#555" });
    for (const m of [2, 5]) if (d * m < hi) svg.line(left, y(d * m), width - 20, y(d * m), "#eee", 1, "3 3");
  }
  svg.line(left, top, left, top + plotH, "#888");
  svg.line(left, top + plotH, width - 20, top + plotH, "#888");
  svg.text(16, top + plotH / 2, yLabel, { size: 12, anchor: "middle", rotate: -90 });

  groups.forEach((g, gi) => {
    const x0 = left + groupGap / 2 + gi * groupW;
    g.values.forEach((v, si) => {
      if (v === null || !(v > 0)) return;
      const x = x0 + si * barW;
      const yy = y(Math.max(v, lo));
      svg.rect(x + 1, yy, barW - 2, top + plotH - yy, series[si].color, `${g.label} ${series[si].name}: ${v.toFixed(1)} tokens/s`);
      svg.text(x + barW / 2 + 3, yy - 4, v >= 100 ? v.toFixed(0) : v.toFixed(1), { size: 9, anchor: "start", rotate: -90, fill: "#333" });
    });
    svg.text(x0 + (series.length * barW) / 2, top + plotH + 16, g.label, { size: 11, anchor: "middle" });
    if (g.note) svg.text(x0 + (series.length * barW) / 2, top + plotH + 30, g.note, { size: 9, anchor: "middle", fill: "#a33" });
  });
  return svg.toString();
}

export function benchChart(r: BenchResult): string {
  const series: BarSeries[] = [
    { name: "ours: decode tokens/s (measured)", color: "#2f6fbd" },
    { name: "roofline bound tokens/s", color: "#9bb8dc" },
    { name: "onnxruntime-web: products only", color: "#e08a3c" },
  ];
  const groups: BarGroup[] = r.models.map((m) => {
    const label = `${m.shape.replace("stories", "")} ${m.quant}`;
    if (!m.inProcess) return { label, values: [null, null, null], note: "does not fit" };
    return {
      label,
      values: [m.inProcess.decodeTokensPerSecond, m.roofline?.bound ?? null, m.matmulOnly?.ortTokensPerSecond ?? null],
      note: m.fits ? undefined : "over budget",
    };
  });
  const env = r.env as Record<string, unknown>;
  return groupedBarChart(
    `edgeinfer decode speed (${r.mode} bench, ${r.startedAt.slice(0, 10)})`,
    `${env.cpu}, one thread, Node ${env.node}. Random-weight TinyStories shapes; ORT bar = 1 / sum of onnxruntime-web's per-shape product times for one token.`,
    series,
    groups,
    "tokens/s (log scale)",
  );
}
