#!/usr/bin/env python3
"""The PyTorch yardstick for bench_population: the seed CNN trained by a
population of P nets written as a user would in PyTorch — conv1 as one wide
convolution over the shared input, conv2 as a grouped convolution (P groups),
the dense layers as bmm — with Adadelta (lr 1.0), batch 64, data already on
the GPU. Prints network-images/s per P in the same table layout as
bench_population, so both can run in one call on one card.

    python3 bench/torch_reference.py --population 1,10,64,256 --steps 20
"""
import argparse
import time

import torch
import torch.nn.functional as F


class Population(torch.nn.Module):
    def __init__(self, P):
        super().__init__()
        self.P = P
        self.conv1 = torch.nn.Conv2d(1, 32 * P, 3)
        self.conv2 = torch.nn.Conv2d(32 * P, 64 * P, 3, groups=P)
        self.w1 = torch.nn.Parameter(torch.empty(P, 9216, 128).uniform_(-9216 ** -0.5, 9216 ** -0.5))
        self.b1 = torch.nn.Parameter(torch.zeros(P, 1, 128))
        self.w2 = torch.nn.Parameter(torch.empty(P, 128, 10).uniform_(-128 ** -0.5, 128 ** -0.5))
        self.b2 = torch.nn.Parameter(torch.zeros(P, 1, 10))

    def forward(self, x):  # x: (N, 1, 28, 28) shared by every net
        N = x.shape[0]
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.dropout(F.max_pool2d(h, 2), 0.25, self.training)           # (N, P·64, 12, 12)
        h = h.view(N, self.P, 9216).transpose(0, 1)                       # (P, N, 9216)
        h = F.dropout(F.relu(torch.bmm(h, self.w1) + self.b1), 0.5, self.training)
        return F.log_softmax(torch.bmm(h, self.w2) + self.b2, dim=-1)    # (P, N, 10)


def bench(P, batch, steps, warmup, device):
    model = Population(P).to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model.train()
    for s in range(warmup + steps):
        if s == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(x)
        # Sum over nets of each net's mean loss: independent gradients per net.
        loss = F.nll_loss(out.reshape(P * batch, 10), y.repeat(P), reduction="sum") / batch
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    step = (time.perf_counter() - t0) / steps
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--population", default="1,10,64,256,1024")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tf32", action="store_true",
                    help="allow TF32 on tensor cores in matmul and cuDNN (compare with evoplast's --precision tf32)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_reference: no CUDA device; nothing to measure")
        return
    torch.backends.cudnn.benchmark = True
    # fp32 as evoplast's default precision, or TF32 (stated in the header either way).
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    print(f"torch_reference: PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}, batch {a.batch}, "
          f"{a.steps} timed steps (grouped conv + bmm, Adadelta, {'TF32 allowed' if a.tf32 else 'fp32, TF32 off'})")
    print(f"{'P':>5} {'step ms':>10} {'network-images/s':>20}")
    for P in (int(p) for p in a.population.split(",")):
        step = bench(P, a.batch, a.steps, a.warmup, "cuda")
        print(f"{P:>5} {1e3 * step:>10.3f} {P * a.batch / step:>20.0f}", flush=True)


if __name__ == "__main__":
    main()
