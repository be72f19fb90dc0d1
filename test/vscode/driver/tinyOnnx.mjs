// A hand-encoded ONNX model (protobuf, IR 7, opset 13) computing Z = X + Y for float[3], so the tests have a model
// even before test/fixtures/ exists. From ../shared/vscode-harness/hello-ext/test/tiny-onnx.js.

/** @param {number} n */
function varint(n) {
  const b = [];
  while (n > 127) { b.push((n & 127) | 128); n >>>= 7; }
  b.push(n);
  return Buffer.from(b);
}
/** @param {number} field @param {number} n */
const fVar = (field, n) => Buffer.concat([varint(field << 3), varint(n)]);
/** @param {number} field @param {Buffer | string} buf */
const fLen = (field, buf) => {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
};
/** ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape: [3] } } } @param {string} name */
const valueInfo = (name) =>
  Buffer.concat([fLen(1, name), fLen(2, fLen(1, Buffer.concat([fVar(1, 1), fLen(2, fLen(1, fVar(1, 3)))])))]);

/** @returns {Buffer} the bytes of a valid ONNX model with inputs X, Y and output Z */
export function tinyAddModel() {
  const node = Buffer.concat([fLen(1, 'X'), fLen(1, 'Y'), fLen(2, 'Z'), fLen(4, 'Add')]);
  const graph = Buffer.concat([
    fLen(1, node), fLen(2, 'g'), fLen(11, valueInfo('X')), fLen(11, valueInfo('Y')), fLen(12, valueInfo('Z')),
  ]);
  return Buffer.concat([fVar(1, 7), fLen(7, graph), fLen(8, Buffer.concat([fLen(1, ''), fVar(2, 13)]))]);
}
