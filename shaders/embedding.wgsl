// Embedding family.
//
//   embedding           out[i, j] = table[ids[i], j] for ids[i] in [row0, row1) (the rows this dispatch's table
//                       binding holds, addressed as table[(ids[i] − row0)·c + j]); with first = 1 it also writes
//                       zeros where the id is outside the range, so with a sharded table the first shard's
//                       dispatch covers every element (ids ≥ V end as zero rows) and later shards fill their rows.
//                       table: [row1 − row0, c] (one shard), ids: [n] u32, out: [n, c]. One invocation per element.
//   embedding_zero      dtable[i] = 0 for i < v·c.
//   embedding_backward  dtable[ids[i], j] += dy[i, j] over positions i = 0..n in order, ids ≥ v dropped.
//                       One invocation per column j, so every sum has one fixed order (deterministic, no atomics).
//                       ids: [n] u32, dy: [n, c], dtable: [v, c] (read_write, zeroed by embedding_zero first).
//
// Bindings: 0 params; embedding: 1 table, 2 ids, 3 out; backward: 1 ids, 2 dy, 3 dtable.
// Grids: 256 invocations per workgroup over n·c, v·c or c, folded 2-D (flat = wid.x + wid.y · num_workgroups.x).
// CPU reference: reference::embedding (embedding_forward, embedding_backward).

struct Params {
    n: u32,
    c: u32,
    v: u32,
    row0: u32,
    row1: u32,
    first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<T>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;
@group(0) @binding(1) var<storage, read> bids: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<T>;

const WG: u32 = 256u;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

@compute @workgroup_size(256)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat(wid, nwg, lid);
    if (e >= p.n * p.c) { return; }
    let i = e / p.c;
    let j = e % p.c;
    let id = ids[i];
    if (id >= p.row0 && id < p.row1) {
        out[e] = table[(id - p.row0) * p.c + j];
    } else if (p.first != 0u) {
        out[e] = T(0.0);
    }
}

@compute @workgroup_size(256)
fn embedding_zero(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat(wid, nwg, lid);
    if (e >= p.v * p.c) { return; }
    out[e] = T(0.0);
}

@compute @workgroup_size(256)
fn embedding_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = flat(wid, nwg, lid);
    if (j >= p.c) { return; }
    for (var i = 0u; i < p.n; i++) {
        let id = bids[i];
        if (id < p.v) {
            let o = id * p.c + j;
            out[o] = T(f32(out[o]) + f32(dy[i * p.c + j]));
        }
    }
}
