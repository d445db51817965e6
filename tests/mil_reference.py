"""An independent PyTorch implementation of Spatia's attention-MIL survival network, replaying
the outer-fold fits that `spatia run` traced (env SPATIA_MIL_TRACE=<dir>, one `r<repeat>_f<fold>/`
per fit) and checking them.

Architecture, losses and optimiser follow the spec in crates/spatia-torch/src/mil.rs (written
here from that description, not translated from the tch code):
  - per stain i (`mod{i}`): h = dropout(relu(inp(x))), gated attention
    s = att_c(tanh(att_a(h)) * sigmoid(att_b(h))), softmax over the patient's tiles, z_i = sum w h;
    a patient without tiles of the stain gets the learned `mod{i}.missing`;
  - clinical (`clin`): z_c = dropout(relu(clin.inp(x)));
  - fusion `concat` (fuse.hid -> relu -> dropout -> fuse.out), `late` (mean of head{m}(z_m) over
    the modalities the patient has; all when none), `bilinear` for M <= 3 modalities (gated
    reductions gate{m}, Kronecker product of [o_m, 1], then fuse.hid/fuse.out) and the low-rank
    fusion (lmf.f{m}, lmf.bias) for M > 3;
  - loss `cox`: negative Breslow partial log-likelihood / events, by logcumsumexp over the batch
    sorted by decreasing time, ties sharing their risk set; loss `nll`: logistic-hazard BCE on the
    intervals `cuts`, a censored patient counting in her interval only when censored in its
    second half, summed and divided by the batch size;
  - AdamW(lr, weight_decay), betas (0.9, 0.999), eps 1e-8, the gradients' global L2 norm clipped
    to `clip` when > 0, one step per batch (the trace's `batches`, else the whole training set).

Rounding. The network has directions the loss does not depend on: the attention-score bias (the
softmax is shift-invariant) and, for cox, whatever shifts every risk alike (the output bias, the
bias of a hidden unit active for every training patient). Their gradient is zero up to rounding,
and AdamW normalises it into steps of about ±lr; once such a drift moves a hidden unit across zero
for some patient it reaches the loss (~1e-5 relative after 30 steps, ~1e-4 on final weights and
test risks, measured). So the replay uses the training child's kernels (ATEN_CPU_CAPABILITY=
default, MKL_CBWR=COMPATIBLE, one thread: set below unless the caller set them), the parameters in
the plugin's creation order (the order of the gradient norm's sum), tch's clipping rule (coefficient
in double precision, applied when below 1) and AdamW evaluated in libtorch's C++ order (m updated
by mul/add, where torch.optim.AdamW uses lerp). Then the replay is exact: step losses, final
weights and risks equal to the bit on the traces tried. `check --optim torch` uses
torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ instead, leaving the zero-gradient elements
out of the weight check.

Usage (the venv python of scripts/setup-torch.sh: torch and numpy only):
  python mil_reference.py check TRACE OOF_CSV [--steps 20] [--rtol 1e-5] [--atol-risk 1e-4]
                                               [--atol-weights 1e-4] [--optim libtorch|torch]
      TRACE: a fit directory or a directory of `r<repeat>_f<fold>/` fit directories; OOF_CSV: the
      train stage's oof.csv. For every fit: loads data.safetensors and init.safetensors, replays the
      training (the traced dropout must be 0), checks the loss of the first `--steps` optimiser
      steps against fit.json's `step_loss` (relative), the final weights against final.safetensors
      (max |diff|) and the test patients' out-of-fold risk against oof.csv (absolute; cox: centred
      on the training patients' mean; nll: 1 - S(tau_K)). Prints one line per fit and exits 1 on
      the first disagreement, naming the fit, step or patient and the values.
  python mil_reference.py bench FIT_DIR EPOCHS [--rounds N] [--serve]
                                              [--optim torch|torch-foreach|libtorch]
      Times a whole fit of EPOCHS epochs from the trace's initial weights (network set-up, batch
      assembly, the epochs) with one torch thread, torch.optim.AdamW by default, and prints one
      JSON line per round {"seconds_per_epoch": ...}. With --serve, prints "ready" and then, for
      each line "N" on stdin, times N epochs and prints one JSON line (benches/mil.rs alternates
      it with Spatia's fit).
"""
import argparse
import csv
import json
import math
import os
import struct
import sys
import time

import numpy as np

# the kernels of Spatia's training child (src/stages/train_mil.rs), unless the caller chose others:
# the same libtorch then rounds the same way, which matters because some directions of the
# network have a zero gradient up to rounding that AdamW turns into steps of about ±lr
for _k, _v in (("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE"), ("OMP_NUM_THREADS", "1")):
    os.environ.setdefault(_k, _v)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8, "I32": np.int32, "BOOL": np.bool_}


def read_safetensors(path):
    """name -> numpy array, from the safetensors layout: u64 LE header size, JSON header, data."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header size)")
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    body = raw[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = DTYPES.get(meta["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name} has dtype {meta['dtype']}, not handled")
        a, b = meta["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=np.dtype(dt).newbyteorder("<")).reshape(meta["shape"])
        out[name] = arr.copy()
    return out


class GatedAttentionMil(nn.Module):
    """One stain's bag encoder (Ilse et al. 2018)."""

    def __init__(self, dim, hidden, attention, dropout):
        super().__init__()
        self.inp = nn.Linear(dim, hidden)
        self.att_a = nn.Linear(hidden, attention)
        self.att_b = nn.Linear(hidden, attention)
        self.att_c = nn.Linear(attention, 1)
        self.missing = nn.Parameter(torch.zeros(hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, present):
        """x: B x T x D (padded), mask: B x T (real tiles), present: B (has a tile)."""
        h = self.drop(F.relu(self.inp(x)))
        s = self.att_c(torch.tanh(self.att_a(h)) * torch.sigmoid(self.att_b(h))).squeeze(-1)
        s = s.masked_fill(~mask, float("-inf"))
        # a bag without tiles: scores of no consequence (its embedding is `missing`), kept finite
        s = torch.where(present.unsqueeze(1), s, torch.zeros_like(s))
        w = torch.softmax(s, dim=1)
        z = (w.unsqueeze(-1) * h).sum(dim=1)
        z = torch.where(present.unsqueeze(1), z, self.missing.unsqueeze(0).expand_as(z))
        return z, w


class Clinical(nn.Module):
    def __init__(self, c, hidden, dropout):
        super().__init__()
        self.inp = nn.Linear(c, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(F.relu(self.inp(x)))


class Gate(nn.Module):
    """Pathomic-Fusion style gated reduction of one modality: relu(h(z_m)) * sigmoid(g(all))."""

    def __init__(self, hidden, m, r):
        super().__init__()
        self.h = nn.Linear(hidden, r)
        self.g = nn.Linear(hidden * m, r)

    def forward(self, zm, allz):
        o = F.relu(self.h(zm)) * torch.sigmoid(self.g(allz))
        return torch.cat([o, torch.ones_like(o[:, :1])], dim=1)


class Lmf(nn.Module):
    """Low-rank multimodal fusion (Liu et al. 2018): sum_k prod_m (o_m W_m[k]) + bias."""

    def __init__(self, m, rank, r1, hidden):
        super().__init__()
        for k in range(m):
            setattr(self, f"f{k}", nn.Parameter(torch.zeros(rank, r1, hidden)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.m = m

    def forward(self, os_):
        prod = None
        for k, o in enumerate(os_):
            f = getattr(self, f"f{k}")  # rank x r1 x hidden
            fm = torch.matmul(o.unsqueeze(0), f)  # rank x B x hidden
            prod = fm if prod is None else prod * fm
        return prod.sum(dim=0) + self.bias


class MilNet(nn.Module):
    def __init__(self, cfg, dims, clin_dim):
        super().__init__()
        h, p = cfg["hidden"], cfg["dropout"]
        self.n_stains = len(dims)
        for i, d in enumerate(dims):
            setattr(self, f"mod{i}", GatedAttentionMil(d, h, cfg["attention"], p))
        self.has_clin = clin_dim > 0
        if self.has_clin:
            self.clin = Clinical(clin_dim, h, p)
        m = len(dims) + int(self.has_clin)
        if m == 0:
            raise ValueError("no modality")
        self.m = m
        if cfg["loss"] == "cox":
            out_dim = 1
        elif cfg["loss"] == "nll":
            out_dim = len(cfg["cuts"])
        else:
            raise ValueError(f"unknown loss {cfg['loss']}")
        self.out_dim = out_dim
        self.fusion = cfg["fusion"]
        self.drop = nn.Dropout(p)
        r = cfg.get("bilinear_dim", 8)
        if self.fusion == "concat":
            self.fuse = nn.Module()
            self.fuse.hid = nn.Linear(h * m, h)
            self.fuse.out = nn.Linear(h, out_dim)
        elif self.fusion == "late":
            for k in range(m):
                setattr(self, f"head{k}", nn.Linear(h, out_dim))
        elif self.fusion == "bilinear":
            for k in range(m):
                setattr(self, f"gate{k}", Gate(h, m, r))
            if m <= 3:
                self.kind = "kron"
                self.fuse = nn.Module()
                self.fuse.hid = nn.Linear((r + 1) ** m, h)
            else:
                self.kind = "lmf"
                self.lmf = Lmf(m, cfg.get("rank", 4), r + 1, h)
                self.fuse = nn.Module()
            self.fuse.out = nn.Linear(h, out_dim)
        else:
            raise ValueError(f"unknown fusion {self.fusion}")

    def ordered_parameters(self):
        """The parameters in the order the plugin creates them (stains, clinical, fusion; tch makes
        a layer's bias before its weight): the order of the global gradient norm's sum of squares,
        whose rounding the clipping coefficient inherits."""
        names = []
        lin = lambda p: [f"{p}.bias", f"{p}.weight"]  # noqa: E731
        for i in range(self.n_stains):
            names += sum((lin(f"mod{i}.{l}") for l in ("inp", "att_a", "att_b", "att_c")), []) + [f"mod{i}.missing"]
        if self.has_clin:
            names += lin("clin.inp")
        if self.fusion == "concat":
            names += lin("fuse.hid") + lin("fuse.out")
        elif self.fusion == "late":
            names += sum((lin(f"head{k}") for k in range(self.m)), [])
        else:
            names += sum((lin(f"gate{k}.h") + lin(f"gate{k}.g") for k in range(self.m)), [])
            if self.kind == "kron":
                names += lin("fuse.hid")
            else:
                names += [f"lmf.f{k}" for k in range(self.m)] + ["lmf.bias"]
            names += lin("fuse.out")
        params = dict(self.named_parameters())
        if sorted(names) != sorted(params):
            raise AssertionError(f"parameter order {names} does not cover {sorted(params)}")
        return [params[n] for n in names]

    def forward(self, batch):
        zs, present, atts = [], [], []
        for i in range(self.n_stains):
            x, mask, pres = batch["mods"][i]
            z, w = getattr(self, f"mod{i}")(x, mask, pres)
            zs.append(z)
            present.append(pres.float())
            atts.append(w)
        if self.has_clin:
            zs.append(self.clin(batch["clinical"]))
            present.append(torch.ones(zs[-1].shape[0]))
        if self.fusion == "concat":
            return self.fuse.out(self.drop(F.relu(self.fuse.hid(torch.cat(zs, dim=1))))), atts
        if self.fusion == "late":
            outs = torch.stack([getattr(self, f"head{k}")(z) for k, z in enumerate(zs)], dim=1)  # B x M x O
            w = torch.stack(present, dim=1)
            w = torch.where(w.sum(1, keepdim=True) == 0, torch.ones_like(w), w)
            w = w / w.sum(1, keepdim=True)
            return (outs * w.unsqueeze(-1)).sum(1), atts
        allz = torch.cat(zs, dim=1)
        os_ = [getattr(self, f"gate{k}")(z, allz) for k, z in enumerate(zs)]
        if self.kind == "kron":
            acc = os_[0]
            for o in os_[1:]:
                acc = torch.einsum("bi,bj->bij", acc, o).reshape(acc.shape[0], -1)
            fused = self.fuse.hid(acc)
        else:
            fused = self.lmf(os_)
        return self.fuse.out(self.drop(F.relu(fused))), atts


def make_batch(data, idx):
    """Padded tensors of the patients `idx` (positions into the data)."""
    mods = []
    for feats, off in data["mods"]:
        cnt = [int(off[p + 1] - off[p]) for p in idx]
        t = max(max(cnt), 1)
        x = torch.zeros(len(idx), t, feats.shape[1])
        mask = torch.zeros(len(idx), t, dtype=torch.bool)
        for k, p in enumerate(idx):
            c = cnt[k]
            if c:
                x[k, :c] = feats[off[p] : off[p] + c]
                mask[k, :c] = True
        mods.append((x, mask, torch.tensor([c > 0 for c in cnt])))
    clin = data["clinical"][torch.tensor(idx)] if data["clinical"] is not None else None
    return {"mods": mods, "clinical": clin}


def cox_loss(out, time_, event):
    """Negative Breslow partial log-likelihood / number of events (time_, event: numpy)."""
    n = len(time_)
    order = np.lexsort((np.arange(n), -time_))  # decreasing time, ties by position
    ts = time_[order]
    # in decreasing order, a tie group's risk set ends at its last member
    tie_end = np.searchsorted(-ts, -ts, side="right") - 1
    ev = torch.tensor(event[order].astype(np.float32))
    d = float(ev.sum())
    if d == 0:
        raise ValueError("a batch without events")
    eta = out.squeeze(-1).index_select(0, torch.from_numpy(order))
    lcse = torch.logcumsumexp(eta, dim=0).index_select(0, torch.from_numpy(tie_end))
    return -((eta - lcse) * ev).sum() / d


def nll_targets(time_, event, cuts):
    n, k = len(time_), len(cuts)
    y = np.zeros((n, k), np.float32)
    w = np.zeros((n, k), np.float32)
    for r in range(n):
        t = time_[r]
        kappa = next((j for j, c in enumerate(cuts) if t <= c), k)
        w[r, :kappa] = 1
        if kappa < k:
            lo = 0.0 if kappa == 0 else cuts[kappa - 1]
            if event[r]:
                y[r, kappa] = 1
                w[r, kappa] = 1
            elif t >= 0.5 * (lo + cuts[kappa]):
                w[r, kappa] = 1
    return torch.tensor(y), torch.tensor(w)


def nll_loss(out, time_, event, cuts):
    y, w = nll_targets(time_, event, cuts)
    return F.binary_cross_entropy_with_logits(out, y, weight=w, reduction="sum") / out.shape[0]


def load_fit(d):
    raw = read_safetensors(os.path.join(d, "data.safetensors"))
    mods = []
    i = 0
    while f"mod{i}.feats" in raw:
        mods.append((torch.from_numpy(raw[f"mod{i}.feats"]), raw[f"mod{i}.offsets"].astype(np.int64)))
        i += 1
    data = {
        "time": raw["time"].astype(np.float64),
        "event": raw["event"].astype(bool),
        "mods": mods,
        "clinical": torch.from_numpy(raw["clinical"]) if "clinical" in raw else None,
    }
    with open(os.path.join(d, "fit.json")) as f:
        fit = json.load(f)
    return data, fit


def build(d, data, fit):
    cfg = fit["config"]
    if cfg["dropout"] != 0:
        raise SystemExit(
            f"{d}: the traced fit used dropout {cfg['dropout']}; its random masks cannot be replayed: "
            "trace a spec with `mil: {{dropout: 0}}`"
        )
    dims = [f.shape[1] for f, _ in data["mods"]]
    clin_dim = data["clinical"].shape[1] if data["clinical"] is not None else 0
    net = MilNet(cfg, dims, clin_dim)
    init = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(d, "init.safetensors")).items()}
    net.load_state_dict(init, strict=True)
    return net, cfg


def epoch_batches(cfg, train, epoch):
    bs = cfg.get("batches") or []
    if epoch < len(bs) and bs[epoch]:
        return [[train[k] for k in b] for b in bs[epoch]]
    return [list(train)]


def loss_of(net, cfg, data, batch, idx):
    out, _ = net(batch)
    t, e = data["time"][idx], data["event"][idx]
    if cfg["loss"] == "cox":
        return cox_loss(out, t, e)
    return nll_loss(out, t, e, cfg["cuts"])


class LibtorchAdamW:
    """AdamW (Loshchilov & Hutter 2019: Adam with decoupled weight decay) evaluated in the order of
    libtorch's C++ torch::optim::AdamW, the optimiser the plugin runs through tch: decay
    p *= 1 - lr*wd, then m = m*b1 + (1-b1) g, v = v*b2 + (1-b2) g², then
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). torch.optim.AdamW is the same algorithm
    but updates m with lerp, which rounds differently (see --optim)."""

    def __init__(self, params, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.wd, self.betas, self.eps = list(params), lr, weight_decay, betas, eps
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.t = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        for p, (m, v) in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad
            if self.wd != 0:
                p.mul_(1 - self.lr * self.wd)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bc1)


@torch.no_grad()
def clip_like_tch(params, max_norm):
    """tch's Optimizer::clip_grad_norm: the global L2 norm of the gradients (the norm of the
    per-parameter norms), the coefficient max/(norm + 1e-6) in double precision, applied only
    when below 1. torch.nn.utils.clip_grad_norm_ computes the coefficient in float32."""
    norms = [p.grad.norm() for p in params if p.grad is not None]
    total = float(torch.stack(norms).norm())
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)


def train(net, cfg, data, train_idx, epochs, cache=None, grad_max=None, optim="libtorch"):
    """Replays the optimisation; returns the loss of every step. With `grad_max` (a dict), keeps
    there each parameter's largest |gradient| over the steps, element by element."""
    params = net.ordered_parameters()
    if optim in ("torch", "torch-foreach"):
        opt = torch.optim.AdamW(
            params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], foreach=optim == "torch-foreach"
        )
    else:
        opt = LibtorchAdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    cache = {} if cache is None else cache
    losses = []
    net.train()
    for epoch in range(epochs):
        for idx in epoch_batches(cfg, train_idx, epoch):
            key = tuple(idx)
            if key not in cache:
                cache[key] = make_batch(data, idx)
            loss = loss_of(net, cfg, data, cache[key], np.array(idx))
            opt.zero_grad()
            loss.backward()
            if grad_max is not None:
                for k, p in net.named_parameters():
                    g = p.grad.abs() if p.grad is not None else torch.zeros_like(p)
                    grad_max[k] = torch.maximum(grad_max[k], g) if k in grad_max else g.clone()
            if cfg["clip"] > 0:
                if optim != "libtorch":
                    torch.nn.utils.clip_grad_norm_(params, cfg["clip"], foreach=optim == "torch-foreach")
                else:
                    clip_like_tch(params, cfg["clip"])
            opt.step()
            losses.append(loss.item())
    return losses


def risks(out, loss):
    o = out.double().numpy()
    if loss == "cox":
        return o[:, 0]
    return 1.0 - np.prod(1.0 - 1.0 / (1.0 + np.exp(-o)), axis=1)


def read_oof(path):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[(int(r["repeat"]), r["patient"])] = (int(r["fold"]), float(r["risk"]))
    return rows


def fit_dirs(root):
    if os.path.isfile(os.path.join(root, "fit.json")):
        return [root]
    out = sorted(
        os.path.join(root, e)
        for e in os.listdir(root)
        if e.startswith("r") and "_f" in e and os.path.isfile(os.path.join(root, e, "fit.json"))
    )
    if not out:
        raise SystemExit(f"{root}: no fit.json, and no r<repeat>_f<fold>/ directory holding one")
    return out


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def check(args):
    torch.set_num_threads(1)
    oof = read_oof(args.oof)
    dirs = fit_dirs(args.trace)
    worst = {"step": 0.0, "risk": 0.0, "weights": 0.0}
    for d in dirs:
        name = os.path.basename(os.path.normpath(d))
        try:
            repeat, fold = (int(v) for v in name[1:].split("_f"))
        except ValueError:
            fail(f"{d}: the directory name is not r<repeat>_f<fold>")
        data, fit = load_fit(d)
        net, cfg = build(d, data, fit)
        train_idx = list(fit["train"])
        steps_traced = fit["step_loss"]
        grad_max = {}
        losses = train(net, cfg, data, train_idx, cfg["epochs"], grad_max=grad_max, optim=args.optim)
        if len(steps_traced) < 1000 and len(losses) != len(steps_traced):
            fail(f"{name}: {len(losses)} optimiser steps replayed, {len(steps_traced)} traced")
        n_check = min(args.steps, len(losses), len(steps_traced))
        if n_check == 0:
            fail(f"{name}: no traced step to compare")
        all_rel = max(
            (abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, steps_traced)), default=0.0
        )
        step_rel = 0.0
        for s in range(n_check):
            a, b = losses[s], steps_traced[s]
            rel = abs(a - b) / max(abs(b), 1e-12)
            step_rel = max(step_rel, rel)
            if not rel <= args.rtol:
                fail(f"{name} step {s + 1}: reference loss {a!r}, spatia {b!r} (relative diff {rel:.3g} > {args.rtol})")
        # final weights
        final = read_safetensors(os.path.join(d, "final.safetensors"))
        sd = net.state_dict()
        if set(final) != set(sd):
            fail(f"{name}: final weights {sorted(set(final) ^ set(sd))} differ in name")
        # With --optim torch (torch.optim.AdamW, clip_grad_norm_), rounding differs from the
        # plugin's, and directions the loss does not depend on (the attention-score bias under
        # the softmax; for cox, whatever shifts every risk alike: the output bias, the bias of a
        # hidden unit active for every training patient) have a gradient that is zero up to
        # rounding, which AdamW turns into steps of about ±lr, different in any two
        # implementations. There, such elements (largest |gradient| over the steps at most 1e-5
        # of the largest of all) are left out of the weight check; they do not change the loss.
        top = max((float(g.max()) for g in grad_max.values() if g.numel()), default=0.0)
        wdiff, wname, noise, n_noise = 0.0, "", 0.0, 0
        for k, v in final.items():
            dd = (sd[k] - torch.from_numpy(v)).abs()
            if args.optim == "torch" and k in grad_max:
                idle = grad_max[k] <= 1e-5 * top
            else:
                idle = torch.zeros_like(dd, dtype=torch.bool)
            n_noise += int(idle.sum())
            if idle.any():
                noise = max(noise, float(dd[idle].max()))
            kept = dd[~idle]
            if kept.numel() and float(kept.max()) > wdiff:
                wdiff, wname = float(kept.max()), k
        if not wdiff <= args.atol_weights:
            fail(f"{name}: final weight {wname} differs by {wdiff:.3g} > {args.atol_weights}")
        # out-of-fold risks of the test patients
        with open(os.path.join(d, "patients.json")) as f:
            ids = json.load(f)
        n = len(data["time"])
        if len(ids) != n:
            fail(f"{name}: patients.json lists {len(ids)} patients, the data has {n}")
        net.eval()
        with torch.no_grad():
            out, _ = net(make_batch(data, list(range(n))))
        r = risks(out, cfg["loss"])
        centre = float(np.mean(r[train_idx])) if cfg["loss"] == "cox" else 0.0
        test = sorted(set(range(n)) - set(train_idx))
        if not test:
            fail(f"{name}: no test patient")
        rdiff = 0.0
        for p in test:
            key = (repeat, ids[p])
            if key not in oof:
                fail(f"{name}: patient {ids[p]} (repeat {repeat}) not in {args.oof}")
            f_oof, risk = oof[key]
            if f_oof != fold:
                fail(f"{name}: patient {ids[p]} is a test patient of this fit but in fold {f_oof} of oof.csv")
            mine = r[p] - centre
            dd = abs(mine - risk)
            rdiff = max(rdiff, dd)
            if not dd <= args.atol_risk:
                fail(
                    f"{name}: patient {ids[p]}: reference risk {mine!r}, oof.csv {risk!r} "
                    f"(|diff| {dd:.3g} > {args.atol_risk})"
                )
        worst = {k: max(worst[k], v) for k, v in (("step", step_rel), ("risk", rdiff), ("weights", wdiff))}
        nb = len(epoch_batches(cfg, train_idx, 0))
        without = [int((np.diff(off) == 0).sum()) for _, off in data["mods"]]
        clin = " + clinical" if data["clinical"] is not None else ""
        print(
            f"ok {name}: {cfg['fusion']}/{cfg['loss']}, {len(data['mods'])} stain(s){clin}, "
            f"patients without a bag per stain {without}, "
            f"{cfg['epochs']} epoch(s) x {nb} batch(es), {len(train_idx)} train / {len(test)} test; "
            f"steps 1-{n_check} max rel diff {step_rel:.2e}, final weights max |diff| {wdiff:.2e}, "
            f"oof risk max |diff| {rdiff:.2e}; all {len(losses)} steps max rel diff {all_rel:.2e}"
            + (f" ({n_noise} zero-gradient weight(s) left out, max |diff| {noise:.1e})" if n_noise else ""),
            flush=True,
        )
    print(
        f"checked {len(dirs)} fit(s): max step-loss rel diff {worst['step']:.2e}, "
        f"max weight |diff| {worst['weights']:.2e}, max oof-risk |diff| {worst['risk']:.2e}",
        flush=True,
    )


def bench(args):
    torch.set_num_threads(1)
    data, fit = load_fit(args.fit)
    train_idx = list(fit["train"])

    def run(epochs):
        # one whole fit, as Spatia's side is timed: network set-up, batch assembly, the epochs
        t0 = time.perf_counter()
        net, cfg = build(args.fit, data, fit)
        cfg = dict(cfg)
        bs = cfg.get("batches") or []
        # mini-batches repeat cyclically past the traced epochs
        cfg["batches"] = [bs[e % len(bs)] for e in range(epochs)] if bs else []
        train(net, cfg, data, train_idx, epochs, optim=args.optim)
        return (time.perf_counter() - t0) / epochs

    run(1)  # warm-up
    if args.serve:
        print("ready", flush=True)
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            print(json.dumps({"seconds_per_epoch": run(max(1, int(line)))}), flush=True)
        return
    for _ in range(args.rounds):
        print(json.dumps({"seconds_per_epoch": run(args.epochs)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("trace")
    c.add_argument("oof")
    c.add_argument("--steps", type=int, default=20)
    c.add_argument("--rtol", type=float, default=1e-5)
    c.add_argument("--atol-risk", type=float, default=1e-4)
    c.add_argument("--atol-weights", type=float, default=1e-4)
    c.add_argument(
        "--optim",
        choices=("libtorch", "torch"),
        default="libtorch",
        help="libtorch: AdamW and clipping evaluated as the plugin's libtorch does (default); "
        "torch: torch.optim.AdamW and torch.nn.utils.clip_grad_norm_",
    )
    b = sub.add_parser("bench")
    b.add_argument("fit")
    b.add_argument("epochs", type=int)
    b.add_argument("--rounds", type=int, default=1)
    b.add_argument("--serve", action="store_true")
    b.add_argument(
        "--optim",
        choices=("libtorch", "torch", "torch-foreach"),
        default="torch",
        help="torch.optim.AdamW and clip_grad_norm_ (default), the same with foreach=True, "
        "or the libtorch-order AdamW",
    )
    args = ap.parse_args()
    if args.cmd == "check":
        check(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
