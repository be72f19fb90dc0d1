#!/usr/bin/python3
"""Export a ResNet-18-sized Fashion-MNIST classifier to ONNX, for benchmarks only (about 45 MB, not committed).

    /usr/bin/python3 scripts/make-resnet18.py [OUT] [--size 28|64] [--train-steps N] [--calib-batches N]

OUT defaults to .tmp/resnet18-fmnist.onnx (relative to the repository root; .tmp/ is git-ignored).

Architecture: torchvision `resnet18(num_classes=10)` with the first conv replaced by a 1-input-channel
7x7/2 conv (64 filters, no bias); everything else is stock (max pool, 4 stages of 2 basic blocks at
64/128/256/512 channels, global average pool, fc 512->10): 11.17 M parameters.
Input "input" float32 [N,1,S,S] with S = --size (28 by default, matching test/fixtures/data; 64 upsamples
the images bilinearly during training/calibration and needs 64x64 data at evaluation), output "logits"
float32 [N,10], opset 13, exported in eval mode with constant folding (BatchNorm folded into Conv).

Weights: seeded random (torch.manual_seed), then --train-steps AdamW steps of batch 128 on the Fashion-MNIST
training images (default 200: 2-4 minutes on 2 shared cores, roughly 85 % accuracy, and weight
distributions that look trained rather than uniform), then the BatchNorm running statistics are
recomputed as exact averages over --calib-batches training batches in train mode, so even with
--train-steps 0 (pure random weights) the activations have realistic scale. Preprocessing is the
fixtures' one: x/255 then (x - 0.2860) / 0.3530. Prints the accuracy on the first 1000 test images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP workers crawl on a shared machine

import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test" / "fixtures"))
from make_fixtures import find_idx, preprocess, read_idx  # noqa: E402  (shared IDX reader/preprocessing)


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if size == 28 else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=REPO / ".tmp" / "resnet18-fmnist.onnx")
    ap.add_argument("--size", type=int, choices=(28, 64), default=28, help="input height/width (default 28)")
    ap.add_argument("--train-steps", type=int, default=200, help="AdamW steps of batch 128 (default 200)")
    ap.add_argument("--calib-batches", type=int, default=20, help="batches for BN statistics (default 20)")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()

    torch.set_num_threads(2)
    t_start = time.time()
    x_train = preprocess(read_idx(find_idx(args.data_dir, "train-images-idx3-ubyte")))
    y_train = torch.from_numpy(read_idx(find_idx(args.data_dir, "train-labels-idx1-ubyte")).astype("int64"))
    x_test = preprocess(read_idx(find_idx(args.data_dir, "t10k-images-idx3-ubyte"))[:1000])
    y_test = torch.from_numpy(read_idx(find_idx(args.data_dir, "t10k-labels-idx1-ubyte"))[:1000].astype("int64"))

    model = build(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    batch = 128

    if args.train_steps > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.train_steps)
        model.train()
        for step in range(args.train_steps):
            idx = torch.randint(0, len(x_train), (batch,), generator=gen)
            loss = F.cross_entropy(model(resize(x_train[idx], args.size)), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % 50 == 0:
                print(f"step {step + 1}/{args.train_steps}: loss {loss.item():.3f}", flush=True)

    # Exact (cumulative) BN statistics over the calibration batches: momentum=None averages all batches.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(args.calib_batches):
            idx = torch.randint(0, len(x_train), (batch,), generator=gen)
            model(resize(x_train[idx], args.size))

    model.eval()
    with torch.no_grad():
        acc = float((model(resize(x_test, args.size)).argmax(1) == y_test).float().mean())

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.onnx.export(
        model,
        torch.zeros(1, 1, args.size, args.size),
        str(tmp),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        opset_version=13,
        do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL,
    )
    onnx.checker.check_model(onnx.load(str(tmp)))
    os.replace(tmp, out)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {out}: {out.stat().st_size} bytes, {params} parameters, input [N,1,{args.size},{args.size}], "
        f"test-1000 accuracy {acc:.3f} (PyTorch), {time.time() - t_start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
