//! WGSL composition: a family's text is its shader file with named snippets included, row drivers and
//! register tiles generated, and the variant's load hooks chosen, instead of copied or patched text. The
//! directives are whole lines of a shader file (comments to WGSL, so the files still read as WGSL):
//!
//! - `//#include NAME` — the shared snippet NAME (`shaders/NAME.wgsl`, listed in `SNIPPETS`).
//! - `//#unroll V A..B` … `//#end` — the lines between, once for each V = A..B-1, with every `{V}`, `{V+K}`,
//!   `{CV}` or `{CV+K}` (C, K integers) replaced by its value: straight-line code whose indices are constants
//!   (register arrays stay in registers on llvmpipe only then), written once. Blocks do not nest.
//! - `//#rows TEMPLATE` — the texture GEMMs' row driver: TEMPLATE unrolled over the register tile's rows
//!   r = 0..7, then 8..15 under `if (ROWS > 8u)` (the override picking 8- or 16-row tiles).
//! - `//#generate NAME` — text written by a Rust generator here (`matmul_tiles`: the storage GEMM's unrolled
//!   register tiles, which must stay unrolled for llvmpipe to keep them in registers).
//! - `{N}`, `{CN+K}` of a size named in upper case (`compose_sized`): the variant's size, substituted on every
//!   line first, directives included (`//#unroll k 0..{N}`), for kernels whose binding count is the size.
//! - `//#hooks NAME` — starts a section of the file that is kept only in the variants naming it (until the
//!   next `//#hooks` line or the end): the storage and texture variants of a kernel supply their loads as
//!   functions of the same name in two sections, and the kernel body calls them.
//!
//! Every directive is checked: an unknown name, a hook section asked for and missing, or a section declared
//! twice panics when the text is first built, which every test that lowers the family does.

use std::fmt::Write;

/// A family's composed text (`compose`), built once: `composed!(family, file, [hooks…])` is a `&'static str`.
macro_rules! composed {
    ($family:expr, $file:expr, [$($hook:expr),* $(,)?]) => {{
        static TEXT: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| $crate::kernels::wgsl::compose($family, $file, &[$($hook),*]));
        TEXT.as_str()
    }};
}
pub(crate) use composed;

/// The shared snippets `//#include` names.
const SNIPPETS: &[(&str, &str)] = &[
    ("gemv_cols", include_str!("../../shaders/gemv_cols.wgsl")),
    ("tex_tile", include_str!("../../shaders/tex_tile.wgsl")),
];

/// `file` (of `family`) composed for a variant: its common text plus the `//#hooks` sections named in
/// `hooks`, with every directive expanded.
pub fn compose(family: &str, file: &str, hooks: &[&str]) -> String {
    compose_sized(family, file, hooks, &[])
}

/// `compose` for a variant of a given size: every `{N}`, `{CN+K}` of each (NAME, value) in `sizes` (names in
/// upper case, so they never meet an unroll variable) is replaced first, on every line.
pub fn compose_sized(family: &str, file: &str, hooks: &[&str], sizes: &[(&str, usize)]) -> String {
    assert!(
        sizes.iter().all(|(n, _)| n.chars().all(|c| c.is_ascii_uppercase())),
        "{family}: size names are upper case"
    );
    let sized: String = if sizes.is_empty() {
        file.to_string()
    } else {
        file.lines().map(|l| sizes.iter().fold(l.to_string(), |l, (n, v)| substitute(&l, n, *v)) + "\n").collect()
    };
    let file = sized.as_str();
    let mut kept: Vec<&str> = Vec::new();
    let mut keep = true;
    let mut seen: Vec<&str> = Vec::new();
    for line in file.lines() {
        if let Some(name) = line.trim_start().strip_prefix("//#hooks ") {
            let name = name.trim();
            assert!(!seen.contains(&name), "{family}: hook section {name} declared twice");
            seen.push(name);
            keep = hooks.contains(&name);
        } else if keep {
            kept.push(line);
        }
    }
    for h in hooks {
        assert!(seen.contains(h), "{family}: no hook section {h}");
    }
    let mut out = String::with_capacity(file.len() * 2);
    expand(family, &kept, &mut out);
    out
}

fn expand(family: &str, lines: &[&str], out: &mut String) {
    let mut i = 0;
    while i < lines.len() {
        let body = lines[i].trim_start();
        if let Some(head) = body.strip_prefix("//#unroll ") {
            let end = lines[i..]
                .iter()
                .position(|l| l.trim() == "//#end")
                .unwrap_or_else(|| panic!("{family}: //#unroll {head} has no //#end"));
            let block = &lines[i + 1..i + end];
            assert!(
                !block.iter().any(|l| l.trim_start().starts_with("//#unroll ")),
                "{family}: //#unroll blocks do not nest"
            );
            let (var, range) = parse_unroll(family, head);
            for v in range {
                let subst: Vec<String> = block.iter().map(|l| substitute(l, var, v)).collect();
                let subst: Vec<&str> = subst.iter().map(String::as_str).collect();
                expand(family, &subst, out);
            }
            i += end + 1;
            continue;
        }
        expand_line(family, lines[i], out);
        i += 1;
    }
}

/// `V A..B` of an `//#unroll` line.
fn parse_unroll<'a>(family: &str, head: &'a str) -> (&'a str, std::ops::Range<usize>) {
    let bad = || -> ! { panic!("{family}: expected `//#unroll V A..B`, found `//#unroll {head}`") };
    let mut parts = head.split_whitespace();
    let (Some(var), Some(range), None) = (parts.next(), parts.next(), parts.next()) else { bad() };
    let Some((a, b)) = range.split_once("..") else { bad() };
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) if var.chars().all(|c| c.is_ascii_alphabetic()) => (var, a..b),
        _ => bad(),
    }
}

/// `line` with every `{V}`, `{V+K}`, `{CV}`, `{CV+K}` of variable `var` replaced by C·value + K; other
/// braces (WGSL's blocks) are left alone.
pub fn substitute(line: &str, var: &str, value: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let eval = after.find('}').and_then(|close| {
            let expr = &after[..close];
            let (lhs, k) = match expr.split_once('+') {
                Some((lhs, k)) => (lhs, k.parse::<usize>().ok()?),
                None => (expr, 0),
            };
            let c = lhs.strip_suffix(var)?;
            let c = if c.is_empty() { 1 } else { c.parse::<usize>().ok()? };
            Some((c * value + k, close))
        });
        match eval {
            Some((n, close)) => {
                out.push_str(&n.to_string());
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn expand_line(family: &str, line: &str, out: &mut String) {
    let indent = &line[..line.len() - line.trim_start().len()];
    let body = line.trim_start();
    if let Some(name) = body.strip_prefix("//#include ") {
        let name = name.trim();
        let text = SNIPPETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{family}: no snippet {name} to include"))
            .1;
        let lines: Vec<&str> = text.lines().collect();
        expand(family, &lines, out);
    } else if let Some(template) = body.strip_prefix("//#rows ") {
        out.push_str(&rows(indent, template.trim()));
    } else if let Some(name) = body.strip_prefix("//#generate ") {
        match name.trim() {
            "matmul_tiles" => out.push_str(&matmul_tiles()),
            "matmul_tiles_scalar" => out.push_str(&matmul_tiles_scalar()),
            other => panic!("{family}: no generator {other}"),
        }
    } else {
        assert!(!body.starts_with("//#"), "{family}: unknown directive {body}");
        out.push_str(line);
        out.push('\n');
    }
}

/// The row driver of the texture GEMMs' ROWS × 8 tiles: `template` for rows 0..7, then 8..15 when the
/// override ROWS is 16.
pub fn rows(indent: &str, template: &str) -> String {
    let mut s = String::new();
    for r in 0..8 {
        let _ = writeln!(s, "{indent}{}", substitute(template, "r", r));
    }
    let _ = writeln!(s, "{indent}if (ROWS > 8u) {{");
    for r in 8..16 {
        let _ = writeln!(s, "{indent}    {}", substitute(template, "r", r));
    }
    let _ = writeln!(s, "{indent}}}");
    s
}

const XYZW: [&str; 4] = ["x", "y", "z", "w"];

/// matmul.wgsl's register tiles, unrolled: the 16 × 8 tile of `matmul_tiled` (vec4 loads) and the 8 × 8
/// tile of `matmul_tiled_scalar` (guarded scalar loads). A tile of R rows and 8 columns, k in steps of 4:
/// ak[c·R/4 + g] = opA rows i0+4g..i0+4g+3 at k+c; bk[c·2 + h] = opB columns j0+4h..j0+4h+3 at k+c;
/// acc[2i + h] = row i, columns j0+4h..j0+4h+3.
pub fn matmul_tiles() -> String {
    let mut s = String::new();
    a_tile_vec4(&mut s, 16);
    s.push('\n');
    b_tile_vec4(&mut s);
    s.push('\n');
    fma_tile(&mut s, "fma_tile", 16);
    s.push('\n');
    store_tile(&mut s, "store_tile", 16);
    s
}

/// The scalar tiles (8 × 8) of `matmul_tiled_scalar`, generated as `matmul_tiles`.
pub fn matmul_tiles_scalar() -> String {
    let mut s = String::new();
    a_tile_scalar(&mut s, 8);
    s.push('\n');
    b_tile_scalar(&mut s);
    s.push('\n');
    fma_tile(&mut s, "fma_tile_s", 8);
    s.push('\n');
    store_tile(&mut s, "store_tile_s", 8);
    s
}

// vec4 loads of opA's R × 4 slice: TA reads 4 rows a load, !TA 4 k a load and transposes in registers.
fn a_tile_vec4(s: &mut String, rows: usize) {
    let g_n = rows / 4;
    let _ = writeln!(
        s,
        "// vec4 loads: TA needs m, lda, stride_a multiples of 4; !TA needs lda, k_off, stride_a multiples of 4."
    );
    let _ = writeln!(s, "fn a_tile_vec4(abase: u32, i0: u32, k: u32) -> array<vec4<f32>, {rows}> {{");
    let _ = writeln!(s, "    var t: array<vec4<f32>, {rows}>;\n    let z = vec4<f32>(0.0);\n    if (TA) {{");
    for c in 0..4 {
        for g in 0..g_n {
            let _ = writeln!(
                s,
                "        t[{}] = select(z, vec4<f32>(a4[(abase + (p.k_off + k + {c}u) * p.lda + i0 + {}u) / 4u]),\n            k + {c}u < p.k && i0 + {}u < p.m);",
                c * g_n + g,
                4 * g,
                4 * g
            );
        }
    }
    let _ = writeln!(s, "    }} else {{\n        let km = k_mask(k);");
    for r in 0..rows {
        let _ = writeln!(
            s,
            "        let r{r} = select(z, vec4<f32>(a4[(abase + (i0 + {r}u) * p.lda + p.k_off + k) / 4u]),\n            km & vec4<bool>(i0 + {r}u < p.m));"
        );
    }
    for (c, comp) in XYZW.iter().enumerate() {
        for g in 0..g_n {
            let r = 4 * g;
            let _ = writeln!(
                s,
                "        t[{}] = vec4<f32>(r{r}.{comp}, r{}.{comp}, r{}.{comp}, r{}.{comp});",
                c * g_n + g,
                r + 1,
                r + 2,
                r + 3
            );
        }
    }
    let _ = writeln!(s, "    }}\n    return t;\n}}");
}

// vec4 loads of opB's 4 × 8 slice: TB reads 4 k a load and transposes, !TB 4 columns a load.
fn b_tile_vec4(s: &mut String) {
    let _ = writeln!(
        s,
        "// vec4 loads: TB needs ldb (= k), stride_b multiples of 4; !TB needs n, ldb, stride_b multiples of 4."
    );
    let _ = writeln!(s, "fn b_tile_vec4(bbase: u32, j0: u32, k: u32) -> array<vec4<f32>, 8> {{");
    let _ = writeln!(
        s,
        "    var t: array<vec4<f32>, 8>;\n    let z = vec4<f32>(0.0);\n    if (TB) {{\n        let km = k_mask(k);"
    );
    for j in 0..8 {
        let _ = writeln!(
            s,
            "        let q{j} = select(z, vec4<f32>(b4[(bbase + (j0 + {j}u) * p.ldb + k) / 4u]),\n            km & vec4<bool>(j0 + {j}u < p.n));"
        );
    }
    for (c, comp) in XYZW.iter().enumerate() {
        for h in 0..2 {
            let q = 4 * h;
            let _ = writeln!(
                s,
                "        t[{}] = vec4<f32>(q{q}.{comp}, q{}.{comp}, q{}.{comp}, q{}.{comp});",
                c * 2 + h,
                q + 1,
                q + 2,
                q + 3
            );
        }
    }
    let _ = writeln!(s, "    }} else {{");
    for c in 0..4 {
        for h in 0..2 {
            let _ = writeln!(
                s,
                "        t[{}] = select(z, vec4<f32>(b4[(bbase + (k + {c}u) * p.ldb + j0 + {}u) / 4u]),\n            k + {c}u < p.k && j0 + {}u < p.n);",
                c * 2 + h,
                4 * h,
                4 * h
            );
        }
    }
    let _ = writeln!(s, "    }}\n    return t;\n}}");
}

// Guarded scalar loads of opA's R × 4 slice.
fn a_tile_scalar(s: &mut String, rows: usize) {
    let g_n = rows / 4;
    let _ = writeln!(s, "fn a_tile_scalar_s(abase: u32, i0: u32, k: u32) -> array<vec4<f32>, {rows}> {{");
    let _ = writeln!(s, "    var t: array<vec4<f32>, {rows}>;");
    for c in 0..4 {
        for g in 0..g_n {
            let loads: Vec<String> = (0..4).map(|e| format!("load_a(abase, i0 + {}u, k + {c}u)", 4 * g + e)).collect();
            let _ = writeln!(s, "    t[{}] = vec4<f32>({});", c * g_n + g, loads.join(",\n        "));
        }
    }
    let _ = writeln!(s, "    return t;\n}}");
}

// Guarded scalar loads of opB's 4 × 8 slice.
fn b_tile_scalar(s: &mut String) {
    let _ = writeln!(s, "fn b_tile_scalar_s(bbase: u32, j0: u32, k: u32) -> array<vec4<f32>, 8> {{");
    let _ = writeln!(s, "    var t: array<vec4<f32>, 8>;");
    for c in 0..4 {
        for h in 0..2 {
            let loads: Vec<String> = (0..4).map(|e| format!("load_b(bbase, k + {c}u, j0 + {}u)", 4 * h + e)).collect();
            let _ = writeln!(s, "    t[{}] = vec4<f32>({});", c * 2 + h, loads.join(",\n        "));
        }
    }
    let _ = writeln!(s, "    return t;\n}}");
}

// acc += ak · bk over the 4 k of a step, one FMA of a vec4 per row, half and k.
fn fma_tile(s: &mut String, name: &str, rows: usize) {
    let g_n = rows / 4;
    let _ = writeln!(
        s,
        "fn {name}(acc: ptr<function, array<vec4<f32>, {}>>, ak: array<vec4<f32>, {rows}>, bk: array<vec4<f32>, 8>) {{",
        2 * rows
    );
    for c in 0..4 {
        for g in 0..g_n {
            for (e, comp) in XYZW.iter().enumerate() {
                let i = 4 * g + e;
                let a = c * g_n + g;
                let _ = writeln!(
                    s,
                    "    (*acc)[{}] += ak[{a}].{comp} * bk[{}]; (*acc)[{}] += ak[{a}].{comp} * bk[{}];",
                    2 * i,
                    2 * c,
                    2 * i + 1,
                    2 * c + 1
                );
            }
        }
    }
    let _ = writeln!(s, "}}");
}

// Every element of the R × 8 tile through store_c (guarded, accumulating where the params say).
fn store_tile(s: &mut String, name: &str, rows: usize) {
    let _ = writeln!(s, "fn {name}(bi: u32, i0: u32, j0: u32, acc: array<vec4<f32>, {}>) {{", 2 * rows);
    for i in 0..rows {
        for j in 0..8 {
            let _ = writeln!(s, "    store_c(bi, i0 + {i}u, j0 + {j}u, acc[{}].{});", 2 * i + j / 4, XYZW[j % 4]);
        }
    }
    let _ = writeln!(s, "}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_keep_only_the_named_sections() {
        let file = "a\n//#hooks s\nfn f() {}\n//#hooks t\nfn g() {}\n";
        assert_eq!(compose("x", file, &["s"]), "a\nfn f() {}\n");
        assert_eq!(compose("x", file, &["t"]), "a\nfn g() {}\n");
        assert_eq!(compose("x", file, &[]), "a\n");
    }

    #[test]
    #[should_panic(expected = "no hook section u")]
    fn a_missing_hook_section_is_an_error() {
        compose("x", "a\n//#hooks s\n", &["u"]);
    }

    #[test]
    #[should_panic(expected = "unknown directive")]
    fn an_unknown_directive_is_an_error() {
        compose("x", "//#frobnicate\n", &[]);
    }

    #[test]
    fn unroll_substitutes_linear_indices_and_leaves_blocks_alone() {
        assert_eq!(substitute("if (a) { x[{d}] = y[{2d+1}] + {d+16}u; }", "d", 3), "if (a) { x[3] = y[7] + 19u; }");
        assert_eq!(substitute("{e} {d}", "d", 2), "{e} 2");
        let file = "a\n  //#unroll i 1..3\n  f({i}, {4i+2});\n  //#end\nb\n";
        assert_eq!(compose("x", file, &[]), "a\n  f(1, 6);\n  f(2, 10);\nb\n");
    }

    #[test]
    fn sizes_substitute_before_unrolling() {
        let file = "struct P {\n//#unroll k 0..{N}\n  n{k}: u32,\n//#end\n}\n@binding({4N+1}) var x;\n";
        assert_eq!(
            compose_sized("x", file, &[], &[("N", 2)]),
            "struct P {\n  n0: u32,\n  n1: u32,\n}\n@binding(9) var x;\n"
        );
    }

    #[test]
    #[should_panic(expected = "has no //#end")]
    fn an_unclosed_unroll_is_an_error() {
        compose("x", "//#unroll i 0..2\nf();\n", &[]);
    }

    #[test]
    fn rows_unrolls_eight_then_sixteen() {
        let s = rows("  ", "f({r}, {2r}, {2r+1});");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 18);
        assert_eq!(lines[0], "  f(0, 0, 1);");
        assert_eq!(lines[7], "  f(7, 14, 15);");
        assert_eq!(lines[8], "  if (ROWS > 8u) {");
        assert_eq!(lines[16], "      f(15, 30, 31);");
        assert_eq!(lines[17], "  }");
    }

    #[test]
    fn tiles_cover_every_accumulator_once_per_k() {
        // Each of the 32 accumulators of the 16 × 8 tile is updated by 4 FMAs a step (one per k) and
        // stored 4 times (one per lane of its vec4).
        let t = matmul_tiles();
        for i in 0..32 {
            assert_eq!(t.matches(&format!("(*acc)[{i}] += ")).count(), 4, "acc {i}");
            assert_eq!(t.matches(&format!("acc[{i}].")).count(), 4, "store {i}");
        }
        let t = matmul_tiles_scalar();
        assert_eq!(t.matches("load_a(").count(), 32);
        assert_eq!(t.matches("load_b(").count(), 32);
    }
}
