//! Compile a Graph into a Plan, then replay it: op order, the memory plan (persistent leaves, liveness-based
//! reuse of transient buffers), pipelines and bind groups are made once in `compile`; `run` uploads the
//! inputs, rewrites only the Params words that depend on runtime scalars, records every dispatch into one
//! command buffer and submits once. A dispatch that binds a value as a staged texture (`BindKind::is_staged`)
//! has the value's buffer copied into a plan texture right before it (the compute pass is split there).

mod memory;
mod profile;
mod raw;
pub mod twins;

pub use profile::OpTiming;
pub use raw::RawKernel;

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Pipeline};
use crate::graph::{leaf_name, Graph, Op, Scalar, ValueId};
use crate::kernels::{self, Arg, ArgInfo, BindKind, Word};
use crate::tensor::HostTensor;
use memory::MemoryPlan;
pub use memory::{estimate, SharedLeaves};

/// One recorded dispatch: pipeline, bind group, grid, and which op it belongs to.
struct Step {
    pipeline: std::sync::Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    /// Words that depend on runtime scalars: (word index, scalar, constant added).
    vars: Vec<(usize, Scalar, i64)>,
    words: Vec<u32>,
    grid: [u32; 3],
    node: usize,
    /// Buffer → texture copies recorded before the dispatch (staged texture bindings).
    copies: Vec<Staged>,
}

/// One staged texture binding: the first `bytes` of `buffer` are copied into `texture` before the dispatch.
#[derive(Clone)]
struct Staged {
    buffer: wgpu::Buffer,
    texture: twins::Twin,
    bytes: u64,
}

/// Record `steps` into `enc`: one compute pass per run of steps, split before each step with copies.
fn record_steps<'a>(enc: &mut wgpu::CommandEncoder, steps: impl IntoIterator<Item = &'a Step>) {
    let steps: Vec<&Step> = steps.into_iter().collect();
    let mut start = 0;
    while start < steps.len() {
        let end = (start + 1..steps.len()).find(|&i| !steps[i].copies.is_empty()).unwrap_or(steps.len());
        for c in &steps[start].copies {
            c.texture.record_copy(enc, &c.buffer, c.bytes);
        }
        let mut pass = enc.begin_compute_pass(&Default::default());
        for s in &steps[start..end] {
            s.record(&mut pass);
        }
        start = end;
    }
}

/// Plans compiled once per key (a padded length, a batch shape, a step's role) and found again: the step
/// plans of sessions, encoders and trainers.
pub struct PlanCache<'g, K> {
    plans: Vec<(K, Plan<'g>)>,
}

impl<K> Default for PlanCache<'_, K> {
    fn default() -> Self {
        PlanCache { plans: vec![] }
    }
}

impl<'g, K: PartialEq> PlanCache<'g, K> {
    /// The plan for `key`, compiled by `compile` the first time it is asked for.
    pub fn get_or_compile(&mut self, key: K, compile: impl FnOnce() -> Result<Plan<'g>>) -> Result<&mut Plan<'g>> {
        let i = match self.plans.iter().position(|p| p.0 == key) {
            Some(i) => i,
            None => {
                self.plans.push((key, compile()?));
                self.plans.len() - 1
            }
        };
        Ok(&mut self.plans[i].1)
    }
    pub fn get_mut(&mut self, key: &K) -> Option<&mut Plan<'g>> {
        self.plans.iter_mut().find(|p| p.0 == *key).map(|p| &mut p.1)
    }
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.plans.iter().map(|p| &p.0)
    }
    pub fn plans(&self) -> impl Iterator<Item = &Plan<'g>> {
        self.plans.iter().map(|p| &p.1)
    }
}

/// A compiled graph, ready to run many times.
pub struct Plan<'g> {
    gpu: &'g Gpu,
    graph: Graph,
    mem: MemoryPlan,
    steps: Vec<Step>,
    outputs: Vec<ValueId>,
    staging: Vec<wgpu::Buffer>,
    last_vars: HashMap<String, u32>,
    /// Leaves that some dispatch writes in place: their texture twins (of any plan sharing them) are
    /// refreshed at the end of every run.
    written_leaves: Vec<(ValueId, String)>,
}

fn word_bits(w: &Word, vars: &dyn Fn(&str) -> Option<u32>) -> Result<u32> {
    Ok(match w {
        Word::U32(x) => *x,
        Word::F32(x) => x.to_bits(),
        Word::Var(s, add) => {
            let v = s.resolve(vars).ok_or_else(|| Error::Run(format!("runtime scalar {s:?} was not set")))?;
            let r = v as i64 + add;
            if r < 0 || r > u32::MAX as i64 {
                return Err(Error::Run(format!("runtime scalar {s:?} = {v} (+{add}) is out of range")));
            }
            r as u32
        }
    })
}

impl Step {
    /// Record this dispatch into a compute pass (nothing for an empty grid).
    fn record(&self, pass: &mut wgpu::ComputePass) {
        if self.grid.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
    }
}

/// Create the pipeline, Params buffer and bind group of one dispatch; `buf` finds the buffer of each buffer
/// binding, `views[k]` is the texture view of texture binding k.
fn make_step<'b>(
    gpu: &Gpu,
    d: &kernels::Dispatch,
    buf: &dyn Fn(Arg) -> Result<&'b wgpu::Buffer>,
    views: &[Option<wgpu::TextureView>],
    node: usize,
) -> Result<Step> {
    let pipeline = gpu.pipeline(d)?;
    let no_vars = |_: &str| Some(0);
    let mut words = vec![];
    let mut vars = vec![];
    for (k, (_, w)) in d.params.iter().enumerate() {
        words.push(word_bits(w, &no_vars)?);
        if let Word::Var(s @ Scalar::Var(_), add) = w {
            vars.push((k, s.clone(), *add));
        }
    }
    let params = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("{} params", pipeline.key)),
        size: (words.len().max(1) * 4).next_multiple_of(16) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.write(&params, 0, bytemuck::cast_slice(&words));
    let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
    for (k, b) in d.bindings.iter().enumerate() {
        let resource = match (b.kind, views.get(k).and_then(Option::as_ref)) {
            (kind, Some(v)) if kind.is_texture() => wgpu::BindingResource::TextureView(v),
            (kind, _) if kind.is_texture() => {
                return Err(Error::Graph(format!("{}: texture binding {k} has no view", pipeline.key)))
            }
            (BindKind::Uniform, _) => {
                let b = buf(b.arg)?;
                let size = b.size().min(gpu.limits.max_uniform_buffer_binding_size);
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: 0,
                    size: wgpu::BufferSize::new(size),
                })
            }
            _ => buf(b.arg)?.as_entire_binding(),
        };
        entries.push(wgpu::BindGroupEntry { binding: k as u32 + 1, resource });
    }
    let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&pipeline.key),
        layout: &pipeline.layout,
        entries: &entries,
    });
    Ok(Step { pipeline, bind_group, params, vars, words, grid: d.grid, node, copies: vec![] })
}

impl<'g> Plan<'g> {
    /// Order the ops, plan memory, create pipelines and bind groups. `outputs` are read back by `run`.
    pub fn compile(gpu: &'g Gpu, graph: &Graph, outputs: &[ValueId]) -> Result<Plan<'g>> {
        Self::compile_shared(gpu, graph, outputs, None)
    }

    /// `compile`, taking params and state from (and adding new ones to) `shared`, so that several plans run
    /// over one copy of the weights and one KV cache.
    pub fn compile_shared(
        gpu: &'g Gpu,
        graph: &Graph,
        outputs: &[ValueId],
        shared: Option<&SharedLeaves>,
    ) -> Result<Plan<'g>> {
        let graph = graph.clone();
        let mut mem = MemoryPlan::new(gpu, &graph, outputs, shared)?;
        let caps = gpu.caps();
        let mut steps = vec![];
        // Staged textures by (kind, rows, binding slot): a copy precedes every use, so one texture serves
        // every dispatch of its size.
        let mut staged: HashMap<(BindKind, u64, usize), twins::Twin> = HashMap::new();
        let mut written_leaves = vec![];
        // Scratch buffers by slot, shared by every op of the plan: an op writes its scratch before reading it
        // and the ops run in order, so one buffer per slot (the largest any op asks for so far) serves all.
        let mut scratch_pool: Vec<wgpu::Buffer> = vec![];
        // Every op lowered first, so that the plan's new pipelines are created together, on every core: a
        // driver that compiles at creation spends a cold start's time there (llvmpipe compiles later, at the
        // first dispatch).
        let mut lowerings: Vec<(usize, kernels::Lowered)> = vec![];
        for &i in &mem.order {
            let node = &graph.nodes[i];
            if node.op.is_leaf() {
                continue;
            }
            let ins: Vec<ArgInfo> = node.inputs.iter().map(|v| mem.arg_info(&graph, *v)).collect();
            let out = ArgInfo {
                shape: node.shape.clone(),
                dtype: node.dtype,
                shards: vec![(0, node.shape.first().copied().unwrap_or(1))],
            };
            lowerings.push((i, kernels::lower(&node.op, &ins, &out, &caps)?));
        }
        gpu.create_pipelines(lowerings.iter().flat_map(|(_, l)| &l.dispatches))?;
        for (i, lowered) in lowerings {
            let node = &graph.nodes[i];
            let mut scratch: Vec<wgpu::Buffer> = vec![];
            for (k, &b) in lowered.scratch.iter().enumerate() {
                match scratch_pool.get(k) {
                    Some(buf) if buf.size() >= b => {}
                    _ => {
                        let buf = gpu.buffer(&format!("scratch {k}"), b)?;
                        mem.keep_scratch(vec![buf.clone()]);
                        if k < scratch_pool.len() {
                            scratch_pool[k] = buf;
                        } else {
                            scratch_pool.push(buf);
                        }
                    }
                }
                scratch.push(scratch_pool[k].clone());
            }
            for d in &lowered.dispatches {
                let mut views = vec![];
                let mut copies = vec![];
                for (slot, b) in d.bindings.iter().enumerate() {
                    if let (BindKind::Write, Arg::Input(j) | Arg::InputShard(j, _)) = (b.kind, b.arg) {
                        let root = mem.root(&graph, node.inputs[j]);
                        if mem.is_single_leaf(&graph, root) && !written_leaves.iter().any(|(v, _)| *v == root) {
                            written_leaves.push((root, value_name(&graph, root)));
                        }
                    }
                    // A twin binding of a value that is not a single-buffer leaf is staged instead.
                    let staged_here = b.kind.is_staged()
                        || matches!(b.arg, Arg::Input(j) if !mem.is_single_leaf(&graph, node.inputs[j]));
                    views.push(match (b.kind.is_texture(), b.arg) {
                        (false, _) => None,
                        (true, arg) if staged_here => {
                            let (buffer, bytes) = match arg {
                                Arg::Input(j) => {
                                    let v = node.inputs[j];
                                    (mem.buffer(&graph, v, 0)?.clone(), mem.bytes(&graph, v))
                                }
                                Arg::Scratch(s) if s < scratch.len() => (scratch[s].clone(), lowered.scratch[s]),
                                _ => {
                                    return Err(Error::Graph(format!(
                                        "op {} stages {arg:?}, which has no single buffer",
                                        node.op.name()
                                    )))
                                }
                            };
                            let rows = twins::rows_for(b.kind, bytes).ok_or_else(|| {
                                Error::Graph(format!("op {}: {bytes} bytes are not whole texels", node.op.name()))
                            })?;
                            let texture = match staged.get(&(b.kind, rows, slot)) {
                                Some(t) => t.clone(),
                                None => {
                                    let (_, texel) = twins::format(b.kind).expect("a texture kind");
                                    let cap = rows * twins::TEXTURE_WIDTH as u64 * texel;
                                    let t = twins::Twin::new(gpu, &format!("staged {rows} rows"), b.kind, cap)?;
                                    mem.keep_texture_bytes(cap);
                                    staged.insert((b.kind, rows, slot), t.clone());
                                    t
                                }
                            };
                            let view = texture.view.clone();
                            copies.push(Staged { buffer, texture, bytes });
                            Some(view)
                        }
                        (true, Arg::Input(j)) => Some(mem.twin(gpu, &graph, node.inputs[j], b.kind)?),
                        (true, arg) => {
                            return Err(Error::Graph(format!("op {} binds {arg:?} as a texture", node.op.name())))
                        }
                    });
                }
                let buf = |arg: Arg| -> Result<&wgpu::Buffer> {
                    match arg {
                        Arg::Input(j) => mem.buffer(&graph, node.inputs[j], 0),
                        Arg::InputShard(j, s) => mem.buffer(&graph, node.inputs[j], s),
                        Arg::Output => mem.buffer(&graph, ValueId(i), 0),
                        Arg::Scratch(s) => scratch.get(s).ok_or_else(|| {
                            Error::Graph(format!("op {} binds scratch {s}, which it did not declare", node.op.name()))
                        }),
                    }
                };
                let mut step = make_step(gpu, d, &buf, &views, i)?;
                step.copies = copies;
                steps.push(step);
            }
        }
        for &i in &mem.order {
            if let Op::Fill { value } = graph.nodes[i].op {
                let n = &graph.nodes[i];
                let t = HostTensor {
                    shape: n.shape.clone(),
                    dtype: n.dtype,
                    data: crate::tensor::HostData::F32(vec![value; crate::tensor::numel(&n.shape)]),
                };
                mem.upload(gpu, &graph, ValueId(i), &t.to_bytes())?;
            }
        }
        let staging = outputs
            .iter()
            .map(|&o| {
                let bytes = mem.bytes(&graph, o);
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("output staging"),
                    size: bytes.max(4).next_multiple_of(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Plan {
            gpu,
            graph,
            mem,
            steps,
            outputs: outputs.to_vec(),
            staging,
            last_vars: HashMap::new(),
            written_leaves,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// Number of dispatches one run records.
    pub fn dispatch_count(&self) -> usize {
        self.steps.iter().filter(|s| s.grid.iter().all(|&g| g > 0)).count()
    }
    /// Bytes held by persistent leaves (weights, state, inputs) and by the transient pool.
    pub fn memory(&self) -> (u64, u64) {
        (self.mem.persistent_bytes, self.mem.transient_bytes)
    }

    fn leaf(&self, name: &str) -> Result<ValueId> {
        self.graph
            .find(name)
            .ok_or_else(|| Error::Run(format!("the graph has no input, param or state named {name:?}")))
    }

    /// The feeds of `all` that this plan's graph has a leaf for (a batch builder makes every input any of its
    /// plans may take: the textbook encoder has no type or position ids, Llama no position ids).
    pub fn takes<'a>(&self, all: &'a [(&'static str, HostTensor)]) -> Vec<(&'static str, &'a HostTensor)> {
        all.iter().filter(|(n, _)| self.graph.find(n).is_some()).map(|(n, t)| (*n, t)).collect()
    }

    /// Upload a leaf's value (weights and state once; inputs also through `run`).
    pub fn set(&mut self, name: &str, t: &HostTensor) -> Result<()> {
        let v = self.leaf(name)?;
        let node = self.graph.node(v);
        if t.shape != node.shape {
            return Err(Error::Run(format!("{name}: given shape {:?}, the graph says {:?}", t.shape, node.shape)));
        }
        if t.dtype != node.dtype && !(t.dtype.is_float() && node.dtype.is_float()) {
            return Err(Error::Run(format!("{name}: given {}, the graph says {}", t.dtype.name(), node.dtype.name())));
        }
        t.with_bytes_as(node.dtype, |bytes| self.mem.upload(self.gpu, &self.graph, v, bytes))
    }

    /// Read a leaf back (e.g. updated weights, optimizer state, KV cache).
    pub fn read(&self, name: &str) -> Result<HostTensor> {
        let v = self.leaf(name)?;
        self.read_value(v)
    }

    fn read_value(&self, v: ValueId) -> Result<HostTensor> {
        let bytes = self.mem.download(self.gpu, &self.graph, v)?;
        Ok(HostTensor::from_bytes(self.graph.shape(v), self.graph.dtype(v), &bytes))
    }

    /// Resolve runtime scalars and rewrite the Params words that changed.
    fn apply_vars(&mut self, vars: &[(&str, u32)]) -> Result<()> {
        let table: HashMap<&str, u32> = vars.iter().copied().collect();
        let changed = vars.iter().any(|(k, v)| self.last_vars.get(*k) != Some(v));
        if !changed && !self.last_vars.is_empty() {
            return Ok(());
        }
        for s in &mut self.steps {
            if s.vars.is_empty() {
                continue;
            }
            for (k, sc, add) in &s.vars {
                s.words[*k] = word_bits(&Word::Var(sc.clone(), *add), &|n| table.get(n).copied())?;
            }
            self.gpu.write(&s.params, 0, bytemuck::cast_slice(&s.words));
        }
        self.last_vars = vars.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Ok(())
    }

    fn feed(&mut self, inputs: &[(&str, &HostTensor)], vars: &[(&str, u32)]) -> Result<()> {
        for (name, t) in inputs {
            self.set(name, t)?;
        }
        self.apply_vars(vars)
    }

    /// Record every dispatch into one command buffer (one compute pass per run of dispatches, split where a
    /// staged texture copy must precede one: `record_steps`), copy the outputs to staging, submit once, read
    /// back.
    pub fn run(&mut self, inputs: &[(&str, &HostTensor)], vars: &[(&str, u32)]) -> Result<Vec<HostTensor>> {
        self.feed(inputs, vars)?;
        let oom = self.gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        record_steps(&mut enc, &self.steps);
        self.mem.record_twin_sync(&mut enc, &self.graph, &self.written_leaves);
        for (o, st) in self.outputs.iter().zip(&self.staging) {
            let buf = self.mem.buffer(&self.graph, *o, 0)?;
            enc.copy_buffer_to_buffer(buf, 0, st, 0, st.size());
        }
        self.gpu.submit(enc.finish());
        let errors = [pollster::block_on(scope.pop()), pollster::block_on(oom.pop())];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::Gpu { context: "plan run".into(), message: e.to_string() });
        }
        let mut outs = vec![];
        for (o, st) in self.outputs.iter().zip(&self.staging) {
            let bytes = self.gpu.map_read(st, self.mem.bytes(&self.graph, *o))?;
            outs.push(HostTensor::from_bytes(self.graph.shape(*o), self.graph.dtype(*o), &bytes));
        }
        Ok(outs)
    }
}

/// The leaf name of a value, for messages.
pub fn value_name(graph: &Graph, v: ValueId) -> String {
    let n = graph.node(v);
    leaf_name(&n.op).map_or_else(|| format!("{}#{}", n.op.name(), v.0), str::to_string)
}
