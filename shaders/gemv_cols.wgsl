// ---- shaders/gemv_cols.wgsl, included by matmul_tex.wgsl and qmatmul.wgsl (`//#include gemv_cols`): the
// column geometry their GEMVs share (each needs `p.n`).
// A GEMV invocation's first column j0 (four columns j0..j0+3 a lane, workgroups of 16 folded 2-D) and the
// four column indices clamped to the last column.
fn gemv_j0(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * 16u + li) * 4u;
}

fn gemv_cols(j0: u32) -> vec4<u32> {
    let nl = p.n - 1u;
    return vec4<u32>(j0, min(j0 + 1u, nl), min(j0 + 2u, nl), min(j0 + 3u, nl));
}
