/**
 * Weight variants of a large model evaluated from disk (issue #8). Feeding a variant's weights to
 * onnxruntime as inputs needs them all in memory at once, and onnxruntime's run allocates about as
 * much again; on a model of several GiB that is three times its weights. Instead, each weight is
 * written into a temporary external-data file as soon as it is made (and can then be let go), the
 * weights the variant leaves out are copied there from the original, and a session is created on a
 * small graph whose initializers point into that file: onnxruntime holds the weights once, as for
 * the original model.
 *
 * {@link DiskVariantLayout} (once per evaluator) decodes the graph and gives every variable weight
 * and every external tensor a 64 KiB-aligned slot of the data file; {@link DiskVariantLayout.open}
 * starts one variant's file, under a temp name in a folder of the caller's, which
 * {@link DiskVariant.dispose} removes (call it in a `finally`: also on error and cancellation).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { fail, throwIfAborted } from '../errors.js';
import { decodeModel, encodeModel } from '../onnx/codec.js';
import { rawByteLength } from '../onnx/dtype.js';
import { readFully } from '../onnx/externalData.js';
import { externalInfo, resolveExternalPath } from '../onnx/io.js';
import { StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema, type ModelProto, type TensorProto } from '../onnx/proto.js';
import { dimsOf, elementCount, isExternal, rawBytes, tensorToFloat32 } from '../onnx/tensor.js';
import { forEachTensor } from '../onnx/walk.js';
import { ioError, removeStaleTemps, tempPathFor } from '../util/atomicWrite.js';

const FLOAT = 1;

/** Alignment of slots in the data file (a page on every platform, so onnxruntime may map them). */
const SLOT_ALIGN = 2 ** 16;
/** Blocks in which original tensors are copied from their data file. */
const COPY_BLOCK = 16 * 2 ** 20;

/** Where a slot's bytes come from when the variant does not set them. */
type Original = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'file'; file: string; offset: number; location: string };

interface Slot {
  readonly tensor: TensorProto;
  readonly offset: number;
  readonly length: number;
  /** Elements, for a variable weight (float32). */
  readonly count: number | undefined;
  readonly original: Original;
}

/**
 * The data-file layout of variants of one graph (see the module comment): `graphBytes` is the graph
 * to run with the float32 weights `variable` as graph inputs (`weightsAsInputs.ts`, a split's
 * suffix), `modelBytes` the original model they come from (inline originals are read as views of
 * it, not copied; external ones, here and in the graph, are resolved against `externalDataFolder`).
 */
export class DiskVariantLayout {
  private readonly model: ModelProto;
  private readonly slots = new Map<TensorProto, Slot>();
  private readonly byName = new Map<string, Slot>();
  /** Bytes of the data file. */
  readonly dataBytes: number;

  constructor(graphBytes: Uint8Array, modelBytes: Uint8Array, variable: readonly string[], externalDataFolder: string | undefined) {
    this.model = decodeModel(graphBytes);
    const g = this.model.graph!;
    const source = path.join(externalDataFolder ?? '.', '(model)');
    const fromFile = (t: TensorProto): Original & { length: number } => {
      if (externalDataFolder === undefined) fail('E_BAD_ARGUMENT', `Tensor '${t.name}' is stored as external data; give the model's folder (externalDataFolder).`);
      const info = externalInfo(t, source);
      const length = info.length ?? rawByteLength(t.dataType, elementCount(dimsOf(t)));
      return { kind: 'file', file: resolveExternalPath(source, info.location, t.name), offset: info.offset, location: info.location, length };
    };
    let end = 0;
    const add = (t: TensorProto, original: Original & { length: number }, count: number | undefined): Slot => {
      const offset = Math.ceil(end / SLOT_ALIGN) * SLOT_ALIGN;
      end = offset + original.length;
      const slot: Slot = { tensor: t, offset, length: original.length, count, original };
      this.slots.set(t, slot);
      return slot;
    };
    // The variable weights become initializers again, with their data in the file.
    const originals = new Map(decodeModel(modelBytes).graph!.initializer.map((t) => [t.name, t]));
    const wanted = new Set(variable);
    g.input = g.input.filter((i) => !wanted.has(i.name));
    for (const n of variable) {
      const o = originals.get(n);
      if (!o || o.dataType !== FLOAT) fail('E_BAD_ARGUMENT', `'${n}' is not a float32 initializer of the model.`);
      const t = create(TensorProtoSchema, { name: n, dataType: FLOAT, dims: o.dims, dataLocation: TensorProto_DataLocation.EXTERNAL });
      g.initializer.push(t);
      const count = elementCount(dimsOf(o));
      // An inline original is a view of `modelBytes` (float_data, rare for large weights, a copy).
      const original = isExternal(o) ? fromFile(o) : { kind: 'bytes' as const, bytes: rawBytes(o) ?? new Uint8Array(tensorToFloat32(o).buffer), length: count * 4 };
      if (original.length !== count * 4) fail('E_TENSOR_DATA', `Weight '${n}' has ${original.length} bytes of data, its shape [${dimsOf(o).join(',')}] needs ${count * 4}.`);
      this.byName.set(n, add(t, original, count));
    }
    // The graph's other external tensors are copied into the file too: it is the only data folder.
    forEachTensor(this.model, (t) => {
      if (this.slots.has(t) || !isExternal(t)) return;
      add(t, fromFile(t), undefined);
    });
    this.dataBytes = end;
  }

  /**
   * Starts a variant: its data file is created in `folder` under a temp name (temp files of dead
   * processes left there are removed first). Dispose it when done.
   * @throws E_IO when the file cannot be created.
   */
  open(folder: string): DiskVariant {
    const target = path.join(path.resolve(folder), 'variant.data');
    removeStaleTemps(target);
    const file = tempPathFor(target);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (e) {
      ioError(e, file, 'create');
    }
    return new DiskVariant(this, file, fd);
  }

  /** @internal */
  slotOf(name: string): Slot | undefined {
    return this.byName.get(name);
  }

  /** @internal The slots in file order. */
  allSlots(): Iterable<Slot> {
    return this.slots.values();
  }

  /** @internal The graph with every slot pointing at `location`, encoded. */
  graphBytes(location: string): Uint8Array {
    for (const s of this.slots.values()) {
      s.tensor.externalData = [
        create(StringStringEntryProtoSchema, { key: 'location', value: location }),
        create(StringStringEntryProtoSchema, { key: 'offset', value: String(s.offset) }),
        create(StringStringEntryProtoSchema, { key: 'length', value: String(s.length) }),
      ];
    }
    return encodeModel(this.model);
  }
}

/**
 * One variant's data file (see the module comment): {@link DiskVariant.set} each replaced weight,
 * then {@link DiskVariant.finish}; {@link DiskVariant.dispose} removes the file.
 */
export class DiskVariant {
  private readonly written = new Set<Slot>();
  private fd: number | undefined;
  private disposed = false;

  /** @internal Use {@link DiskVariantLayout.open}. */
  constructor(
    private readonly layout: DiskVariantLayout,
    /** The data file (a temp name). */
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** The folder of the data file: the external-data folder of the graph {@link DiskVariant.finish} returns. */
  get folder(): string {
    return path.dirname(this.file);
  }

  /**
   * Writes the new values of variable weight `name` (the array can be let go afterwards).
   * @throws E_BAD_ARGUMENT for an unknown name or a wrong element count; E_IO on write errors.
   */
  set(name: string, data: Float32Array): void {
    const s = this.layout.slotOf(name);
    if (!s) fail('E_BAD_ARGUMENT', `'${name}' is not one of the evaluator's variable weights.`);
    if (data.length !== s.count) fail('E_BAD_ARGUMENT', `Variant of '${name}' has ${data.length} values, the weight has ${s.count}.`);
    this.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), s.offset);
    this.written.add(s);
  }

  /**
   * Copies every slot not set from the original (in 16 MiB blocks), closes the file and returns the
   * graph to run, whose external data is this file (resolve it against {@link DiskVariant.folder}).
   * @throws E_CANCELLED when `signal` fires; E_EXTERNAL_DATA when an original cannot be read.
   */
  finish(signal?: AbortSignal): Uint8Array {
    let block: Uint8Array | undefined;
    for (const s of this.layout.allSlots()) {
      throwIfAborted(signal);
      if (this.written.has(s)) continue;
      const o = s.original;
      if (o.kind === 'bytes') {
        this.write(o.bytes, s.offset);
        continue;
      }
      block ??= new Uint8Array(Math.min(COPY_BLOCK, Math.max(s.length, 1)));
      const what = () => `external data '${o.location}' of tensor '${s.tensor.name}'`;
      let src: number;
      try {
        src = fs.openSync(o.file, 'r');
      } catch (e) {
        fail('E_EXTERNAL_DATA', `${what()} cannot be opened any more (${(e as Error).message}).`, e);
      }
      try {
        for (let done = 0; done < s.length; ) {
          throwIfAborted(signal);
          const n = Math.min(block.length, s.length - done);
          readFully(src, block, 0, n, o.offset + done, what);
          this.write(block.subarray(0, n), s.offset + done);
          done += n;
        }
      } finally {
        fs.closeSync(src);
      }
    }
    this.close();
    return this.layout.graphBytes(path.basename(this.file));
  }

  /** Closes and removes the data file (idempotent). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.close();
    fs.rmSync(this.file, { force: true });
  }

  private write(bytes: Uint8Array, position: number): void {
    if (this.fd === undefined) fail('E_INTERNAL', `The variant file '${this.file}' is already finished or disposed.`);
    try {
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(this.fd, bytes, off, Math.min(bytes.length - off, 1 << 30), position + off);
    } catch (e) {
      ioError(e, this.file, 'write');
    }
  }

  private close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }
}
