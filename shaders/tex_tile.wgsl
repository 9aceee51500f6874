// ---- shaders/tex_tile.wgsl, included by matmul_tex.wgsl and qmatmul.wgsl (`//#include tex_tile`): how
// their kernels store: `store_y(idx, v)` writes y[idx] = v, or y[idx] += v under the override ACC (LinearAdd,
// QLinearAdd: y is the residual stream, updated in place); and the texture GEMMs' ROWS × 8 register tile
// (acc[2r], acc[2r + 1] = row i0 + r, columns j0..j0+3, j0+4..j0+7) with its store (rows past m, columns
// past n not stored). Needs the includer's `y` (array<T>) and `p.m`, `p.n`.

override ACC: bool = false;

fn store_y(idx: u32, v: f32) {
    var r = v;
    if (ACC) { r += f32(y[idx]); }
    y[idx] = T(r);
}

// Rows of the register tile: 16, or 8 (the upper half of the tile is then neither computed nor stored).
override ROWS: u32 = 16u;

// y0: the first element of this product's y (a batched product's batch · m · n; 0 otherwise).
fn store_row(y0: u32, i: u32, j0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (i >= p.m) { return; }
    let v = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var c = 0u; c < 8u; c++) {
        if (j0 + c < p.n) { store_y(y0 + i * p.n + j0 + c, v[c]); }
    }
}

fn store_tile_at(y0: u32, i0: u32, j0: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    //#rows store_row(y0, i0 + {r}u, j0, (*acc)[{2r}], (*acc)[{2r+1}]);
}

fn store_tile(i0: u32, j0: u32, acc: ptr<function, array<vec4<f32>, 32>>) {
    store_tile_at(0u, i0, j0, acc);
}
