//! The stills of a cut: frames at given times inside the clip, converted as the
//! re-encoding decodes them (no second seek).

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::frames::convert::Converter;
use crate::frames::options::check_frame_size;
use crate::frames::{DecodeOptions, Frame, Scale};
use crate::probe::info::VideoInfo;

/// Collects the first frame at or after each asked time.
pub(super) struct Stills<'a> {
    info: &'a VideoInfo,
    /// The times asked for.
    times: &'a [f64],
    /// The clip's start: times before it get no still.
    start: f64,
    /// The frame found for each time so far.
    found: Vec<Option<Frame>>,
    /// Converts at the source's size, set up on the first still.
    conv: Option<Converter>,
}

impl<'a> Stills<'a> {
    /// Stills of `info`'s video at `times`, for a clip starting at `start`.
    pub(super) fn new(info: &'a VideoInfo, times: &'a [f64], start: f64) -> Self {
        Self {
            info,
            times,
            start,
            found: vec![None; times.len()],
            conv: None,
        }
    }

    /// A decoded frame of the clip at `t`: it is the still of every time not yet served
    /// that it reaches.
    pub(super) fn offer(&mut self, frame: &ff::frame::Video, t: f64) -> Result<(), DecodeError> {
        for (k, &at) in self.times.iter().enumerate() {
            if self.found[k].is_some() || at < self.start - 5e-4 || t < at - 5e-4 {
                continue;
            }
            let image = match self.found[..k].iter().flatten().find(|f| f.time == t) {
                Some(same) => same.image.clone(),
                None => {
                    let conv = match &mut self.conv {
                        Some(conv) => conv,
                        slot => {
                            check_frame_size(self.info, Scale::Original)?;
                            slot.insert(Converter::new(self.info, &DecodeOptions::new()))
                        }
                    };
                    conv.convert(frame)?
                }
            };
            let index = if self.info.fps > 0.0 {
                (t * self.info.fps).round().max(0.0) as u64
            } else {
                0
            };
            self.found[k] = Some(Frame {
                index,
                time: t,
                image,
            });
        }
        Ok(())
    }

    /// The stills, in the order of the times (`None` where no frame of the clip reached
    /// a time).
    pub(super) fn into_frames(self) -> Vec<Option<Frame>> {
        self.found
    }
}
