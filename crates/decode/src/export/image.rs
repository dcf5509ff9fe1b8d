//! Saving a frame as a JPEG or PNG image.

use std::io::Write;
use std::path::Path;

use image::RgbImage;

use crate::error::DecodeError;
use crate::export::output::{persist, temp_beside, write_error};

/// Image file formats for [`save_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG with the given quality, 1..=100.
    Jpeg(u8),
    /// Lossless PNG.
    Png,
}

impl ImageFormat {
    /// Picks the format from the file extension (`.jpg`/`.jpeg` → JPEG quality 90, `.png`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(ImageFormat::Jpeg(90)),
            "png" => Some(ImageFormat::Png),
            _ => None,
        }
    }
}

/// Writes `image` to `path` as JPEG or PNG (from `format`, or from the extension when
/// `None`), through a temporary file renamed into place (removed if encoding fails).
/// `path` may not be a symbolic link or something other than a regular file
/// ([`DecodeError::OutputRefused`]).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let img = image::RgbImage::from_pixel(8, 4, image::Rgb([200, 10, 10]));
/// let path = dir.path().join("red.png");
/// reelsmith_decode::save_image(&img, &path, None).unwrap();
/// assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
/// ```
pub fn save_image(
    image: &RgbImage,
    path: &Path,
    format: Option<ImageFormat>,
) -> Result<(), DecodeError> {
    let fmt = format
        .or_else(|| ImageFormat::from_path(path))
        .ok_or_else(|| DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "unknown image extension: use .jpg, .jpeg or .png".into(),
        })?;
    let tmp = temp_beside(path, None)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file());
        let res = match fmt {
            ImageFormat::Jpeg(q) => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, q.clamp(1, 100))
                    .encode_image(image)
            }
            ImageFormat::Png => image.write_to(&mut w, image::ImageFormat::Png),
        };
        res.map_err(|e| write_error(path, "encoding the image", e))?;
        w.flush()
            .map_err(|e| write_error(path, "writing the image", e))?;
    }
    persist(tmp, path)
}
