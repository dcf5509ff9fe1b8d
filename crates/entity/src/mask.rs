//! Binary masks, boxes and COCO run-length encoding.
//!
//! [`Rle`] is COCO's: runs over the mask in column-major (Fortran) order, the first run
//! counting zeros, `size` = `[height, width]`. In JSON the counts are written as pycocotools'
//! compressed string (what `pycocotools.mask.encode` returns and `decode` reads, and what
//! Segment Anything's `coco_rle` output holds); plain integer lists are accepted on reading.

use image::{GrayImage, Luma};
use serde::{Deserialize, Serialize};

use crate::EntityError;

/// A binary mask of `width`×`height`, row-major, one byte per pixel (0 or 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

/// An axis-aligned box in pixels: `x`, `y` of the top-left pixel, `width`×`height` pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels (≥ 1 for a box of a non-empty mask).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl BBox {
    /// Intersection over union of two boxes (0 when either is empty).
    pub fn iou(&self, other: &BBox) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.width).min(other.x + other.width);
        let y1 = (self.y + self.height).min(other.y + other.height);
        let inter = x1.saturating_sub(x0) as f64 * y1.saturating_sub(y0) as f64;
        let union = self.area() as f64 + other.area() as f64 - inter;
        if union <= 0.0 {
            0.0
        } else {
            (inter / union) as f32
        }
    }

    /// Area in pixels.
    pub fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

impl Mask {
    /// An all-zero mask.
    pub fn empty(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    /// A mask from row-major bytes, any non-zero byte set. Errors when the length is not
    /// `width * height`.
    pub fn from_bytes(width: u32, height: u32, bytes: &[u8]) -> Result<Self, EntityError> {
        if bytes.len() != width as usize * height as usize {
            return Err(EntityError::Invalid(format!(
                "mask of {width}x{height} needs {} bytes, got {}",
                width as usize * height as usize,
                bytes.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data: bytes.iter().map(|&b| u8::from(b != 0)).collect(),
        })
    }

    /// A mask of the pixels where `f(x, y)` is true.
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> bool) -> Self {
        let mut m = Self::empty(width, height);
        for y in 0..height {
            for x in 0..width {
                if f(x, y) {
                    m.data[(y * width + x) as usize] = 1;
                }
            }
        }
        m
    }

    /// A mask of a grayscale image's pixels above `threshold`.
    pub fn from_gray(img: &GrayImage, threshold: u8) -> Self {
        Self {
            width: img.width(),
            height: img.height(),
            data: img
                .as_raw()
                .iter()
                .map(|&v| u8::from(v > threshold))
                .collect(),
        }
    }

    /// The mask as a grayscale image (0 or 255).
    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_fn(self.width, self.height, |x, y| {
            Luma([if self.get(x, y) { 255 } else { 0 }])
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major bytes, 0 or 1.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Whether the pixel is set (false outside the mask).
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.data[(y * self.width + x) as usize] != 0
    }

    /// Sets one pixel (ignored outside the mask).
    pub fn set(&mut self, x: u32, y: u32, v: bool) {
        if x < self.width && y < self.height {
            self.data[(y * self.width + x) as usize] = u8::from(v);
        }
    }

    /// Number of set pixels.
    pub fn area(&self) -> u64 {
        self.data.iter().map(|&v| v as u64).sum()
    }

    /// Set pixels as a fraction of all pixels (0 for a 0×0 mask).
    pub fn area_fraction(&self) -> f32 {
        let n = self.data.len();
        if n == 0 {
            0.0
        } else {
            (self.area() as f64 / n as f64) as f32
        }
    }

    /// Whether no pixel is set.
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }

    /// The tightest box around the set pixels, `None` for an empty mask.
    pub fn bbox(&self) -> Option<BBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        let mut any = false;
        for y in 0..self.height {
            let row = &self.data[(y * self.width) as usize..((y + 1) * self.width) as usize];
            if let Some(first) = row.iter().position(|&v| v != 0) {
                let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
                any = true;
                x0 = x0.min(first as u32);
                x1 = x1.max(last as u32);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
        any.then(|| BBox {
            x: x0,
            y: y0,
            width: x1 - x0 + 1,
            height: y1 - y0 + 1,
        })
    }

    /// Mean position `[x, y]` of the set pixels (pixel centres at integer coordinates),
    /// `None` for an empty mask.
    pub fn centroid(&self) -> Option<[f32; 2]> {
        let (mut sx, mut sy, mut n) = (0f64, 0f64, 0u64);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.data[(y * self.width + x) as usize] != 0 {
                    sx += x as f64;
                    sy += y as f64;
                    n += 1;
                }
            }
        }
        (n > 0).then(|| [(sx / n as f64) as f32, (sy / n as f64) as f32])
    }

    /// Intersection over union with another mask of the same size (1 when both are empty).
    pub fn iou(&self, other: &Mask) -> Result<f32, EntityError> {
        self.same_size(other)?;
        let (mut inter, mut union) = (0u64, 0u64);
        for (&a, &b) in self.data.iter().zip(&other.data) {
            inter += (a & b) as u64;
            union += (a | b) as u64;
        }
        Ok(if union == 0 {
            1.0
        } else {
            (inter as f64 / union as f64) as f32
        })
    }

    fn same_size(&self, other: &Mask) -> Result<(), EntityError> {
        if (self.width, self.height) != (other.width, other.height) {
            return Err(EntityError::Invalid(format!(
                "masks of different sizes: {}x{} and {}x{}",
                self.width, self.height, other.width, other.height
            )));
        }
        Ok(())
    }

    /// COCO run-length encoding (column-major).
    pub fn to_rle(&self) -> Rle {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut counts = Vec::new();
        let mut cur = 0u8;
        let mut run = 0u32;
        for x in 0..w {
            for y in 0..h {
                let v = self.data[y * w + x];
                if v != cur {
                    counts.push(run);
                    run = 0;
                    cur = v;
                }
                run += 1;
            }
        }
        counts.push(run);
        Rle {
            size: [self.height, self.width],
            counts,
        }
    }
}

/// COCO run-length encoding of a [`Mask`]: column-major runs, first run of zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    /// `[height, width]`, as COCO.
    pub size: [u32; 2],
    /// Alternating run lengths, starting with zeros (possibly a 0-length run).
    pub counts: Vec<u32>,
}

impl Rle {
    /// Decodes to a mask; errors when the runs do not cover exactly `height * width` pixels.
    pub fn to_mask(&self) -> Result<Mask, EntityError> {
        let [h, w] = self.size;
        let (hu, wu) = (h as usize, w as usize);
        if hu as u64 * wu as u64 > crate::segment::MAX_PIXELS {
            return Err(EntityError::Invalid(format!(
                "RLE mask of {h}x{w} is larger than the {} MP this crate handles",
                crate::segment::MAX_PIXELS >> 20
            )));
        }
        let total: u64 = self.counts.iter().map(|&c| c as u64).sum();
        if total != hu as u64 * wu as u64 {
            return Err(EntityError::Invalid(format!(
                "RLE runs cover {total} pixels but size {h}x{w} has {}",
                hu * wu
            )));
        }
        let mut m = Mask::empty(w, h);
        let mut i = 0usize;
        for (k, &c) in self.counts.iter().enumerate() {
            if k % 2 == 1 {
                for j in i..i + c as usize {
                    let (x, y) = (j / hu, j % hu);
                    m.data[y * wu + x] = 1;
                }
            }
            i += c as usize;
        }
        Ok(m)
    }

    /// pycocotools' compressed string form of the counts (`rleToString`).
    pub fn to_coco_string(&self) -> String {
        let mut s = String::new();
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = c as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut ch = x & 0x1f;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push((ch as u8 + 48) as char);
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Parses pycocotools' compressed string form (`rleFrString`).
    pub fn from_coco_string(size: [u32; 2], s: &str) -> Result<Self, EntityError> {
        let bytes = s.as_bytes();
        let mut counts: Vec<u32> = Vec::new();
        let mut p = 0;
        while p < bytes.len() {
            let mut x: i64 = 0;
            let mut k = 0;
            loop {
                let b = *bytes.get(p).ok_or_else(|| {
                    EntityError::Invalid(format!("COCO RLE string ends inside a number: {s:?}"))
                })?;
                if !(48..48 + 64).contains(&b) || k > 6 {
                    return Err(EntityError::Invalid(format!(
                        "not a COCO RLE string (byte {b} at {p}): {s:?}"
                    )));
                }
                let c = (b - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                let more = c & 0x20 != 0;
                p += 1;
                k += 1;
                if !more {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let i = counts.len();
            if i > 2 {
                x += counts[i - 2] as i64;
            }
            let c = u32::try_from(x).map_err(|_| {
                EntityError::Invalid(format!("COCO RLE string has a negative run: {s:?}"))
            })?;
            counts.push(c);
        }
        Ok(Self { size, counts })
    }
}

#[derive(Serialize, Deserialize)]
struct RleJson {
    size: [u32; 2],
    counts: RleCounts,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RleCounts {
    Compressed(String),
    Plain(Vec<u32>),
}

impl Serialize for Rle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RleJson {
            size: self.size,
            counts: RleCounts::Compressed(self.to_coco_string()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = RleJson::deserialize(d)?;
        match j.counts {
            RleCounts::Plain(counts) => Ok(Rle {
                size: j.size,
                counts,
            }),
            RleCounts::Compressed(s) => {
                Rle::from_coco_string(j.size, &s).map_err(serde::de::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Mask {
        // pycocotools: m = zeros((5, 7)); m[1:4, 2:5] = 1; m[0, 6] = 1; m[4, 0] = 1
        let mut m = Mask::empty(7, 5);
        for y in 1..4 {
            for x in 2..5 {
                m.set(x, y, true);
            }
        }
        m.set(6, 0, true);
        m.set(0, 4, true);
        m
    }

    #[test]
    fn rle_matches_pycocotools() {
        let m = sample();
        let rle = m.to_rle();
        assert_eq!(rle.size, [5, 7]);
        // pycocotools.mask.encode(...)["counts"] == b"4162L0004NN"
        assert_eq!(rle.to_coco_string(), "4162L0004NN");
        assert_eq!(Rle::from_coco_string([5, 7], "4162L0004NN").unwrap(), rle);
        assert_eq!(rle.to_mask().unwrap(), m);
        // A larger mask with a hole: pycocotools' string for it.
        let big = Mask::from_fn(80, 64, |x, y| {
            (10..50).contains(&y)
                && (5..70).contains(&x)
                && !((20..30).contains(&y) && (20..40).contains(&x))
        });
        let want = format!(
            "Z:X1h{}ROB:>{}d{}fc0",
            "0".repeat(29),
            "FB:>".repeat(19),
            "0".repeat(59)
        );
        assert_eq!(big.to_rle().to_coco_string(), want);
        assert_eq!(
            Rle::from_coco_string([64, 80], &want)
                .unwrap()
                .to_mask()
                .unwrap(),
            big
        );
    }

    #[test]
    fn rle_json_round_trip_and_plain_counts() {
        let m = sample();
        let j = serde_json::to_string(&m.to_rle()).unwrap();
        assert_eq!(j, r#"{"size":[5,7],"counts":"4162L0004NN"}"#);
        let back: Rle = serde_json::from_str(&j).unwrap();
        assert_eq!(back.to_mask().unwrap(), m);
        let plain: Rle = serde_json::from_str(r#"{"size":[2,2],"counts":[1,2,1]}"#).unwrap();
        let pm = plain.to_mask().unwrap();
        assert!(!pm.get(0, 0) && pm.get(0, 1) && pm.get(1, 0) && !pm.get(1, 1));
        // Runs that do not cover the mask, or garbage strings, are errors, not panics.
        let bad: Rle = serde_json::from_str(r#"{"size":[2,2],"counts":[1,2]}"#).unwrap();
        assert!(bad.to_mask().is_err());
        assert!(Rle::from_coco_string([2, 2], "\u{7f}").is_err());
        assert!(Rle::from_coco_string([2, 2], "o").is_err());
        // A huge declared size is refused before anything is allocated.
        let huge = Rle {
            size: [100_000, 100_000],
            counts: vec![u32::MAX, u32::MAX, 1_410_065_410],
        };
        assert!(huge.to_mask().unwrap_err().to_string().contains("larger"));
    }

    #[test]
    fn empty_and_full_masks() {
        let e = Mask::empty(3, 2);
        assert_eq!(e.to_rle().counts, vec![6]);
        assert_eq!(e.bbox(), None);
        assert_eq!(e.centroid(), None);
        let f = Mask::from_fn(3, 2, |_, _| true);
        assert_eq!(f.to_rle().counts, vec![0, 6]);
        assert_eq!(f.to_rle().to_mask().unwrap(), f);
        assert_eq!(
            Mask::empty(0, 0).to_rle().to_mask().unwrap(),
            Mask::empty(0, 0)
        );
    }

    #[test]
    fn bbox_centroid_area() {
        let m = sample();
        assert_eq!(
            m.bbox(),
            Some(BBox {
                x: 0,
                y: 0,
                width: 7,
                height: 5
            })
        );
        assert_eq!(m.area(), 11);
        let c = m.centroid().unwrap();
        assert!((c[0] - (27.0 + 6.0) / 11.0).abs() < 1e-6);
        assert!((c[1] - (18.0 + 4.0) / 11.0).abs() < 1e-6);
        let a = BBox {
            x: 0,
            y: 0,
            width: 2,
            height: 2,
        };
        let b = BBox {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        assert!((a.iou(&b) - 1.0 / 7.0).abs() < 1e-6);
    }
}
