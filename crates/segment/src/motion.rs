//! Global motion between two small grayscale frames: the translation and zoom that best
//! map one onto the other, and how much of the change they leave unexplained.
//!
//! The shot detector asks this of its cut candidates: a whip pan, a crash zoom or camera
//! shake moves the whole picture, so the frame after the change is the frame before it
//! moved (and blurred); after a cut it is another picture that no global motion explains.
//!
//! # Method
//! The second frame `b` is predicted from the first, `a`, by a similarity transform about
//! the frame centre: `b(p) ≈ a(c + (p − c − t) / s)` (scale `s`, translation `t`; a zoom
//! about any other point is such a scale plus a translation). The match is measured by
//! the **normalised residual** over the part of `b` that the moved `a` covers: the mean
//! absolute difference of the two after each has its mean taken out and is divided by
//! its mean absolute deviation. Brightness and contrast changes (a fade, an exposure
//! change) do not count; two unrelated pictures give about 1 or more, a good match well
//! under it. Flat pictures (black, one
//! colour) have nothing to match and give large residuals against anything textured.
//!
//! 1. **Coarse search** at quarter size (16 × 9 for 64 × 36 frames): every scale of a geometric grid from `1 / 1.6` to
//!    `1.6` (step ×1.08; [`estimate_within`] sets another limit) and every whole-pixel translation up to half the frame in each
//!    direction, keeping at least [`MIN_OVERLAP`] of the frame covered.
//! 2. **Refinement** of the best coarse transforms at half size, then of the best of them
//!    at full size: pixel and half-pixel steps and scale steps of ×1.04^½, bilinear
//!    sampling.
//! 3. **Blur tolerance.** A fast camera move blurs the frames along the motion, and one
//!    frame can be blurred while the next is sharp (the move stopped). The residual at the
//!    transform found is measured again with both frames smoothed by the same small
//!    kernel (a box across, along the rows, along the columns); the smallest counts. Smoothing both frames
//!    alike does not make unrelated pictures match (the residual is relative to the
//!    smoothed frames' own contrast).
//!
//! Cost: well under a million pixel operations per pair at 64 × 36 (about a
//! millisecond): meant for the few candidate frame pairs of a video, not every frame.

use crate::distance::{lane_sum, lane_sums};

/// Least share of the frame the moved first frame must cover for a transform to count.
pub const MIN_OVERLAP: f32 = 0.35;

/// Largest zoom factor between two consecutive frames that [`estimate`] searches (and its
/// inverse): a crash zoom rarely changes the picture's scale by more than a third from
/// one frame to the next.
pub const MAX_SCALE: f32 = 1.6;

/// Ratio between neighbouring scales of the coarse search.
const SCALE_STEP: f32 = 1.08;

/// Added to the contrast that normalises the residual (luma on a 0–1 scale): a flat
/// frame is not "matched" by dividing by nothing.
const CONTRAST_FLOOR: f32 = 2.0 / 255.0;

/// Best coarse transforms refined at full size.
const REFINE_TOP: usize = 3;

/// Small grayscale frames, all the same size, 8-bit, row-major: what motion estimation
/// reads. The analysis decode of the pipelines keeps one per frame (64 × 36 by default,
/// 2,304 bytes a frame).
///
/// ```
/// use reelsmith_segment::motion::LumaFrames;
/// let mut frames = LumaFrames::new(4, 2).unwrap();
/// frames.push(&[0, 10, 20, 30, 40, 50, 60, 70]).unwrap();
/// assert_eq!(frames.len(), 1);
/// assert_eq!(frames.frame(0)[3], 30);
/// assert!(frames.push(&[1, 2, 3]).is_err()); // wrong size
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LumaFrames {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// What is wrong with frames given to [`LumaFrames`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LumaError {
    /// A side is 0 or the frame is too large.
    #[error("luma frames of {width}x{height} pixels: both sides must be 1 to 4096")]
    Size {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
    },
    /// A frame's length is not `width · height`.
    #[error("a luma frame of {got} bytes where {width}x{height} needs {want}: give frames of the declared size")]
    Length {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        want: usize,
        /// Declared width.
        width: usize,
        /// Declared height.
        height: usize,
    },
}

impl LumaFrames {
    /// No frames yet, each to be `width × height` (1 to 4096 each).
    pub fn new(width: usize, height: usize) -> Result<Self, LumaError> {
        if !(1..=4096).contains(&width) || !(1..=4096).contains(&height) {
            return Err(LumaError::Size { width, height });
        }
        Ok(Self {
            width,
            height,
            data: Vec::new(),
        })
    }

    /// Appends one frame (`width · height` bytes, row-major).
    pub fn push(&mut self, frame: &[u8]) -> Result<(), LumaError> {
        let want = self.width * self.height;
        if frame.len() != want {
            return Err(LumaError::Length {
                got: frame.len(),
                want,
                width: self.width,
                height: self.height,
            });
        }
        self.data.extend_from_slice(frame);
        Ok(())
    }

    /// Frame width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.data
            .len()
            .checked_div(self.width * self.height)
            .unwrap_or(0)
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Frame `i` (panics when `i >= len()`, like slice indexing).
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.width * self.height;
        &self.data[i * n..(i + 1) * n]
    }

    /// Frame `i` as a [`Plane`] (luma on a 0–1 scale), `None` past the end.
    pub fn plane(&self, i: usize) -> Option<Plane> {
        (i < self.len()).then(|| Plane {
            w: self.width,
            h: self.height,
            v: self
                .frame(i)
                .iter()
                .map(|&x| f32::from(x) / 255.0)
                .collect(),
        })
    }
}

/// One grayscale picture in `f32` (0–1), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    w: usize,
    h: usize,
    v: Vec<f32>,
}

impl Plane {
    /// A `w × h` plane from its values (row-major); `None` when the length is not
    /// `w · h` or a side is 0.
    pub fn new(w: usize, h: usize, v: Vec<f32>) -> Option<Self> {
        (w > 0 && h > 0 && v.len() == w * h).then_some(Self { w, h, v })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.w
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.h
    }

    /// The value at `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.v[y * self.w + x]
    }

    /// Mean absolute deviation of the values from their mean: the picture's contrast
    /// (0 for a flat frame).
    pub fn contrast(&self) -> f32 {
        let n = self.v.len() as f32;
        let m = self.v.iter().sum::<f32>() / n;
        self.v.iter().map(|x| (x - m).abs()).sum::<f32>() / n
    }

    /// Half the size, 2 × 2 averages (a side of 1 stays 1).
    fn half(&self) -> Plane {
        let (w, h) = ((self.w / 2).max(1), (self.h / 2).max(1));
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (x0, y0) = ((2 * x).min(self.w - 1), (2 * y).min(self.h - 1));
                let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
                v.push(
                    0.25 * (self.at(x0, y0) + self.at(x1, y0) + self.at(x0, y1) + self.at(x1, y1)),
                );
            }
        }
        Plane { w, h, v }
    }

    /// Box-smoothed with radius `rx` along rows and `ry` along columns (edges clamped).
    fn smoothed(&self, rx: usize, ry: usize) -> Plane {
        let mut out = self.clone();
        if rx > 0 {
            let mut tmp = out.v.clone();
            for y in 0..self.h {
                for x in 0..self.w {
                    let lo = x.saturating_sub(rx);
                    let hi = (x + rx).min(self.w - 1);
                    let row = &out.v[y * self.w..(y + 1) * self.w];
                    tmp[y * self.w + x] = row[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32;
                }
            }
            out.v = tmp;
        }
        if ry > 0 {
            let mut tmp = out.v.clone();
            for y in 0..self.h {
                let lo = y.saturating_sub(ry);
                let hi = (y + ry).min(self.h - 1);
                for x in 0..self.w {
                    let s: f32 = (lo..=hi).map(|yy| out.v[yy * self.w + x]).sum();
                    tmp[y * self.w + x] = s / (hi - lo + 1) as f32;
                }
            }
            out.v = tmp;
        }
        out
    }

    /// Row `y`.
    fn row(&self, y: usize) -> &[f32] {
        &self.v[y * self.w..(y + 1) * self.w]
    }

    /// The bilinear value between the pixels of taps `x` (a column) and `y` (a row).
    fn bilinear(&self, x: Tap, y: Tap) -> f32 {
        let top = self.at(x.i0, y.i0) * (1.0 - x.f) + self.at(x.i1, y.i0) * x.f;
        let bottom = self.at(x.i0, y.i1) * (1.0 - x.f) + self.at(x.i1, y.i1) * x.f;
        top * (1.0 - y.f) + bottom * y.f
    }
}

/// Where a coordinate falls along one side of a plane (`len` pixels): the two pixels it
/// lies between and its fraction past the first. Bilinear sampling is separable, so a
/// whole row of samples shares its row taps and a whole column its column taps.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

impl Tap {
    /// `None` outside the side (beyond a hair's breadth), or for a non-finite coordinate.
    fn new(c: f32, len: usize) -> Option<Tap> {
        let m = (len - 1) as f32;
        if !(c >= -1e-4 && c <= m + 1e-4) {
            return None;
        }
        let c = c.clamp(0.0, m);
        let i0 = c.floor() as usize;
        Some(Tap {
            i0,
            i1: (i0 + 1).min(len - 1),
            f: c - i0 as f32,
        })
    }
}

/// The taps of `len` output coordinates `at(0), at(1), …` on a side of `side` pixels, and
/// the range of outputs that fall inside it (`at` increasing: the inside is one run).
fn taps(
    len: usize,
    side: usize,
    at: impl Fn(usize) -> f32,
) -> (Vec<Option<Tap>>, std::ops::Range<usize>) {
    let t: Vec<Option<Tap>> = (0..len).map(|k| Tap::new(at(k), side)).collect();
    let lo = t.iter().position(Option::is_some).unwrap_or(len);
    let hi = t.iter().rposition(Option::is_some).map_or(lo, |k| k + 1);
    (t, lo..hi)
}

/// The global motion found between two frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlobalMotion {
    /// Zoom factor from the first frame to the second (above 1: zooming in).
    pub scale: f32,
    /// Horizontal translation in pixels of the frames given (positive: content moves
    /// right).
    pub dx: f32,
    /// Vertical translation in pixels (positive: content moves down).
    pub dy: f32,
    /// Normalised residual of the best match (see the [module docs](self)): about 1 for
    /// unrelated pictures, near 0 for a picture and its moved copy.
    pub residual: f32,
    /// Share of the second frame that the moved first frame covers.
    pub overlap: f32,
}

impl GlobalMotion {
    /// How far the motion moves the picture: the largest displacement of a corner of a
    /// `width × height` frame, in pixels (0 for no motion).
    pub fn corner_shift(&self, width: usize, height: usize) -> f32 {
        let (hx, hy) = (width as f32 / 2.0, height as f32 / 2.0);
        [(-hx, -hy), (hx, -hy), (-hx, hy), (hx, hy)]
            .iter()
            .map(|&(x, y)| {
                let (u, v) = (
                    (self.scale - 1.0) * x + self.dx,
                    (self.scale - 1.0) * y + self.dy,
                );
                (u * u + v * v).sqrt()
            })
            .fold(0.0, f32::max)
    }
}

/// A transform: scale, then translation, about the frame centre.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Transform {
    s: f32,
    tx: f32,
    ty: f32,
}

/// Pixel pairs of a comparison, predicted (`p`) and actual (`q`), held side by side so
/// their sums run over plain slices (see [`lane_sum`]).
#[derive(Debug, Default)]
struct Pairs {
    p: Vec<f32>,
    q: Vec<f32>,
    /// The column taps of the last [`residual_at`], kept for its next call.
    cols: Vec<Tap>,
}

impl Pairs {
    fn with_capacity(n: usize) -> Self {
        Pairs {
            p: Vec::with_capacity(n),
            q: Vec::with_capacity(n),
            cols: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.p.clear();
        self.q.clear();
    }
}

/// Normalised residual of the pairs (see the [module docs](self)) and the share of the
/// `total` pixels they cover; `None` when under [`MIN_OVERLAP`].
fn normalised_residual(pairs: &Pairs, total: usize) -> Option<(f32, f32)> {
    let (ps, qs) = (&pairs.p[..], &pairs.q[..]);
    let overlap = ps.len() as f32 / total as f32;
    if ps.is_empty() || overlap < MIN_OVERLAP {
        return None;
    }
    let n = ps.len() as f32;
    let (sp, sq) = lane_sums(ps, qs, |p, _| p, |_, q| q);
    let (mp, mq) = (sp / n, sq / n);
    let (dp, dq) = lane_sums(ps, qs, |p, _| (p - mp).abs(), |_, q| (q - mq).abs());
    let (gp, gq) = (
        1.0 / (dp / n + CONTRAST_FLOOR),
        1.0 / (dq / n + CONTRAST_FLOOR),
    );
    let r = lane_sum(ps, qs, |p, q| ((p - mp) * gp - (q - mq) * gq).abs());
    Some((r / n, overlap))
}

/// Residual of `b` predicted from `a` by `t`, bilinear.
fn residual_at(a: &Plane, b: &Plane, t: Transform, buf: &mut Pairs) -> Option<(f32, f32)> {
    let (cx, cy) = ((b.w as f32 - 1.0) / 2.0, (b.h as f32 - 1.0) / 2.0);
    let (acx, acy) = ((a.w as f32 - 1.0) / 2.0, (a.h as f32 - 1.0) / 2.0);
    // `a` sampled at every pixel of `b` that the transform maps inside it, row by row
    // (the transform is separable: a column's taps depend on x alone, a row's on y alone).
    let (xt, xs) = taps(b.w, a.w, |x| acx + (x as f32 - cx - t.tx) / t.s);
    let (yt, ys) = taps(b.h, a.h, |y| acy + (y as f32 - cy - t.ty) / t.s);
    buf.clear();
    // Inside its run every column has its taps: the scale is positive, so the coordinates
    // increase with x (`taps`).
    let mut cols = std::mem::take(&mut buf.cols);
    cols.clear();
    cols.extend(xt[xs.clone()].iter().flatten().copied());
    if cols.len() != xs.len() {
        buf.cols = cols;
        return None;
    }
    for y in ys {
        let Some(ty) = yt[y] else { continue };
        let (r0, r1) = (a.row(ty.i0), a.row(ty.i1));
        // The same sums as `Plane::bilinear`, in the same order.
        buf.p.extend(cols.iter().map(|x| {
            let top = r0[x.i0] * (1.0 - x.f) + r0[x.i1] * x.f;
            let bottom = r1[x.i0] * (1.0 - x.f) + r1[x.i1] * x.f;
            top * (1.0 - ty.f) + bottom * ty.f
        }));
        buf.q.extend_from_slice(&b.row(y)[xs.clone()]);
    }
    buf.cols = cols;
    normalised_residual(buf, b.w * b.h)
}

/// The scales of the coarse search up to `max` (and its inverse), 1 first.
fn scales(max: f32) -> Vec<f32> {
    let k = (max.ln() / SCALE_STEP.ln()).round().max(0.0) as i32;
    let mut s: Vec<f32> = (-k..=k).map(|i| SCALE_STEP.powi(i)).collect();
    s.sort_by(|x, y| (x.ln().abs()).total_cmp(&y.ln().abs()));
    s
}

/// Every whole-pixel translation at every scale on reduced frames: the [`REFINE_TOP`]
/// best transforms (in the reduced frames' pixels), best first.
fn coarse(a: &Plane, b: &Plane, max_scale: f32) -> Vec<(f32, Transform)> {
    let (w, h) = (b.w, b.h);
    let (px, py) = (w / 2, h / 2);
    let (cw, ch) = (w + 2 * px, h + 2 * py);
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let mut canvas: Vec<f32> = vec![0.0; cw * ch];
    let mut best: Vec<(f32, Transform)> = Vec::new();
    let mut pairs = Pairs::with_capacity(w * h);
    for s in scales(max_scale) {
        // canvas(u, v) = a scaled by s about the centre, at b's pixel (u − px, v − py),
        // defined for u in `us` and v in `vs` (a's picture; outside it, nothing).
        let (ut, us) = taps(cw, a.w, |u| cx + (u as f32 - px as f32 - cx) / s);
        let (vt, vs) = taps(ch, a.h, |v| cy + (v as f32 - py as f32 - cy) / s);
        for v in vs.clone() {
            for u in us.clone() {
                if let (Some(tu), Some(tv)) = (ut[u], vt[v]) {
                    canvas[v * cw + u] = a.bilinear(tu, tv);
                }
            }
        }
        for ty in -(py as isize)..=py as isize {
            for tx in -(px as isize)..=px as isize {
                // b(x, y) ≈ canvas at (x − tx + px, y − ty + py): the pixels of b whose
                // canvas point lies in a's picture, row by row.
                let (ox, oy) = (px as isize - tx, py as isize - ty);
                let x0 = (us.start as isize - ox).max(0) as usize;
                let x1 = (us.end as isize - ox).clamp(0, w as isize) as usize;
                let y0 = (vs.start as isize - oy).max(0) as usize;
                let y1 = (vs.end as isize - oy).clamp(0, h as isize) as usize;
                pairs.clear();
                if x1 > x0 {
                    let (u0, u1) = ((x0 as isize + ox) as usize, (x1 as isize + ox) as usize);
                    for y in y0..y1.max(y0) {
                        let v = (y as isize + oy) as usize;
                        pairs.p.extend_from_slice(&canvas[v * cw + u0..v * cw + u1]);
                        pairs.q.extend_from_slice(&b.v[y * w + x0..y * w + x1]);
                    }
                }
                if let Some((r, _)) = normalised_residual(&pairs, w * h) {
                    let t = Transform {
                        s,
                        tx: tx as f32,
                        ty: ty as f32,
                    };
                    best.push((r, t));
                    if best.len() > 4 * REFINE_TOP {
                        best.sort_by(|x, y| x.0.total_cmp(&y.0));
                        best.truncate(REFINE_TOP);
                    }
                }
            }
        }
    }
    best.sort_by(|x, y| x.0.total_cmp(&y.0));
    best.truncate(REFINE_TOP);
    best
}

/// Local search around `start`: translations by `step` pixels (then half of it) and
/// scale steps of ×1.04^½ while the residual improves (at most `rounds` rounds).
fn refine(
    a: &Plane,
    b: &Plane,
    start: Transform,
    (max_scale, mut step, rounds): (f32, f32, usize),
    buf: &mut Pairs,
) -> Option<(f32, f32, Transform)> {
    let mut cur = start;
    let (mut best_r, mut best_o) = residual_at(a, b, cur, buf).unwrap_or((f32::INFINITY, 0.0));
    let ds = 1.04f32.sqrt();
    let min_step = step / 2.0;
    for _ in 0..rounds {
        // One parameter at a time: ± the step in x and in y, × or ÷ the scale step.
        let mut round_best: Option<(f32, f32, Transform)> = None;
        let tries = [
            (1.0, step, 0.0),
            (1.0, -step, 0.0),
            (1.0, 0.0, step),
            (1.0, 0.0, -step),
            (ds, 0.0, 0.0),
            (1.0 / ds, 0.0, 0.0),
        ];
        for (sm, ox, oy) in tries {
            let t = Transform {
                s: cur.s * sm,
                tx: cur.tx + ox,
                ty: cur.ty + oy,
            };
            if t.s > max_scale * 1.01 || t.s * max_scale < 0.99 {
                continue;
            }
            if let Some((r, o)) = residual_at(a, b, t, buf) {
                if r < best_r - 1e-6 && round_best.is_none_or(|(x, _, _)| r < x) {
                    round_best = Some((r, o, t));
                }
            }
        }
        match round_best {
            Some((r, o, t)) => {
                best_r = r;
                best_o = o;
                cur = t;
            }
            None if step > min_step => step = min_step,
            None => break,
        }
    }
    best_r.is_finite().then_some((best_r, best_o, cur))
}

/// The global motion (zoom about the centre, then translation) that best maps `a` onto
/// `b`, with the blur tolerance of the [module docs](self). `None` when the frames differ
/// in size or are smaller than 4 × 4.
///
/// ```
/// use reelsmith_segment::motion::{estimate, Plane};
/// // A smooth pattern and the same pattern moved 5 pixels right.
/// let pic = |shift: f32| {
///     let v = (0..36 * 64)
///         .map(|i| {
///             let (x, y) = ((i % 64) as f32 - shift, (i / 64) as f32);
///             0.5 + 0.2 * (x * 0.31).sin() * (y * 0.23).cos() + 0.1 * (x * 0.07 + y * 0.11).sin()
///         })
///         .collect();
///     Plane::new(64, 36, v).unwrap()
/// };
/// let m = estimate(&pic(0.0), &pic(5.0)).unwrap();
/// assert!((m.dx - 5.0).abs() < 0.6 && m.dy.abs() < 0.6, "{m:?}");
/// assert!(m.residual < 0.1);
/// ```
pub fn estimate(a: &Plane, b: &Plane) -> Option<GlobalMotion> {
    estimate_within(a, b, MAX_SCALE)
}

/// [`estimate`] with zoom factors searched up to `max_scale` (and its inverse; clamped to
/// 1–4): for frames further apart, such as the ends of a zoom that lasts many frames.
/// Zooming out shrinks the part of the second frame the first one covers (`1 / s²`), so
/// for large factors compare both ways round.
pub fn estimate_within(a: &Plane, b: &Plane, max_scale: f32) -> Option<GlobalMotion> {
    if a.w != b.w || a.h != b.h || a.w < 4 || a.h < 4 {
        return None;
    }
    let max_scale = if max_scale.is_finite() {
        max_scale.clamp(1.0, 4.0)
    } else {
        MAX_SCALE
    };
    // Quarter size while the frames stay at least 12 × 6 there.
    let (ah, bh) = (a.half(), b.half());
    let quarter = a.w >= 48 && a.h >= 24;
    let starts = if quarter {
        coarse(&ah.half(), &bh.half(), max_scale)
            .into_iter()
            .map(|(r, t)| {
                (
                    r,
                    Transform {
                        tx: 2.0 * t.tx,
                        ty: 2.0 * t.ty,
                        ..t
                    },
                )
            })
            .collect()
    } else {
        coarse(&ah, &bh, max_scale)
    };
    let mut buf = Pairs::with_capacity(a.w * a.h);
    // Half size: each start refined, the best kept (half-size pixels).
    let mut start: Option<(f32, Transform)> = None;
    for &(_, t) in starts.iter().take(2) {
        if let Some((r, _, t)) = refine(&ah, &bh, t, (max_scale, 1.0, 6), &mut buf) {
            if start.is_none_or(|(best, _)| r < best) {
                start = Some((r, t));
            }
        }
    }
    let (_, t) = start?;
    let t = Transform {
        tx: 2.0 * t.tx,
        ty: 2.0 * t.ty,
        ..t
    };
    // Full size: refined on the frames as they are, then the residual at that transform
    // with both frames smoothed alike (a little across, along rows, along columns); the
    // smallest counts.
    let (res, overlap, t) = refine(a, b, t, (max_scale, 0.5, 6), &mut buf)?;
    let mut best = GlobalMotion {
        scale: t.s,
        dx: t.tx,
        dy: t.ty,
        residual: res,
        overlap,
    };
    let r = (a.w / 16).max(1);
    for (rx, ry) in [(1, 1), (r, 0), (0, r.div_ceil(2))] {
        let (sa, sb) = (a.smoothed(rx, ry), b.smoothed(rx, ry));
        if let Some((res, _)) = residual_at(&sa, &sb, t, &mut buf) {
            best.residual = best.residual.min(res);
        }
    }
    Some(best)
}

/// Smooth value noise for tests: random values in `[0, 1)` on a grid of `cell`-pixel
/// squares, bilinearly interpolated (aperiodic, so no shift of one picture matches
/// another); `seed` picks the picture.
#[cfg(test)]
pub(crate) fn value_noise(seed: u32, x: f32, y: f32, cell: f32) -> f32 {
    let hash = |i: i64, j: i64| {
        let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ u64::from(seed).wrapping_mul(0x1656_67B1_9E37_79F9);
        z ^= z >> 29;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 32;
        (z % 1000) as f32 / 1000.0
    };
    let (gx, gy) = (x / cell, y / cell);
    let (x0, y0) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - x0, gy - y0);
    let (i, j) = (x0 as i64, y0 as i64);
    let top = hash(i, j) * (1.0 - fx) + hash(i + 1, j) * fx;
    let bottom = hash(i, j + 1) * (1.0 - fx) + hash(i + 1, j + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured picture (value noise at three scales) sampled at `w × h`, seen through
    /// a camera that moved by `(tx, ty)` pixels and zoomed by `s` about the centre;
    /// `seed` picks the picture.
    fn scene(seed: u32, w: usize, h: usize, s: f32, tx: f32, ty: f32) -> Plane {
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let v = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                // where this pixel looks in the scene (scene coordinates offset so that
                // the noise grid does not line up with the frame)
                let (u, v) = (
                    cx + (x - cx - tx) / s + 100.0,
                    cy + (y - cy - ty) / s + 100.0,
                );
                0.5 * value_noise(seed, u, v, 14.0)
                    + 0.3 * value_noise(seed + 100, u, v, 6.0)
                    + 0.2 * value_noise(seed + 200, u, v, 3.0)
            })
            .collect();
        Plane::new(w, h, v).unwrap()
    }

    #[test]
    fn known_shifts_are_recovered() {
        let a = scene(1, 64, 36, 1.0, 0.0, 0.0);
        for (tx, ty) in [
            (0.0, 0.0),
            (7.0, 0.0),
            (-12.0, 3.0),
            (3.5, -6.0),
            (20.0, 2.0),
        ] {
            let b = scene(1, 64, 36, 1.0, tx, ty);
            let m = estimate(&a, &b).unwrap();
            assert!(
                (m.dx - tx).abs() <= 0.75 && (m.dy - ty).abs() <= 0.75,
                "shift ({tx}, {ty}): {m:?}"
            );
            assert!((m.scale - 1.0).abs() < 0.05, "shift ({tx}, {ty}): {m:?}");
            assert!(m.residual < 0.15, "shift ({tx}, {ty}): {m:?}");
        }
    }

    #[test]
    fn known_zooms_are_recovered() {
        let a = scene(2, 64, 36, 1.0, 0.0, 0.0);
        for (s, tx, ty) in [
            (1.25, 0.0, 0.0),
            (0.8, 0.0, 0.0),
            (1.4, 4.0, -2.0),
            (0.7, -3.0, 0.0),
        ] {
            let b = scene(2, 64, 36, s, tx, ty);
            let m = estimate(&a, &b).unwrap();
            assert!((m.scale / s - 1.0).abs() < 0.04, "zoom {s}: {m:?}");
            assert!(
                (m.dx - tx).abs() <= 1.0 && (m.dy - ty).abs() <= 1.0,
                "zoom {s}: {m:?}"
            );
            assert!(m.residual < 0.2, "zoom {s}: {m:?}");
        }
    }

    #[test]
    fn a_different_picture_is_not_explained_by_motion() {
        let a = scene(1, 64, 36, 1.0, 0.0, 0.0);
        for seed in [3, 4, 5] {
            let b = scene(seed, 64, 36, 1.0, 0.0, 0.0);
            let m = estimate(&a, &b).unwrap();
            assert!(m.residual > 0.6, "seed {seed}: {m:?}");
        }
        // A flat frame against a textured one: nothing to match.
        let flat = Plane::new(64, 36, vec![0.05; 64 * 36]).unwrap();
        assert!(estimate(&a, &flat).unwrap().residual > 0.6);
    }

    #[test]
    fn a_motion_blurred_frame_still_matches_its_sharp_neighbour() {
        // b: the picture moved 6 px and smeared along the rows over 8 px (a fast pan).
        let a = scene(1, 64, 36, 1.0, 0.0, 0.0);
        let views: Vec<Plane> = (0..9)
            .map(|k| scene(1, 64, 36, 1.0, 2.0 + k as f32, 0.0))
            .collect();
        let v = (0..64 * 36)
            .map(|i| views.iter().map(|p| p.v[i]).sum::<f32>() / views.len() as f32)
            .collect();
        let b = Plane::new(64, 36, v).unwrap();
        let m = estimate(&a, &b).unwrap();
        assert!(m.residual < 0.35, "{m:?}");
        assert!((m.dx - 6.0).abs() <= 1.5, "{m:?}");
    }

    #[test]
    fn bad_sizes_are_refused_not_panicking() {
        let a = scene(1, 64, 36, 1.0, 0.0, 0.0);
        let b = scene(1, 32, 18, 1.0, 0.0, 0.0);
        assert!(estimate(&a, &b).is_none());
        let tiny = Plane::new(2, 2, vec![0.0; 4]).unwrap();
        assert!(estimate(&tiny, &tiny).is_none());
        assert!(Plane::new(3, 3, vec![0.0; 8]).is_none());
        assert!(LumaFrames::new(0, 5).is_err());
        let mut f = LumaFrames::new(2, 2).unwrap();
        assert!(f.push(&[0; 3]).is_err());
        assert!(f.plane(0).is_none());
        f.push(&[0, 255, 0, 255]).unwrap();
        assert_eq!(f.plane(0).unwrap().at(1, 0), 1.0);
    }
}
