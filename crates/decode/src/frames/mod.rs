//! Decoding frames: what a pass is asked for ([`options`]), which frames it keeps
//! ([`sampler`], pure), the decoding loop ([`decoder`]), the conversion to RGB
//! ([`convert`], with the box shrink of [`boxscale`]), and the pass itself ([`stream`]:
//! [`Frames`] and the `Video` methods that start one).

pub(crate) mod boxscale;
pub(crate) mod convert;
pub(crate) mod decoder;
pub(crate) mod options;
pub(crate) mod sampler;
pub(crate) mod stream;

pub use options::{DecodeOptions, Resampler, Sampling, Scale, MAX_FRAME_PIXELS, MAX_FRAME_SIDE};
pub use stream::{Frame, Frames};
