//! Encoder inference (BERT family): batches of token ids → last hidden states → sentence embeddings
//! (mean pooling over real tokens, then L2 normalisation, as sentence-transformers' Pooling + Normalize) or
//! classification logits. Plans are compiled per (batch, padded length) bucket over one shared copy of the
//! weights.

use std::path::Path;

use crate::error::{Error, Result};
use crate::exec::{Plan, SharedLeaves};
use crate::gpu::Gpu;
use crate::loader::WeightStore;
use crate::models::{bert, ConfigSource, Precision};
use crate::tensor::{DType, HostTensor};

pub struct Encoder<'g> {
    gpu: &'g Gpu,
    pub cfg: bert::Config,
    pub dtype: DType,
    pub prec: Precision,
    store: WeightStore,
    shared: SharedLeaves,
    plans: crate::exec::PlanCache<'g, (usize, usize)>,
    head: Option<bert::Head>,
    pub pooling: Pooling,
}

/// Sentence-transformers' Pooling (1_Pooling/config.json) and Normalize (modules.json) modules: the modes
/// that are on, concatenated in its order (cls, max, mean, mean·√len), then L2 normalisation if listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pooling {
    pub cls: bool,
    pub max: bool,
    pub mean: bool,
    pub mean_sqrt_len: bool,
    pub normalize: bool,
}

impl Default for Pooling {
    /// Without a sentence-transformers config: mean pooling, normalised (all-MiniLM-L6-v2's).
    fn default() -> Self {
        Pooling { cls: false, max: false, mean: true, mean_sqrt_len: false, normalize: true }
    }
}

impl Pooling {
    /// From a model folder's modules.json and pooling config; the default where they are absent.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let read = |p: std::path::PathBuf| -> Result<Option<serde_json::Value>> {
            let Ok(text) = std::fs::read_to_string(&p) else { return Ok(None) };
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Format { file: p.display().to_string(), detail: format!("not JSON: {e}") })
        };
        let Some(modules) = read(dir.join("modules.json"))? else { return Ok(Pooling::default()) };
        let list = modules.as_array().cloned().unwrap_or_default();
        let kind = |m: &serde_json::Value, t: &str| m["type"].as_str().is_some_and(|s| s.ends_with(t));
        let normalize = list.iter().any(|m| kind(m, "Normalize"));
        let Some(pool) = list.iter().find(|m| kind(m, "Pooling")) else {
            return Ok(Pooling { normalize, ..Pooling::default() });
        };
        let cfg = read(dir.join(pool["path"].as_str().unwrap_or("1_Pooling")).join("config.json"))?;
        let Some(cfg) = cfg else { return Ok(Pooling { normalize, ..Pooling::default() }) };
        let on = |k: &str| cfg[k].as_bool().unwrap_or(false);
        let p = Pooling {
            cls: on("pooling_mode_cls_token"),
            max: on("pooling_mode_max_tokens"),
            mean: on("pooling_mode_mean_tokens"),
            mean_sqrt_len: on("pooling_mode_mean_sqrt_len_tokens"),
            normalize,
        };
        if !(p.cls || p.max || p.mean || p.mean_sqrt_len) {
            return Err(Error::Unsupported {
                op: "embed".into(),
                detail: format!(
                    "{}: no pooling mode this engine knows is on (cls, max, mean, mean_sqrt_len)",
                    dir.display()
                ),
            });
        }
        Ok(p)
    }

    /// Pool one sequence's hidden states `h` ([len × c], real tokens only).
    pub fn pool(&self, h: &[f32], c: usize) -> Vec<f32> {
        let n = (h.len() / c).max(1);
        let col = |j: usize| h.iter().skip(j).step_by(c).map(|&x| x as f64);
        let mut v: Vec<f64> = vec![];
        if self.cls {
            v.extend(h[..c].iter().map(|&x| x as f64));
        }
        if self.max {
            v.extend((0..c).map(|j| col(j).fold(f64::NEG_INFINITY, f64::max)));
        }
        if self.mean {
            v.extend((0..c).map(|j| col(j).sum::<f64>() / n as f64));
        }
        if self.mean_sqrt_len {
            v.extend((0..c).map(|j| col(j).sum::<f64>() / (n as f64).sqrt()));
        }
        if self.normalize {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v.into_iter().map(|x| x as f32).collect()
    }
}

impl<'g> Encoder<'g> {
    /// Open a BERT-family model in `prec` (an int8 checkpoint runs its own scheme unless `prec` asks for int8).
    pub fn load(gpu: &'g Gpu, path: &Path, prec: impl Into<Precision>) -> Result<Self> {
        let mut prec = prec.into();
        let dtype = prec.dtype;
        let store = crate::loader::open(path)?;
        let src = ConfigSource::find(path, &store)?;
        let arch = src.architecture()?;
        if arch != "bert" {
            return Err(Error::Unsupported {
                op: "encoder".into(),
                detail: format!("architecture {arch:?} is not an encoder"),
            });
        }
        let cfg = bert::Config::from_source(&src, &store)?;
        prec.adopt_checkpoint(&src)?;
        let head = bert::Head::load(&cfg, &store)?;
        let pooling = if path.is_dir() { Pooling::from_folder(path)? } else { Pooling::default() };
        Ok(Encoder {
            gpu,
            cfg,
            dtype,
            prec,
            pooling,
            store,
            shared: SharedLeaves::new(),
            plans: Default::default(),
            head,
        })
    }

    /// Last hidden states of each sequence ([len_i × C], row-major), `type_ids` defaulting to zeros.
    pub fn hidden(&mut self, batch: &[Vec<u32>], type_ids: Option<&[Vec<u32>]>) -> Result<Vec<Vec<f32>>> {
        let b = batch.len();
        if b == 0 {
            return Ok(vec![]);
        }
        let longest = batch.iter().map(Vec::len).max().unwrap_or(1).max(1);
        if longest > self.cfg.max_pos {
            return Err(Error::Run(format!(
                "a sequence of {longest} tokens exceeds the model's {} positions",
                self.cfg.max_pos
            )));
        }
        let t = longest.next_multiple_of(8).min(self.cfg.max_pos);
        let feeds = self.feeds(batch, type_ids, t)?;
        if self.plans.get_mut(&(b, t)).is_none() {
            let plan = self.compile(b, t, false)?;
            self.plans.get_or_compile((b, t), || Ok(plan))?;
        }
        let plan = self.plans.get_mut(&(b, t)).expect("compiled above");
        let feeds: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, t)| (*n, t)).collect();
        let out = plan.run(&feeds, &[])?[0].to_f32();
        let c = self.cfg.hidden;
        Ok(batch.iter().enumerate().map(|(i, seq)| out[i * t * c..(i * t + seq.len()) * c].to_vec()).collect())
    }

    /// The plan for a [b, t] batch over the shared weights (uploaded by the first plan), with the last hidden
    /// state as output, or every linear layer's input (`taps`, for static calibration).
    fn compile(&mut self, b: usize, t: usize, taps: bool) -> Result<Plan<'g>> {
        let g = bert::build(&self.cfg, b, t, &self.prec)?;
        let fresh = self.shared.bytes() == 0;
        // Taps first (for calibration), then the hidden state, so every param is part of the plan.
        let mut outputs = if taps { super::calibrate::tap_outputs(&g.graph) } else { vec![] };
        outputs.push(g.hidden);
        let mut plan = Plan::compile_shared(self.gpu, &g.graph, &outputs, Some(&self.shared))?;
        if fresh {
            let store = &self.store;
            crate::models::upload_params(
                &g.graph,
                store,
                &|name, shape| crate::models::load_checked(store, name, shape),
                &mut |name, t| plan.set(name, t),
            )?;
        }
        Ok(plan)
    }

    /// Static int8 calibration: fold each linear layer's input over the real tokens of `batch` (one padded
    /// batch) into `cal`.
    pub fn calibrate(&mut self, batch: &[Vec<u32>], cal: &mut super::calibrate::Calibration) -> Result<()> {
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        if longest == 0 || longest > self.cfg.max_pos {
            return Err(Error::Run(format!("calibration sequences need 1..={} tokens", self.cfg.max_pos)));
        }
        let (b, t) = (batch.len(), longest.next_multiple_of(8).min(self.cfg.max_pos));
        let mut plan = self.compile(b, t, true)?;
        let feeds = self.feeds(batch, None, t)?;
        let feeds: Vec<(&str, &HostTensor)> = feeds.iter().map(|(n, t)| (*n, t)).collect();
        let real = |row: usize| row % t < batch[row / t].len();
        cal.observe_run(&mut plan, &feeds, &[], &real)
    }

    /// The inputs of a [b, t] batch: ids, type ids (zeros by default), positions and the padding mask.
    fn feeds(
        &self,
        batch: &[Vec<u32>],
        type_ids: Option<&[Vec<u32>]>,
        t: usize,
    ) -> Result<Vec<(&'static str, HostTensor)>> {
        let b = batch.len();
        let (mut ids, mut types, mut pos, mut mask) =
            (vec![0u32; b * t], vec![0u32; b * t], vec![0u32; b * t], vec![0f32; b * t]);
        for (i, seq) in batch.iter().enumerate() {
            for (j, &id) in seq.iter().enumerate() {
                if id as usize >= self.cfg.vocab {
                    return Err(Error::Run(format!("token id {id} is outside the vocabulary ({})", self.cfg.vocab)));
                }
                ids[i * t + j] = id;
                types[i * t + j] = type_ids.and_then(|ty| ty.get(i)).and_then(|r| r.get(j)).copied().unwrap_or(0);
                pos[i * t + j] = j as u32;
                mask[i * t + j] = 1.0;
            }
        }
        let mask_t =
            if self.dtype == DType::F16 { HostTensor::f16(&[b, t], mask)? } else { HostTensor::f32(&[b, t], mask)? };
        Ok(vec![
            ("ids", HostTensor::u32(&[b, t], ids)?),
            ("type_ids", HostTensor::u32(&[b, t], types)?),
            ("pos_ids", HostTensor::u32(&[b, t], pos)?),
            ("mask", mask_t),
        ])
    }

    /// Cut a [CLS] … [SEP] sequence to `max` ids keeping its final special token, as transformers' truncation
    /// does (sentence-transformers models cap at `max_seq_length`, 256 for all-MiniLM-L6-v2).
    pub fn truncate(ids: &mut Vec<u32>, max: usize) {
        if ids.len() > max && max >= 1 {
            let last = ids[ids.len() - 1];
            ids.truncate(max);
            ids[max - 1] = last;
        }
    }

    /// Sentence embeddings, pooled and normalised as the model's sentence-transformers config says
    /// (`self.pooling`; mean pooling and L2 normalisation without one). Sequences are run in groups of one
    /// padded length, so one long text does not pad every short one.
    pub fn embed(&mut self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let c = self.cfg.hidden;
        let mut out = vec![vec![]; batch.len()];
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, s) in batch.iter().enumerate() {
            groups.entry(s.len().max(1).next_multiple_of(8)).or_default().push(i);
        }
        for idx in groups.values() {
            let seqs: Vec<Vec<u32>> = idx.iter().map(|&i| batch[i].clone()).collect();
            for (k, h) in self.hidden(&seqs, None)?.into_iter().enumerate() {
                out[idx[k]] = self.pooling.pool(&h, c);
            }
        }
        Ok(out)
    }

    /// The pooler output (tanh dense over the [CLS] row) of each sequence.
    pub fn pooled(&mut self, batch: &[Vec<u32>], type_ids: Option<&[Vec<u32>]>) -> Result<Vec<Vec<f32>>> {
        let c = self.cfg.hidden;
        let hs = self.hidden(batch, type_ids)?;
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| Error::Unsupported { op: "pool".into(), detail: "the checkpoint has no pooler".into() })?;
        Ok(hs.iter().map(|h| head.pool(&h[..c])).collect())
    }

    /// Classification logits of each sequence (needs a checkpoint with a classifier head).
    pub fn classify(&mut self, batch: &[Vec<u32>], type_ids: Option<&[Vec<u32>]>) -> Result<Vec<Vec<f32>>> {
        let c = self.cfg.hidden;
        let hs = self.hidden(batch, type_ids)?;
        let no_head =
            || Error::Unsupported { op: "classify".into(), detail: "the checkpoint has no classification head".into() };
        let head = self.head.as_ref().ok_or_else(no_head)?;
        hs.iter().map(|h| head.classify(&h[..c]).ok_or_else(no_head)).collect()
    }
}
