"""Why the station network did not learn: in-memory experiments with nnU-Net's network and loss.

The diagnosis behind ``docs/learning.md``. Trains nnU-Net's ``PlainConvUNet`` (the CPU
configuration: 8-16-32-64 features, 32 x 64 x 64 patch, batch 2) with nnU-Net's Dice + CE
loss and deep supervision on a phantom cohort held entirely in memory, without data
augmentation (so one iteration costs only the network), and evaluates the held-out fold
with a sliding window every ``--eval-every`` iterations. Options vary one thing at a time:
the optimiser (nnU-Net's SGD with momentum 0.99 from 0.01, or AdamW), the encoding of the
22 ground-truth organ channels (binary, signed distance, none = CT only), the CT
normalisation, mirroring, batch Dice, and the training cases (one case = overfitting).

    python benchmarks/diagnose_station_learning.py --cohort PHANTOM --enc binary --opt sgd
    python benchmarks/diagnose_station_learning.py --cohort PHANTOM --enc binary --opt adam \\
        --lr 0.003 --iters 3000 --eval-every 500

Each evaluation prints one JSON line (iteration, seconds, mean loss, held-out mean DSC,
per-station DSC in schema order); ``--out`` keeps them all.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", required=True, help="phantom cohort folder (small preset)")
    p.add_argument("--train", default="", help="comma-separated training case ids "
                   "(default: every case outside --valfold)")
    p.add_argument("--val", default="", help="comma-separated held-out case ids")
    p.add_argument("--valfold", type=int, default=0)
    p.add_argument("--enc", choices=("binary", "sdm", "none"), default="binary")
    p.add_argument("--opt", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--feats", default="8,16,32,64")
    p.add_argument("--patch", default="32,64,64")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--fg", type=float, default=0.33, help="foreground oversampling")
    p.add_argument("--batch-dice", type=int, default=0)
    p.add_argument("--ctnorm", choices=("wide", "fg"), default="wide",
                   help="wide: clip [-1000, 1000] HU; fg: nnU-Net's statistics of the "
                        "station foreground (clip [-147, 208])")
    p.add_argument("--mirror", default="", help="array axes to flip at random, e.g. 0,1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="")
    return p.parse_args(argv)


def load_case(folder, args, n_organs: int = 22):
    import SimpleITK as sitk

    from deepstationing.backbone.channels import ChannelSpec, encode_channels

    def read(name):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}.nii.gz")))

    img = sitk.ReadImage(str(folder / "ct.nii.gz"))
    spacing = img.GetSpacing()[::-1]
    ct = read("ct").astype(np.float32)
    if args.ctnorm == "wide":
        ct = (np.clip(ct, -1000, 1000) + 200) / 400.0
    else:
        ct = (np.clip(ct, -147, 208) + 86.1) / 47.6
    channels = [ct[None]]
    if args.enc != "none":
        spec = ChannelSpec.parse("gt:all" + ("+sdm" if args.enc == "sdm" else ""))
        channels.append(encode_channels(read("organs"), spec, spacing).astype(np.float32))
    return np.concatenate(channels), read("stations").astype(np.int64)


class Experiment:
    def __init__(self, args):
        import torch
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

        from deepstationing.data.cohort import Cohort

        self.args = args
        self.rng = np.random.default_rng(args.seed)
        torch.manual_seed(args.seed)
        torch.set_num_threads(args.threads)
        cohort = Cohort(args.cohort)
        val = args.val.split(",") if args.val else cohort.test_ids(args.valfold)
        train = args.train.split(",") if args.train else cohort.train_ids(args.valfold)
        t0 = time.time()
        self.train = [load_case(cohort.root / c, args) for c in train]
        self.val = [load_case(cohort.root / c, args) for c in val]
        print(f"loaded {len(self.train)}+{len(self.val)} cases in {time.time() - t0:.1f} s",
              flush=True)
        self.n_cls = 13
        feats = [int(v) for v in args.feats.split(",")]
        self.n = len(feats)
        self.patch = [int(v) for v in args.patch.split(",")]
        self.net = PlainConvUNet(
            self.train[0][0].shape[0], self.n, feats, torch.nn.Conv3d, 3,
            [1] + [2] * (self.n - 1), 2, self.n_cls, [2] * (self.n - 1), True,
            torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None,
            torch.nn.LeakyReLU, {"inplace": True}, deep_supervision=True)
        loss = DC_and_CE_loss({"batch_dice": bool(args.batch_dice), "smooth": 1e-5,
                               "do_bg": False, "ddp": False}, {}, weight_ce=1, weight_dice=1,
                              ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
        w = np.array([1 / 2 ** i for i in range(self.n - 1)])
        w[-1] = 0
        self.loss = DeepSupervisionWrapper(loss, w / w.sum())
        params = self.net.parameters()
        self.opt = (torch.optim.AdamW(params, lr=args.lr, weight_decay=3e-5)
                    if args.opt == "adam" else
                    torch.optim.SGD(params, args.lr, weight_decay=3e-5, momentum=0.99,
                                    nesterov=True))

    def crop(self, x, y, force: bool):
        shape, patch, rng = y.shape, self.patch, self.rng
        if force:  # a voxel of a random class, as nnU-Net's oversampling does
            locs = np.argwhere(y == rng.integers(1, self.n_cls))
            if len(locs) == 0:
                locs = np.argwhere(y > 0)
            c = locs[rng.integers(len(locs))]
            lo = [int(np.clip(c[i] - patch[i] // 2 + rng.integers(-patch[i] // 4,
                                                                  patch[i] // 4 + 1),
                              0, max(0, shape[i] - patch[i]))) for i in range(3)]
        else:
            lo = [int(rng.integers(0, max(1, shape[i] - patch[i] + 1))) for i in range(3)]
        sl = tuple(slice(a, a + p) for a, p in zip(lo, patch))
        xs, ys = x[(slice(None),) + sl], y[sl]
        pad = [(0, p - s) for p, s in zip(patch, ys.shape)]
        xs, ys = np.pad(xs, [(0, 0)] + pad), np.pad(ys, pad)
        for axis in [int(v) for v in self.args.mirror.split(",") if v]:
            if rng.random() < 0.5:
                xs, ys = np.flip(xs, axis + 1), np.flip(ys, axis)
        return np.ascontiguousarray(xs), np.ascontiguousarray(ys)

    def predict(self, x):
        import torch

        self.net.eval()
        self.net.decoder.deep_supervision = False
        shape, patch = x.shape[1:], self.patch
        steps = [sorted(set(list(range(0, max(1, s - p + 1), p // 2)) + [max(0, s - p)]))
                 for s, p in zip(shape, patch)]
        prob = np.zeros((self.n_cls,) + shape, np.float32)
        count = np.zeros(shape, np.float32)
        with torch.no_grad():
            for z in steps[0]:
                for y in steps[1]:
                    for xx in steps[2]:
                        sl = (slice(z, z + patch[0]), slice(y, y + patch[1]),
                              slice(xx, xx + patch[2]))
                        xs = x[(slice(None),) + sl]
                        real = xs.shape[1:]
                        xs = np.pad(xs, [(0, 0)] + [(0, p - r) for p, r in zip(patch, real)])
                        o = torch.softmax(self.net(torch.from_numpy(xs)[None])[0], 0).numpy()
                        prob[(slice(None),) + sl] += o[:, :real[0], :real[1], :real[2]]
                        count[sl] += 1
        self.net.train()
        self.net.decoder.deep_supervision = True
        return (prob / count).argmax(0)

    def evaluate(self) -> np.ndarray:
        scores = []
        for x, y in self.val:
            pred = self.predict(x)
            scores.append([2 * ((y == c) & (pred == c)).sum()
                           / max(1, (y == c).sum() + (pred == c).sum())
                           for c in range(1, self.n_cls)])
        return np.mean(scores, 0)

    def run(self) -> list[dict]:
        import torch

        a = self.args
        log, losses, t0 = [], [], time.time()
        for it in range(1, a.iters + 1):
            for g in self.opt.param_groups:  # nnU-Net's poly decay, per iteration
                g["lr"] = a.lr * (1 - (it - 1) / a.iters) ** 0.9
            xb, yb = [], []
            for b in range(a.batch):
                x, y = self.train[self.rng.integers(len(self.train))]
                xs, ys = self.crop(x, y, force=b >= round(a.batch * (1 - a.fg)))
                xb.append(xs)
                yb.append(ys)
            y = torch.from_numpy(np.stack(yb)[:, None].astype(np.float32))
            targets = [y] + [y[:, :, ::2 ** i, ::2 ** i, ::2 ** i] for i in range(1, self.n - 1)]
            loss = self.loss(self.net(torch.from_numpy(np.stack(xb))), targets)
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
            self.opt.step()
            losses.append(float(loss.detach()))
            if it % a.eval_every == 0 or it == a.iters:
                d = self.evaluate()
                rec = {"it": it, "s": round(time.time() - t0, 1),
                       "loss": round(float(np.mean(losses[-a.eval_every:])), 3),
                       "dice": round(float(d.mean()), 4),
                       "per": [round(float(v), 2) for v in d]}
                log.append(rec)
                print(json.dumps(rec), flush=True)
        return log


def main(argv=None) -> int:
    args = parse_args(argv)
    log = Experiment(args).run()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "log": log}, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
