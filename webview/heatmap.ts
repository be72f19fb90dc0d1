/**
 * The sensitivity heatmap: rows = compressible layers in graph order, columns = technique levels,
 * colour = loss on a theme-aware scale (editor background -> `--vscode-charts-red`), the value
 * printed in each cell so colour is never the only cue. Cells are a roving-tabindex grid: arrow
 * keys / Home / End move, Enter or Space selects that level for the layer (again: clears it).
 * A last column shows each layer's size, original vs selected.
 */
import type { PanelView, ViewCell } from '../src/protocol';
import { bytes, count, h, pct } from './format';

/** Callbacks of the heatmap. */
export interface HeatmapHooks {
  select(layer: string, level: string | null): void;
  /** Focus moved (kept in the view state so a re-render restores it). */
  focus(row: number, col: number): void;
}

/** Renders the heatmap; `focus` is the cell that gets tabindex 0. */
export function renderHeatmap(view: PanelView, focus: { row: number; col: number }, hooks: HeatmapHooks, tooltip: HTMLElement): HTMLElement {
  const nRows = view.layers.length;
  const nCols = view.levels.length;
  const at = new Map<string, ViewCell>();
  for (const c of view.cells) at.set(`${c.row},${c.col}`, c);
  const fr = Math.min(Math.max(focus.row, 0), Math.max(nRows - 1, 0));
  const fc = Math.min(Math.max(focus.col, 0), Math.max(nCols - 1, 0));
  const maxBytes = Math.max(1, ...view.layers.map((l) => l.bytes));

  // Header: technique groups, then level labels.
  const groups: Array<{ technique: string; span: number }> = [];
  for (const l of view.levels) {
    const last = groups[groups.length - 1];
    if (last && last.technique === l.technique) last.span++;
    else groups.push({ technique: l.technique, span: 1 });
  }
  const head = h(
    'thead',
    {},
    h('tr', {}, h('th', { scope: 'col', rowspan: 2, class: 'layer-head' }, 'Layer'), h('th', { scope: 'col', rowspan: 2, class: 'size-head' }, 'Size: original → selected'), ...groups.map((g) => h('th', { scope: 'colgroup', colspan: g.span, class: 'group' }, g.technique))),
    h('tr', {}, ...view.levels.map((l) => h('th', { scope: 'col', class: 'level', title: l.id }, l.label))),
  );

  const body = h('tbody', {});
  view.layers.forEach((layer, r) => {
    const tr = h('tr', { 'data-layer': layer.name });
    tr.append(
      h('th', { scope: 'row', class: 'layer' }, h('span', { class: 'name' }, layer.name), h('span', { class: 'meta' }, `${layer.op} · ${count(layer.params)} params`)),
    );
    const changed = layer.selectedBytes !== layer.bytes;
    tr.append(
      h(
        'td',
        { class: 'size' },
        bar('orig', layer.bytes / maxBytes, `original ${bytes(layer.bytes)}`),
        bar('chosen', layer.selectedBytes / maxBytes, `selected ${bytes(layer.selectedBytes)}`),
        h('span', { class: 'size-text' }, changed ? `${bytes(layer.bytes)} → ${bytes(layer.selectedBytes)}` : bytes(layer.bytes)),
      ),
    );
    view.levels.forEach((level, c) => {
      const cell = at.get(`${r},${c}`);
      const unsupported = layer.unsupported[level.id];
      const selected = layer.selected === level.id;
      const td = h('td', {
        role: 'gridcell',
        class: `cell${cell ? '' : unsupported ? ' na' : ' pending'}${selected ? ' selected' : ''}`,
        tabindex: r === fr && c === fc ? 0 : -1,
        'aria-selected': selected ? 'true' : 'false',
        'data-row': r,
        'data-col': c,
        'data-level': level.id,
      });
      if (cell) {
        const t = Math.max(0, Math.min(1, cell.loss / view.lossScaleMax));
        td.style.setProperty('--heat', `${Math.round(t * 100)}%`);
        if (t > 0.55) td.classList.add('strong');
        td.textContent = (cell.loss * 100).toFixed(cell.loss < 0.1 ? 1 : 0);
        td.setAttribute('aria-label', `${layer.name}, ${level.id}: loss ${pct(cell.loss)}${selected ? ', selected' : ''}`);
      } else {
        td.textContent = unsupported ? 'n/a' : '·';
        td.setAttribute('aria-label', `${layer.name}, ${level.id}: ${unsupported ? `not applicable (${unsupported})` : 'not measured yet'}`);
      }
      const show = (): void => showTooltip(tooltip, td, tooltipLines(view, r, c, cell, unsupported));
      td.addEventListener('mouseenter', show);
      td.addEventListener('focus', () => {
        show();
        hooks.focus(r, c);
      });
      td.addEventListener('mouseleave', () => hideTooltip(tooltip));
      td.addEventListener('blur', () => hideTooltip(tooltip));
      td.addEventListener('click', () => {
        if (cell) hooks.select(layer.name, selected ? null : level.id);
      });
      tr.append(td);
    });
    body.append(tr);
  });

  const table = h('table', { class: 'heatmap', role: 'grid', 'aria-label': 'Sensitivity: accuracy loss per layer and level', 'aria-rowcount': nRows, 'aria-colcount': nCols }, head, body);
  table.addEventListener('keydown', (e) => {
    const td = (e.target as HTMLElement).closest('td.cell') as HTMLElement | null;
    if (!td) return;
    let r = Number(td.dataset['row']);
    let c = Number(td.dataset['col']);
    switch (e.key) {
      case 'ArrowRight': c = Math.min(nCols - 1, c + 1); break;
      case 'ArrowLeft': c = Math.max(0, c - 1); break;
      case 'ArrowDown': r = Math.min(nRows - 1, r + 1); break;
      case 'ArrowUp': r = Math.max(0, r - 1); break;
      case 'Home': c = 0; if (e.ctrlKey) r = 0; break;
      case 'End': c = nCols - 1; if (e.ctrlKey) r = nRows - 1; break;
      case 'Enter':
      case ' ':
        td.click();
        e.preventDefault();
        return;
      default:
        return;
    }
    e.preventDefault();
    const next = table.querySelector<HTMLElement>(`td.cell[data-row="${r}"][data-col="${c}"]`);
    if (next) {
      td.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  });
  return h('div', { class: 'heatmap-wrap' }, table);
}

function bar(kind: string, fraction: number, label: string): HTMLElement {
  const b = h('div', { class: `bar ${kind}`, title: label, role: 'img', 'aria-label': label });
  b.style.setProperty('--w', `${Math.max(0.5, fraction * 100).toFixed(1)}%`);
  return b;
}

function tooltipLines(view: PanelView, r: number, c: number, cell: ViewCell | undefined, unsupported: string | undefined): string[] {
  const layer = view.layers[r]!;
  const level = view.levels[c]!;
  const lines = [`${layer.name}`, `${layer.op} (${layer.node}) · shape [${layer.shape.join('×')}] · ${count(layer.params)} params · ${bytes(layer.bytes)}`, `${level.technique} ${level.label} (${level.id})`];
  if (cell) {
    const half = (cell.hi - cell.lo) / 2;
    lines.push(`loss ${pct(cell.loss)} ± ${pct(half)} (${Math.round(view.confidence * 100)} % CI ${pct(cell.lo)} … ${pct(cell.hi)})`);
    lines.push(`${count(cell.bits)} bits · ONNX ${bytes(cell.onnxBytes)}${cell.top1 !== null ? ` · top-1 ${pct(cell.top1)}` : ''}`);
    lines.push(`${count(cell.samples)} samples${cell.stoppedEarly ? ' (stopped early: clearly above the budget)' : ''}`);
    lines.push(layer.selected === level.id ? 'selected · click to clear' : 'click to select this level for the layer');
  } else lines.push(unsupported ? `not applicable: ${unsupported}` : 'not measured yet');
  return lines;
}

function showTooltip(tip: HTMLElement, anchor: HTMLElement, lines: string[]): void {
  tip.replaceChildren(...lines.map((l, i) => h('div', { class: i === 0 ? 'tip-title' : '' }, l)));
  tip.hidden = false;
  const a = anchor.getBoundingClientRect();
  const t = tip.getBoundingClientRect();
  const left = Math.min(window.innerWidth - t.width - 8, Math.max(8, a.left + a.width / 2 - t.width / 2));
  const top = a.bottom + 6 + t.height > window.innerHeight ? a.top - t.height - 6 : a.bottom + 6;
  tip.style.left = `${left + window.scrollX}px`;
  tip.style.top = `${top + window.scrollY}px`;
}

function hideTooltip(tip: HTMLElement): void {
  tip.hidden = true;
}

/** The colour legend: the scale from 0 to `max` with three ticks. */
export function renderLegend(max: number): HTMLElement {
  const ramp = h('div', { class: 'ramp', role: 'img', 'aria-label': `colour scale: accuracy loss from 0 to ${pct(max)}` });
  return h(
    'div',
    { class: 'legend' },
    h('span', {}, 'Accuracy loss'),
    h('span', { class: 'tick' }, '0'),
    ramp,
    h('span', { class: 'tick' }, pct(max)),
    h('span', { class: 'hint' }, 'Cell values in percentage points · "·" not measured yet · n/a not applicable'),
  );
}
