//! Embedding family on the GPU against the CPU reference: gather (ids out of range give zero rows), sharded
//! tables, the deterministic scatter-add backward.

use wgpu_llm::graph::{GraphBuilder, Op};
use wgpu_llm::tensor::DType;

use crate::common::{self, check_op, check_op_on, Rng, EXACT, F16, F32};

#[test]
fn gather_rows() {
    let mut r = Rng::new(21);
    let mut dts = vec![DType::F32];
    if common::has_f16() {
        dts.push(DType::F16);
    }
    for dt in dts {
        for (v, c, ids) in
            [(50usize, 13usize, vec![3usize, 7]), (1, 1, vec![1]), (7, 64, vec![61]), (300, 5, vec![2, 2, 2])]
        {
            let table = r.tensor(&[v, c], dt);
            let ids = r.ids(&ids, v as u32 + 3); // a few ids ≥ V
            check_op(&format!("embedding [{v},{c}] {:?} {dt:?}", ids.shape), Op::Embedding, &[table, ids], &[], EXACT);
        }
    }
}

#[test]
fn gather_from_a_sharded_table() {
    // 1 KiB bindings: the table (2080 B) arrives in shards, ids and output fit one binding.
    let gpu = common::gpu_small_binding(1024);
    let mut r = Rng::new(22);
    let table = r.tensor(&[40, 13], DType::F32);
    let ids = r.ids(&[17], 44);
    let d = crate::matmul::check_with_param(&gpu, "embedding sharded", Op::Embedding, &[table, ids], 0, EXACT);
    assert!(d >= 2, "expected one dispatch per shard, got {d}");
}

#[test]
fn scatter_add_backward() {
    let mut r = Rng::new(23);
    let mut dts = vec![(DType::F32, F32)];
    if common::has_f16() {
        dts.push((DType::F16, F16));
    }
    for (dt, tol) in dts {
        for (vocab, c, ids) in
            [(10usize, 13usize, vec![2usize, 9]), (1, 1, vec![5]), (50, 61, vec![300]), (3, 7, vec![1])]
        {
            let ids = r.ids(&ids, vocab as u32 + 2);
            let mut dys = ids.shape.clone();
            dys.push(c);
            let dy = r.tensor(&dys, dt);
            let case = format!("embedding_backward vocab={vocab} c={c} {:?} {dt:?}", ids.shape);
            check_op(&case, Op::EmbeddingBackward { vocab }, &[ids, dy], &[], tol);
        }
    }
    let gpu = common::gpu_f32_tier();
    let ids = r.ids(&[40], 8);
    let dy = r.tensor(&[40, 9], DType::F32);
    check_op_on(gpu, "tier embedding_backward", Op::EmbeddingBackward { vocab: 8 }, &[ids, dy], &[], F32);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut b = GraphBuilder::new();
    let t = b.input("t", &[10, 4], DType::F32).unwrap();
    let ids = b.input("ids", &[3], DType::F32).unwrap();
    let e = b.op(Op::Embedding, &[t, ids]).unwrap_err().to_string();
    assert!(e.contains("embedding") && e.contains("u32"), "{e}");
}
