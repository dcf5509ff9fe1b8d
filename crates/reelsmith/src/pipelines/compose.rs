//! A first frame composed from entity cut-outs and a background, as FFGo builds the inputs
//! of its image-to-video model.
//!
//! background image + RGBA cut-outs (such as the `entity_NN.png` of an entity memory) →
//! one canvas at the video model's resolution (default 1280×720), in FFGo's layout
//! (background fitted into the right half, cut-outs stacked in the left half; see
//! [`reelsmith_entity::compose`]) or a free layout read from a JSON file (a centre and a
//! scale per cut-out) → the image (`.png`, or `.jpg`) and, beside it, the layout record
//! `<name>.layout.json` (where everything was drawn). Both are written through temporary
//! files and renamed into place, the layout last.
//!
//! Cut-outs without an alpha channel are refused (they would paste as rectangles) unless
//! `allow_opaque` is set; a free layout that places a cut-out entirely off the canvas is
//! refused, one partly off is clipped (and marked `clipped` in the record). Images larger
//! than 64 MP or smaller than 16 pixels on a side are refused before decoding; a black
//! background is used as it is.
//!
//! ```no_run
//! use reelsmith::pipelines::compose::{self, ComposeConfig, ComposeInput};
//! use reelsmith::progress::NoProgress;
//!
//! let cutouts = ["memory/entity_00.png".into(), "memory/entity_01.png".into()];
//! let input = ComposeInput::new("beach.jpg", &cutouts, "first_frame.png");
//! let report = compose::run(&input, &ComposeConfig::default(), &NoProgress)?;
//! println!("{} cut-outs on a {:?} canvas", report.layout.entities.len(), report.layout.canvas);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_entity::compose::{
    compose, ComposeOptions, Cutout, FreeLayout, Layout, LayoutRecord,
};
use serde::{Deserialize, Serialize};

use crate::config::Size;
use crate::first_frame::read_image;
use crate::output::{check_output_file, write_atomic, write_json};
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Where the cut-outs go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayoutChoice {
    /// FFGo's layout (`"ffgo"`).
    #[default]
    Ffgo,
    /// A free layout read from this JSON file (`{"background": "cover", "entities":
    /// [{"center": [0.3, 0.6], "scale": 0.5}, ...]}`).
    File(PathBuf),
}

impl Serialize for LayoutChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LayoutChoice::Ffgo => s.serialize_str("ffgo"),
            LayoutChoice::File(p) => s.collect_str(&p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for LayoutChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(String::deserialize(d)?.parse().expect("infallible"))
    }
}

impl std::str::FromStr for LayoutChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s.eq_ignore_ascii_case("ffgo") {
            LayoutChoice::Ffgo
        } else {
            LayoutChoice::File(PathBuf::from(s))
        })
    }
}

/// Settings of the compose pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComposeConfig {
    /// The canvas size (default 1280x720, FFGo's).
    pub size: Size,
    /// FFGo's layout or a free layout file (default `ffgo`).
    pub layout: LayoutChoice,
    /// The canvas colour where nothing is drawn (default white, as FFGo).
    pub canvas: [u8; 3],
    /// Paste cut-outs without an alpha channel as opaque rectangles instead of refusing
    /// them (default false).
    pub allow_opaque: bool,
}

impl Default for ComposeConfig {
    fn default() -> Self {
        let o = ComposeOptions::default();
        Self {
            size: Size::new(o.width, o.height),
            layout: LayoutChoice::Ffgo,
            canvas: o.canvas,
            allow_opaque: o.allow_opaque,
        }
    }
}

impl ComposeConfig {
    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = |v: u32| (16..=8192).contains(&v);
        if !ok(self.size.width) || !ok(self.size.height) {
            return Err(Error::config(
                "size",
                format!(
                    "{}: each side must be 16..=8192 pixels (video models take 1280x720, \
                     832x480, ...)",
                    self.size
                ),
            ));
        }
        Ok(())
    }
}

/// The files of a composition.
#[derive(Debug, Clone, Copy)]
pub struct ComposeInput<'a> {
    /// The background scene.
    pub background: &'a Path,
    /// The cut-outs (RGBA images), drawn in this order.
    pub entities: &'a [PathBuf],
    /// The composed image (`.png` or `.jpg`); the layout record goes beside it.
    pub output: &'a Path,
}

impl<'a> ComposeInput<'a> {
    /// The input: `background`, `entities`, writing `output`.
    pub fn new(
        background: &'a (impl AsRef<Path> + ?Sized),
        entities: &'a [PathBuf],
        output: &'a (impl AsRef<Path> + ?Sized),
    ) -> Self {
        Self {
            background: background.as_ref(),
            entities,
            output: output.as_ref(),
        }
    }
}

/// What a composition wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeReport {
    /// The composed image.
    pub image: PathBuf,
    /// The layout record file beside it.
    pub layout_file: PathBuf,
    /// Where the background and every cut-out were drawn.
    pub layout: LayoutRecord,
}

/// The layout record's path for a composed image: `<stem>.layout.json` beside it.
pub fn layout_path(image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "first_frame".into());
    image.with_file_name(format!("{stem}.layout.json"))
}

/// Reads the cut-out images, each named by its path.
fn read_cutouts(paths: &[PathBuf]) -> Result<Vec<Cutout>, Error> {
    paths
        .iter()
        .map(|p| {
            Ok(Cutout::from_image(
                &p.display().to_string(),
                read_image(p, "cut-out")?,
            ))
        })
        .collect()
}

/// Composes `cutouts` (RGBA images) onto `background` in FFGo's layout on a `width × height`
/// canvas, in memory (the training examples given as materials).
pub(crate) fn compose_ffgo(
    background: &Path,
    cutouts: &[PathBuf],
    width: u32,
    height: u32,
) -> Result<image::RgbImage, Error> {
    let bg = read_image(background, "background")?.to_rgb8();
    let cuts = read_cutouts(cutouts)?;
    let opts = ComposeOptions {
        width,
        height,
        ..ComposeOptions::default()
    };
    let (img, _) =
        compose(&bg, &cuts, &Layout::Ffgo, &opts).map_err(|e| Error::entity(background, e))?;
    Ok(img)
}

/// Composes the first frame (see the [module docs](self)).
pub fn run(
    input: &ComposeInput<'_>,
    config: &ComposeConfig,
    progress: &dyn Progress,
) -> Result<ComposeReport, Error> {
    config.validate()?;
    if input.entities.is_empty() {
        return Err(Error::NoInputs);
    }
    let ext = input
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("png") => image::ImageFormat::Png,
        Some("jpg" | "jpeg") => image::ImageFormat::Jpeg,
        _ => {
            return Err(Error::Output {
                path: input.output.to_path_buf(),
                detail: "give a .png (lossless, best for a model's first frame) or .jpg file name"
                    .into(),
            })
        }
    };
    let layout_file = layout_path(input.output);
    let mut inputs: Vec<PathBuf> = input.entities.to_vec();
    inputs.push(input.background.to_path_buf());
    if let LayoutChoice::File(f) = &config.layout {
        inputs.push(f.clone());
    }
    check_output_file(input.output, &inputs)?;
    check_output_file(&layout_file, &inputs)?;

    let _stage = StageGuard::start(progress, Stage::Write, None);
    let background = read_image(input.background, "background")?.to_rgb8();
    let cutouts = read_cutouts(input.entities)?;
    let (layout, about) = match &config.layout {
        LayoutChoice::Ffgo => (Layout::Ffgo, input.background),
        LayoutChoice::File(f) => (
            Layout::Free(FreeLayout::open(f).map_err(|e| Error::entity(f, e))?),
            f.as_path(),
        ),
    };
    let opts = ComposeOptions {
        width: config.size.width,
        height: config.size.height,
        canvas: config.canvas,
        allow_opaque: config.allow_opaque,
    };
    let (img, record) =
        compose(&background, &cutouts, &layout, &opts).map_err(|e| Error::entity(about, e))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .map_err(|e| crate::output::write_err(input.output, e))?;
    write_atomic(input.output, bytes.get_ref())?;
    write_json(&layout_file, &record)?;
    Ok(ComposeReport {
        image: input.output.to_path_buf(),
        layout_file,
        layout: record,
    })
}
