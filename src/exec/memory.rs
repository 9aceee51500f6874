//! The memory plan: persistent buffers for leaves (weights larger than one storage binding are split into
//! row shards), and a pool of transient buffers reused greedily by liveness (best fit among the free ones, at most twice the value's size).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::twins::{Twin, Twins};
use super::value_name;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Op, ValueId};
use crate::kernels::{ArgInfo, BindKind};
use crate::tensor::numel;

pub enum Storage {
    /// A persistent leaf: its buffers with the row range each holds.
    Shards(Vec<(wgpu::Buffer, (usize, usize))>),
    /// Transient: an index into the pool.
    Pool(usize),
    /// Same memory as another value.
    Alias(ValueId),
}

/// Weights and state shared by several plans (a prefill plan and a decode plan over one set of weights and
/// one KV cache): params and state leaves are looked up here by name before anything is allocated.
#[derive(Default)]
pub struct SharedLeaves {
    map: Mutex<HashMap<String, Shards>>,
    twins: Twins,
    filled: Filled,
}

/// Names of the params, state and filled leaves whose buffers hold data (uploaded, or written in place by a
/// run): a twin made for any other leaf starts as zeros, like its buffer, and needs no copy.
type Filled = std::sync::Arc<Mutex<HashSet<String>>>;

/// A leaf's buffers with the row range each holds.
type Shards = Vec<(wgpu::Buffer, (usize, usize))>;

impl SharedLeaves {
    pub fn new() -> Self {
        Self::default()
    }
    /// The buffer of a leaf held in one buffer (None: absent, or split across buffers).
    pub fn buffer(&self, name: &str) -> Option<wgpu::Buffer> {
        match self.map.lock().unwrap().get(name)?.as_slice() {
            [(b, _)] => Some(b.clone()),
            _ => None,
        }
    }
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        let twins: u64 = self.twins.lock().unwrap().values().map(Twin::bytes).sum();
        twins + self.map.lock().unwrap().values().flat_map(|v| v.iter().map(|b| b.0.size())).sum::<u64>()
    }
}

pub struct MemoryPlan {
    pub order: Vec<usize>,
    storage: Vec<Option<Storage>>,
    pool: Vec<wgpu::Buffer>,
    scratch: Vec<wgpu::Buffer>,
    /// Texture twins of leaves bound as textures (shared with `SharedLeaves`'s when there is one).
    twins: Twins,
    filled: Filled,
    pub persistent_bytes: u64,
    pub transient_bytes: u64,
}

fn value_bytes(graph: &Graph, v: ValueId) -> u64 {
    let n = graph.node(v);
    (numel(&n.shape) * n.dtype.size()) as u64
}

/// Root of a value through aliasing ops (reshapes share their input's storage).
fn root(graph: &Graph, mut v: ValueId) -> ValueId {
    while let Some(k) = graph.node(v).op.aliases_input() {
        v = graph.node(v).inputs[k];
    }
    v
}

/// Which ops run, in order, and when each value is last read: what placement and estimates share.
struct Liveness {
    order: Vec<usize>,
    last_use: Vec<usize>,
    outs: HashSet<usize>,
}

impl Liveness {
    fn of(graph: &Graph, outputs: &[ValueId]) -> Result<Liveness> {
        let n = graph.nodes.len();
        // Which nodes are needed: the outputs, every in-place update, and what they read.
        let mut needed = vec![false; n];
        let mut stack: Vec<usize> = outputs.iter().map(|v| v.0).collect();
        stack.extend((0..n).filter(|&i| {
            matches!(
                graph.nodes[i].op,
                Op::AdamW(_) | Op::CacheWrite { .. } | Op::CacheWriteAt | Op::RopeQkvCache { .. }
            )
        }));
        while let Some(i) = stack.pop() {
            if i >= n {
                return Err(Error::Graph(format!("output value {i} does not exist")));
            }
            if !std::mem::replace(&mut needed[i], true) {
                stack.extend(graph.nodes[i].inputs.iter().map(|v| v.0));
            }
        }
        let order: Vec<usize> = (0..n).filter(|&i| needed[i]).collect();
        // An op that overwrites an activation in place (LinearAdd) must be its last reader.
        for &i in &order {
            let node = &graph.nodes[i];
            let Some(k) = node.op.aliases_input().filter(|_| !matches!(node.op, Op::Reshape { .. })) else { continue };
            let v = node.inputs[k];
            if graph.node(v).op.is_leaf() {
                continue;
            }
            if let Some(j) = order.iter().find(|&&j| j > i && graph.nodes[j].inputs.contains(&v)) {
                return Err(Error::Graph(format!(
                    "op {j} ({}) reads value {} after op {i} ({}) overwrote it in place",
                    graph.nodes[*j].op.name(),
                    v.0,
                    node.op.name()
                )));
            }
        }
        let outs: HashSet<usize> = outputs.iter().map(|&v| root(graph, v).0).collect();
        let mut last_use: Vec<usize> = (0..n).collect();
        for &i in &order {
            for v in &graph.nodes[i].inputs {
                let r = root(graph, *v).0;
                last_use[r] = last_use[r].max(i);
            }
        }
        Ok(Liveness { order, last_use, outs })
    }
}

/// The position in `free` of the pool buffer a value of `need` bytes reuses: the smallest that holds it, and
/// at most twice its size. A much larger buffer stays free for a value of its own size: otherwise, in a
/// training step's forward (every activation kept for the backward), each small activation took the buffer of
/// a just-freed widened weight (`Op::Dequantize`, up to 6× larger) and the next weight needed a new one —
/// 250 MB of SmolLM2's LoRA step over an f16 base.
fn best_fit(free: &[usize], size: impl Fn(usize) -> u64, need: u64) -> Option<usize> {
    let fits = |b: usize| size(b) >= need && size(b) <= 2 * need;
    free.iter().enumerate().filter(|(_, &b)| fits(b)).min_by_key(|(_, &b)| size(b)).map(|(k, _)| k)
}

/// The bytes a plan of `graph` would hold, without a device: persistent leaves (weights, state, inputs) and
/// the transient pool the same best-fit reuse as `MemoryPlan::new` makes (staged textures, scratch and
/// texture twins not included). For pre-flight memory plans.
pub fn estimate(graph: &Graph, outputs: &[ValueId]) -> Result<(u64, u64)> {
    let Liveness { order, last_use, outs } = Liveness::of(graph, outputs)?;
    let (mut persistent, mut pool, mut free) = (0u64, Vec::<u64>::new(), Vec::<usize>::new());
    let mut slot: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for &i in &order {
        let node = &graph.nodes[i];
        let bytes = value_bytes(graph, ValueId(i));
        if node.op.is_leaf() {
            persistent += bytes;
            continue;
        }
        if node.op.aliases_input().is_none() {
            let need = bytes.max(4).next_multiple_of(256);
            let b = match best_fit(&free, |b| pool[b], need) {
                Some(k) => free.swap_remove(k),
                None => {
                    pool.push(need);
                    pool.len() - 1
                }
            };
            slot[i] = Some(b);
        }
        let mut dead: Vec<usize> = node.inputs.iter().map(|&x| root(graph, x).0).collect();
        dead.push(root(graph, ValueId(i)).0);
        dead.sort_unstable();
        dead.dedup();
        for r in dead {
            if last_use[r] <= i && !outs.contains(&r) {
                if let Some(b) = slot[r] {
                    if !free.contains(&b) {
                        free.push(b);
                    }
                }
            }
        }
    }
    Ok((persistent, pool.iter().sum()))
}

impl MemoryPlan {
    pub fn new(gpu: &Gpu, graph: &Graph, outputs: &[ValueId], shared: Option<&SharedLeaves>) -> Result<Self> {
        let n = graph.nodes.len();
        let Liveness { order, last_use, outs } = Liveness::of(graph, outputs)?;
        let root = |v: ValueId| root(graph, v);

        let mut plan = MemoryPlan {
            order: order.clone(),
            storage: (0..n).map(|_| None).collect(),
            pool: vec![],
            scratch: vec![],
            twins: shared.map(|s| s.twins.clone()).unwrap_or_default(),
            filled: shared.map(|s| s.filled.clone()).unwrap_or_default(),
            persistent_bytes: 0,
            transient_bytes: 0,
        };
        let mut free: Vec<usize> = vec![];
        let mut pool_need: Vec<u64> = vec![];
        for &i in &order {
            let node = &graph.nodes[i];
            let v = ValueId(i);
            let bytes = value_bytes(graph, v);
            if node.op.is_leaf() {
                let key = match (&node.op, shared) {
                    (Op::Param { name } | Op::State { name }, Some(sh)) => Some((name.clone(), sh)),
                    _ => None,
                };
                let shards = match key {
                    Some((name, sh)) => {
                        let mut map = sh.map.lock().unwrap();
                        match map.get(&name) {
                            Some(s) => {
                                let have: u64 = s.iter().map(|b| b.0.size()).sum();
                                if have < bytes {
                                    return Err(Error::Graph(format!(
                                        "shared leaf {name} holds {have} bytes, this graph needs {bytes}"
                                    )));
                                }
                                s.clone()
                            }
                            None => {
                                let s = plan.leaf_shards(gpu, graph, v)?;
                                map.insert(name, s.clone());
                                s
                            }
                        }
                    }
                    None => plan.leaf_shards(gpu, graph, v)?,
                };
                plan.persistent_bytes += bytes;
                plan.storage[i] = Some(Storage::Shards(shards));
                continue;
            }
            if let Some(k) = node.op.aliases_input() {
                plan.storage[i] = Some(Storage::Alias(node.inputs[k]));
            } else {
                if bytes > gpu.max_binding {
                    return Err(Error::TooLarge {
                        tensor: value_name(graph, v),
                        bytes,
                        limit: gpu.max_binding,
                        what: format!("max_storage_buffer_binding_size, activation {:?}", node.shape),
                        hint: "; use a shorter sequence or smaller batch".into(),
                    });
                }
                let need = bytes.max(4).next_multiple_of(256);
                // (By the bytes asked for: a CPU adapter's buffers are padded to at least 64 KiB.)
                let b = match best_fit(&free, |b| pool_need[b], need) {
                    Some(k) => free.swap_remove(k),
                    None => {
                        pool_need.push(need);
                        plan.transient_bytes += need;
                        plan.pool.push(gpu.buffer(&format!("pool {}", plan.pool.len()), need)?);
                        plan.pool.len() - 1
                    }
                };
                plan.storage[i] = Some(Storage::Pool(b));
            }
            // Free the transient roots whose last reader is this op (after the output is placed, so an op
            // never reads and writes one buffer).
            let mut dead: Vec<usize> = node.inputs.iter().map(|&x| root(x).0).collect();
            dead.push(root(v).0);
            dead.sort_unstable();
            dead.dedup();
            for r in dead {
                if last_use[r] <= i && !outs.contains(&r) {
                    if let Some(Storage::Pool(b)) = plan.storage[r] {
                        if !free.contains(&b) {
                            free.push(b);
                        }
                    }
                }
            }
        }
        Ok(plan)
    }

    fn leaf_shards(&self, gpu: &Gpu, graph: &Graph, v: ValueId) -> Result<Vec<(wgpu::Buffer, (usize, usize))>> {
        let node = graph.node(v);
        let name = value_name(graph, v);
        let bytes = value_bytes(graph, v);
        let rows = node.shape.first().copied().unwrap_or(1);
        if bytes <= gpu.max_binding {
            return Ok(vec![(gpu.buffer(&name, bytes)?, (0, rows))]);
        }
        let row_bytes = bytes / rows.max(1) as u64;
        let too_large = |what: &str, hint: &str| Error::TooLarge {
            tensor: name.clone(),
            bytes,
            limit: gpu.max_binding,
            what: what.into(),
            hint: hint.into(),
        };
        if !matches!(node.op, Op::Param { .. }) {
            return Err(too_large("max_storage_buffer_binding_size", "; only weights are stored in shards"));
        }
        if row_bytes > gpu.max_binding || !row_bytes.is_multiple_of(4) {
            return Err(too_large("max_storage_buffer_binding_size, per row", ""));
        }
        let per = (gpu.max_binding / row_bytes) as usize;
        let mut shards = vec![];
        let mut r = 0;
        while r < rows {
            let e = (r + per).min(rows);
            let buf = gpu.buffer(&format!("{name} shard {}", shards.len()), (e - r) as u64 * row_bytes)?;
            shards.push((buf, (r, e)));
            r = e;
        }
        Ok(shards)
    }

    /// Count a plan-owned texture (staged bindings) as transient memory.
    pub fn keep_texture_bytes(&mut self, bytes: u64) {
        self.transient_bytes += bytes;
    }

    pub fn keep_scratch(&mut self, bufs: Vec<wgpu::Buffer>) {
        self.transient_bytes += bufs.iter().map(|b| b.size()).sum::<u64>();
        self.scratch.extend(bufs);
    }

    fn resolve(&self, graph: &Graph, mut v: ValueId) -> Result<&Storage> {
        loop {
            match self.storage.get(v.0).and_then(|s| s.as_ref()) {
                Some(Storage::Alias(a)) => v = *a,
                Some(s) => return Ok(s),
                None => return Err(Error::Graph(format!("value {} is not part of this plan", value_name(graph, v)))),
            }
        }
    }

    /// The buffer holding shard `s` of a value.
    pub fn buffer(&self, graph: &Graph, v: ValueId, s: usize) -> Result<&wgpu::Buffer> {
        match self.resolve(graph, v)? {
            Storage::Shards(sh) => sh
                .get(s)
                .map(|x| &x.0)
                .ok_or_else(|| Error::Graph(format!("{} has no shard {s}", value_name(graph, v)))),
            Storage::Pool(b) if s == 0 => Ok(&self.pool[*b]),
            _ => Err(Error::Graph(format!("{} has no shard {s}", value_name(graph, v)))),
        }
    }

    pub fn bytes(&self, graph: &Graph, v: ValueId) -> u64 {
        value_bytes(graph, v)
    }

    /// Shape, dtype and shard row ranges of a value, for lowering.
    pub fn arg_info(&self, graph: &Graph, v: ValueId) -> ArgInfo {
        let node = graph.node(v);
        let rows = node.shape.first().copied().unwrap_or(1);
        let shards = match self.resolve(graph, v) {
            Ok(Storage::Shards(sh)) if node.shape.len() == graph.node(self.root(graph, v)).shape.len() => {
                sh.iter().map(|x| x.1).collect()
            }
            _ => vec![(0, rows)],
        };
        ArgInfo { shape: node.shape.clone(), dtype: node.dtype, shards }
    }

    pub fn root(&self, graph: &Graph, mut v: ValueId) -> ValueId {
        while let Some(Storage::Alias(a)) = self.storage.get(v.0).and_then(|s| s.as_ref()) {
            v = *a;
        }
        let _ = graph;
        v
    }

    /// Write a leaf's bytes, split over its shards.
    pub fn upload(&self, gpu: &Gpu, graph: &Graph, v: ValueId, bytes: &[u8]) -> Result<()> {
        match self.resolve(graph, v)? {
            Storage::Shards(sh) => {
                let rows = graph.node(v).shape.first().copied().unwrap_or(1).max(1);
                let row_bytes = bytes.len() / rows;
                for (buf, (a, b)) in sh {
                    gpu.write(buf, 0, &bytes[a * row_bytes..b * row_bytes]);
                }
                if !matches!(graph.node(v).op, Op::Input { .. }) {
                    self.filled.lock().unwrap().insert(value_name(graph, v));
                }
                let twins = self.twins.lock().unwrap();
                // (Inputs are uploaded every step: no name lookup unless some leaf has a twin.) The twin is
                // refilled from the buffer just written by a buffer → texture copy: queue order puts it after
                // the write, and on llvmpipe it runs ~20× faster than writing the texture from the host.
                if let (Some(t), [(buffer, _)]) =
                    ((!twins.is_empty()).then(|| twins.get(&value_name(graph, v))).flatten(), &sh[..])
                {
                    t.copy_from(gpu, buffer);
                }
                Ok(())
            }
            _ => Err(Error::Run(format!("{} is not a leaf", value_name(graph, v)))),
        }
    }

    /// Whether `v` is (a view of) a leaf held in one buffer: what a texture twin can mirror.
    pub fn is_single_leaf(&self, graph: &Graph, v: ValueId) -> bool {
        matches!(self.resolve(graph, v), Ok(Storage::Shards(sh)) if sh.len() == 1)
    }

    /// Record copies that bring the twins of `leaves` (if they have any yet) up to date with their buffers:
    /// run after dispatches that write those leaves in place, so no plan sharing the twins reads them stale.
    /// `leaves` carry their names (made once, at compile: this runs after every run of a training plan).
    pub fn record_twin_sync(&self, enc: &mut wgpu::CommandEncoder, graph: &Graph, leaves: &[(ValueId, String)]) {
        if leaves.is_empty() {
            return;
        }
        {
            let mut filled = self.filled.lock().unwrap();
            for (_, name) in leaves {
                if !filled.contains(name) {
                    filled.insert(name.clone());
                }
            }
        }
        let twins = self.twins.lock().unwrap();
        if twins.is_empty() {
            return;
        }
        for (v, name) in leaves {
            if let (Some(t), Ok(Storage::Shards(sh))) = (twins.get(name), self.resolve(graph, *v)) {
                if let [(buffer, _)] = &sh[..] {
                    t.record_copy(enc, buffer, t.bytes());
                }
            }
        }
    }

    /// The texture twin of leaf `v` (made on first use, filled from the leaf's buffer).
    pub fn twin(&self, gpu: &Gpu, graph: &Graph, v: ValueId, kind: BindKind) -> Result<wgpu::TextureView> {
        let root = self.root(graph, v);
        let name = value_name(graph, root);
        let Storage::Shards(sh) = self.resolve(graph, root)? else {
            return Err(Error::Graph(format!("{name} is bound as a texture but is not a leaf")));
        };
        let [(buffer, _)] = &sh[..] else {
            return Err(Error::Graph(format!("{name} is stored in shards and cannot be bound as a texture")));
        };
        let bytes = value_bytes(graph, root);
        let mut map = self.twins.lock().unwrap();
        if let Some(t) = map.get(&name) {
            if t.kind != kind || t.bytes() < bytes {
                return Err(Error::Graph(format!("{name}'s texture twin is {:?} of {} bytes", t.kind, t.bytes())));
            }
            return Ok(t.view.clone());
        }
        let t = Twin::new(gpu, &name, kind, bytes)?;
        // Inputs are uploaded every run; a param or state leaf only once it has been filled.
        if matches!(graph.node(root).op, Op::Input { .. }) || self.filled.lock().unwrap().contains(&name) {
            t.copy_from(gpu, buffer);
        }
        let view = t.view.clone();
        map.insert(name, t);
        Ok(view)
    }

    /// Read a value's bytes back (all shards, in order).
    pub fn download(&self, gpu: &Gpu, graph: &Graph, v: ValueId) -> Result<Vec<u8>> {
        let total = value_bytes(graph, v);
        match self.resolve(graph, v)? {
            Storage::Shards(sh) => {
                let mut out = vec![];
                for (buf, _) in sh {
                    let want = (total - out.len() as u64).min(buf.size());
                    out.extend(gpu.read(buf, 0, want)?);
                }
                Ok(out)
            }
            Storage::Pool(b) => gpu.read(&self.pool[*b], 0, total),
            Storage::Alias(_) => unreachable!("resolve follows aliases"),
        }
    }
}
