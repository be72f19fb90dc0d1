/**
 * The results panel (browser side). Renders what the host sends and posts user intents; computes
 * nothing but the table's sort and filter. State that must survive hide/show and reload (model,
 * sort, filter, focused cell, scroll) goes through `getState`/`setState`.
 */
import {
  MessageHandler,
  ReplyError,
  type FromWebviewMessage,
  type PanelView,
  type ReadyResponse,
  type RunState,
  type ToWebviewMessage,
} from '../src/protocol';
import { renderCandidates, renderChart, type TableState } from './candidates';
import { bytes, count, h, pct } from './format';
import { fitTextContrast } from './contrast';
import { renderHeatmap, renderLegend } from './heatmap';
import './panel.css';
import { button, progressRing, registerToolkit } from './toolkit';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

interface UiState {
  model: string;
  table: TableState;
  focus: { row: number; col: number };
  scrollY: number;
}

const api = acquireVsCodeApi();
const saved = api.getState() as Partial<UiState> | undefined;
const ui: UiState = {
  model: document.body.dataset['model'] ?? '',
  table: { sort: 'bytes', descending: false, filter: '', paretoOnly: false, feasibleOnly: false, ...(saved?.table ?? {}) },
  focus: saved?.focus ?? { row: 0, col: 0 },
  scrollY: saved?.scrollY ?? 0,
};
let view: PanelView | null = null;
let run: RunState = { running: false, op: null, message: '', fraction: null };
let status = '';

const handler = new MessageHandler<FromWebviewMessage, ToWebviewMessage>(
  (m) => api.postMessage(m),
  (body) => {
    const msg = body as ToWebviewMessage;
    switch (msg?.type) {
      case 'didChangeResults':
        view = msg.view;
        render();
        break;
      case 'didChangeRun':
        run = msg.run;
        render();
        break;
      default:
        break;
    }
    return undefined;
  },
);
window.addEventListener('message', (e: MessageEvent) => void handler.handleMessage(e.data));

function persist(): void {
  api.setState({ ...ui, scrollY: window.scrollY });
}
window.addEventListener('scroll', () => persist(), { passive: true });

function send(msg: FromWebviewMessage): void {
  handler.sendEvent(msg);
}

async function request(msg: FromWebviewMessage, what: string): Promise<void> {
  status = `${what}…`;
  render();
  try {
    const r = await handler.sendRequest(msg, 10 * 60_000);
    status = `${what}: ${r.type === 'ok' && r.detail ? r.detail : 'done'}.`;
  } catch (e) {
    status = `${what} failed: ${e instanceof ReplyError || e instanceof Error ? e.message : String(e)}`;
  }
  render();
}

const tooltip = h('div', { class: 'tooltip', role: 'tooltip', hidden: true });

function header(v: PanelView | null): HTMLElement {
  const title = h('h1', {}, v ? v.model.name : ui.model.split(/[\\/]/).pop() ?? 'Model');
  const facts = v
    ? h(
        'p',
        { class: 'facts' },
        `${bytes(v.model.bytes)} · ${count(v.model.compressibleParams)} compressible params`,
        v.baselineTop1 !== null ? ` · baseline top-1 ${pct(v.baselineTop1)}` : '',
        v.dataset ? ` · ${v.dataset}` : '',
        v.budget ? ` · budget: ${v.budget}` : '',
      )
    : h('p', { class: 'facts' }, 'No results yet.');
  const blocked = run.running || !!run.restricted;
  const actions = h(
    'div',
    { class: 'toolbar' },
    button('Analyze Sensitivity', () => send({ type: 'startRun', op: 'analyze' }), { disabled: blocked, appearance: 'secondary', action: 'analyze' }),
    button('Compress Model…', () => send({ type: 'startRun', op: 'compress' }), { disabled: blocked, appearance: 'secondary', action: 'compress' }),
    v?.report.html ? button('Open Report', () => send({ type: 'openReport', where: 'panel' }), { appearance: 'secondary', action: 'report' }) : null,
    v?.report.html ? button('Report in Browser', () => send({ type: 'openReport', where: 'browser' }), { appearance: 'secondary', action: 'report-browser' }) : null,
  );
  const restricted = run.restricted ? h('p', { class: 'restricted', role: 'note' }, run.restricted) : null;
  const runLine = run.running
    ? h('div', { class: 'run', role: 'status', 'aria-live': 'polite' }, progressRing(), h('span', {}, `${run.op === 'analyze' ? 'Analyzing' : 'Compressing'}: ${run.message}`), runBar(run.fraction), button('Cancel', () => send({ type: 'cancelRun' }), { appearance: 'secondary' }))
    : null;
  const statusLine = status ? h('div', { class: 'status', role: 'status', 'aria-live': 'polite' }, status) : null;
  return h('header', {}, title, facts, restricted, actions, runLine, statusLine);
}

function runBar(fraction: number | null): HTMLElement {
  const outer = h('div', { class: 'runbar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': fraction === null ? undefined : Math.round(fraction * 100) });
  const inner = h('div', { class: 'runbar-fill' });
  inner.style.setProperty('--w', `${Math.round((fraction ?? 0) * 100)}%`);
  outer.append(inner);
  return outer;
}

function heatmapSection(v: PanelView): HTMLElement {
  const measured = v.cells.length;
  const total = v.layers.length * v.levels.length - v.layers.reduce((s, l) => s + Object.keys(l.unsupported).length, 0);
  const sel = v.selection;
  return h(
    'section',
    { 'aria-labelledby': 'h-heatmap' },
    h('h2', { id: 'h-heatmap' }, 'Sensitivity', h('span', { class: 'sub' }, ` ${measured} of ${total} cells${v.analysisComplete ? '' : ' (in progress or partial)'}`)),
    renderLegend(v.lossScaleMax),
    renderHeatmap(
      v,
      ui.focus,
      {
        select: (layer, level) => send({ type: 'selectLevel', layer, level }),
        focus: (row, col) => {
          ui.focus = { row, col };
          persist();
        },
      },
      tooltip,
    ),
    h(
      'div',
      { class: 'selection-actions' },
      h('p', { class: 'selection-summary' }, sel.layers > 0 ? `Selected levels on ${sel.layers} layer(s): ${bytes(sel.bytes)} of ${bytes(sel.originalBytes)} (${(sel.originalBytes / Math.max(1, sel.bytes)).toFixed(2)}×), predicted loss ${pct(sel.predictedLoss)} (sum of the cells).` : 'Click a cell (or press Enter on it) to select that level for the layer.'),
      sel.layers > 0 ? button('Export this plan', () => void request({ type: 'exportSelection' }, 'Export this plan'), { disabled: !!run.restricted, title: 'Apply the selected levels to the model and save it', action: 'export-selection' }) : null,
    ),
  );
}

function candidatesSection(v: PanelView): HTMLElement {
  const hooks = {
    change: (s: TableState): void => {
      ui.table = s;
      persist();
      render();
    },
    exportCandidate: (id: string): void => void request({ type: 'exportCandidate', candidateId: id }, `Export ${id}`),
    exportDisabled: !!run.restricted,
    showPlan: (id: string): void => send({ type: 'showPlan', candidateId: id }),
    selectCandidate: (id: string): void => send({ type: 'selectCandidate', candidateId: id }),
  };
  // Typing in the filter redraws only the rows and the count, so the field keeps focus and caret.
  const refilter = (): void => {
    persist();
    const next = renderCandidates(v, ui.table, hooks, refilter);
    for (const sel of ['.table-scroll', '.count']) {
      const fresh = next.querySelector(sel);
      if (fresh) host.querySelector(sel)?.replaceWith(fresh);
    }
  };
  const host = renderCandidates(v, ui.table, hooks, refilter);
  return h(
    'section',
    { 'aria-labelledby': 'h-candidates' },
    h('h2', { id: 'h-candidates' }, 'Candidates', h('span', { class: 'sub' }, ` ${v.candidates.length}${v.chosen ? `, chosen ${v.chosen}` : ''}`)),
    h('div', { class: 'cand-grid' }, renderChart(v), host),
  );
}

function render(): void {
  const app = document.getElementById('app')!;
  const active = document.activeElement as HTMLElement | null;
  const focusCell = active?.closest('td.cell') ? { row: Number(active.dataset['row']), col: Number(active.dataset['col']) } : null;
  const focusSort = active?.dataset['sort'];
  const children: Node[] = [header(view)];
  if (view) {
    if (view.layers.length > 0) children.push(heatmapSection(view));
    if (view.candidates.length > 0) children.push(candidatesSection(view));
  } else {
    children.push(h('p', { class: 'empty' }, 'Run "Analyze Sensitivity" to measure how much accuracy each layer loses at each level, then "Compress Model…" to search for the smallest model within a budget.'));
  }
  app.replaceChildren(...children);
  fitTextContrast(app.querySelectorAll<HTMLElement>('table.heatmap td.cell'), app);
  if (focusCell) app.querySelector<HTMLElement>(`td.cell[data-row="${focusCell.row}"][data-col="${focusCell.col}"]`)?.focus({ preventScroll: true });
  else if (focusSort) app.querySelector<HTMLElement>(`button[data-sort="${focusSort}"]`)?.focus({ preventScroll: true });
}

// A theme change restyles the page (body class, CSS variables on <html>) without a message: refit the text colours.
let refit = 0;
const onTheme = (): void => {
  cancelAnimationFrame(refit);
  refit = requestAnimationFrame(() => fitTextContrast(document.querySelectorAll<HTMLElement>('table.heatmap td.cell'), document.getElementById('app')!));
};
new MutationObserver(onTheme).observe(document.body, { attributes: true, attributeFilter: ['class'] });
new MutationObserver(onTheme).observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });

async function start(): Promise<void> {
  registerToolkit();
  document.body.append(tooltip);
  persist();
  render();
  try {
    const r = await handler.sendRequest<ReadyResponse>({ type: 'ready' });
    view = r.view;
    run = r.run;
  } catch (e) {
    status = `Could not load results: ${e instanceof Error ? e.message : String(e)}`;
  }
  render();
  if (ui.scrollY > 0) window.scrollTo(0, ui.scrollY);
}

void start();
