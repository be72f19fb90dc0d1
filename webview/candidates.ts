/**
 * The candidate table (sortable by header buttons, filterable by text / Pareto / budget) and the
 * size-vs-loss chart with the Pareto front, the budget and the chosen candidate marked.
 */
import type { PanelView, ViewCandidate } from '../src/protocol';
import { bytes, h, pct, svg } from './format';
import { button, checkbox, textField } from './toolkit';

/** Sortable columns. */
export type SortKey = 'id' | 'bytes' | 'ratio' | 'top1' | 'loss' | 'evaluations';

/** Table state kept in the webview's state. */
export interface TableState {
  sort: SortKey;
  descending: boolean;
  filter: string;
  paretoOnly: boolean;
  feasibleOnly: boolean;
}

/** Callbacks of the table. */
export interface TableHooks {
  change(state: TableState): void;
  exportCandidate(id: string): void;
  showPlan(id: string): void;
  selectCandidate(id: string): void;
  /** Export buttons are disabled (untrusted workspace). */
  exportDisabled?: boolean;
}

const COLUMNS: Array<{ key: SortKey | null; label: string; numeric: boolean }> = [
  { key: 'id', label: 'Candidate', numeric: false },
  { key: 'bytes', label: 'Size', numeric: true },
  { key: 'ratio', label: 'Ratio', numeric: true },
  { key: 'top1', label: 'Top-1', numeric: true },
  { key: 'loss', label: 'Loss', numeric: true },
  { key: 'evaluations', label: 'Evaluations', numeric: true },
  { key: null, label: 'Actions', numeric: false },
  { key: null, label: 'Plan', numeric: false },
];

function value(c: ViewCandidate, k: SortKey): number | string {
  if (k === 'id') return Number(c.id.replace(/\D/g, '')) || c.id;
  return c[k] ?? -Infinity;
}

/** Candidates after the filters, in the table's order. */
export function visibleCandidates(view: PanelView, s: TableState): ViewCandidate[] {
  const q = s.filter.trim().toLowerCase();
  const rows = view.candidates.filter((c) => (!s.paretoOnly || c.pareto) && (!s.feasibleOnly || c.feasible) && (!q || c.id.toLowerCase().includes(q) || c.summary.toLowerCase().includes(q)));
  rows.sort((a, b) => {
    const x = value(a, s.sort);
    const y = value(b, s.sort);
    const d = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return s.descending ? -d : d;
  });
  return rows;
}

/** Renders the filters and the table. */
export function renderCandidates(view: PanelView, s: TableState, hooks: TableHooks, refilter: () => void): HTMLElement {
  const rows = visibleCandidates(view, s);
  const headers = COLUMNS.map((col) => {
    if (!col.key) return h('th', { scope: 'col' }, col.label);
    const key = col.key;
    const active = s.sort === key;
    const b = h('button', { class: 'sort', type: 'button', 'data-sort': key }, col.label, active ? (s.descending ? ' ▼' : ' ▲') : '');
    b.addEventListener('click', () => hooks.change({ ...s, sort: key, descending: active ? !s.descending : false }));
    return h('th', { scope: 'col', class: col.numeric ? 'num' : '', 'aria-sort': active ? (s.descending ? 'descending' : 'ascending') : 'none' }, b);
  });
  const body = h('tbody', {});
  for (const c of rows) {
    const chosen = c.id === view.chosen;
    body.append(
      h(
        'tr',
        { class: `${chosen ? 'chosen' : ''}${c.feasible ? '' : ' infeasible'}`, 'data-candidate': c.id },
        h('th', { scope: 'row' }, c.id, chosen ? h('span', { class: 'tag' }, 'chosen') : null, c.pareto ? h('span', { class: 'tag pareto' }, 'Pareto') : null, c.feasible ? null : h('span', { class: 'tag over' }, 'over budget')),
        h('td', { class: 'num' }, bytes(c.bytes)),
        h('td', { class: 'num' }, `${c.ratio.toFixed(2)}×`),
        h('td', { class: 'num' }, c.top1 === null ? '—' : pct(c.top1)),
        h('td', { class: 'num' }, pct(c.loss), c.holdoutLoss === null ? '' : h('span', { class: 'holdout', title: 'on held-out data' }, ` (held-out ${pct(c.holdoutLoss)})`)),
        h('td', { class: 'num' }, String(c.evaluations)),
        h(
          'td',
          { class: 'actions' },
          button('Export', () => hooks.exportCandidate(c.id), { title: `Export ${c.id} as an ONNX model`, action: 'export', disabled: hooks.exportDisabled === true }),
          button('Show Plan', () => hooks.showPlan(c.id), { appearance: 'secondary', title: `Show the plan of ${c.id}`, action: 'plan' }),
          button('Select', () => hooks.selectCandidate(c.id), { appearance: 'secondary', title: `Show the levels of ${c.id} in the heatmap`, action: 'select' }),
        ),
        h('td', { class: 'plan', title: c.summary }, c.summary),
      ),
    );
  }
  const filters = h(
    'div',
    { class: 'filters' },
    textField('', s.filter, (v) => {
      s.filter = v;
      refilter();
    }, 'Filter by id or layer/technique'),
    checkbox('Pareto only', s.paretoOnly, (v) => hooks.change({ ...s, paretoOnly: v })),
    checkbox('Within budget only', s.feasibleOnly, (v) => hooks.change({ ...s, feasibleOnly: v })),
    h('span', { class: 'count' }, `${rows.length} of ${view.candidates.length}`),
  );
  const table = h('table', { class: 'candidates', 'aria-label': 'Candidates' }, h('thead', {}, h('tr', {}, ...headers)), body);
  return h('div', { class: 'candidates-wrap' }, filters, h('div', { class: 'table-scroll' }, table));
}

/**
 * Size (x, bytes) vs loss (y) of every candidate; the Pareto front as a step line; the chosen
 * candidate ringed; the budget dashed; the user's own selection as a diamond.
 */
export function renderChart(view: PanelView): HTMLElement {
  const W = 560;
  const H = 280;
  const m = { l: 56, r: 16, t: 12, b: 40 };
  const pts = view.candidates;
  // Log size axis: candidates span one to two orders of magnitude below the original and bunch up on a linear one.
  const sizes = [view.model.bytes, ...pts.map((p) => p.bytes), view.selection.layers > 0 ? view.selection.bytes : view.model.bytes, view.budgetValue && 'maxSize' in view.budgetValue ? view.budgetValue.maxSize : view.model.bytes].filter((b) => b > 0);
  const lo = Math.log10(Math.min(...sizes) / 1.25);
  const hi = Math.log10(Math.max(...sizes) * 1.15);
  const maxLoss = Math.max(0.005, ...pts.map((p) => p.loss), view.budgetValue && 'maxLoss' in view.budgetValue ? view.budgetValue.maxLoss : 0, view.selection.predictedLoss) * 1.1;
  const minLoss = Math.min(0, ...pts.map((p) => p.loss), view.selection.layers > 0 ? view.selection.predictedLoss : 0);
  const x = (b: number): number => m.l + ((Math.log10(Math.max(b, 1)) - lo) / (hi - lo)) * (W - m.l - m.r);
  const y = (l: number): number => m.t + (1 - (l - minLoss) / (maxLoss - minLoss)) * (H - m.t - m.b);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'data-x-scale': 'log', 'aria-label': `Size (log scale) versus accuracy loss of ${pts.length} candidates; Pareto front drawn as a line${view.chosen ? `; chosen ${view.chosen}` : ''}` });
  // Axes and ticks.
  root.append(svg('line', { x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b, class: 'axis' }), svg('line', { x1: m.l, y1: m.t, x2: m.l, y2: H - m.b, class: 'axis' }));
  for (const bx of logTicks(lo, hi)) {
    root.append(svg('text', { x: x(bx), y: H - m.b + 16, class: 'tick', 'text-anchor': 'middle' }, bytes(Math.round(bx))));
    root.append(svg('line', { x1: x(bx), y1: m.t, x2: x(bx), y2: H - m.b, class: 'grid' }));
  }
  for (let i = 0; i <= 4; i++) {
    const ly = minLoss + ((maxLoss - minLoss) * i) / 4;
    root.append(svg('text', { x: m.l - 6, y: y(ly) + 4, class: 'tick', 'text-anchor': 'end' }, pct(ly)));
    root.append(svg('line', { x1: m.l, y1: y(ly), x2: W - m.r, y2: y(ly), class: 'grid' }));
  }
  root.append(svg('text', { x: (W + m.l) / 2, y: H - 6, class: 'label', 'text-anchor': 'middle' }, 'model size (log scale)'), svg('text', { x: 12, y: (H - m.b) / 2, class: 'label', transform: `rotate(-90 12 ${(H - m.b) / 2})`, 'text-anchor': 'middle' }, 'accuracy loss'));
  // Budget.
  const bv = view.budgetValue;
  if (bv && 'maxLoss' in bv) root.append(svg('line', { x1: m.l, x2: W - m.r, y1: y(bv.maxLoss), y2: y(bv.maxLoss), class: 'budget' }), svg('text', { x: W - m.r - 4, y: y(bv.maxLoss) - 4, class: 'tick', 'text-anchor': 'end' }, `budget ${pct(bv.maxLoss)}`));
  if (bv && 'maxSize' in bv) root.append(svg('line', { x1: x(bv.maxSize), x2: x(bv.maxSize), y1: m.t, y2: H - m.b, class: 'budget' }), svg('text', { x: x(bv.maxSize) + 4, y: m.t + 10, class: 'tick' }, `budget ${bytes(bv.maxSize)}`));
  // Original model (0 loss, full size).
  root.append(svg('rect', { x: x(view.model.bytes) - 4, y: y(0) - 4, width: 8, height: 8, class: 'original' }, svg('title', {}, `original: ${bytes(view.model.bytes)}`)));
  // Pareto front.
  const front = pts.filter((p) => p.pareto).sort((a, b) => a.bytes - b.bytes);
  if (front.length > 1) {
    let d = `M ${x(front[0]!.bytes)} ${y(front[0]!.loss)}`;
    for (let i = 1; i < front.length; i++) d += ` H ${x(front[i]!.bytes)} V ${y(front[i]!.loss)}`;
    root.append(svg('path', { d, class: 'front' }));
  }
  for (const p of pts) {
    const c = svg('circle', { cx: x(p.bytes), cy: y(p.loss), r: p.pareto ? 4.5 : 3.5, class: `pt${p.pareto ? ' pareto' : ''}${p.feasible ? '' : ' over'}` });
    c.append(svg('title', {}, `${p.id}: ${bytes(p.bytes)} (${p.ratio.toFixed(2)}×), loss ${pct(p.loss)}${p.pareto ? ', Pareto' : ''}`));
    root.append(c);
  }
  const chosen = pts.find((p) => p.id === view.chosen);
  if (chosen) root.append(svg('circle', { cx: x(chosen.bytes), cy: y(chosen.loss), r: 9, class: 'chosen-ring' }), svg('text', { x: x(chosen.bytes) + 12, y: y(chosen.loss) - 8, class: 'chosen-label' }, `${chosen.id} (chosen)`));
  if (view.selection.layers > 0) {
    const sx = x(view.selection.bytes);
    const sy = y(view.selection.predictedLoss);
    root.append(svg('path', { d: `M ${sx} ${sy - 6} L ${sx + 6} ${sy} L ${sx} ${sy + 6} L ${sx - 6} ${sy} Z`, class: 'selection' }, svg('title', {}, `your selection: ${bytes(view.selection.bytes)}, predicted loss ${pct(view.selection.predictedLoss)}`)));
  }
  const legend = h('div', { class: 'chart-legend' }, h('span', { class: 'k pareto' }, '● Pareto'), h('span', { class: 'k' }, '● other'), h('span', { class: 'k chosen' }, '◯ chosen'), h('span', { class: 'k sel' }, '◆ your selection (predicted)'), h('span', { class: 'k orig' }, '■ original'));
  return h('div', { class: 'chart-wrap' }, root as unknown as HTMLElement, legend);
}

/**
 * Tick values between 10^lo and 10^hi: 1, 2, 5 × 10^k, thinned to at most 6; when the range is
 * narrower than that gives 3 ticks, 4 evenly spaced (in log) values instead.
 */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) for (const f of [1, 2, 5]) {
    const v = f * 10 ** k;
    const l = Math.log10(v);
    if (l >= lo && l <= hi) out.push(v);
  }
  if (out.length < 3) return [0.1, 0.37, 0.63, 0.9].map((t) => 10 ** (lo + t * (hi - lo)));
  const step = Math.ceil(out.length / 6);
  return out.filter((_, i) => i % step === 0);
}
