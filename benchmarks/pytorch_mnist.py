"""The PyTorch reference for chainer_mnist.py: the same MLP, optimizer, schedule and data, in PyTorch's CPU build.

784-1000-1000-10 with ReLU, Adam with its step size decaying linearly to zero, shuffled minibatches of 128 taken
from tensors held in memory (no DataLoader, which would only slow PyTorch down), the test set evaluated after each
epoch. Prints the same epoch lines as chainer_mnist.py. PyTorch is an optional dependency (see pyproject.toml).

    python benchmarks/pytorch_mnist.py --data-dir DIR [--epochs 10]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from chainer_mnist import load_mnist  # noqa: E402  The same IDX reader: the same data.


class Net(nn.Module):
    def __init__(self, n_units=1000, n_out=10):
        super().__init__()
        self.l1 = nn.Linear(784, n_units)
        self.l2 = nn.Linear(n_units, n_units)
        self.l3 = nn.Linear(n_units, n_out)

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


def train(model, optimizer, scheduler, x, t, batchsize, generator):
    model.train()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batchsize):
        batch = order[i : i + batchsize]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[batch]), t[batch])
        loss.backward()
        optimizer.step()
        scheduler.step()


@torch.no_grad()
def test(model, x, t, batchsize=1000):
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(x), batchsize):
        y = model(x[i : i + batchsize])
        loss += F.cross_entropy(y, t[i : i + batchsize], reduction="sum").item()
        correct += (y.argmax(1) == t[i : i + batchsize]).sum().item()
    return loss / len(x), correct / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batchsize", type=int, default=128)
    parser.add_argument("--unit", type=int, default=1000)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    # As chainer_mnist.py does: Adam's moments for MNIST's blank border pixels decay into denormals.
    torch.set_flush_denormal(True)
    train_x, train_y, test_x, test_y = (torch.from_numpy(np.ascontiguousarray(a)) for a in load_mnist(args.data_dir))
    train_y, test_y = train_y.long(), test_y.long()
    model = Net(args.unit)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    total_steps = args.epochs * -(-len(train_x) // args.batchsize)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total_steps)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train(model, optimizer, scheduler, train_x, train_y, args.batchsize, generator)
        test_loss, test_accuracy = test(model, test_x, test_y)
        print(
            f"epoch {epoch:3d}  test loss {test_loss:.4f} accuracy {test_accuracy:.4f}  "
            f"{time.perf_counter() - start:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
