/**
 * The typed messages between the extension host and the results panel (webview), and the one
 * request/reply helper both sides (and the engine worker) use. Imported by the host and by
 * `webview/`; it imports neither `vscode` nor the DOM, so it runs in Node, a worker and a browser.
 *
 * Names follow gitlens: `XxxRequest` expects a reply, `XxxCommand` is fire-and-forget,
 * `DidChangeXxxNotification` tells the other side that state changed.
 *
 * The webview renders and never computes: the host sends the aggregated {@link PanelView}
 * (heatmap cells, layer rows, candidates) and the webview posts user intents. Everything that
 * crosses the boundary is plain JSON (no bigint, no class instances).
 */

// ---------------------------------------------------------------------------------------------
// The view the host computes for the panel.

/** One heatmap column: a technique at one level. */
export interface ViewLevel {
  /** Stable id from `sensitivity.json` (`share:k=4`, `quant:4`, ...). */
  id: string;
  /** Technique family (column group). */
  technique: string;
  /** Short header label. */
  label: string;
}

/** One heatmap row: a compressible layer, in graph order. */
export interface ViewLayer {
  /** Weight initializer name. */
  name: string;
  op: string;
  node: string;
  shape: number[];
  params: number;
  /** Bytes in the original model. */
  bytes: number;
  /** Level chosen for this layer (by the user's click, else the chosen candidate's plan); null = none. */
  selected: string | null;
  /** Bytes of the selected level's encoding (`bytes` when nothing is selected or it was not measured). */
  selectedBytes: number;
  /** Levels that do not apply to this layer (level id -> reason); no cell is measured for them. */
  unsupported: Record<string, string>;
}

/** One measured heatmap cell. `row`/`col` index {@link PanelView.layers} / {@link PanelView.levels}. */
export interface ViewCell {
  row: number;
  col: number;
  /** Loss (fraction) and its confidence interval. */
  loss: number;
  lo: number;
  hi: number;
  /** Exact storage bits and ONNX bytes at this level. */
  bits: number;
  onnxBytes: number;
  top1: number | null;
  samples: number;
  stoppedEarly: boolean;
}

/** One row of the candidate table / point of the chart. */
export interface ViewCandidate {
  id: string;
  bytes: number;
  ratio: number;
  top1: number | null;
  loss: number;
  /** Held-out loss when confirmed, else null. */
  holdoutLoss: number | null;
  evaluations: number;
  pareto: boolean;
  feasible: boolean;
  /** A one-line summary of the plan (`conv1: quant 4b, fc1: share k=16, ...`). */
  summary: string;
}

/** Everything the panel shows; recomputed by the host whenever results or selections change. */
export interface PanelView {
  /** Model file name (display only) and its results folder (display only). */
  model: { name: string; bytes: number; compressibleParams: number };
  resultsDir: string;
  /** Data the results were measured on, e.g. `fmnist.dataset.json, 200 samples, labels`. */
  dataset: string | null;
  baselineTop1: number | null;
  /** Confidence of the intervals (0.95). */
  confidence: number;
  levels: ViewLevel[];
  layers: ViewLayer[];
  cells: ViewCell[];
  /** Upper end of the colour scale (the largest measured loss, at least 0.01). */
  lossScaleMax: number;
  /** True when `sensitivity.json` says the analysis finished. */
  analysisComplete: boolean;
  candidates: ViewCandidate[];
  chosen: string | null;
  /** Budget as text, e.g. `max loss 1.0 %`; null before a compress run. */
  budget: string | null;
  /** The budget's value (for the chart's budget line). */
  budgetValue: { maxLoss: number } | { maxSize: number } | null;
  /** The user's own selection: size and the sum of the selected cells' losses (a rough prediction). */
  selection: { bytes: number; originalBytes: number; predictedLoss: number; layers: number };
  /** Outputs written by a compress run (relative to the results folder). */
  report: { html: boolean; markdown: boolean };
}

/** State of a run as the panel shows it. */
export interface RunState {
  running: boolean;
  /** `analyze` or `compress`. */
  op: 'analyze' | 'compress' | null;
  /** Current phase and message. */
  message: string;
  /** Progress, 0…1, or null when unknown. */
  fraction: number | null;
  /** Why runs and exports are disabled (an untrusted workspace), else null. */
  restricted?: string | null;
}

// ---------------------------------------------------------------------------------------------
// Host -> webview.

/** Reply to {@link ReadyRequest}: the full view and run state. */
export interface ReadyResponse {
  type: 'readyResponse';
  view: PanelView | null;
  run: RunState;
}
/** The results (or the selection) changed. */
export interface DidChangeResultsNotification {
  type: 'didChangeResults';
  view: PanelView;
}
/** A run started, progressed or ended. */
export interface DidChangeRunNotification {
  type: 'didChangeRun';
  run: RunState;
}
/** Generic acknowledgement of a request that has no data to return. */
export interface OkResponse {
  type: 'ok';
  /** What happened, for the status line (e.g. `saved lenet5.c2.onnx`, `cancelled`). */
  detail?: string;
}

/** Every message the host posts to the webview. */
export type ToWebviewMessage = ReadyResponse | DidChangeResultsNotification | DidChangeRunNotification | OkResponse;

// ---------------------------------------------------------------------------------------------
// Webview -> host.

/** The webview loaded (or reloaded) and wants the current view. Reply: {@link ReadyResponse}. */
export interface ReadyRequest {
  type: 'ready';
}
/** Select `level` for `layer` (null clears the selection for the layer). */
export interface SelectLevelCommand {
  type: 'selectLevel';
  layer: string;
  level: string | null;
}
/** Select every layer's level from a candidate's plan. */
export interface SelectCandidateCommand {
  type: 'selectCandidate';
  candidateId: string;
}
/** Export a candidate's model. Reply: {@link OkResponse} (or an error reply). */
export interface ExportCandidateRequest {
  type: 'exportCandidate';
  candidateId: string;
}
/** Export the heatmap selection (each layer at its selected level) as a model. Reply: {@link OkResponse}. */
export interface ExportSelectionRequest {
  type: 'exportSelection';
}
/** Open a candidate's plan as a JSON document. */
export interface ShowPlanCommand {
  type: 'showPlan';
  candidateId: string;
}
/** Start `Analyze Sensitivity` or `Compress Model…` for the panel's model. */
export interface StartRunCommand {
  type: 'startRun';
  op: 'analyze' | 'compress';
}
/** Cancel the running analysis or search. */
export interface CancelRunCommand {
  type: 'cancelRun';
}
/** Open `report.html` in a panel or the browser. */
export interface OpenReportCommand {
  type: 'openReport';
  where: 'panel' | 'browser';
}

/** Every message the webview posts to the host. The host validates each with {@link validateFromWebviewMessage}. */
export type FromWebviewMessage =
  | ReadyRequest
  | SelectLevelCommand
  | SelectCandidateCommand
  | ExportCandidateRequest
  | ExportSelectionRequest
  | ShowPlanCommand
  | StartRunCommand
  | CancelRunCommand
  | OpenReportCommand;

/** Longest id or name accepted from the webview (layer names in real models stay far below this). */
const MAX_STRING = 4096;

/** Thrown by the validators; the host answers with an error reply and logs it. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function str(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STRING) {
    throw new ProtocolError(`'${key}' must be a non-empty string of at most ${MAX_STRING} characters, got ${describe(v)}.`);
  }
  return v;
}

function describe(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'undefined' : (JSON.stringify(v) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function keys(o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ProtocolError(`unexpected key '${k.slice(0, 80)}' in a '${String(o['type'])}' message.`);
  }
}

/**
 * Checks that `body` (untrusted: it comes from the webview) is a well-formed
 * {@link FromWebviewMessage}: known `type`, exactly its keys, values of the right kind.
 * @returns the same object, typed.
 * @throws ProtocolError naming the bad key and value.
 */
export function validateFromWebviewMessage(body: unknown): FromWebviewMessage {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ProtocolError(`expected a message object, got ${describe(body)}.`);
  const o = body as Record<string, unknown>;
  const type = o['type'] as FromWebviewMessage['type'];
  switch (type) {
    case 'ready':
    case 'cancelRun':
    case 'exportSelection':
      keys(o, ['type']);
      return { type };
    case 'selectLevel': {
      keys(o, ['type', 'layer', 'level']);
      const level = o['level'] === null ? null : str(o, 'level');
      return { type, layer: str(o, 'layer'), level };
    }
    case 'selectCandidate':
    case 'exportCandidate':
    case 'showPlan':
      keys(o, ['type', 'candidateId']);
      return { type, candidateId: str(o, 'candidateId') };
    case 'startRun': {
      keys(o, ['type', 'op']);
      const op = o['op'];
      if (op !== 'analyze' && op !== 'compress') throw new ProtocolError(`'op' must be "analyze" or "compress", got ${describe(op)}.`);
      return { type, op };
    }
    case 'openReport': {
      keys(o, ['type', 'where']);
      const where = o['where'];
      if (where !== 'panel' && where !== 'browser') throw new ProtocolError(`'where' must be "panel" or "browser", got ${describe(where)}.`);
      return { type, where };
    }
    default: {
      const never: never = type;
      throw new ProtocolError(`unknown message type ${describe(never)}.`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request/reply over any postMessage channel (webview, worker thread).

/** A serialized error in a reply: the engine's stable code when there is one. */
export interface ErrorReply {
  code: string;
  message: string;
}

/**
 * What travels on the wire. A request or event has a `messageId`; a reply also has `inReplyTo`
 * (the request's id) and either a `body` or an `error`.
 */
export interface Envelope<T> {
  messageId: number;
  inReplyTo?: number;
  body?: T;
  error?: ErrorReply;
}

/** Options of {@link MessageHandler}. */
export interface MessageHandlerOptions {
  /** Milliseconds before an unanswered request rejects. Default 30 000. */
  timeoutMs: number;
}

/** Rejection reason of a request that got an error reply. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * Request/reply and events between two sides of a `postMessage` channel.
 * - `sendEvent(body)` posts without waiting;
 * - `sendRequest(body)` posts and resolves with the other side's reply, rejects with a
 *   {@link ReplyError} on an error reply, on timeout, or when the handler is disposed;
 * - `handleMessage(raw)` dispatches an incoming envelope: replies settle pending requests; other
 *   messages go to `onMessage`, whose return value (if any) is sent back as the reply, and whose
 *   throw is sent back as an error reply.
 *
 * `TTo` is what this side sends, `TFrom` what it receives. The envelope is checked here; the body
 * is checked by `onMessage` (the host runs {@link validateFromWebviewMessage}).
 */
export class MessageHandler<TTo, TFrom> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: TFrom) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly options: MessageHandlerOptions;

  constructor(
    private readonly post: (message: Envelope<TTo>) => void,
    private readonly onMessage: (body: unknown, messageId: number) => Promise<TTo | undefined> | TTo | undefined,
    options: Partial<MessageHandlerOptions> = {},
  ) {
    this.options = { timeoutMs: 30_000, ...options };
  }

  /** Posts `body` as an event (no reply expected). */
  sendEvent(body: TTo): void {
    this.post({ messageId: this.nextId++, body });
  }

  /** Posts `body` and waits for the reply. */
  sendRequest<R extends TFrom = TFrom>(body: TTo, timeoutMs = this.options.timeoutMs): Promise<R> {
    const messageId = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(messageId);
        reject(new ReplyError('E_TIMEOUT', `No reply within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.pending.set(messageId, { resolve: resolve as (v: TFrom) => void, reject, timer });
      try {
        this.post({ messageId, body });
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(messageId);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  /** Dispatches one raw message from the other side. Malformed envelopes are dropped. */
  async handleMessage(raw: unknown): Promise<void> {
    if (typeof raw !== 'object' || raw === null) return;
    const env = raw as Envelope<unknown>;
    if (typeof env.messageId !== 'number') return;
    if (typeof env.inReplyTo === 'number') {
      const p = this.pending.get(env.inReplyTo);
      if (!p) return;
      this.pending.delete(env.inReplyTo);
      clearTimeout(p.timer);
      if (env.error) p.reject(new ReplyError(String(env.error.code), String(env.error.message)));
      else p.resolve(env.body as TFrom);
      return;
    }
    try {
      const reply = await this.onMessage(env.body, env.messageId);
      if (reply !== undefined) this.post({ messageId: this.nextId++, inReplyTo: env.messageId, body: reply });
    } catch (e) {
      const code = e instanceof Error && typeof (e as { code?: unknown }).code === 'string' ? (e as unknown as { code: string }).code : e instanceof ProtocolError ? 'E_PROTOCOL' : 'E_INTERNAL';
      this.post({ messageId: this.nextId++, inReplyTo: env.messageId, error: { code, message: e instanceof Error ? e.message : String(e) } });
    }
  }

  /** Rejects every pending request (the channel is gone). */
  dispose(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ReplyError('E_DISPOSED', `Channel closed before request ${id} was answered.`));
    }
    this.pending.clear();
  }
}
