//! First-frame composition: entity cut-outs (RGBA) and a background scene on one canvas at
//! the video model's resolution, as FFGo builds its training and inference inputs, or at
//! positions and scales from a JSON layout.
//!
//! **FFGo layout** (measured on the combined first frames in FFGo's public repository,
//! `Data/combined_first_frames/*.png` and `Data/train/combined_images/*/combined.png`, all
//! 1280×720): a white canvas; the background scene fitted (aspect kept) into the right half
//! and centred vertically (a 16:9 scene lands at x 640–1279, y 180–539); the N entity cut-outs
//! stacked in the left half in N equal rows (720/N high), each fitted (aspect kept) into its
//! 640×(720/N) cell and centred in it. Here cut-outs are first cropped to their alpha box
//! (FFGo's own PNGs carry a few pixels of transparent margin).
//!
//! **Free layout** (`FreeLayout`, JSON): per cut-out a centre and a scale as fractions of
//! the canvas (`{"center": [0.3, 0.6], "scale": 0.5}` puts the cut-out's centre at 30 % of
//! the width and 60 % of the height, its height half the canvas height), and how the
//! background fills the canvas (`"cover"`, the default, `"contain"` or `"stretch"`).
//! A cut-out that sticks out of the canvas is clipped (and marked `clipped` in the layout
//! record); one entirely outside is an error.
//!
//! Cut-outs must come from images with an alpha channel (an RGB or JPEG file is refused
//! unless [`ComposeOptions::allow_opaque`] pastes it as a rectangle); an RGBA cut-out that
//! happens to be fully opaque (a rectangular object) is used as is.
//!
//! Blending is done on premultiplied colour (no dark or coloured fringes from the RGB under
//! transparent pixels); resizing uses Catmull-Rom.

use std::path::Path;

use image::{imageops, DynamicImage, Rgb, Rgb32FImage, RgbImage, Rgba32FImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::EntityError;

/// One cut-out to place.
#[derive(Debug, Clone)]
pub struct Cutout {
    /// A name for the layout record and errors (e.g. the file name).
    pub name: String,
    /// The pixels.
    pub image: RgbaImage,
    /// Whether the source had an alpha channel at all.
    pub has_alpha: bool,
}

impl Cutout {
    /// A cut-out from a decoded image (any colour type; alpha kept if it has one).
    pub fn from_image(name: &str, image: DynamicImage) -> Self {
        Self {
            name: name.to_string(),
            has_alpha: image.color().has_alpha(),
            image: image.to_rgba8(),
        }
    }

    /// Reads a cut-out file (an RGBA PNG such as `entity_NN.png`).
    pub fn open(path: &Path) -> Result<Self, EntityError> {
        let img = image::open(path).map_err(|e| EntityError::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self::from_image(&path.display().to_string(), img))
    }
}

/// How the background fills its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundFit {
    /// Scaled to cover the whole area (aspect kept, overflow cropped at the centre).
    #[default]
    Cover,
    /// Scaled to fit inside the area (aspect kept), centred on the canvas colour.
    Contain,
    /// Stretched to the area (aspect ignored).
    Stretch,
}

/// Where one cut-out goes in a free layout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Centre `[x, y]` as fractions of the canvas width and height.
    pub center: [f32; 2],
    /// Height of the (alpha-cropped) cut-out as a fraction of the canvas height.
    pub scale: f32,
}

/// A free layout: background fit and one placement per cut-out, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FreeLayout {
    /// How the background fills the canvas.
    #[serde(default)]
    pub background: BackgroundFit,
    /// One placement per cut-out.
    pub entities: Vec<Placement>,
}

impl FreeLayout {
    /// Reads a layout JSON file.
    pub fn open(path: &Path) -> Result<Self, EntityError> {
        let text = std::fs::read_to_string(path).map_err(|source| EntityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| EntityError::Json {
            path: path.to_path_buf(),
            message: format!(
                "{e}; expected {{\"background\": \"cover\", \"entities\": [{{\"center\": [0.5, 0.5], \"scale\": 0.4}}]}}"
            ),
        })
    }
}

/// Which layout to compose with.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Layout {
    /// FFGo's: background in the right half, cut-outs stacked in the left half.
    #[default]
    Ffgo,
    /// Positions and scales given by the caller.
    Free(FreeLayout),
}

/// Canvas and policy of a composition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComposeOptions {
    /// Canvas width (1280, FFGo's).
    pub width: u32,
    /// Canvas height (720).
    pub height: u32,
    /// Canvas colour where nothing is drawn (white, as FFGo).
    pub canvas: [u8; 3],
    /// Paste cut-outs without an alpha channel as opaque rectangles instead of failing.
    pub allow_opaque: bool,
}

impl Default for ComposeOptions {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            canvas: [255, 255, 255],
            allow_opaque: false,
        }
    }
}

/// A rectangle in canvas pixels (may extend past the canvas for clipped cut-outs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Where a cut-out was drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedEntity {
    /// The cut-out's name.
    pub name: String,
    /// The drawn rectangle.
    pub rect: Rect,
    /// Whether part of it fell outside the canvas.
    pub clipped: bool,
}

/// The layout JSON written beside a composed frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutRecord {
    /// `[width, height]` of the canvas.
    pub canvas: [u32; 2],
    /// `ffgo` or `free`.
    pub layout: String,
    /// Where the background was drawn (may extend past the canvas for `cover`).
    pub background: Rect,
    /// The cut-outs in drawing order.
    pub entities: Vec<PlacedEntity>,
}

/// The tight box of the non-transparent pixels, `None` when all are transparent.
fn alpha_box(img: &RgbaImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p[3] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// Size of `(w, h)` fitted inside `(bw, bh)`, aspect kept (at least 1×1).
fn fit(w: u32, h: u32, bw: f64, bh: f64) -> (u32, u32) {
    let s = (bw / w as f64).min(bh / h as f64);
    (
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
    )
}

/// Composes the first frame. See the module docs for the layouts.
pub fn compose(
    background: &RgbImage,
    cutouts: &[Cutout],
    layout: &Layout,
    opts: &ComposeOptions,
) -> Result<(RgbImage, LayoutRecord), EntityError> {
    let (cw, ch) = (opts.width, opts.height);
    if !(16..=8192).contains(&cw) || !(16..=8192).contains(&ch) {
        return Err(EntityError::Invalid(format!(
            "canvas {cw}x{ch}: each side must be 16..8192 pixels"
        )));
    }
    if background.width() == 0 || background.height() == 0 {
        return Err(EntityError::Invalid("the background image is empty".into()));
    }
    // Validate and crop every cut-out first: nothing is drawn unless all are usable.
    let mut crops = Vec::with_capacity(cutouts.len());
    for c in cutouts {
        if !c.has_alpha && !opts.allow_opaque {
            return Err(EntityError::Invalid(format!(
                "cut-out {} has no alpha channel (no transparency), so it would paste as a \
                 rectangle; use an RGBA PNG with the object cut out (e.g. entity_NN.png from \
                 `reelsmith entities`) or allow opaque cut-outs",
                c.name
            )));
        }
        let (x, y, w, h) = alpha_box(&c.image).ok_or_else(|| {
            EntityError::Invalid(format!("cut-out {} is fully transparent", c.name))
        })?;
        crops.push(imageops::crop_imm(&c.image, x, y, w, h).to_image());
    }
    let mut canvas = Rgb32FImage::from_pixel(cw, ch, Rgb(opts.canvas.map(|v| v as f32 / 255.0)));
    let (bg_area, fit_mode, name) = match layout {
        Layout::Ffgo => ((cw / 2, 0, cw - cw / 2, ch), BackgroundFit::Contain, "ffgo"),
        Layout::Free(f) => {
            if f.entities.len() != cutouts.len() {
                return Err(EntityError::Invalid(format!(
                    "the layout places {} entities but {} cut-outs were given",
                    f.entities.len(),
                    cutouts.len()
                )));
            }
            ((0, 0, cw, ch), f.background, "free")
        }
    };
    let bg_rect = draw_background(&mut canvas, background, bg_area, fit_mode);
    let mut placed = Vec::with_capacity(crops.len());
    let n = crops.len();
    for (i, (crop, c)) in crops.iter().zip(cutouts).enumerate() {
        let rect = match layout {
            Layout::Ffgo => {
                let cell_h = ch as f64 / n as f64;
                let cell_w = (cw / 2) as f64;
                let (w, h) = fit(crop.width(), crop.height(), cell_w, cell_h);
                Rect {
                    x: ((cell_w - w as f64) / 2.0).round() as i64,
                    y: (cell_h * i as f64 + (cell_h - h as f64) / 2.0).round() as i64,
                    width: w,
                    height: h,
                }
            }
            Layout::Free(f) => {
                let p = f.entities[i];
                if !p.scale.is_finite()
                    || p.scale <= 0.0
                    || p.scale > 16.0
                    || !p.center.iter().all(|v| v.is_finite())
                {
                    return Err(EntityError::Invalid(format!(
                        "layout entry {i}: scale must be in (0, 16] and the centre finite, got scale {} centre {:?}",
                        p.scale, p.center
                    )));
                }
                let h = ((p.scale as f64 * ch as f64).round() as u32).max(1);
                let w =
                    ((crop.width() as f64 * h as f64 / crop.height() as f64).round() as u32).max(1);
                Rect {
                    x: (p.center[0] as f64 * cw as f64 - w as f64 / 2.0).round() as i64,
                    y: (p.center[1] as f64 * ch as f64 - h as f64 / 2.0).round() as i64,
                    width: w,
                    height: h,
                }
            }
        };
        let inside_x = rect.x < cw as i64 && rect.x + rect.width as i64 > 0;
        let inside_y = rect.y < ch as i64 && rect.y + rect.height as i64 > 0;
        if !(inside_x && inside_y) {
            return Err(EntityError::Invalid(format!(
                "layout entry {i} ({}) puts the cut-out at {:?}, entirely outside the {cw}x{ch} canvas",
                c.name, rect
            )));
        }
        let clipped = rect.x < 0
            || rect.y < 0
            || rect.x + rect.width as i64 > cw as i64
            || rect.y + rect.height as i64 > ch as i64;
        paste(&mut canvas, crop, rect);
        placed.push(PlacedEntity {
            name: c.name.clone(),
            rect,
            clipped,
        });
    }
    let out = RgbImage::from_fn(cw, ch, |x, y| {
        let p = canvas.get_pixel(x, y);
        Rgb(p.0.map(|v| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8))
    });
    Ok((
        out,
        LayoutRecord {
            canvas: [cw, ch],
            layout: name.into(),
            background: bg_rect,
            entities: placed,
        },
    ))
}

fn to_f32_rgb(img: &RgbImage) -> Rgb32FImage {
    DynamicImage::ImageRgb8(img.clone()).to_rgb32f()
}

fn draw_background(
    canvas: &mut Rgb32FImage,
    bg: &RgbImage,
    (ax, ay, aw, ah): (u32, u32, u32, u32),
    mode: BackgroundFit,
) -> Rect {
    let (bw, bh) = bg.dimensions();
    let (w, h) = match mode {
        BackgroundFit::Stretch => (aw, ah),
        BackgroundFit::Contain => fit(bw, bh, aw as f64, ah as f64),
        BackgroundFit::Cover => {
            let s = (aw as f64 / bw as f64).max(ah as f64 / bh as f64);
            (
                ((bw as f64 * s).round() as u32).max(aw),
                ((bh as f64 * s).round() as u32).max(ah),
            )
        }
    };
    let rect = Rect {
        x: ax as i64 + (aw as i64 - w as i64) / 2,
        y: ay as i64 + (ah as i64 - h as i64) / 2,
        width: w,
        height: h,
    };
    let scaled = imageops::resize(&to_f32_rgb(bg), w, h, imageops::FilterType::CatmullRom);
    for (x, y, p) in scaled.enumerate_pixels() {
        let (cx, cy) = (rect.x + x as i64, rect.y + y as i64);
        // Only inside the background's own area (cover crops to it).
        if cx >= ax as i64
            && cy >= ay as i64
            && cx < (ax + aw) as i64
            && cy < (ay + ah) as i64
            && cx < canvas.width() as i64
            && cy < canvas.height() as i64
        {
            canvas.put_pixel(cx as u32, cy as u32, *p);
        }
    }
    rect
}

fn paste(canvas: &mut Rgb32FImage, crop: &RgbaImage, rect: Rect) {
    // Premultiply, resize, then blend: out = fg·a + bg·(1 − a).
    let mut pre = Rgba32FImage::new(crop.width(), crop.height());
    for (x, y, p) in crop.enumerate_pixels() {
        let a = p[3] as f32 / 255.0;
        pre.put_pixel(
            x,
            y,
            image::Rgba([
                p[0] as f32 / 255.0 * a,
                p[1] as f32 / 255.0 * a,
                p[2] as f32 / 255.0 * a,
                a,
            ]),
        );
    }
    let scaled = imageops::resize(
        &pre,
        rect.width,
        rect.height,
        imageops::FilterType::CatmullRom,
    );
    for (x, y, p) in scaled.enumerate_pixels() {
        let (cx, cy) = (rect.x + x as i64, rect.y + y as i64);
        if cx < 0 || cy < 0 || cx >= canvas.width() as i64 || cy >= canvas.height() as i64 {
            continue;
        }
        let a = p[3].clamp(0.0, 1.0);
        let dst = canvas.get_pixel_mut(cx as u32, cy as u32);
        for k in 0..3 {
            dst.0[k] = p[k].max(0.0) + dst.0[k] * (1.0 - a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn disc(w: u32, h: u32, color: [u8; 3]) -> Cutout {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
            let inside = (dx / (w as f32 / 2.0)).powi(2) + (dy / (h as f32 / 2.0)).powi(2) <= 1.0;
            Rgba([color[0], color[1], color[2], if inside { 255 } else { 0 }])
        });
        Cutout {
            name: format!("disc{w}x{h}"),
            image: img,
            has_alpha: true,
        }
    }

    #[test]
    fn ffgo_layout_matches_ffgo_data() {
        let bg = RgbImage::from_pixel(1920, 1080, Rgb([10, 20, 30]));
        let cuts = [disc(100, 200, [255, 0, 0]), disc(300, 100, [0, 255, 0])];
        let (img, rec) = compose(&bg, &cuts, &Layout::Ffgo, &ComposeOptions::default()).unwrap();
        assert_eq!(img.dimensions(), (1280, 720));
        // 16:9 background in the right half at y 180..540, as in FFGo's combined frames.
        assert_eq!(
            rec.background,
            Rect {
                x: 640,
                y: 180,
                width: 640,
                height: 360
            }
        );
        assert_eq!(*img.get_pixel(900, 360), Rgb([10, 20, 30]));
        assert_eq!(*img.get_pixel(900, 100), Rgb([255, 255, 255]));
        // Two cut-outs in two 360-high cells of the left half, fitted and centred.
        assert_eq!(
            rec.entities[0].rect,
            Rect {
                x: 230,
                y: 0,
                width: 180,
                height: 360
            }
        );
        assert_eq!(
            rec.entities[1].rect,
            Rect {
                x: 0,
                y: 434,
                width: 640,
                height: 213
            }
        );
        assert_eq!(*img.get_pixel(320, 180), Rgb([255, 0, 0]));
        assert_eq!(*img.get_pixel(320, 540), Rgb([0, 255, 0]));
        // Transparent corners of a cut-out show the canvas, without fringes.
        assert_eq!(*img.get_pixel(232, 2), Rgb([255, 255, 255]));
        assert!(rec.entities.iter().all(|e| !e.clipped));
    }

    #[test]
    fn free_layout_places_clips_and_rejects() {
        let bg = RgbImage::from_pixel(64, 64, Rgb([0, 0, 255]));
        let cuts = [disc(50, 50, [255, 0, 0])];
        let opts = ComposeOptions {
            width: 200,
            height: 100,
            ..Default::default()
        };
        let lay: FreeLayout = serde_json::from_str(
            r#"{"background": "stretch", "entities": [{"center": [0.25, 0.5], "scale": 0.5}]}"#,
        )
        .unwrap();
        let (img, rec) = compose(&bg, &cuts, &Layout::Free(lay), &opts).unwrap();
        assert_eq!(
            rec.entities[0].rect,
            Rect {
                x: 25,
                y: 25,
                width: 50,
                height: 50
            }
        );
        assert_eq!(*img.get_pixel(50, 50), Rgb([255, 0, 0]));
        assert_eq!(*img.get_pixel(150, 50), Rgb([0, 0, 255]));
        // Partly outside: clipped and recorded; entirely outside: an error.
        let lay = FreeLayout {
            background: BackgroundFit::Cover,
            entities: vec![Placement {
                center: [1.0, 0.5],
                scale: 0.5,
            }],
        };
        let (_, rec) = compose(&bg, &cuts, &Layout::Free(lay), &opts).unwrap();
        assert!(rec.entities[0].clipped);
        let lay = FreeLayout {
            background: BackgroundFit::Cover,
            entities: vec![Placement {
                center: [3.0, 0.5],
                scale: 0.5,
            }],
        };
        let err = compose(&bg, &cuts, &Layout::Free(lay), &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("entirely outside"), "{err}");
        for bad in [0.0, -1.0, f32::NAN] {
            let lay = FreeLayout {
                background: BackgroundFit::Cover,
                entities: vec![Placement {
                    center: [0.5, 0.5],
                    scale: bad,
                }],
            };
            assert!(compose(&bg, &cuts, &Layout::Free(lay), &opts).is_err());
        }
        let lay = FreeLayout::default();
        assert!(compose(&bg, &cuts, &Layout::Free(lay), &opts)
            .unwrap_err()
            .to_string()
            .contains("places 0"));
    }

    #[test]
    fn opaque_and_empty_cutouts() {
        let bg = RgbImage::from_pixel(8, 8, Rgb([0, 0, 0]));
        let opaque = Cutout::from_image("photo.jpg", DynamicImage::ImageRgb8(RgbImage::new(4, 4)));
        let err = compose(
            &bg,
            std::slice::from_ref(&opaque),
            &Layout::Ffgo,
            &ComposeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("photo.jpg") && err.contains("no transparency"),
            "{err}"
        );
        let ok = ComposeOptions {
            allow_opaque: true,
            ..Default::default()
        };
        assert!(compose(&bg, &[opaque], &Layout::Ffgo, &ok).is_ok());
        let clear = Cutout {
            name: "clear".into(),
            image: RgbaImage::new(3, 3),
            has_alpha: true,
        };
        assert!(compose(&bg, &[clear], &Layout::Ffgo, &ComposeOptions::default()).is_err());
        let tiny = ComposeOptions {
            width: 1,
            height: 1,
            ..Default::default()
        };
        assert!(compose(&bg, &[], &Layout::Ffgo, &tiny).is_err());
        assert!(compose(
            &RgbImage::new(0, 0),
            &[],
            &Layout::Ffgo,
            &ComposeOptions::default()
        )
        .is_err());
        // No cut-outs at all: just the background.
        assert!(compose(&bg, &[], &Layout::Ffgo, &ComposeOptions::default()).is_ok());
    }
}
