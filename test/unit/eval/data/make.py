#!/usr/bin/python3
"""Writes the small real-bytes inputs of the eval tests (run once; outputs are committed).

NumPy-written .npy/.npz files in several dtypes and byte orders, and a tiny CNN (onnx.helper):
input float32 [N,1,4,4] -> Conv(3 filters, 3x3, pad 1) -> Relu -> Flatten -> Gemm(48 -> 10) -> logits.
"""
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(6, 1, 4, 4), dtype=np.uint8)
np.save("u1.npy", x)
np.save("f4.npy", x.astype("<f4"))
np.save("f4be.npy", x.astype(">f4"))
np.save("f8.npy", x.astype("<f8"))
np.save("f2.npy", x.astype("<f2"))
np.save("i8.npy", x.astype("<i8"))
np.save("fortran.npy", np.asfortranarray(x.astype("<f4").reshape(6, 16)))
np.save("labels.npy", np.arange(6, dtype=np.int64) % 10)
np.save("labels-bad.npy", np.array([0, 1, 2, 3, 4, 12], dtype=np.int64))
np.save("labels-5.npy", np.arange(5, dtype=np.int64))
np.save("labels-float.npy", np.arange(6, dtype=np.float32))
np.savez("stored.npz", input=x, labels=np.arange(6) % 10)
np.savez_compressed("deflated.npz", input=x.astype(">f4"), labels=np.arange(6) % 10)
np.savez("two.npz", a=x, b=x)

# tiny CNN
w = (rng.standard_normal((3, 1, 3, 3)) * 0.5).astype(np.float32)
b = rng.standard_normal(3).astype(np.float32) * 0.1
g = (rng.standard_normal((10, 48)) * 0.3).astype(np.float32)
gb = rng.standard_normal(10).astype(np.float32) * 0.1
nodes = [
    helper.make_node("Conv", ["input", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten"),
    helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
]
graph = helper.make_graph(
    nodes, "tiny",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    [numpy_helper.from_array(w, "conv.w"), numpy_helper.from_array(b, "conv.b"),
     numpy_helper.from_array(g, "fc.w"), numpy_helper.from_array(gb, "fc.b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
onnx.checker.check_model(model)
onnx.save(model, "tiny.onnx")
# 400 samples whose labels are the tiny model's own top-1 on 3/4 of them (so accuracy is 0.75 + chance)
xs = rng.standard_normal((400, 1, 4, 4)).astype(np.float32)
h = np.maximum(0, np.stack([sum(
    np.pad(xs[:, 0], ((0, 0), (1, 1), (1, 1)))[:, i:i + 4, j:j + 4] * w[k, 0, i, j]
    for i in range(3) for j in range(3)) + b[k] for k in range(3)], 1)).reshape(400, 48)
logits = h @ g.T + gb
y = logits.argmax(1)
flip = rng.random(400) < 0.25
y[flip] = rng.integers(0, 10, flip.sum())
np.save("tiny-x.npy", xs)
np.save("tiny-y.npy", y.astype(np.int64))
np.save("tiny-logits.npy", logits.astype(np.float32))
