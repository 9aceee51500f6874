//! MatMul on the GPU against the CPU reference: every transpose, batched and shared weights, the gemv path,
//! sharded weights, f32 and f16, awkward sizes. `matmul_speed` (ignored) prints the kernel figures.

use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::tensor::DType;

use crate::common::{self, check_op, check_op_on, info, Rng, F16, F32_REDUCE};

fn dtypes() -> Vec<(DType, common::Tol)> {
    let mut v = vec![(DType::F32, F32_REDUCE)];
    if common::has_f16() {
        v.push((DType::F16, F16));
    }
    v
}

/// Shapes of a and b for c [batch.., m, n] with the given transposes.
fn shapes(batch: &[usize], m: usize, k: usize, n: usize, ta: bool, tb: bool, b2d: bool) -> (Vec<usize>, Vec<usize>) {
    let mut a = batch.to_vec();
    a.extend(if ta { [k, m] } else { [m, k] });
    let mut b = if b2d { vec![] } else { batch.to_vec() };
    b.extend(if tb { [n, k] } else { [k, n] });
    (a, b)
}

fn check(r: &mut Rng, batch: &[usize], (m, k, n): (usize, usize, usize), b2d: bool) {
    for (dt, tol) in dtypes() {
        for ta in [false, true] {
            for tb in [false, true] {
                let (sa, sb) = shapes(batch, m, k, n, ta, tb, b2d);
                let case = format!("matmul {sa:?}·{sb:?} ta={ta} tb={tb} {dt:?}");
                check_op(&case, Op::MatMul { ta, tb }, &[r.tensor(&sa, dt), r.tensor(&sb, dt)], &[], tol);
            }
        }
    }
}

#[test]
fn edge_shapes() {
    let mut r = Rng::new(11);
    for mkn in [(1, 1, 1), (7, 13, 61), (64, 64, 64), (65, 33, 17), (2, 128, 3), (128, 96, 80)] {
        check(&mut r, &[], mkn, true);
    }
}

#[test]
fn batched_and_shared_weights() {
    let mut r = Rng::new(12);
    check(&mut r, &[2, 3], (7, 13, 5), false);
    check(&mut r, &[3], (9, 16, 70), true);
    check(&mut r, &[4], (1, 64, 20), false); // batched gemv
}

#[test]
fn gemv_rows() {
    let mut r = Rng::new(13);
    // (36, 4099): gemv_rows4 (n ≥ 4096, k % 4 == 0) with a partial last group of 4 columns.
    for (k, n) in [(61, 37), (128, 96), (256, 1), (4, 300), (1000, 7), (36, 4099)] {
        check(&mut r, &[], (1, k, n), true);
        check(&mut r, &[1], (1, k, n), true);
    }
}

#[test]
fn random_awkward_shapes() {
    let mut r = Rng::new(14);
    for _ in 0..3 {
        let mkn = (1 + r.next_u32() as usize % 100, 1 + r.next_u32() as usize % 100, 1 + r.next_u32() as usize % 100);
        check(&mut r, &[], mkn, true);
    }
}

/// Like `check_op_on`, but input `w` is a Param (only weights are stored in shards), set once before the run.
/// Returns the plan's dispatch count.
pub fn check_with_param(
    gpu: &wgpu_llm::gpu::Gpu,
    case: &str,
    op: Op,
    ins: &[wgpu_llm::tensor::HostTensor],
    w: usize,
    tol: common::Tol,
) -> usize {
    use std::collections::HashMap;
    use wgpu_llm::{exec::Plan, reference};
    // The reference gets what the GPU gets: f16 inputs rounded (as check_op_on does).
    let ins: Vec<_> = ins.iter().map(common::round_f16).collect();
    let ins = &ins[..];
    let mut b = GraphBuilder::new();
    let leaves: Vec<_> = ins
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = format!("in{i}");
            if i == w { b.param(&name, &t.shape, t.dtype) } else { b.input(&name, &t.shape, t.dtype) }.unwrap()
        })
        .collect();
    let out = b.op(op, &leaves).unwrap_or_else(|e| panic!("{case}: {e}"));
    let graph = b.finish();
    let mut plan = Plan::compile(gpu, &graph, &[out]).unwrap_or_else(|e| panic!("{case}: compile: {e}"));
    let names: Vec<String> = (0..ins.len()).map(|i| format!("in{i}")).collect();
    plan.set(&names[w], &ins[w]).unwrap_or_else(|e| panic!("{case}: set: {e}"));
    let feeds: Vec<(&str, &wgpu_llm::tensor::HostTensor)> =
        (0..ins.len()).filter(|&i| i != w).map(|i| (names[i].as_str(), &ins[i])).collect();
    let got = plan.run(&feeds, &[]).unwrap_or_else(|e| panic!("{case}: run: {e}"));
    let mut env: HashMap<_, _> = names.iter().cloned().zip(ins.iter().cloned()).collect();
    let want = reference::run_graph(&graph, &mut env, &HashMap::new(), &[out]).unwrap();
    common::assert_close(case, &got[0], &want[0], tol);
    plan.dispatch_count()
}

#[test]
fn sharded_weights() {
    // 4 KiB bindings: the weights below (7.5 KiB and more) arrive in shards, a and c fit one binding.
    let gpu = common::gpu_small_binding(4096);
    let mut r = Rng::new(15);
    for (batch, m, k, n) in [(vec![], 3, 48, 40), (vec![], 1, 48, 40), (vec![2], 1, 36, 60), (vec![], 5, 61, 37)] {
        for tb in [false, true] {
            let (sa, sb) = shapes(&batch, m, k, n, false, tb, true);
            let case = format!("sharded matmul {sa:?}·{sb:?} tb={tb}");
            let (a, b) = (r.tensor(&sa, DType::F32), r.tensor(&sb, DType::F32));
            let d = check_with_param(&gpu, &case, Op::MatMul { ta: false, tb }, &[a, b], 1, F32_REDUCE);
            assert!(d >= 2, "{case}: expected one dispatch per shard, got {d}");
        }
    }
}

#[test]
fn f32_tier() {
    let gpu = common::gpu_f32_tier();
    let mut r = Rng::new(16);
    for (m, k, n) in [(7, 13, 61), (1, 64, 33)] {
        let (a, b) = (r.tensor(&[m, k], DType::F32), r.tensor(&[n, k], DType::F32));
        check_op_on(
            gpu,
            &format!("tier matmul {m}x{k}x{n}"),
            Op::MatMul { ta: false, tb: true },
            &[a, b],
            &[],
            F32_REDUCE,
        );
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[3, 4], DType::F32).unwrap();
    let w = b.input("w", &[5, 6], DType::F32).unwrap();
    let e = b.matmul(x, w, false, false).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("inner dims"), "{e}");
    let y = b.input("y", &[2, 3, 4], DType::F32).unwrap();
    let z = b.input("z", &[3, 4, 5], DType::F32).unwrap();
    let e = b.matmul(y, z, false, false).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("batch"), "{e}");
}

#[test]
fn texture_gemm_matches_the_reference() {
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(17);
    // Sizes off the 128 × 64 workgroup tile and the 16 × 8 invocation tile, k a multiple of 4 (whole
    // texels) but not of 64, a batch folded into the rows, and a weight spanning several texture rows.
    for (batch, m, k, n) in [
        (vec![], 5, 64, 33),
        (vec![], 9, 4, 1),
        (vec![], 37, 132, 70),
        (vec![], 130, 64, 65),
        (vec![3], 20, 36, 9),
        (vec![2], 21, 40, 13),
        (vec![], 12, 1100, 31),
    ] {
        for (dt, tol) in dtypes() {
            let (sa, sb) = shapes(&batch, m, k, n, false, true, true);
            let case = format!("texture gemm {sa:?}·{sb:?}ᵀ {dt:?}");
            let op = Op::MatMul { ta: false, tb: true };
            let mut so = sa.clone();
            *so.last_mut().unwrap() = n;
            // f16 with k % 8 == 0 reads eight values a texel (gemm_tex_h8).
            let tex_entry = if dt == DType::F16 && k % 8 == 0 { "gemm_tex_h8" } else { "gemm_tex" };
            for (gpu, entry) in [(tex, tex_entry), (storage, "matmul_tiled")] {
                let lowered = matmul::lower(&op, &[info(&sa, dt), info(&sb, dt)], &info(&so, dt), &gpu.caps()).unwrap();
                assert_eq!(lowered.dispatches[0].entry, entry, "{case}");
                let (a, b) = (r.tensor(&sa, dt), r.tensor(&sb, dt));
                check_op_on(gpu, &format!("{case} ({entry})"), op.clone(), &[a, b], &[], tol);
            }
        }
    }
}

#[test]
fn texture_tn_gemm_matches_the_reference() {
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(23);
    // aᵀ·b (a weight's gradient: a [k, m], b [k, n]) with m and n multiples of 4 but not of the 16 × 8
    // invocation tile or the 128 × 64 workgroup tile, k of one and odd, an 8-row tile (m ≤ 64), and a
    // gradient's shape (the char GPT's head: 768 rows, 84 × 128).
    for (m, k, n) in [(4, 1, 4), (20, 33, 12), (132, 7, 68), (36, 70, 388), (84, 768, 128)] {
        for (dt, tol) in dtypes() {
            let (sa, sb) = shapes(&[], m, k, n, true, false, true);
            let case = format!("texture tn gemm {sa:?}ᵀ·{sb:?} {dt:?}");
            let op = Op::MatMul { ta: true, tb: false };
            let lowered = |gpu: &wgpu_llm::gpu::Gpu| {
                matmul::lower(&op, &[info(&sa, dt), info(&sb, dt)], &info(&[m, n], dt), &gpu.caps()).unwrap()
            };
            assert_eq!(lowered(tex).dispatches[0].entry, "gemm_tex_tn", "{case}");
            assert_ne!(lowered(storage).dispatches[0].family, "matmul_tex", "{case}");
            for gpu in [tex, storage] {
                let (a, b) = (r.tensor(&sa, dt), r.tensor(&sb, dt));
                check_op_on(gpu, &case, op.clone(), &[a, b], &[], tol);
            }
        }
    }
}

#[test]
fn texture_nn_gemm_matches_the_reference() {
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(29);
    // x·W with W [k, n] (GPT-2's Conv1D): k and n multiples of 4 off the tiles, 3 rows (the first past the
    // GEMV's), a batch folded into the rows, W as an input (staged) and as a param (its twin up to 32 rows),
    // the char GPT's c_attn (768 rows, 128 → 384).
    for (batch, m, k, n) in [
        (vec![], 3, 4, 4),
        (vec![], 20, 36, 12),
        (vec![], 130, 8, 68),
        (vec![2], 21, 40, 12),
        (vec![], 37, 132, 388),
        (vec![], 768, 128, 384),
    ] {
        for (dt, tol) in dtypes() {
            let (sa, sb) = shapes(&batch, m, k, n, false, false, true);
            let case = format!("texture nn gemm {sa:?}·{sb:?} {dt:?}");
            let op = Op::MatMul { ta: false, tb: false };
            let mut so = sa.clone();
            *so.last_mut().unwrap() = n;
            let lowered = |gpu: &wgpu_llm::gpu::Gpu| {
                matmul::lower(&op, &[info(&sa, dt), info(&sb, dt)], &info(&so, dt), &gpu.caps()).unwrap()
            };
            assert_eq!(lowered(tex).dispatches[0].entry, "gemm_tex_nn", "{case}");
            assert_ne!(lowered(storage).dispatches[0].family, "matmul_tex", "{case}");
            let (a, b) = (r.tensor(&sa, dt), r.tensor(&sb, dt));
            check_with_param(tex, &format!("{case}, W a param"), op.clone(), &[a.clone(), b.clone()], 1, tol);
            check_op_on(tex, &case, op.clone(), &[a.clone(), b.clone()], &[], tol);
            check_op_on(storage, &case, op.clone(), &[a, b], &[], tol);
        }
    }
}

#[test]
fn texture_gemms_take_a_batch_from_z() {
    // Batched products (b with a's batch: attention's in training) on a texture-weights adapter: gemm_tex,
    // gemm_tex_tn and gemm_tex_nn with the batch as grid z, against the reference and the storage kernels;
    // 2 rows (the GEMVs' use z for rows) and f16 stay on storage.
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(41);
    for (batch, m, k, n, ta, tb, entry) in [
        (3, 20, 36, 9, false, true, "gemm_tex"),
        (24, 32, 32, 32, false, true, "gemm_tex"),
        (2, 20, 36, 12, true, false, "gemm_tex_tn"),
        (5, 32, 17, 8, true, false, "gemm_tex_tn"),
        (4, 17, 32, 8, false, false, "gemm_tex_nn"),
        (3, 2, 32, 8, false, false, "gemm_tex_nn"), // 2 rows: storage
    ] {
        let (sa, sb) = shapes(&[batch], m, k, n, ta, tb, false);
        let case = format!("batched texture gemm {sa:?}·{sb:?} ta={ta} tb={tb}");
        let op = Op::MatMul { ta, tb };
        for dt in [DType::F32, DType::F16] {
            if dt == DType::F16 && !common::has_f16() {
                continue;
            }
            let l =
                matmul::lower(&op, &[info(&sa, dt), info(&sb, dt)], &info(&[batch, m, n], dt), &tex.caps()).unwrap();
            let want = if m > 2 && dt == DType::F32 { entry } else { "(storage)" };
            let got = if l.dispatches[0].family == "matmul_tex" { l.dispatches[0].entry } else { "(storage)" };
            assert_eq!(got, want, "{case} {dt:?}");
            if got != "(storage)" {
                assert_eq!(l.dispatches[0].grid[2], batch as u32, "{case}");
            }
        }
        let (a, b) = (r.tensor(&sa, DType::F32), r.tensor(&sb, DType::F32));
        check_op_on(tex, &case, op.clone(), &[a.clone(), b.clone()], &[], F32_REDUCE);
        check_op_on(storage, &case, op, &[a, b], &[], F32_REDUCE);
    }
}

#[test]
fn texture_gemm_sees_a_weight_set_again() {
    // A staged texture is refilled before every run, and a twin (up to TEX_TWIN_GEMM_MAX_ROWS rows: 9 here)
    // rewritten on every upload, so a weight changed between runs of one plan (training, LoRA merges) is
    // never read stale.
    use std::collections::HashMap;
    use wgpu_llm::{exec::Plan, reference};
    let gpu = common::gpu_texture_reads();
    let mut r = Rng::new(18);
    for m in [33, 9] {
        let mut b = GraphBuilder::new();
        let x = b.input("x", &[m, 40], DType::F32).unwrap();
        let w = b.param("w", &[24, 40], DType::F32).unwrap();
        let y = b.matmul(x, w, false, true).unwrap();
        let graph = b.finish();
        let mut plan = Plan::compile(gpu, &graph, &[y]).unwrap();
        for round in 0..2 {
            let (xv, wv) = (r.tensor(&[m, 40], DType::F32), r.tensor(&[24, 40], DType::F32));
            plan.set("w", &wv).unwrap();
            let got = plan.run(&[("x", &xv)], &[]).unwrap();
            let mut env: HashMap<String, _> = [("x".to_string(), xv), ("w".to_string(), wv)].into();
            let want = reference::run_graph(&graph, &mut env, &HashMap::new(), &[y]).unwrap();
            common::assert_close(&format!("texture gemm, weight set for round {round}"), &got[0], &want[0], F32_REDUCE);
        }
    }
}

#[test]
fn texture_gemv_matches_the_reference() {
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(19);
    // One and two rows (TEX_GEMV_MAX_ROWS), partial column quads and workgroups, a weight spanning several
    // texture rows.
    for (m, k, n) in [(1, 4, 1), (1, 132, 70), (2, 64, 129), (2, 36, 9), (1, 2048, 37)] {
        for (dt, tol) in dtypes() {
            let case = format!("texture gemv [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}");
            let op = Op::MatMul { ta: false, tb: true };
            let lowered =
                matmul::lower(&op, &[info(&[m, k], dt), info(&[n, k], dt)], &info(&[m, n], dt), &tex.caps()).unwrap();
            let entry = if dt == DType::F16 && k % 8 == 0 { "gemv_tex_h8" } else { "gemv_tex" };
            assert_eq!(lowered.dispatches[0].entry, entry, "{case}");
            // The row comes through a uniform array (no staging copy) for f32 and for f16 eight to a texel.
            let family = if dt == DType::F32 || k % 8 == 0 { "matmul_tex_ux" } else { "matmul_tex" };
            assert_eq!(lowered.dispatches[0].family, family, "{case}");
            let (a, b) = (r.tensor(&[m, k], dt), r.tensor(&[n, k], dt));
            // The weight as a param (its twin) and as an input (staged).
            check_with_param(tex, &case, op.clone(), &[a.clone(), b.clone()], 1, tol);
            check_op_on(tex, &format!("{case}, weight staged"), op.clone(), &[a.clone(), b.clone()], &[], tol);
            check_op_on(storage, &format!("{case} on storage"), op, &[a, b], &[], tol);
        }
    }
}

#[test]
fn a_twin_follows_in_place_updates_from_another_plan() {
    // Plan A reads w through its texture twin (decode GEMV); plan B, sharing the leaves, updates w in place
    // (AdamW). A's next run must see the updated w.
    use std::collections::HashMap;
    use wgpu_llm::exec::{Plan, SharedLeaves};
    use wgpu_llm::graph::{AdamWSpec, Scalar};
    let gpu = common::gpu_texture_reads();
    let mut r = Rng::new(20);
    let (n, k) = (24, 40);
    let shared = SharedLeaves::new();
    let mut ga = GraphBuilder::new();
    let x = ga.input("x", &[1, k], DType::F32).unwrap();
    let w = ga.param("w", &[n, k], DType::F32).unwrap();
    let y = ga.matmul(x, w, false, true).unwrap();
    let ga = ga.finish();
    let mut gb = GraphBuilder::new();
    let wb = gb.param("w", &[n, k], DType::F32).unwrap();
    let g = gb.input("g", &[n, k], DType::F32).unwrap();
    let spec = AdamWSpec { lr: 0.1, weight_decay: 0.0, step: Scalar::Const(1), ..AdamWSpec::default() };
    let upd = wgpu_llm::optim::adamw(&mut gb, &[wb], &[g], &spec, None).unwrap();
    let gb = gb.finish();
    let mut pa = Plan::compile_shared(gpu, &ga, &[y], Some(&shared)).unwrap();
    let mut pb = Plan::compile_shared(gpu, &gb, &[upd], Some(&shared)).unwrap();
    let (xv, wv) = (r.tensor(&[1, k], DType::F32), r.tensor(&[n, k], DType::F32));
    pa.set("w", &wv).unwrap();
    for name in ["w.adam_m", "w.adam_v"] {
        pb.set(name, &wgpu_llm::tensor::HostTensor::f32(&[n, k], vec![0.0; n * k]).unwrap()).unwrap();
    }
    let check = |pa: &mut Plan, w_now: &wgpu_llm::tensor::HostTensor, what: &str| {
        let got = pa.run(&[("x", &xv)], &[]).unwrap();
        let mut env: HashMap<String, _> = [("x".to_string(), xv.clone()), ("w".to_string(), w_now.clone())].into();
        let want = wgpu_llm::reference::run_graph(&ga, &mut env, &HashMap::new(), &[y]).unwrap();
        common::assert_close(what, &got[0], &want[0], F32_REDUCE);
    };
    check(&mut pa, &wv, "before the update");
    pb.run(&[("g", &r.tensor(&[n, k], DType::F32))], &[]).unwrap();
    let w_new = pb.read("w").unwrap();
    let moved = w_new.to_f32().iter().zip(wv.to_f32()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 0.05, "AdamW moved w by only {moved}");
    check(&mut pa, &w_new, "after plan B updated w in place");
}

#[test]
fn glu_matches_the_reference() {
    use wgpu_llm::graph::Act;
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(21);
    // Decode rows (one GEMV over both twins on the texture device: f32, or f16 with k % 8 == 0) and longer
    // inputs (two products into scratch and elementwise glu, glu_tex from 16,384 elements), partial column
    // quads, k off the texel.
    for (m, k, n) in
        [(1, 64, 37), (3, 40, 70), (4, 24, 9), (8, 24, 9), (1, 36, 130), (9, 64, 33), (20, 36, 17), (64, 32, 260)]
    {
        for (dt, tol) in dtypes() {
            for act in [Act::Silu, Act::GeluTanh] {
                let op = Op::Glu { act };
                let case = format!("glu {act:?} [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}");
                let ins = [info(&[m, k], dt), info(&[n, k], dt), info(&[n, k], dt)];
                let lowered = matmul::lower(&op, &ins, &info(&[m, n], dt), &tex.caps()).unwrap();
                let fused = m <= matmul::TEX_GEMV_MAX_ROWS && act == Act::Silu && (dt == DType::F32 || k % 8 == 0);
                let entries: Vec<&str> = lowered.dispatches.iter().map(|d| d.entry).collect();
                if fused {
                    let want = if dt == DType::F16 { "gemv_glu_tex_h8" } else { "gemv_glu_tex" };
                    assert_eq!(entries, [want], "{case}");
                } else {
                    let combine = if m * n >= 16_384 { "glu_tex" } else { "glu" };
                    assert_eq!((entries.len(), entries[2]), (3, combine), "{case}");
                }
                let xs = [r.tensor(&[m, k], dt), r.tensor(&[n, k], dt), r.tensor(&[n, k], dt)];
                check_op_on(tex, &case, op.clone(), &xs, &[], tol);
                check_op_on(storage, &format!("{case} on storage"), op, &xs, &[], tol);
            }
        }
    }
}

/// LinearAdd (r + x·Wᵀ written over r) on every kernel that serves x·Wᵀ — the texture GEMV (row through a
/// uniform or staged), the texture GEMM (weight twin or staged), the storage GEMVs and tiled kernels — with
/// the weight as a param (its twin) and as an input; f32 and f16; rows, k and n off every tile. Each lowering
/// binds r as the output and turns on its kernel's accumulate.
#[test]
fn linear_add_accumulates_into_the_residual_on_every_kernel() {
    use wgpu_llm::kernels::{matmul, Arg};
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(31);
    for (m, k, n) in [(1, 64, 70), (1, 576, 4100), (2, 36, 9), (5, 64, 33), (40, 72, 65), (1, 35, 13), (3, 37, 5)] {
        for (dt, tol) in dtypes() {
            let case = format!("linear_add [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}");
            let ins = [r.tensor(&[m, k], dt), r.tensor(&[n, k], dt), r.tensor(&[m, n], dt)];
            for gpu in [tex, storage] {
                let infos = [info(&[m, k], dt), info(&[n, k], dt), info(&[m, n], dt)];
                let l = matmul::lower(&Op::LinearAdd, &infos, &info(&[m, n], dt), &gpu.caps()).unwrap();
                for d in &l.dispatches {
                    assert!(d.bindings.iter().all(|b| b.arg != Arg::Output), "{case}: r is the output");
                    let acc = d.params.iter().any(|(n, w)| *n == "accumulate" && *w == wgpu_llm::kernels::Word::U32(1))
                        || d.overrides.contains(&("ACC", 1.0));
                    assert!(acc, "{case}: {} accumulates", d.entry);
                }
                let what = if gpu.texture_reads { "textures" } else { "storage" };
                check_with_param(
                    gpu,
                    &format!("{case} [{what}, {}]", l.dispatches[0].entry),
                    Op::LinearAdd,
                    &ins,
                    1,
                    tol,
                );
                check_op_on(gpu, &format!("{case} [{what}, weight staged]"), Op::LinearAdd, &ins, &[], tol);
            }
        }
    }
    // r must have the product's shape; nothing may read r after it was overwritten.
    let mut b = GraphBuilder::new();
    let x = b.input("x", &[2, 8], DType::F32).unwrap();
    let w = b.param("w", &[4, 8], DType::F32).unwrap();
    let bad = b.input("bad", &[2, 5], DType::F32).unwrap();
    assert!(b.op(Op::LinearAdd, &[x, w, bad]).is_err());
    let res = b.op(Op::Unary { act: wgpu_llm::graph::Act::Relu }, &[x]).unwrap();
    let res = b.reshape(res, &[2, 8]).unwrap();
    let w2 = b.param("w2", &[8, 8], DType::F32).unwrap();
    let y = b.op(Op::LinearAdd, &[x, w2, res]).unwrap();
    let late = b.add(y, res).unwrap();
    let g = b.finish();
    let err = wgpu_llm::exec::Plan::compile(common::gpu(), &g, &[late]).err().expect("a late read is refused");
    assert!(err.to_string().contains("overwrote it in place"), "{err}");
}

/// LinearF32 (x·Wᵀ stored in f32 from f16 operands, or f32 ones): the texture kernels in one dispatch with
/// their f32 variant, the storage kernels through a scratch product and a widening; both strategies, the
/// weight as a param and as an input. f16 outputs are compared with an f32 bound: nothing rounds them.
#[test]
fn linear_f32_stores_unrounded_products() {
    use wgpu_llm::kernels::matmul;
    let (tex, storage) = (common::gpu_texture_reads(), common::gpu_storage_weights());
    let mut r = Rng::new(32);
    for (m, k, n) in [(1, 576, 700), (1, 36, 9), (2, 64, 129), (5, 64, 33), (40, 72, 65), (3, 37, 5)] {
        for (dt, _) in dtypes() {
            let case = format!("linear_f32 [{m}, {k}]·[{n}, {k}]ᵀ {dt:?}");
            let ins = [r.tensor(&[m, k], dt), r.tensor(&[n, k], dt)];
            for gpu in [tex, storage] {
                let l = matmul::lower(
                    &Op::LinearF32,
                    &[info(&[m, k], dt), info(&[n, k], dt)],
                    &info(&[m, n], DType::F32),
                    &gpu.caps(),
                )
                .unwrap();
                let texture = l.dispatches[0].family.starts_with("matmul_tex");
                let want = if texture || dt == DType::F32 { 1 } else { 2 };
                assert_eq!(
                    l.dispatches.len(),
                    want,
                    "{case}: {:?}",
                    l.dispatches.iter().map(|d| d.entry).collect::<Vec<_>>()
                );
                let what = if gpu.texture_reads { "textures" } else { "storage" };
                check_with_param(gpu, &format!("{case} [{what}]"), Op::LinearF32, &ins, 1, F32_REDUCE);
                check_op_on(gpu, &format!("{case} [{what}, weight staged]"), Op::LinearF32, &ins, &[], F32_REDUCE);
            }
        }
    }
}
