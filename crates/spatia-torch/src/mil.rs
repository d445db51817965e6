//! Attention-MIL survival networks: the `train` stage's `model: mil`, fitted and applied here so
//! that libtorch stays behind the plugin boundary. The caller (spatia's `model::mil`) owns the
//! study logic — folds, epoch choice, standardisation, centring, baselines — and calls these
//! functions for one fit at a time, in a process of its own pinned to one intra-op thread.
//!
//! # Architecture (parameter names as saved, PyTorch `state_dict` style)
//! For each stain `i` of the arm (`mod{i}`), over the patient's bag of tiles `x` (T × D, every
//! slide of that stain concatenated), gated attention (Ilse et al. 2018):
//! - `h = dropout(relu(mod{i}.inp(x)))` (T × H);
//! - `s = mod{i}.att_c(tanh(mod{i}.att_a(h)) ⊙ sigmoid(mod{i}.att_b(h)))` (T), softmax over the
//!   bag's tiles → attention `w`; embedding `z_i = Σ_t w_t h_t` (H);
//! - a patient without a slide of the stain gets the learned `mod{i}.missing` (H) instead.
//!
//! Clinical covariates (`clin`): `z_c = dropout(relu(clin.inp(x)))` (H). Fusion of the M
//! embeddings (stains, then clinical):
//! - `concat`: `out = fuse.out(dropout(relu(fuse.hid([z_1 … z_M]))))`;
//! - `late`: `out` = mean over the modalities the patient has of `head{m}(z_m)` (all of them when
//!   she has none);
//! - `bilinear`, M ≤ 3 (Pathomic Fusion, Chen et al. 2020): per modality a gated reduction
//!   `o_m = relu(gate{m}.h(z_m)) ⊙ sigmoid(gate{m}.g([z_1 … z_M]))` (R), `õ_m = [o_m, 1]`, the
//!   Kronecker product `õ_1 ⊗ … ⊗ õ_M` ((R+1)^M), then `fuse.out(dropout(relu(fuse.hid(·))))`;
//! - `bilinear`, M > 3 (low-rank multimodal fusion, Liu et al. 2018): the same `õ_m`, fused as
//!   `Σ_k Π_m õ_m·lmf.f{m}[k] + lmf.bias` (rank `rank`, H) instead of the full product, then
//!   `fuse.out(dropout(relu(·)))`.
//!
//! `out` is one value (the risk, `loss: cox`) or one logit per time interval (`loss: nll`; the
//! output layers' biases then start at the logits of the training patients' pooled interval
//! hazards, `out_bias`).
//!
//! # Losses
//! - `cox`: the negative Breslow partial log-likelihood over the batch divided by its events:
//!   `−(1/d) Σ_{i: event} [η_i − log Σ_{j: t_j ≥ t_i} exp η_j]`, computed as a log-cumsum-exp
//!   over the batch sorted by decreasing time, each tie group taking its last position.
//! - `nll`: the logistic-hazard likelihood (Gensheimer & Narasimhan 2019) on intervals
//!   `(τ_{k−1}, τ_k]` (`cuts`): a patient whose time falls in interval κ contributes
//!   `Σ_{k<κ} log(1 − h_k)` plus `log h_κ` for an event, or `log(1 − h_κ)` when censored in the
//!   second half of the interval; beyond the last cut, `Σ_k log(1 − h_k)`. `h = sigmoid(out)`;
//!   the loss is the binary cross-entropy sum divided by the batch size.
//!
//! # Training
//! AdamW (`lr`, `weight_decay`), the gradient's global L2 norm clipped to `clip` (0: none), one
//! step per batch; the batches of each epoch are the caller's (`batches`) or the whole training
//! set. Weights are initialised by libtorch's generator seeded with `seed` (and dropout draws
//! from it), so a fit is a function of its inputs on one CPU thread. With validation patients,
//! after every epoch the network (dropout off) scores them: for `cox` their contribution to the
//! cross-validated partial likelihood (Verweij & van Houwelingen 1993),
//! `ℓ(train ∪ val) − ℓ(train)`, for `nll` minus their summed loss; higher is better.
//!
//! # Trace
//! With `trace` set, the fit writes there `data.safetensors` (the inputs it saw), `init.safetensors`
//! (the initial weights), `fit.json` (configuration, training and validation patients, the loss
//! of every step), so that an independent implementation can replay it.
use std::collections::BTreeMap;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// The data of one fit (the caller's patients, standardised by the caller).
pub struct MilData {
    n: usize,
    time: Vec<f64>,
    event: Vec<bool>,
    /// Per stain: features (N_tiles + 1) × D on the CPU (the last row zeros, for padding), and
    /// the tile offsets of each patient (n + 1).
    mods: Vec<(Tensor, Vec<i64>, i64)>,
    /// n × C (C = 0: no clinical block).
    clinical: Option<Tensor>,
}

/// The configuration of a fit (JSON from the caller).
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MilConfig {
    pub hidden: i64,
    pub attention: i64,
    pub dropout: f64,
    pub fusion: String,
    /// Reduced width of the gated bilinear fusion.
    #[serde(default = "d_bil")]
    pub bilinear_dim: i64,
    /// Rank of the low-rank fusion (more than 3 modalities).
    #[serde(default = "d_rank")]
    pub rank: i64,
    pub loss: String,
    /// Interval ends for `nll`.
    #[serde(default)]
    pub cuts: Vec<f64>,
    /// Initial bias of the output layer(s) (one per output; empty: libtorch's default): for
    /// `nll` the logit of each interval's pooled hazard among the training patients, so the
    /// network starts from the marginal survival instead of hazards of ½.
    #[serde(default)]
    pub out_bias: Vec<f64>,
    pub lr: f64,
    pub weight_decay: f64,
    pub clip: f64,
    pub epochs: usize,
    pub seed: i64,
    /// −1 CPU, k CUDA device k.
    pub device: i32,
    /// Per epoch, the batches (positions into the training patients); empty: full batch.
    #[serde(default)]
    pub batches: Vec<Vec<Vec<usize>>>,
    /// A directory to write the fit's trace into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// A label for error messages (arm, repeat, fold).
    #[serde(default)]
    pub context: String,
}

fn d_bil() -> i64 {
    8
}
fn d_rank() -> i64 {
    4
}

struct Enc {
    inp: nn::Linear,
    att_a: nn::Linear,
    att_b: nn::Linear,
    att_c: nn::Linear,
    missing: Tensor,
}

enum Fusion {
    Concat { hid: nn::Linear, out: nn::Linear },
    Late { heads: Vec<nn::Linear> },
    Kron { gates: Vec<(nn::Linear, nn::Linear)>, hid: nn::Linear, out: nn::Linear },
    Lmf { gates: Vec<(nn::Linear, nn::Linear)>, factors: Vec<Tensor>, bias: Tensor, out: nn::Linear },
}

/// A fitted network.
pub struct MilModel {
    vs: nn::VarStore,
    encs: Vec<Enc>,
    clin: Option<nn::Linear>,
    fusion: Fusion,
    cfg: MilConfig,
    /// Outputs per patient (1 or the number of intervals).
    pub out_dim: i64,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Validation score of each epoch (empty without validation patients).
    pub val_score: Vec<f64>,
    /// The loss of each optimisation step (the first 1000).
    pub step_loss: Vec<f64>,
    /// With validation patients, the outputs of the training then validation patients after
    /// each epoch (dropout off).
    pub scored: Vec<Vec<f32>>,
}

/// One batch on the device.
struct Batch {
    /// Per stain: tiles B × T × D, mask B × T (real tiles), present B.
    mods: Vec<(Tensor, Tensor, Tensor)>,
    clinical: Option<Tensor>,
    /// Per stain, per patient of the batch, the number of real tiles.
    counts: Vec<Vec<i64>>,
}

impl MilData {
    /// Builds the data from flat arrays; see [`crate::spatia_torch_mil_data`].
    pub fn new(
        time: &[f64],
        event: &[u8],
        mods: Vec<(&[f32], &[i64], usize)>,
        clinical: Option<(&[f32], usize)>,
    ) -> Result<MilData, String> {
        let n = time.len();
        if event.len() != n {
            return Err(format!("{} events for {n} times", event.len()));
        }
        if let Some(i) = time.iter().position(|t| !t.is_finite() || *t < 0.0) {
            return Err(format!("patient {i}: time {} is not a finite non-negative number", time[i]));
        }
        let mut out = Vec::new();
        for (m, (feats, offsets, dim)) in mods.into_iter().enumerate() {
            if offsets.len() != n + 1 || offsets[0] != 0 || offsets.windows(2).any(|w| w[1] < w[0]) {
                return Err(format!("stain {m}: expected {} non-decreasing tile offsets from 0", n + 1));
            }
            let tiles = offsets[n] as usize;
            if dim == 0 || feats.len() != tiles * dim {
                return Err(format!("stain {m}: {} floats for {tiles} tiles of width {dim}", feats.len()));
            }
            if let Some(i) = feats.iter().position(|v| !v.is_finite()) {
                return Err(format!("stain {m}: tile {} has a non-finite feature", i / dim));
            }
            let mut buf = feats.to_vec();
            buf.extend(std::iter::repeat_n(0.0f32, dim));
            let t = Tensor::from_slice(&buf).view([tiles as i64 + 1, dim as i64]);
            out.push((t, offsets.to_vec(), dim as i64));
        }
        let clinical = match clinical {
            Some((x, c)) if c > 0 => {
                if x.len() != n * c {
                    return Err(format!("{} clinical values for {n} patients × {c} columns", x.len()));
                }
                if x.iter().any(|v| !v.is_finite()) {
                    return Err("a clinical value is not finite".into());
                }
                Some(Tensor::from_slice(x).view([n as i64, c as i64]))
            }
            _ => None,
        };
        Ok(MilData { n, time: time.to_vec(), event: event.iter().map(|&e| e != 0).collect(), mods: out, clinical })
    }

    fn batch(&self, idx: &[usize], device: Device) -> Batch {
        let b = idx.len() as i64;
        let mut mods = Vec::new();
        let mut counts = Vec::new();
        for (feats, off, dim) in &self.mods {
            let zero_row = off[self.n];
            let cnt: Vec<i64> = idx.iter().map(|&p| off[p + 1] - off[p]).collect();
            let t = cnt.iter().copied().max().unwrap_or(0).max(1);
            let mut rows = Vec::with_capacity((b * t) as usize);
            let mut mask = Vec::with_capacity((b * t) as usize);
            for (k, &p) in idx.iter().enumerate() {
                for j in 0..t {
                    if j < cnt[k] {
                        rows.push(off[p] + j);
                        mask.push(true);
                    } else {
                        rows.push(zero_row);
                        // a patient without tiles attends to one zero tile (replaced by `missing`)
                        mask.push(j == 0 && cnt[k] == 0);
                    }
                }
            }
            let x = feats.index_select(0, &Tensor::from_slice(&rows)).view([b, t, *dim]).to_device(device);
            let mask = Tensor::from_slice(&mask).view([b, t]).to_device(device);
            let present = Tensor::from_slice(&cnt.iter().map(|&c| c > 0).collect::<Vec<bool>>()).to_device(device);
            mods.push((x, mask, present));
            counts.push(cnt);
        }
        let clinical = self.clinical.as_ref().map(|c| {
            let ix: Vec<i64> = idx.iter().map(|&p| p as i64).collect();
            c.index_select(0, &Tensor::from_slice(&ix)).to_device(device)
        });
        Batch { mods, clinical, counts }
    }
}

fn lin(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, Default::default())
}

impl MilModel {
    fn build(data: &MilData, cfg: MilConfig) -> Result<MilModel, String> {
        let device = if cfg.device < 0 { Device::Cpu } else { Device::Cuda(cfg.device as usize) };
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let h = cfg.hidden;
        let encs: Vec<Enc> = data
            .mods
            .iter()
            .enumerate()
            .map(|(i, (_, _, d))| {
                let p = &root / format!("mod{i}");
                Enc {
                    inp: lin(&p / "inp", *d, h),
                    att_a: lin(&p / "att_a", h, cfg.attention),
                    att_b: lin(&p / "att_b", h, cfg.attention),
                    att_c: lin(&p / "att_c", cfg.attention, 1),
                    missing: p.var("missing", &[h], nn::Init::Randn { mean: 0.0, stdev: 0.1 }),
                }
            })
            .collect();
        let clin = data.clinical.as_ref().map(|c| lin(&root / "clin" / "inp", c.size()[1], h));
        let m = encs.len() as i64 + clin.is_some() as i64;
        if m == 0 {
            return Err("no modality: expected at least one stain or the clinical block".into());
        }
        let out_dim = match cfg.loss.as_str() {
            "cox" => 1,
            "nll" if !cfg.cuts.is_empty() => cfg.cuts.len() as i64,
            "nll" => return Err("loss nll needs interval cuts".into()),
            l => return Err(format!("unknown loss `{l}`")),
        };
        let gates = |r: i64| -> Vec<(nn::Linear, nn::Linear)> {
            (0..m)
                .map(|k| {
                    let p = &root / format!("gate{k}");
                    (lin(&p / "h", h, r), lin(&p / "g", h * m, r))
                })
                .collect()
        };
        let fusion = match cfg.fusion.as_str() {
            "concat" => Fusion::Concat {
                hid: lin(&root / "fuse" / "hid", h * m, h),
                out: lin(&root / "fuse" / "out", h, out_dim),
            },
            "late" => Fusion::Late { heads: (0..m).map(|k| lin(&root / format!("head{k}"), h, out_dim)).collect() },
            "bilinear" if m <= 3 => {
                let r = cfg.bilinear_dim;
                let g = gates(r);
                Fusion::Kron {
                    gates: g,
                    hid: lin(&root / "fuse" / "hid", (r + 1).pow(m as u32), h),
                    out: lin(&root / "fuse" / "out", h, out_dim),
                }
            }
            "bilinear" => {
                let r = cfg.bilinear_dim;
                let g = gates(r);
                let p = &root / "lmf";
                let bound = 1.0 / ((r + 1) as f64).sqrt();
                let factors = (0..m)
                    .map(|k| {
                        p.var(&format!("f{k}"), &[cfg.rank, r + 1, h], nn::Init::Uniform { lo: -bound, up: bound })
                    })
                    .collect();
                let bias = p.var("bias", &[h], nn::Init::Const(0.0));
                Fusion::Lmf { gates: g, factors, bias, out: lin(&root / "fuse" / "out", h, out_dim) }
            }
            f => return Err(format!("unknown fusion `{f}`")),
        };
        Ok(MilModel {
            vs,
            encs,
            clin,
            fusion,
            cfg,
            out_dim,
            train_loss: Vec::new(),
            val_score: Vec::new(),
            step_loss: Vec::new(),
            scored: Vec::new(),
        })
    }

    /// Outputs (B × out) and each stain's attention (B × T).
    fn forward(&self, b: &Batch, train: bool) -> (Tensor, Vec<Tensor>) {
        let p = self.cfg.dropout;
        let mut z = Vec::new();
        let mut present = Vec::new();
        let mut att = Vec::new();
        for (e, (x, mask, pres)) in self.encs.iter().zip(&b.mods) {
            let h = x.apply(&e.inp).relu().dropout(p, train);
            let s = (h.apply(&e.att_a).tanh() * h.apply(&e.att_b).sigmoid()).apply(&e.att_c).squeeze_dim(-1);
            let w = s.masked_fill(&mask.logical_not(), f64::NEG_INFINITY).softmax(1, Kind::Float);
            let emb = (w.unsqueeze(-1) * &h).sum_dim_intlist(1, false, Kind::Float);
            let emb = emb.where_self(&pres.unsqueeze(-1), &e.missing.unsqueeze(0));
            z.push(emb);
            present.push(pres.to_kind(Kind::Float));
            att.push(w);
        }
        if let (Some(l), Some(x)) = (&self.clin, &b.clinical) {
            z.push(x.apply(l).relu().dropout(p, train));
            present.push(Tensor::ones([x.size()[0]], (Kind::Float, x.device())));
        }
        let out = match &self.fusion {
            Fusion::Concat { hid, out } => Tensor::cat(&z, 1).apply(hid).relu().dropout(p, train).apply(out),
            Fusion::Late { heads } => {
                let outs = Tensor::stack(&z.iter().zip(heads).map(|(zm, hd)| hd.forward(zm)).collect::<Vec<_>>(), 1);
                let w = Tensor::stack(&present, 1); // B × M
                let none = w.sum_dim_intlist(1, true, Kind::Float).eq(0.0);
                let w = w.where_self(&none.logical_not(), &w.ones_like());
                let w = &w / w.sum_dim_intlist(1, true, Kind::Float);
                (outs * w.unsqueeze(-1)).sum_dim_intlist(1, false, Kind::Float)
            }
            Fusion::Kron { gates, hid, out } => {
                let all = Tensor::cat(&z, 1);
                let mut acc: Option<Tensor> = None;
                for (zm, (gh, gg)) in z.iter().zip(gates) {
                    let o = zm.apply(gh).relu() * all.apply(gg).sigmoid();
                    let o = Tensor::cat(&[o.shallow_clone(), o.ones_like().narrow(1, 0, 1)], 1);
                    acc = Some(match acc {
                        None => o,
                        Some(a) => {
                            let bsz = a.size()[0];
                            (a.unsqueeze(2) * o.unsqueeze(1)).view([bsz, -1])
                        }
                    });
                }
                acc.expect("at least one modality").apply(hid).relu().dropout(p, train).apply(out)
            }
            Fusion::Lmf { gates, factors, bias, out } => {
                let all = Tensor::cat(&z, 1);
                let mut prod: Option<Tensor> = None;
                for ((zm, (gh, gg)), f) in z.iter().zip(gates).zip(factors) {
                    let o = zm.apply(gh).relu() * all.apply(gg).sigmoid();
                    let o = Tensor::cat(&[o.shallow_clone(), o.ones_like().narrow(1, 0, 1)], 1);
                    let fm = Tensor::einsum("bi,kih->kbh", &[&o, f], None::<&[i64]>);
                    prod = Some(match prod {
                        None => fm,
                        Some(a) => a * fm,
                    });
                }
                let fused = prod.expect("at least one modality").sum_dim_intlist(0, false, Kind::Float) + bias;
                fused.relu().dropout(p, train).apply(out)
            }
        };
        (out, att)
    }

    fn loss(&self, out: &Tensor, data: &MilData, idx: &[usize]) -> Result<Tensor, String> {
        let dev = out.device();
        match self.cfg.loss.as_str() {
            "cox" => {
                let (order, tie_end, ev) = risk_sets(&data.time, &data.event, idx);
                let d: f64 = ev.iter().map(|&e| e as f64).sum();
                if d == 0.0 {
                    return Err("a batch without events has no risk set".into());
                }
                let eta = out.squeeze_dim(-1).index_select(0, &Tensor::from_slice(&order).to_device(dev));
                let denom = eta.logcumsumexp(0).index_select(0, &Tensor::from_slice(&tie_end).to_device(dev));
                let evt = Tensor::from_slice(&ev).to_device(dev);
                Ok(-((eta - denom) * evt).sum(Kind::Float) / d)
            }
            _ => {
                let (y, w) = nll_targets(&data.time, &data.event, idx, &self.cfg.cuts);
                let k = self.cfg.cuts.len() as i64;
                let b = idx.len() as i64;
                let y = Tensor::from_slice(&y).view([b, k]).to_device(dev);
                let w = Tensor::from_slice(&w).view([b, k]).to_device(dev);
                let bce = out.binary_cross_entropy_with_logits::<&Tensor>(&y, Some(&w), None, tch::Reduction::Sum);
                Ok(bce / b as f64)
            }
        }
    }

    fn fit(&mut self, data: &MilData, train: &[usize], val: &[usize]) -> Result<(), String> {
        let device = self.vs.device();
        let full = data.batch(train, device);
        let scored: Vec<usize> = train.iter().chain(val).copied().collect();
        let score_batch = (!val.is_empty()).then(|| data.batch(&scored, device));
        let mut opt = nn::AdamW { wd: self.cfg.weight_decay, ..Default::default() }
            .build(&self.vs, self.cfg.lr)
            .map_err(|e| e.to_string())?;
        let ctx = if self.cfg.context.is_empty() { String::new() } else { format!("{}: ", self.cfg.context) };
        for epoch in 0..self.cfg.epochs {
            let batches: Vec<Vec<usize>> = match self.cfg.batches.get(epoch) {
                Some(bs) if !bs.is_empty() => bs
                    .iter()
                    .map(|b| b.iter().map(|&k| train.get(k).copied().ok_or("batch position out of range")).collect())
                    .collect::<Result<_, _>>()?,
                _ => vec![train.to_vec()],
            };
            let mut sum = 0.0;
            for idx in &batches {
                let owned;
                let b = if idx.as_slice() == train {
                    &full
                } else {
                    owned = data.batch(idx, device);
                    &owned
                };
                let (out, _) = self.forward(b, true);
                let loss = self.loss(&out, data, idx).map_err(|e| format!("{ctx}epoch {}: {e}", epoch + 1))?;
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    return Err(format!(
                        "{ctx}the training diverged: the loss is {l} at epoch {}; lower `mil.lr` (now {}) or keep `mil.clip` on",
                        epoch + 1,
                        self.cfg.lr
                    ));
                }
                opt.zero_grad();
                loss.backward();
                if self.cfg.clip > 0.0 {
                    opt.clip_grad_norm(self.cfg.clip);
                }
                opt.step();
                sum += l;
                if self.step_loss.len() < 1000 {
                    self.step_loss.push(l);
                }
            }
            self.train_loss.push(sum / batches.len() as f64);
            if let Some(sb) = &score_batch {
                let out = tch::no_grad(|| self.forward(sb, false).0);
                let v: Vec<f32> =
                    Vec::<f32>::try_from(out.to_device(Device::Cpu).flatten(0, -1)).map_err(|e| e.to_string())?;
                self.val_score.push(self.score(&v, data, train, val, &scored));
                self.scored.push(v);
            }
        }
        Ok(())
    }

    /// The validation score of the `scored` patients' outputs (train then val).
    fn score(&self, v: &[f32], data: &MilData, train: &[usize], val: &[usize], scored: &[usize]) -> f64 {
        if self.cfg.loss == "cox" {
            let eta: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            let all = breslow_ll(&data.time, &data.event, scored, &eta);
            let tr = breslow_ll(&data.time, &data.event, train, &eta[..train.len()]);
            all - tr
        } else {
            let k = self.cfg.cuts.len();
            let tail = &v[train.len() * k..];
            let (y, w) = nll_targets(&data.time, &data.event, val, &self.cfg.cuts);
            -tail
                .iter()
                .zip(y.iter().zip(&w))
                .map(|(&x, (&y, &w))| {
                    let x = x as f64;
                    // binary cross-entropy with logits, stable
                    w as f64 * (x.max(0.0) - x * y as f64 + (-x.abs()).exp().ln_1p())
                })
                .sum::<f64>()
        }
    }

    /// Outputs (n × out) and per-tile attention (per patient, per stain, its tiles).
    pub fn predict(&self, data: &MilData, idx: &[usize]) -> Result<(Vec<f32>, Vec<f32>), String> {
        let b = data.batch(idx, self.vs.device());
        let (out, att) = tch::no_grad(|| self.forward(&b, false));
        let out = Vec::<f32>::try_from(out.to_device(Device::Cpu).flatten(0, -1)).map_err(|e| e.to_string())?;
        let att: Vec<Vec<f32>> = att
            .iter()
            .map(|a| Vec::<f32>::try_from(a.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default())
            .collect();
        let mut flat = Vec::new();
        for k in 0..idx.len() {
            for (m, a) in att.iter().enumerate() {
                let t = a.len() / idx.len().max(1);
                let c = b.counts[m][k] as usize;
                flat.extend_from_slice(&a[k * t..k * t + c]);
            }
        }
        Ok((out, flat))
    }

    pub fn save(&self, path: &str) -> Result<(), String> {
        self.vs.save(path).map_err(|e| format!("cannot save the weights to {path}: {e}"))
    }
}

/// For the patients `idx`: positions sorted by decreasing time (ties by position), each
/// position's last tie, and the events in that order.
fn risk_sets(time: &[f64], event: &[bool], idx: &[usize]) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_by(|&a, &b| time[idx[b]].total_cmp(&time[idx[a]]).then(a.cmp(&b)));
    let n = order.len();
    let mut tie_end = vec![0i64; n];
    let mut j = n;
    for i in (0..n).rev() {
        if i + 1 == n || time[idx[order[i]]] != time[idx[order[i + 1]]] {
            j = i;
        }
        tie_end[i] = j as i64;
    }
    let ev = order.iter().map(|&k| event[idx[k]] as u8 as f32).collect();
    (order.into_iter().map(|k| k as i64).collect(), tie_end, ev)
}

/// Breslow log partial likelihood of `eta` (aligned with `idx`).
fn breslow_ll(time: &[f64], event: &[bool], idx: &[usize], eta: &[f64]) -> f64 {
    let (order, tie_end, ev) = risk_sets(time, event, idx);
    let e: Vec<f64> = order.iter().map(|&k| eta[k as usize]).collect();
    let mut lcse = Vec::with_capacity(e.len());
    let mut acc = f64::NEG_INFINITY;
    for &x in &e {
        let m = acc.max(x);
        acc = if m == f64::NEG_INFINITY { m } else { m + ((acc - m).exp() + (x - m).exp()).ln() };
        lcse.push(acc);
    }
    (0..e.len()).filter(|&i| ev[i] > 0.0).map(|i| e[i] - lcse[tie_end[i] as usize]).sum()
}

/// Targets and weights (n × K) of the logistic-hazard likelihood.
fn nll_targets(time: &[f64], event: &[bool], idx: &[usize], cuts: &[f64]) -> (Vec<f32>, Vec<f32>) {
    let k = cuts.len();
    let mut y = vec![0f32; idx.len() * k];
    let mut w = vec![0f32; idx.len() * k];
    for (r, &p) in idx.iter().enumerate() {
        let t = time[p];
        let kappa = cuts.iter().position(|&c| t <= c).unwrap_or(k);
        for j in 0..kappa.min(k) {
            w[r * k + j] = 1.0;
        }
        if kappa < k {
            let lo = if kappa == 0 { 0.0 } else { cuts[kappa - 1] };
            if event[p] {
                y[r * k + kappa] = 1.0;
                w[r * k + kappa] = 1.0;
            } else if t >= 0.5 * (lo + cuts[kappa]) {
                w[r * k + kappa] = 1.0;
            }
        }
    }
    (y, w)
}

/// Fits a network; see the module docs.
pub fn fit(data: &MilData, cfg: MilConfig, train: &[usize], val: &[usize]) -> Result<MilModel, String> {
    if let Some(&p) = train.iter().chain(val).find(|&&p| p >= data.n) {
        return Err(format!("patient index {p} out of range ({} patients)", data.n));
    }
    if train.is_empty() {
        return Err("no training patient".into());
    }
    tch::manual_seed(cfg.seed);
    let mut model = MilModel::build(data, cfg)?;
    if let Some(dir) = model.cfg.trace.clone() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        write_data(data, &format!("{dir}/data.safetensors"))?;
        model.save(&format!("{dir}/init.safetensors"))?;
    }
    model.fit(data, train, val)?;
    if let Some(dir) = model.cfg.trace.clone() {
        let j = serde_json::json!({
            "config": model.cfg, "train": train, "val": val, "step_loss": model.step_loss,
            "train_loss": model.train_loss, "val_score": model.val_score,
        });
        std::fs::write(format!("{dir}/fit.json"), j.to_string())
            .map_err(|e| format!("cannot write {dir}/fit.json: {e}"))?;
        model.save(&format!("{dir}/final.safetensors"))?;
    }
    Ok(model)
}

fn write_data(data: &MilData, path: &str) -> Result<(), String> {
    let mut named: BTreeMap<String, Tensor> = BTreeMap::new();
    named.insert("time".into(), Tensor::from_slice(&data.time));
    named.insert("event".into(), Tensor::from_slice(&data.event.iter().map(|&e| e as u8).collect::<Vec<u8>>()));
    for (i, (f, off, _)) in data.mods.iter().enumerate() {
        named.insert(format!("mod{i}.feats"), f.narrow(0, 0, off[data.n]).contiguous());
        named.insert(format!("mod{i}.offsets"), Tensor::from_slice(off));
    }
    if let Some(c) = &data.clinical {
        named.insert("clinical".into(), c.shallow_clone());
    }
    let v: Vec<(String, Tensor)> = named.into_iter().collect();
    Tensor::write_safetensors(&v, path).map_err(|e| format!("cannot write {path}: {e}"))
}
