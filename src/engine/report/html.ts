/**
 * `report.html`: one self-contained page (inline CSS and SVG, no script, no remote content; a CSP
 * meta tag forbids anything else) with the sensitivity heatmap, the size-vs-loss chart of the
 * candidates (Pareto front and chosen point marked) and the chosen plan. Every name from the model
 * or the data is escaped ({@link esc}), so hostile layer names render as text.
 */
import type { CandidatesFile, SensitivityFile } from '../explore/types';
import { bytesText, pct, planRows, pts } from './markdown';

/** HTML-escapes text for element content and quoted attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"'\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => `&#${c.charCodeAt(0)};`).replace(/\r?\n/g, '&#10;');
}

/**
 * Heatmap color of a loss (fraction): green at ≤ 0, yellow at 0.5 points, red at ≥ 5 points
 * (logarithmic in between).
 */
export function lossColor(loss: number): string {
  const t = loss <= 0.0005 ? 0 : Math.min(1, Math.log10(loss / 0.0005) / Math.log10(100));
  const hue = Math.round(120 * (1 - t));
  return `hsl(${hue}, 70%, ${loss <= 0 ? 80 : 65}%)`;
}

function heatmap(sf: SensitivityFile): string {
  const cells = new Map(sf.cells.map((c) => [`${c.layer}\u0000${c.level}`, c]));
  const head = sf.levels.map((l) => `<th title="${esc(l.id)}"><span class="fam">${esc(l.technique)}</span><br>${esc(l.label)}</th>`).join('');
  const rows = sf.layers.map((r) => {
    const tds = sf.levels.map((l) => {
      const c = cells.get(`${r.name}\u0000${l.id}`);
      if (!c) return `<td class="na" title="${esc(r.unsupported?.[l.id] ?? 'not measured')}">·</td>`;
      const tip = `${r.name} · ${l.id}: loss ${pts(c.loss)} [${pts(c.ci[0])}, ${pts(c.ci[1])}], ${c.onnxBytes} B, ${c.samples} samples${c.stoppedEarly ? ' (stopped early)' : ''}`;
      return `<td style="background:${lossColor(c.loss)}" title="${esc(tip)}">${(c.loss * 100).toFixed(1)}</td>`;
    });
    return `<tr><th class="layer" title="${esc(`${r.op} [${r.shape.join('×')}], ${r.params} params`)}">${esc(r.name)}</th>${tds.join('')}</tr>`;
  });
  const legend = [0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05].map((x) => `<span class="sw" style="background:${lossColor(x)}">${(x * 100).toFixed(2)}</span>`).join('');
  return `<table class="heat"><thead><tr><th>layer \\ level</th>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>
<p class="legend">Top-1 loss in points when the layer alone is compressed: ${legend} (· = not applicable or not measured)</p>`;
}

function chart(cf: CandidatesFile): string {
  const cs = cf.candidates;
  if (cs.length === 0) return '<p>No candidates.</p>';
  const W = 640;
  const H = 360;
  const m = { l: 60, r: 20, t: 16, b: 44 };
  const xs = cs.map((c) => Math.log10(c.bytes)).concat(Math.log10(cf.model.bytes));
  const ys = cs.map((c) => c.loss * 100).concat(0, 'maxLoss' in cf.budget ? cf.budget.maxLoss * 100 : 0);
  const [x0, x1] = [Math.min(...xs) - 0.02, Math.max(...xs) + 0.02];
  const [y0, y1] = [Math.min(...ys, 0) - 0.1, Math.max(...ys) + 0.1];
  const X = (b: number) => m.l + ((Math.log10(b) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (l: number) => H - m.b - ((l * 100 - y0) / (y1 - y0)) * (H - m.t - m.b);
  const front = cs.filter((c) => c.pareto).sort((a, b) => a.bytes - b.bytes);
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = Y(v / 100);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" class="grid"/><text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const b = 10 ** (x0 + ((x1 - x0) * i) / 4);
    const x = X(b);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${H - m.b}" class="grid"/><text x="${x}" y="${H - m.b + 16}" text-anchor="middle">${esc(bytesText(b))}</text>`);
  }
  if ('maxLoss' in cf.budget) parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(cf.budget.maxLoss)}" y2="${Y(cf.budget.maxLoss)}" class="budget"/><text x="${W - m.r}" y="${Y(cf.budget.maxLoss) - 4}" text-anchor="end" class="budgetText">budget</text>`);
  else parts.push(`<line x1="${X(cf.budget.maxSize)}" x2="${X(cf.budget.maxSize)}" y1="${m.t}" y2="${H - m.b}" class="budget"/>`);
  if (front.length > 1) parts.push(`<polyline class="front" points="${front.map((c) => `${X(c.bytes)},${Y(c.loss)}`).join(' ')}"/>`);
  parts.push(`<circle cx="${X(cf.model.bytes)}" cy="${Y(0)}" r="5" class="orig"><title>original: ${esc(bytesText(cf.model.bytes))}</title></circle>`);
  for (const c of cs) {
    const cls = c.id === cf.chosen ? 'chosen' : c.pareto ? 'pareto' : c.feasible ? 'ok' : 'over';
    parts.push(`<circle cx="${X(c.bytes)}" cy="${Y(c.loss)}" r="${c.id === cf.chosen ? 7 : 4}" class="${cls}"><title>${esc(`${c.id}: ${bytesText(c.bytes)} (${c.ratio.toFixed(2)}×), loss ${pts(c.loss)}`)}</title></circle>`);
  }
  parts.push(`<text x="${(W + m.l) / 2}" y="${H - 6}" text-anchor="middle">compressed ONNX size (log scale)</text>`);
  parts.push(`<text x="14" y="${(H - m.b) / 2}" transform="rotate(-90 14 ${(H - m.b) / 2})" text-anchor="middle">top-1 loss (points)</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="size versus loss">${parts.join('')}</svg>
<p class="legend"><span class="dot chosen"></span> chosen <span class="dot pareto"></span> Pareto front <span class="dot ok"></span> within budget <span class="dot over"></span> over budget <span class="dot orig"></span> original</p>`;
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;background:#fff}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;font-variant-numeric:tabular-nums}
.heat td{text-align:center;min-width:34px;font-size:12px}.heat th{font-size:11px;font-weight:600}.heat th.layer{text-align:left;white-space:pre-wrap;max-width:320px;overflow-wrap:anywhere}
.fam{color:#666;font-weight:400}.na{color:#aaa;background:#f6f6f6}.legend{font-size:12px;color:#444}.sw{display:inline-block;padding:0 6px;margin:0 2px}
svg text{font-size:11px;fill:#333}.grid{stroke:#eee}.front{fill:none;stroke:#2a6;stroke-width:1.5}.budget{stroke:#c33;stroke-dasharray:4 3}.budgetText{fill:#c33}
circle.ok{fill:#9cf}circle.over{fill:#ccc}circle.pareto{fill:#2a6}circle.chosen{fill:#f80;stroke:#000}circle.orig{fill:#fff;stroke:#333}
.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin:0 4px 0 12px}.dot.ok{background:#9cf}.dot.over{background:#ccc}.dot.pareto{background:#2a6}.dot.chosen{background:#f80}.dot.orig{border:1px solid #333}
.plan td:nth-child(n+3){text-align:right}`;

/** The HTML report (see the module comment). */
export function htmlReport(sf: SensitivityFile, cf: CandidatesFile): string {
  const chosen = cf.candidates.find((c) => c.id === cf.chosen);
  const budget = 'maxLoss' in cf.budget ? `top-1 loss ≤ ${pts(cf.budget.maxLoss)}` : `size ≤ ${bytesText(cf.budget.maxSize)}`;
  const summary = chosen
    ? `<p><b>Chosen ${esc(chosen.id)}</b>: ${esc(bytesText(chosen.bytes))} (${chosen.ratio.toFixed(2)}× smaller than ${esc(bytesText(cf.model.bytes))})${chosen.archiveBytes ? `, archive ${esc(bytesText(chosen.archiveBytes))} (${(cf.model.bytes / chosen.archiveBytes).toFixed(2)}×)` : ''}; top-1 ${pct(chosen.top1)} on the search data (loss ${pts(chosen.loss)})${chosen.holdout ? `, ${pct(chosen.holdout.top1)} on held-out data (loss ${pts(chosen.holdout.loss)}${chosen.holdout.ci ? `, 95 % CI ${pts(chosen.holdout.ci[0])} … ${pts(chosen.holdout.ci[1])}` : ''}, ${chosen.holdout.samples} samples)` : ''}.</p>${cf.selection ? `<p>${esc(cf.selection.note)}</p>` : ''}`
    : '<p><b>No candidate meets the budget.</b></p>';
  const plan = chosen
    ? `<table class="plan"><thead><tr><th>layer</th><th>technique</th><th>params</th><th>bytes before</th><th>bytes after</th><th>single-layer loss</th></tr></thead><tbody>${planRows(sf, chosen)
        .map((r) => `<tr><td>${esc(r.layer)}</td><td>${esc(r.label)}</td><td>${r.params}</td><td>${r.before}</td><td>${r.after ?? '—'}</td><td>${pts(r.loss)}</td></tr>`)
        .join('')}</tbody></table>`
    : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Compression report: ${esc(cf.model.file)}</title><style>${CSS}</style></head>
<body>
<h1>Compression report: ${esc(cf.model.file)}</h1>
<p>Baseline top-1 ${pct(cf.baseline.top1)} on ${esc(cf.dataset.source)} (${cf.dataset.samples} samples). Budget: ${esc(budget)}. Techniques: ${esc(cf.techniques.join(', '))}. ${cf.evaluations} evaluations, ${cf.seconds.toFixed(1)} s.</p>
${summary}
<h2>Size vs loss</h2>
${chart(cf)}
<h2>Chosen plan</h2>
${plan}
<h2>Sensitivity (one layer at a time)</h2>
${heatmap(sf)}
</body></html>
`;
}
