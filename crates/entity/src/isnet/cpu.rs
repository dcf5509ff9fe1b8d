//! CPU kernels of ISNet on plain `f32` slices (NCHW, one image at a time).
//!
//! candle's CPU `conv2d` builds the im2col matrix of the whole feature map (1.2 GB for one
//! 128-channel 512² layer of ISNet) and has no fused epilogue. Here every convolution is cut
//! into panels of [`NR`] output positions (or Winograd tiles) computed in parallel, each
//! multiplied by one register-tiled kernel ([`MR`] output channels × [`NR`] positions, 24
//! accumulators, AVX-512 when the CPU has it) and finished by a fused bias + ReLU (+ residual)
//! epilogue:
//! - stride 1, dilation 1 (most of the network): Winograd F(2×2, 3×3), 16 products of
//!   `cin`-deep matrices per panel instead of one `9·cin`-deep one (2.25× fewer multiplies);
//! - stride 1, dilated, wide rows: input rows read in place (no im2col copy), masked loads at
//!   the borders;
//! - otherwise: the panel's im2col (`9·cin × NR`) is built and multiplied.
//!
//! Concatenated inputs are read in place, never copied. Max pooling uses `ceil_mode` and the
//! bilinear resize uses half-pixel centres without antialiasing, as PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)` and ONNX `Resize` (`half_pixel`).

use rayon::prelude::*;

/// One feature map: `c` channels of `h`×`w`, channel-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Feat {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Feat {
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), c * h * w);
        Self { c, h, w, data }
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// The geometry of one 3×3 convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub cout: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    pub relu: bool,
}

impl ConvSpec {
    /// Output size along one axis.
    pub fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.pad - 2 * self.dil - 1) / self.stride + 1
    }
}

/// A raw pointer that threads may share because each writes a disjoint range through it.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: every user writes only to index ranges no other thread touches (one tile each).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Output positions per panel of the packed convolution (three 16-lane vectors).
pub(crate) const NR: usize = 48;
/// Output channels per block of the packed convolution.
pub(crate) const MR: usize = 8;

/// Weights `[cout, k]` repacked for [`conv3x3`]: blocks of [`MR`] output channels, each
/// `[k][MR]` (channels past `cout` are zero).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PackedWeights {
    pub cout: usize,
    pub k: usize,
    pub data: Vec<f32>,
}

impl PackedWeights {
    /// Packs row-major `[cout, k]` weights.
    pub fn pack(w: &[f32], cout: usize, k: usize) -> Self {
        let blocks = cout.div_ceil(MR);
        let mut data = vec![0f32; blocks * k * MR];
        for co in 0..cout {
            let (cb, r) = (co / MR, co % MR);
            for kk in 0..k {
                data[(cb * k + kk) * MR + r] = w[co * k + kk];
            }
        }
        Self { cout, k, data }
    }

    /// Back to row-major `[cout, k]`.
    pub fn unpack(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.cout * self.k];
        for co in 0..self.cout {
            let (cb, r) = (co / MR, co % MR);
            for kk in 0..self.k {
                w[co * self.k + kk] = self.data[(cb * self.k + kk) * MR + r];
            }
        }
        w
    }

    fn block(&self, cb: usize) -> &[f32] {
        &self.data[cb * self.k * MR..(cb + 1) * self.k * MR]
    }
}

/// `c[r][j] = Σ_k a[k][r] · b[k][j]` for one [`MR`]×[`NR`] tile (portable version).
fn tile_portable(k: usize, a: &[f32], b: &[f32], c: &mut [[f32; NR]; MR]) {
    *c = [[0.0; NR]; MR];
    for kk in 0..k {
        let bk = &b[kk * NR..(kk + 1) * NR];
        let ak = &a[kk * MR..(kk + 1) * MR];
        for (r, cr) in c.iter_mut().enumerate() {
            let av = ak[r];
            for (cv, &bv) in cr.iter_mut().zip(bk) {
                *cv += av * bv;
            }
        }
    }
}

/// The AVX-512 version of [`tile_portable`]: 24 accumulators in registers over the whole
/// `k`, three vector loads and eight broadcasts per step.
///
/// # Safety
/// The CPU must have AVX-512F; `a` holds `k * MR` and `b` `k * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(k: usize, a: &[f32], b: &[f32], c: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= k * MR && b.len() >= k * NR);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for kk in 0..k {
        // SAFETY: kk < k and the slices hold k * NR (b) and k * MR (a) floats.
        let (b0, b1, b2, ak) = unsafe {
            let bb = bp.add(kk * NR);
            (
                _mm512_loadu_ps(bb),
                _mm512_loadu_ps(bb.add(16)),
                _mm512_loadu_ps(bb.add(32)),
                ap.add(kk * MR),
            )
        };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR, inside the k-th row of a.
            let av = _mm512_set1_ps(unsafe { *ak.add(r) });
            acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
            acc_r[2] = _mm512_fmadd_ps(av, b2, acc_r[2]);
        }
    }
    for (cr, acc_r) in c.iter_mut().zip(acc.iter()) {
        // SAFETY: each row of c holds NR = 48 floats.
        unsafe {
            let p = cr.as_mut_ptr();
            _mm512_storeu_ps(p, acc_r[0]);
            _mm512_storeu_ps(p.add(16), acc_r[1]);
            _mm512_storeu_ps(p.add(32), acc_r[2]);
        }
    }
}

/// Whether the AVX-512 tile kernel can run here (checked once).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn tile(k: usize, a: &[f32], b: &[f32], c: &mut [[f32; NR]; MR]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: AVX-512F is present (checked above); the slice lengths are asserted by
        // the callers' construction (a: k * MR, b: k * NR).
        assert!(a.len() >= k * MR && b.len() >= k * NR);
        unsafe { tile_avx512(k, a, b, c) };
        return;
    }
    tile_portable(k, a, b, c);
}

/// Like [`tile_avx512`] but reading the `k`-th row of B straight from the feature map:
/// `rows[k]` points at the first of 48 floats, `masks[k]` says which of them are inside
/// the map (masked-out lanes read as zero and are never touched).
///
/// # Safety
/// The CPU must have AVX-512F; for every `k`, each lane enabled in `masks[k]` must be a
/// readable float at `rows[k] + lane`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_direct_avx512(
    a: &[f32],
    rows: &[(*const f32, [u16; 3])],
    c: &mut [[f32; NR]; MR],
    prefetch_next: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= rows.len() * MR);
    let ap = a.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for (kk, &(p, m)) in rows.iter().enumerate() {
        // SAFETY: enabled lanes are readable (the caller's contract); masked lanes are not
        // accessed by masked loads. kk < k and a holds k * MR floats.
        let (b0, b1, b2, ak) = unsafe {
            (
                _mm512_maskz_loadu_ps(m[0], p),
                _mm512_maskz_loadu_ps(m[1], p.wrapping_add(16)),
                _mm512_maskz_loadu_ps(m[2], p.wrapping_add(32)),
                ap.add(kk * MR),
            )
        };
        if prefetch_next {
            // The next panel of the row reads the 48 floats after these: ask for them now
            // (a prefetch never faults, even past the end of the map).
            let q = p.wrapping_add(NR) as *const i8;
            _mm_prefetch::<_MM_HINT_T1>(q);
            _mm_prefetch::<_MM_HINT_T1>(q.wrapping_add(64));
            _mm_prefetch::<_MM_HINT_T1>(q.wrapping_add(128));
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR, inside the kk-th row of a.
            let av = _mm512_set1_ps(unsafe { *ak.add(r) });
            acc_r[0] = _mm512_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm512_fmadd_ps(av, b1, acc_r[1]);
            acc_r[2] = _mm512_fmadd_ps(av, b2, acc_r[2]);
        }
    }
    for (cr, acc_r) in c.iter_mut().zip(acc.iter()) {
        // SAFETY: each row of c holds NR = 48 floats.
        unsafe {
            let p = cr.as_mut_ptr();
            _mm512_storeu_ps(p, acc_r[0]);
            _mm512_storeu_ps(p.add(16), acc_r[1]);
            _mm512_storeu_ps(p.add(32), acc_r[2]);
        }
    }
}

/// Fills `rows` with, for every `k` = (input channel, ky, kx), a pointer to the input floats
/// under output positions `ox0..ox0 + 48` of output row `oy` (stride 1) and the mask of the
/// lanes inside both the panel (`< ox1`) and the input row.
fn direct_rows(
    inputs: &[&Feat],
    spec: ConvSpec,
    oy: usize,
    ox0: usize,
    ox1: usize,
    rows: &mut Vec<(*const f32, [u16; 3])>,
) {
    rows.clear();
    let (h, w) = (inputs[0].h as isize, inputs[0].w as isize);
    let (pad, d) = (spec.pad as isize, spec.dil as isize);
    let mut masks = [[0u16; 3]; 3];
    for (kx, mk) in masks.iter_mut().enumerate() {
        let off = kx as isize * d - pad;
        for (v, m) in mk.iter_mut().enumerate() {
            for j in 0..16 {
                let x = (ox0 + 16 * v + j) as isize;
                if x < ox1 as isize && x + off >= 0 && x + off < w {
                    *m |= 1 << j;
                }
            }
        }
    }
    for f in inputs {
        for ci in 0..f.c {
            let plane = &f.data[ci * f.plane()..(ci + 1) * f.plane()];
            for ky in 0..3isize {
                let iy = oy as isize - pad + ky * d;
                for (kx, &m) in masks.iter().enumerate() {
                    if iy < 0 || iy >= h {
                        rows.push((plane.as_ptr(), [0; 3]));
                    } else {
                        let off = iy * w + ox0 as isize + kx as isize * d - pad;
                        rows.push((plane.as_ptr().wrapping_offset(off), m));
                    }
                }
            }
        }
    }
}

/// A 3×3 convolution over the channel concatenation of `inputs` (all of one size), with bias,
/// optional ReLU and an optional residual added after the ReLU (`relu(conv(x) + b) + res`).
///
/// Output positions are taken [`NR`] at a time (one panel per task, in parallel): the panel's
/// im2col (`k × NR`, at most 1.7 MB for ISNet's widest layer) is built, then every block of
/// [`MR`] output channels is computed over the whole `k` in registers and finished with the
/// fused epilogue; no full-map buffer and no accumulator round-trips through memory.
pub(crate) fn conv3x3(
    inputs: &[&Feat],
    weight: &PackedWeights,
    bias: &[f32],
    spec: ConvSpec,
    residual: Option<&Feat>,
) -> Feat {
    let (h, w) = (inputs[0].h, inputs[0].w);
    let cin: usize = inputs.iter().map(|f| f.c).sum();
    let k = cin * 9;
    assert_eq!(
        weight.k,
        k,
        "conv weights for {} inputs, got {cin}",
        weight.k / 9
    );
    assert_eq!(weight.cout, spec.cout);
    assert_eq!(bias.len(), spec.cout);
    let (oh, ow) = (spec.out_len(h), spec.out_len(w));
    let n = oh * ow;
    let mut out = vec![0f32; spec.cout * n];
    if let Some(r) = residual {
        assert_eq!((r.c, r.h, r.w), (spec.cout, oh, ow));
    }
    let blocks = spec.cout.div_ceil(MR);
    let dst = SyncPtr(out.as_mut_ptr());
    // The epilogue: bias, ReLU, residual, written to positions p0..p0+nt of every channel.
    let finish = |c: &[[f32; NR]; MR], cb: usize, p0: usize, nt: usize| {
        for (r, cr) in c.iter().enumerate() {
            let co = cb * MR + r;
            if co >= spec.cout {
                break;
            }
            // SAFETY: `out` holds cout * n floats; only the task owning positions
            // p0..p0+nt writes them.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.get().add(co * n + p0), nt) };
            let b = bias[co];
            let acc = &cr[..nt];
            match residual {
                Some(res) => {
                    let rr = &res.data[co * n + p0..co * n + p0 + nt];
                    for ((o, &v), &x) in row.iter_mut().zip(acc).zip(rr) {
                        let y = v + b;
                        *o = if spec.relu { y.max(0.0) } else { y } + x;
                    }
                }
                None => {
                    for (o, &v) in row.iter_mut().zip(acc) {
                        let y = v + b;
                        *o = if spec.relu { y.max(0.0) } else { y };
                    }
                }
            }
        }
    };
    // Direct mode reads the input rows in place (no im2col copy), one output row segment of
    // up to 48 positions per panel; it pays off when rows are long (few partial panels).
    let direct = has_avx512() && spec.stride == 1 && ow >= 96;
    if direct {
        let per_row = ow.div_ceil(NR);
        let panels = oh * per_row;
        (0..panels).into_par_iter().for_each_init(
            || (Vec::with_capacity(k), [[0f32; NR]; MR]),
            |(rows, c), panel| {
                let (oy, j) = (panel / per_row, panel % per_row);
                let ox0 = j * NR;
                let ox1 = (ox0 + NR).min(ow);
                direct_rows(inputs, spec, oy, ox0, ox1, rows);
                for cb in 0..blocks {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512F is present (`direct` requires it); every enabled
                    // lane of every row lies inside its input plane (direct_rows' masks).
                    unsafe {
                        tile_direct_avx512(weight.block(cb), rows, c, cb == 0)
                    };
                    finish(c, cb, oy * ow + ox0, ox1 - ox0);
                }
            },
        );
    } else {
        let panels = n.div_ceil(NR);
        (0..panels).into_par_iter().for_each_init(
            || (vec![0f32; k * NR], [[0f32; NR]; MR]),
            |(col, c), panel| {
                let p0 = panel * NR;
                let p1 = (p0 + NR).min(n);
                im2col(inputs, spec, ow, p0, p1, NR, col);
                for cb in 0..blocks {
                    tile(k, weight.block(cb), col, c);
                    finish(c, cb, p0, p1 - p0);
                }
            },
        );
    }
    Feat::new(spec.cout, oh, ow, out)
}

/// Weights in the Winograd F(2×2, 3×3) domain: `U = G·g·Gᵀ` (4×4) for every output and
/// input channel, packed per transform position ξ (16) in blocks of [`MR`] output channels,
/// each `[cin][MR]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WinoWeights {
    pub cout: usize,
    pub cin: usize,
    data: Vec<f32>,
}

/// `G·v` for a 3-vector: the F(2, 3) weight transform along one axis.
fn g3(v: [f32; 3]) -> [f32; 4] {
    [
        v[0],
        0.5 * (v[0] + v[1] + v[2]),
        0.5 * (v[0] - v[1] + v[2]),
        v[2],
    ]
}

/// Inverse of [`g3`] (exact: rows 0 and 3 of G are unit vectors).
fn g3_inv(u: [f32; 4]) -> [f32; 3] {
    [u[0], 2.0 * u[1] - u[0] - u[3], u[3]]
}

impl WinoWeights {
    /// From row-major `[cout, cin, 3, 3]` weights.
    #[allow(clippy::needless_range_loop)] // indices name matrix positions
    pub fn from_3x3(w: &[f32], cout: usize, cin: usize) -> Self {
        let blocks = cout.div_ceil(MR);
        let mut data = vec![0f32; 16 * blocks * cin * MR];
        for co in 0..cout {
            let (cb, r) = (co / MR, co % MR);
            for ci in 0..cin {
                let g = &w[(co * cin + ci) * 9..][..9];
                // Rows: t = G·g (4×3); then columns: U = t·Gᵀ (4×4).
                let cols: Vec<[f32; 4]> = (0..3).map(|x| g3([g[x], g[3 + x], g[6 + x]])).collect();
                for i in 0..4 {
                    let u = g3([cols[0][i], cols[1][i], cols[2][i]]);
                    for (j, &v) in u.iter().enumerate() {
                        let xi = i * 4 + j;
                        data[((xi * blocks + cb) * cin + ci) * MR + r] = v;
                    }
                }
            }
        }
        Self { cout, cin, data }
    }

    /// Back to row-major `[cout, cin, 3, 3]`.
    pub fn to_3x3(&self) -> Vec<f32> {
        let blocks = self.cout.div_ceil(MR);
        let mut w = vec![0f32; self.cout * self.cin * 9];
        for co in 0..self.cout {
            let (cb, r) = (co / MR, co % MR);
            for ci in 0..self.cin {
                let u = |xi: usize| self.data[((xi * blocks + cb) * self.cin + ci) * MR + r];
                // Undo the column transform per row i, then the row transform per column.
                let t: Vec<[f32; 3]> = (0..4)
                    .map(|i| g3_inv([u(i * 4), u(i * 4 + 1), u(i * 4 + 2), u(i * 4 + 3)]))
                    .collect();
                for x in 0..3 {
                    let g = g3_inv([t[0][x], t[1][x], t[2][x], t[3][x]]);
                    for (y, &v) in g.iter().enumerate() {
                        w[(co * self.cin + ci) * 9 + y * 3 + x] = v;
                    }
                }
            }
        }
        w
    }

    fn block(&self, xi: usize, cb: usize) -> &[f32] {
        let blocks = self.cout.div_ceil(MR);
        let n = self.cin * MR;
        &self.data[(xi * blocks + cb) * n..][..n]
    }
}

/// Writes `a[k]`, `b[k]` to `out[2k]`, `out[2k + 1]` (as far as `out` reaches) with bias,
/// optional ReLU and optional residual; the branches are hoisted so each loop vectorises.
#[inline(always)]
fn store_pairs(out: &mut [f32], a: &[f32], b: &[f32], bias: f32, relu: bool, res: Option<&[f32]>) {
    let full = out.len() / 2;
    let f = |v: f32| if relu { (v + bias).max(0.0) } else { v + bias };
    match res {
        None => {
            for k in 0..full {
                out[2 * k] = f(a[k]);
                out[2 * k + 1] = f(b[k]);
            }
        }
        Some(r) => {
            for k in 0..full {
                out[2 * k] = f(a[k]) + r[2 * k];
                out[2 * k + 1] = f(b[k]) + r[2 * k + 1];
            }
        }
    }
    if out.len() % 2 == 1 {
        let k = full;
        out[2 * k] = f(a[k]) + res.map_or(0.0, |r| r[2 * k]);
    }
}

/// A 3×3 convolution with stride 1, padding 1, dilation 1 by Winograd F(2×2, 3×3): 2.25×
/// fewer multiplications than the direct form. Same contract as [`conv3x3`].
///
/// Tiles of 2×2 outputs are taken [`NR`] at a time; per panel the inputs' 4×4 patches are
/// transformed once into 16 `cin × NR` matrices, multiplied by the 16 weight matrices with
/// the register-tiled kernel, and transformed back with the fused epilogue.
#[allow(clippy::needless_range_loop)] // lane loops over parallel arrays vectorise as written
pub(crate) fn conv3x3_winograd(
    inputs: &[&Feat],
    weight: &WinoWeights,
    bias: &[f32],
    relu: bool,
    residual: Option<&Feat>,
) -> Feat {
    let (h, w) = (inputs[0].h, inputs[0].w);
    let cin: usize = inputs.iter().map(|f| f.c).sum();
    assert_eq!(
        weight.cin, cin,
        "conv weights for {} inputs, got {cin}",
        weight.cin
    );
    assert_eq!(bias.len(), weight.cout);
    let cout = weight.cout;
    if let Some(r) = residual {
        assert_eq!((r.c, r.h, r.w), (cout, h, w));
    }
    let n = h * w;
    let mut out = vec![0f32; cout * n];
    let dst = SyncPtr(out.as_mut_ptr());
    let (tx_n, ty_n) = (w.div_ceil(2), h.div_ceil(2));
    let tiles = tx_n * ty_n;
    let blocks = cout.div_ceil(MR);
    // Panels of NR consecutive tiles (row-major); a panel is cut into segments of tiles of
    // one tile row, whose 4×4 patches overlap by two columns: every patch row of a segment
    // is one contiguous input row span, split into even and odd columns, so the 16 patch
    // values of all the segment's tiles are plain (vectorisable) slices.
    (0..tiles.div_ceil(NR)).into_par_iter().for_each_init(
        || {
            (
                vec![0f32; 16 * cin * NR],
                vec![[[0f32; NR]; MR]; 16],
                vec![0f32; 2 * NR + 2],
            )
        },
        |(vbuf, mbuf, edge), panel| {
            let t0 = panel * NR;
            let nt = (tiles - t0).min(NR);
            // (first lane, length, tile row, first tile column)
            let mut segs: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(4);
            let mut j = 0;
            while j < nt {
                let t = t0 + j;
                let (ty, tx) = (t / tx_n, t % tx_n);
                let len = (tx_n - tx).min(nt - j);
                segs.push((j, len, ty, tx));
                j += len;
            }
            let mut ev = [0f32; NR + 1];
            let mut od = [0f32; NR + 1];
            // Column-transformed patch rows: cr[r][j][k] for patch row r, column index j.
            let mut cr = [[[0f32; NR]; 4]; 4];
            let mut ci = 0;
            for f in inputs {
                for c in 0..f.c {
                    let src = &f.data[c * n..(c + 1) * n];
                    for &(js, len, ty, tx) in &segs {
                        let x0 = 2 * tx as isize - 1;
                        let span = 2 * len + 2;
                        for (r, crr) in cr.iter_mut().enumerate() {
                            let y = 2 * ty as isize - 1 + r as isize;
                            if y < 0 || y >= h as isize {
                                for v in crr.iter_mut() {
                                    v[..len].fill(0.0);
                                }
                                continue;
                            }
                            let row = &src[y as usize * w..(y as usize + 1) * w];
                            let s: &[f32] = if x0 >= 0 && x0 as usize + span <= w {
                                &row[x0 as usize..x0 as usize + span]
                            } else {
                                for (k, e) in edge[..span].iter_mut().enumerate() {
                                    let x = x0 + k as isize;
                                    *e = if x >= 0 && x < w as isize {
                                        row[x as usize]
                                    } else {
                                        0.0
                                    };
                                }
                                &edge[..span]
                            };
                            for k in 0..=len {
                                ev[k] = s[2 * k];
                                od[k] = s[2 * k + 1];
                            }
                            // Patch columns q0..q3 = ev[k], od[k], ev[k+1], od[k+1]; d·B:
                            let [c0, c1, c2, c3] = crr;
                            for k in 0..len {
                                let (q0, q1, q2, q3) = (ev[k], od[k], ev[k + 1], od[k + 1]);
                                c0[k] = q0 - q2;
                                c1[k] = q1 + q2;
                                c2[k] = q2 - q1;
                                c3[k] = q1 - q3;
                            }
                        }
                        // Bᵀ·(d·B) across the patch rows, into the 16 product inputs.
                        for j in 0..4 {
                            let at = |xi: usize| (xi * cin + ci) * NR + js;
                            let (r0, r1, r2, r3) = (&cr[0][j], &cr[1][j], &cr[2][j], &cr[3][j]);
                            let v = &mut vbuf[at(j)..at(j) + len];
                            for k in 0..len {
                                v[k] = r0[k] - r2[k];
                            }
                            let v = &mut vbuf[at(4 + j)..at(4 + j) + len];
                            for k in 0..len {
                                v[k] = r1[k] + r2[k];
                            }
                            let v = &mut vbuf[at(8 + j)..at(8 + j) + len];
                            for k in 0..len {
                                v[k] = r2[k] - r1[k];
                            }
                            let v = &mut vbuf[at(12 + j)..at(12 + j) + len];
                            for k in 0..len {
                                v[k] = r1[k] - r3[k];
                            }
                        }
                    }
                    ci += 1;
                }
            }
            for cb in 0..blocks {
                for (xi, m) in mbuf.iter_mut().enumerate() {
                    tile(
                        cin,
                        weight.block(xi, cb),
                        &vbuf[xi * cin * NR..(xi + 1) * cin * NR],
                        m,
                    );
                }
                for r in 0..MR {
                    let co = cb * MR + r;
                    if co >= cout {
                        break;
                    }
                    // Output transform lane-wise: s = Aᵀ·m (2×4), then y = s·A (2×2).
                    let m = |xi: usize| &mbuf[xi][r];
                    let mut y = [[0f32; NR]; 4];
                    for j in 0..NR {
                        let mut s = [0f32; 8];
                        for q in 0..4 {
                            let (m0, m1, m2, m3) =
                                (m(q)[j], m(4 + q)[j], m(8 + q)[j], m(12 + q)[j]);
                            s[q] = m0 + m1 + m2;
                            s[4 + q] = m1 - m2 - m3;
                        }
                        y[0][j] = s[0] + s[1] + s[2];
                        y[1][j] = s[1] - s[2] - s[3];
                        y[2][j] = s[4] + s[5] + s[6];
                        y[3][j] = s[5] - s[6] - s[7];
                    }
                    let b = bias[co];
                    for &(js, len, ty, tx) in &segs {
                        for dy in 0..2 {
                            let oy = 2 * ty + dy;
                            if oy >= h {
                                continue;
                            }
                            let x0 = 2 * tx;
                            let width = (2 * len).min(w - x0);
                            let off = co * n + oy * w + x0;
                            // SAFETY: `out` holds cout * n floats; this span is the outputs
                            // of tiles t0+js .. t0+js+len in one output row, written only
                            // by this panel's task.
                            let orow = unsafe {
                                std::slice::from_raw_parts_mut(dst.get().add(off), width)
                            };
                            let (ya, yb) = (&y[dy * 2][js..js + len], &y[dy * 2 + 1][js..js + len]);
                            let res = residual.map(|rf| &rf.data[off..off + width]);
                            store_pairs(orow, ya, yb, b, relu, res);
                        }
                    }
                }
            }
        },
    );
    Feat::new(cout, h, w, out)
}

/// Fills `col` (`k` rows of `stride` floats) with the 3×3 patches of output positions
/// p0..p1; columns past `p1 - p0` are zeroed.
fn im2col(
    inputs: &[&Feat],
    spec: ConvSpec,
    ow: usize,
    p0: usize,
    p1: usize,
    stride: usize,
    col: &mut [f32],
) {
    let nt = p1 - p0;
    let (h, w) = (inputs[0].h as isize, inputs[0].w as isize);
    let (s, pad, d) = (spec.stride as isize, spec.pad as isize, spec.dil as isize);
    let mut row = 0;
    for f in inputs {
        for ci in 0..f.c {
            let src = &f.data[ci * f.plane()..(ci + 1) * f.plane()];
            for ky in 0..3isize {
                for kx in 0..3isize {
                    let full = &mut col[row * stride..(row + 1) * stride];
                    full[nt..].fill(0.0);
                    let dst = &mut full[..nt];
                    row += 1;
                    // Walk the tile one output row segment at a time.
                    let mut p = p0;
                    while p < p1 {
                        let oy = p / ow;
                        let ox0 = p % ow;
                        let ox1 = ow.min(ox0 + (p1 - p));
                        let seg = &mut dst[p - p0..p - p0 + (ox1 - ox0)];
                        let iy = oy as isize * s - pad + ky * d;
                        if iy < 0 || iy >= h {
                            seg.fill(0.0);
                        } else {
                            let srow = &src[(iy * w) as usize..((iy + 1) * w) as usize];
                            let off = kx * d - pad;
                            if s == 1 {
                                // ix = ox + off; valid where 0 <= ix < w.
                                let lo = (-off).clamp(ox0 as isize, ox1 as isize) as usize;
                                let hi = (w - off).clamp(ox0 as isize, ox1 as isize) as usize;
                                let lo = lo.min(hi);
                                seg[..lo - ox0].fill(0.0);
                                if hi > lo {
                                    let a = (lo as isize + off) as usize;
                                    seg[lo - ox0..hi - ox0]
                                        .copy_from_slice(&srow[a..a + (hi - lo)]);
                                }
                                seg[hi - ox0..].fill(0.0);
                            } else {
                                for (j, v) in seg.iter_mut().enumerate() {
                                    let ix = (ox0 + j) as isize * s + off;
                                    *v = if ix >= 0 && ix < w {
                                        srow[ix as usize]
                                    } else {
                                        0.0
                                    };
                                }
                            }
                        }
                        p += ox1 - ox0;
                    }
                }
            }
        }
    }
}

/// 2×2 max pooling with stride 2 and `ceil_mode` (a trailing odd row or column pools alone).
pub(crate) fn maxpool2_ceil(x: &Feat) -> Feat {
    let (oh, ow) = (x.h.div_ceil(2), x.w.div_ceil(2));
    let mut out = vec![0f32; x.c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.data.par_chunks(x.plane()))
        .for_each(|(o, src)| {
            for oy in 0..oh {
                let y0 = 2 * oy;
                let y1 = (y0 + 1).min(x.h - 1);
                let (r0, r1) = (&src[y0 * x.w..][..x.w], &src[y1 * x.w..][..x.w]);
                for ox in 0..ow {
                    let x0 = 2 * ox;
                    let x1 = (x0 + 1).min(x.w - 1);
                    o[oy * ow + ox] = r0[x0].max(r0[x1]).max(r1[x0]).max(r1[x1]);
                }
            }
        });
    Feat::new(x.c, oh, ow, out)
}

/// Source index pair and weight of each output position of a half-pixel bilinear resize.
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, (s - i0 as f64).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

/// Bilinear resize to `oh`×`ow`, half-pixel centres (`align_corners=False`), no antialias.
pub(crate) fn resize_bilinear(x: &Feat, oh: usize, ow: usize) -> Feat {
    if (oh, ow) == (x.h, x.w) {
        return x.clone();
    }
    if x.h == 0 || x.w == 0 {
        // Nothing to sample from: zeros.
        return Feat::new(x.c, oh, ow, vec![0.0; x.c * oh * ow]);
    }
    let ty = taps(x.h, oh);
    let tx = taps(x.w, ow);
    let mut out = vec![0f32; x.c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.data.par_chunks(x.plane()))
        .for_each(|(o, src)| {
            // Horizontal pass of the two source rows is recomputed per output row; the rows
            // are short and this keeps the kernel allocation-free.
            for (oy, &(y0, y1, wy)) in ty.iter().enumerate() {
                let (r0, r1) = (&src[y0 * x.w..][..x.w], &src[y1 * x.w..][..x.w]);
                let orow = &mut o[oy * ow..(oy + 1) * ow];
                for (v, &(x0, x1, wx)) in orow.iter_mut().zip(&tx) {
                    let top = r0[x0] + (r0[x1] - r0[x0]) * wx;
                    let bot = r1[x0] + (r1[x1] - r1[x0]) * wx;
                    *v = top + (bot - top) * wy;
                }
            }
        });
    Feat::new(x.c, oh, ow, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Direct (six nested loops) convolution as the reference.
    fn naive(x: &Feat, wt: &[f32], b: &[f32], spec: ConvSpec) -> Feat {
        let (oh, ow) = (spec.out_len(x.h), spec.out_len(x.w));
        let mut out = vec![0f32; spec.cout * oh * ow];
        for co in 0..spec.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[co] as f64;
                    for ci in 0..x.c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy =
                                    (oy * spec.stride + ky * spec.dil) as isize - spec.pad as isize;
                                let ix =
                                    (ox * spec.stride + kx * spec.dil) as isize - spec.pad as isize;
                                if iy >= 0 && ix >= 0 && iy < x.h as isize && ix < x.w as isize {
                                    acc += wt[((co * x.c + ci) * 3 + ky) * 3 + kx] as f64
                                        * x.data[(ci * x.h + iy as usize) * x.w + ix as usize]
                                            as f64;
                                }
                            }
                        }
                    }
                    let v = acc as f32;
                    out[(co * oh + oy) * ow + ox] = if spec.relu { v.max(0.0) } else { v };
                }
            }
        }
        Feat::new(spec.cout, oh, ow, out)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn conv_matches_direct_convolution_for_every_geometry() {
        // Odd sizes, dilations wider than the map, stride 2, tiles that split rows.
        for &(c, h, w, cout, stride, dil, relu) in &[
            (3usize, 9usize, 7usize, 5usize, 1usize, 1usize, true),
            (4, 5, 6, 3, 1, 2, false),
            (2, 4, 4, 2, 1, 8, true),
            (3, 11, 10, 4, 2, 1, false),
            (70, 13, 17, 9, 1, 1, true),
            (5, 20, 31, 17, 1, 1, false),
            (3, 7, 130, 9, 1, 1, true),
            (2, 5, 100, 8, 1, 2, false),
            (2, 9, 97, 3, 1, 8, true),
            (3, 2, 1, 1, 1, 1, true),
        ] {
            let spec = ConvSpec {
                cout,
                stride,
                pad: dil,
                dil,
                relu,
            };
            let x = Feat::new(c, h, w, lcg(c * h * w, 1));
            let wt = lcg(cout * c * 9, 2);
            let b = lcg(cout, 3);
            let want = naive(&x, &wt, &b, spec);
            let got = conv3x3(
                &[&x],
                &PackedWeights::pack(&wt, cout, c * 9),
                &b,
                spec,
                None,
            );
            assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w));
            assert!(
                max_diff(&got.data, &want.data) < 1e-4,
                "{c} {h} {w} {stride} {dil}"
            );
        }
    }

    #[test]
    fn conv_reads_concatenated_inputs_in_place_and_adds_the_residual() {
        let (h, w) = (6, 5);
        let a = Feat::new(2, h, w, lcg(2 * h * w, 4));
        let b = Feat::new(3, h, w, lcg(3 * h * w, 5));
        let mut cat = a.data.clone();
        cat.extend_from_slice(&b.data);
        let cat = Feat::new(5, h, w, cat);
        let spec = ConvSpec {
            cout: 4,
            stride: 1,
            pad: 1,
            dil: 1,
            relu: true,
        };
        let wt = lcg(4 * 5 * 9, 6);
        let bias = lcg(4, 7);
        let res = Feat::new(4, h, w, lcg(4 * h * w, 8));
        let mut want = naive(&cat, &wt, &bias, spec);
        want.data
            .iter_mut()
            .zip(&res.data)
            .for_each(|(v, r)| *v += r);
        let got = conv3x3(
            &[&a, &b],
            &PackedWeights::pack(&wt, 4, 45),
            &bias,
            spec,
            Some(&res),
        );
        assert!(max_diff(&got.data, &want.data) < 1e-5);
    }

    #[test]
    fn packing_round_trips_and_tile_kernels_agree() {
        let (cout, k) = (11, 23);
        let w = lcg(cout * k, 9);
        let p = PackedWeights::pack(&w, cout, k);
        assert_eq!(p.unpack(), w);
        let b = lcg(k * NR, 10);
        let mut want = [[0f32; NR]; MR];
        tile_portable(k, p.block(1), &b, &mut want);
        let mut got = [[1f32; NR]; MR];
        tile(k, p.block(1), &b, &mut got);
        for (g, w) in got.iter().zip(&want) {
            assert!(max_diff(g, w) < 1e-5);
        }
        // Rows past cout in the last block are zero weights, so zero output.
        assert!(got[3..].iter().all(|r| r.iter().all(|&v| v == 0.0)));
    }

    #[test]
    fn winograd_matches_direct_convolution() {
        for &(c, h, w, cout, relu) in &[
            (3usize, 9usize, 7usize, 5usize, true),
            (4, 1, 1, 3, false),
            (2, 2, 3, 9, true),
            (17, 33, 31, 10, false),
            (70, 13, 17, 16, true),
        ] {
            let spec = ConvSpec {
                cout,
                stride: 1,
                pad: 1,
                dil: 1,
                relu,
            };
            let x = Feat::new(c, h, w, lcg(c * h * w, 11));
            let wt = lcg(cout * c * 9, 12);
            let b = lcg(cout, 13);
            let want = naive(&x, &wt, &b, spec);
            let ww = WinoWeights::from_3x3(&wt, cout, c);
            assert!(max_diff(&ww.to_3x3(), &wt) < 1e-6);
            let got = conv3x3_winograd(&[&x], &ww, &b, relu, None);
            assert!(max_diff(&got.data, &want.data) < 1e-4, "{c} {h} {w}");
        }
        // Concatenated inputs and the residual.
        let (h, w) = (6, 5);
        let a = Feat::new(2, h, w, lcg(2 * h * w, 4));
        let b = Feat::new(3, h, w, lcg(3 * h * w, 5));
        let mut cat = a.data.clone();
        cat.extend_from_slice(&b.data);
        let cat = Feat::new(5, h, w, cat);
        let spec = ConvSpec {
            cout: 4,
            stride: 1,
            pad: 1,
            dil: 1,
            relu: true,
        };
        let wt = lcg(4 * 5 * 9, 6);
        let bias = lcg(4, 7);
        let res = Feat::new(4, h, w, lcg(4 * h * w, 8));
        let mut want = naive(&cat, &wt, &bias, spec);
        want.data
            .iter_mut()
            .zip(&res.data)
            .for_each(|(v, r)| *v += r);
        let got = conv3x3_winograd(
            &[&a, &b],
            &WinoWeights::from_3x3(&wt, 4, 5),
            &bias,
            true,
            Some(&res),
        );
        assert!(max_diff(&got.data, &want.data) < 1e-5);
    }

    #[test]
    fn maxpool_ceil_mode_keeps_the_odd_edge() {
        let x = Feat::new(1, 3, 3, (1..=9).map(|v| v as f32).collect());
        let y = maxpool2_ceil(&x);
        assert_eq!((y.h, y.w), (2, 2));
        assert_eq!(y.data, vec![5.0, 6.0, 8.0, 9.0]);
    }

    #[test]
    fn bilinear_uses_half_pixel_centres() {
        // PyTorch: F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False)[0, 0, 0] == [0, 0.25, 0.75, 1].
        let x = Feat::new(1, 2, 2, vec![0.0, 1.0, 2.0, 3.0]);
        let y = resize_bilinear(&x, 4, 4);
        assert_eq!(&y.data[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&y.data[12..], &[2.0, 2.25, 2.75, 3.0]);
        // Downscale 4 -> 2 averages the two middle samples (no antialias).
        let x = Feat::new(1, 1, 4, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(resize_bilinear(&x, 1, 2).data, vec![0.5, 2.5]);
    }
}

#[cfg(test)]
mod speed_probe {
    use super::*;

    fn cpu_ns() -> f64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Kernel throughput on cache-resident data (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn tile_kernel_gflops() {
        for k in [576usize, 2304] {
            let a = vec![0.5f32; k * MR];
            let b = vec![0.25f32; k * NR];
            let mut c = [[0f32; NR]; MR];
            let reps = 20000 * 576 / k;
            let t = cpu_ns();
            for _ in 0..reps {
                tile(k, &a, &b, &mut c);
            }
            let s = (cpu_ns() - t) / 1e9;
            eprintln!(
                "k {k}: {:.1} GFLOP/s",
                (2 * MR * NR * k * reps) as f64 / s / 1e9
            );
        }
    }
}
