/**
 * Bytes <-> `ModelProto`. Decoding keeps unknown fields and proto2 field presence, so a model that is
 * decoded and encoded again without edits loses nothing. No file system access here (see `io.ts`).
 */
import { fromBinary } from '@bufbuild/protobuf';
import { encodeChunks, joinChunks, type Chunks } from './lazyEncode';
import { fail } from '../errors';
import { ModelProtoSchema, type ModelProto } from './proto';

/** IR versions this tool reads (onnxruntime 1.30 runs IR 3 to 11; 12 is read but may not run). */
export const MIN_IR_VERSION = 3;
/** See {@link MIN_IR_VERSION}. */
export const MAX_IR_VERSION = 12;

/**
 * Decodes ONNX model bytes. `raw_data` fields are views into `bytes` (no copy): keep `bytes` alive
 * and unmodified while the model is used.
 * @param source file name used in error messages.
 * @throws E_MODEL_INVALID for empty, truncated or non-ONNX bytes; E_MODEL_UNSUPPORTED for an IR
 * version outside {@link MIN_IR_VERSION}..{@link MAX_IR_VERSION}.
 */
export function decodeModel(bytes: Uint8Array, source = 'model'): ModelProto {
  if (bytes.length === 0) {
    fail('E_MODEL_INVALID', `${source}: the file is empty (0 bytes). Re-export or re-download the model.`);
  }
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const hint = /premature EOF|out of range|invalid (?:UTF-8|length)/i.test(why)
      ? 'The file looks truncated or corrupt'
      : 'The file is not an ONNX model or is corrupt';
    fail('E_MODEL_INVALID', `${source}: cannot decode the ONNX protobuf (${why}). ${hint}; re-export or re-download it.`, e);
  }
  if (!model.graph) {
    fail('E_MODEL_INVALID', `${source}: not an ONNX model (no graph found in ${bytes.length} bytes). Check that this is the right file, or re-export it.`);
  }
  const ir = Number(model.irVersion);
  if (ir === 0) {
    fail('E_MODEL_INVALID', `${source}: not an ONNX model or corrupt (ir_version is missing). Re-export or re-download it.`);
  }
  if (ir < MIN_IR_VERSION || ir > MAX_IR_VERSION) {
    fail('E_MODEL_UNSUPPORTED', `${source}: unsupported ONNX IR version ${ir} (this tool reads IR ${MIN_IR_VERSION} to ${MAX_IR_VERSION}). Convert the model with onnx.version_converter or re-export it with a supported opset.`);
  }
  // IR >= 3 models must import at least one opset (onnx.proto, opset_import); without one no op has a
  // meaning. (Some valid models import only another domain, e.g. ai.onnx.preview.training.)
  if (model.opsetImport.length === 0) {
    fail('E_MODEL_INVALID', `${source}: the model imports no opset (opset_import is empty). The file is corrupt or truncated; re-export it.`);
  }
  return model;
}

/** Payloads at least this big are written by reference (see `lazyEncode.ts`). */
const BY_REFERENCE = 4096;

/**
 * Encodes a model as a list of chunks whose large tensor payloads are views of the model's own
 * buffers (no copies), for streaming to a file. Byte-identical to {@link encodeModel}.
 * @param minBytes payloads of at least this many bytes are referenced (default 4096).
 * @throws E_MODEL_UNSUPPORTED when the result would pass protobuf's 2 GiB limit (use external data).
 */
export function encodeModelChunks(model: ModelProto, minBytes = BY_REFERENCE): Chunks {
  const c = encodeChunks(ModelProtoSchema, model, minBytes);
  if (c.length >= 2 ** 31) {
    fail('E_MODEL_UNSUPPORTED', `The model is ${c.length} bytes, past protobuf's 2 GiB limit; save it with external data.`);
  }
  return c;
}

/**
 * Encodes a model into one buffer, unknown fields included.
 * @throws E_MODEL_UNSUPPORTED when the result would pass protobuf's 2 GiB limit (use external data).
 */
export function encodeModel(model: ModelProto): Uint8Array<ArrayBuffer> {
  return joinChunks(encodeModelChunks(model));
}
