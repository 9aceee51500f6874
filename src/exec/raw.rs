//! Run a lowered kernel on its own, outside any graph: the benchmark's way to time one op (or a kernel
//! variant that no op lowers to, such as the baseline matmul and the plain copy) on buffers it owns.

use super::twins::Twin;
use super::{make_step, record_steps, Staged, Step};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{Arg, Lowered};
use crate::tensor::HostTensor;

pub struct RawKernel<'g> {
    gpu: &'g Gpu,
    steps: Vec<Step>,
    out: wgpu::Buffer,
    out_shape: Vec<usize>,
    out_dtype: crate::tensor::DType,
    _bufs: (Vec<wgpu::Buffer>, Vec<wgpu::Buffer>),
    _twins: Vec<Twin>,
}

impl<'g> RawKernel<'g> {
    /// Upload `inputs`, allocate the output and scratch, build every dispatch of `lowered`. Runtime scalars
    /// resolve through `vars`.
    pub fn new(
        gpu: &'g Gpu,
        lowered: &Lowered,
        inputs: &[HostTensor],
        out_shape: &[usize],
        out_dtype: crate::tensor::DType,
        vars: &[(&str, u32)],
    ) -> Result<Self> {
        let ins: Vec<wgpu::Buffer> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let b = gpu.buffer(&format!("bench input {i}"), t.to_bytes().len() as u64)?;
                gpu.write(&b, 0, &t.to_bytes());
                Ok(b)
            })
            .collect::<Result<_>>()?;
        let out_bytes = (out_shape.iter().product::<usize>() * out_dtype.size()) as u64;
        let out = gpu.buffer("bench output", out_bytes)?;
        let scratch: Vec<wgpu::Buffer> =
            lowered.scratch.iter().map(|&b| gpu.buffer("bench scratch", b)).collect::<Result<_>>()?;
        let mut steps = vec![];
        let mut twins = vec![];
        for d in &lowered.dispatches {
            let buf = |arg: Arg| -> Result<&wgpu::Buffer> {
                match arg {
                    Arg::Input(j) | Arg::InputShard(j, 0) => ins.get(j),
                    Arg::Output => Some(&out),
                    Arg::Scratch(s) => scratch.get(s),
                    Arg::InputShard(..) => None,
                }
                .ok_or_else(|| Error::Run(format!("{}: binding {arg:?} has no buffer", d.entry)))
            };
            // Texture bindings of inputs get twins of their buffers (kept with the kernel).
            let mut views = vec![];
            let mut copies = vec![];
            for b in &d.bindings {
                views.push(match (b.kind.is_texture(), b.arg) {
                    (false, _) => None,
                    (true, arg @ (Arg::Input(_) | Arg::Scratch(_))) if b.kind.is_staged() => {
                        let (buffer, bytes) = match arg {
                            Arg::Input(j) => (ins[j].clone(), inputs[j].to_bytes().len() as u64),
                            Arg::Scratch(s) => (scratch[s].clone(), lowered.scratch[s]),
                            _ => unreachable!("matched above"),
                        };
                        let texture = Twin::new(gpu, &format!("bench staged {arg:?}"), b.kind, bytes)?;
                        let v = texture.view.clone();
                        copies.push(Staged { buffer, texture, bytes });
                        Some(v)
                    }
                    (true, Arg::Input(j)) => {
                        // The twin holds the input's bytes, not its buffer's: on a texture-weights adapter
                        // every buffer is padded to at least 64 KiB (`Gpu::buffer`).
                        let bytes = inputs[j].to_bytes().len() as u64;
                        let t = Twin::new(gpu, &format!("bench input {j}"), b.kind, bytes)?;
                        t.copy_from(gpu, &ins[j]);
                        let v = t.view.clone();
                        twins.push(t);
                        Some(v)
                    }
                    (true, arg) => return Err(Error::Run(format!("{}: {arg:?} cannot be a texture", d.entry))),
                });
            }
            let mut step = make_step(gpu, d, &buf, &views, 0)?;
            step.copies = copies;
            if !step.vars.is_empty() {
                let table: std::collections::HashMap<&str, u32> = vars.iter().copied().collect();
                for (k, sc, add) in &step.vars {
                    step.words[*k] =
                        super::word_bits(&crate::kernels::Word::Var(sc.clone(), *add), &|n| table.get(n).copied())?;
                }
                gpu.write(&step.params, 0, bytemuck::cast_slice(&step.words));
            }
            steps.push(step);
        }
        Ok(RawKernel {
            gpu,
            steps,
            out,
            out_shape: out_shape.to_vec(),
            out_dtype,
            _bufs: (ins, scratch),
            _twins: twins,
        })
    }

    fn record(&self, pass: &mut wgpu::ComputePass) {
        for s in &self.steps {
            s.record(pass);
        }
    }

    /// Record the staging copies of every step (staged texture bindings).
    fn record_copies(&self, enc: &mut wgpu::CommandEncoder) {
        for c in self.steps.iter().flat_map(|s| &s.copies) {
            c.texture.record_copy(enc, &c.buffer, c.bytes);
        }
    }

    /// Run once and read the output back.
    pub fn run(&self) -> Result<HostTensor> {
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        record_steps(&mut enc, &self.steps);
        self.gpu.submit(enc.finish());
        let bytes =
            self.gpu.read(&self.out, 0, (self.out_shape.iter().product::<usize>() * self.out_dtype.size()) as u64)?;
        Ok(HostTensor::from_bytes(&self.out_shape, self.out_dtype, &bytes))
    }

    /// Time `reps` runs (each all of the kernel's dispatches): GPU timestamps around each run where the
    /// adapter has them, else the wall clock of a submit-and-wait. Returns (microseconds per run, clock).
    /// Staging copies run before each timed pass and are not counted (so a staged scratch buffer holds the
    /// previous run's values while timed: the times are right, the values are `run`'s to check).
    pub fn time(&self, reps: usize) -> Result<(Vec<f64>, &'static str)> {
        super::profile::time_passes(self.gpu, reps, &|_, enc| self.record_copies(enc), &|_, pass| self.record(pass))
    }
}
