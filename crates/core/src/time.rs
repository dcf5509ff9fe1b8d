use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A half-open time interval `[start, end)` in seconds.
///
/// ```
/// use reelsmith_core::TimeSpan;
/// let s = TimeSpan::new(2.0, 5.0).unwrap();
/// assert!(s.contains(2.0) && !s.contains(5.0));
/// assert_eq!(s.clamp_to(0.0, 4.0).unwrap(), TimeSpan::new(2.0, 4.0).unwrap());
/// assert!(TimeSpan::new(3.0, 1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// Start in seconds (inclusive).
    pub start: f64,
    /// End in seconds (exclusive).
    pub end: f64,
}

impl TimeSpan {
    /// A span from `start` to `end`; both must be finite and `end >= start`.
    pub fn new(start: f64, end: f64) -> Result<Self, CoreError> {
        if !start.is_finite() || !end.is_finite() || end < start {
            return Err(CoreError::InvalidSpan { start, end });
        }
        Ok(Self { start, end })
    }

    /// A span of `duration` seconds beginning at `start`.
    pub fn from_start(start: f64, duration: f64) -> Result<Self, CoreError> {
        Self::new(start, start + duration)
    }

    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: f64) -> bool {
        t >= self.start && t < self.end
    }

    /// Whether the two spans share any time.
    pub fn overlaps(&self, other: &TimeSpan) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The part of the span inside `[lo, hi)`, or `None` when nothing is left.
    pub fn clamp_to(&self, lo: f64, hi: f64) -> Option<TimeSpan> {
        let s = self.start.max(lo);
        let e = self.end.min(hi);
        (e > s).then_some(TimeSpan { start: s, end: e })
    }
}

/// A decoded frame's identity: its 0-based index among decoded frames in presentation
/// order, and its presentation time in seconds taken from the stream's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameRef {
    /// 0-based index of the decoded frame in presentation order.
    pub index: u64,
    /// Presentation time in seconds from the start of the stream.
    pub time: f64,
}

/// A rational frame rate, for converting indices to seconds on constant-rate material.
///
/// ```
/// use reelsmith_core::FrameRate;
/// let ntsc = FrameRate::new(30000, 1001).unwrap();
/// assert!((ntsc.fps() - 29.97).abs() < 1e-2);
/// assert_eq!(ntsc.seconds_to_frame(ntsc.frame_to_seconds(1234)), 1234);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRate {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds per `num` frames.
    pub den: u32,
}

impl FrameRate {
    /// `num / den` frames per second; both must be positive.
    pub fn new(num: u32, den: u32) -> Result<Self, CoreError> {
        if num == 0 || den == 0 {
            return Err(CoreError::InvalidFrameRate { num, den });
        }
        Ok(Self { num, den })
    }

    /// The nearest rational rate to a floating fps value (denominator 1001 for NTSC-like
    /// rates, 1000 otherwise). Returns `None` for non-positive or non-finite input.
    pub fn from_fps(fps: f64) -> Option<Self> {
        if !fps.is_finite() || fps <= 0.0 || fps > 1.0e6 {
            return None;
        }
        let ntsc = fps * 1001.0 / 1000.0;
        if (ntsc - ntsc.round()).abs() < 1e-3 && (fps - fps.round()).abs() > 1e-3 {
            return Some(Self {
                num: (ntsc.round() as u32) * 1000,
                den: 1001,
            });
        }
        let num = (fps * 1000.0).round() as u32;
        (num > 0).then_some(Self { num, den: 1000 })
    }

    /// Frames per second as a float.
    pub fn fps(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Start time in seconds of frame `index`.
    pub fn frame_to_seconds(&self, index: u64) -> f64 {
        index as f64 * f64::from(self.den) / f64::from(self.num)
    }

    /// The frame showing at time `t` (floor, with a tolerance of a millionth of a frame
    /// against rounding noise). Negative times map to frame 0.
    pub fn seconds_to_frame(&self, t: f64) -> u64 {
        if t.is_nan() || t <= 0.0 {
            return 0;
        }
        let f = t * f64::from(self.num) / f64::from(self.den);
        (f + 1e-6).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_rules() {
        assert!(TimeSpan::new(f64::NAN, 1.0).is_err());
        assert!(TimeSpan::new(0.0, f64::INFINITY).is_err());
        let a = TimeSpan::new(0.0, 2.0).unwrap();
        let b = TimeSpan::new(2.0, 3.0).unwrap();
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&TimeSpan::new(1.0, 3.0).unwrap()));
        assert_eq!(b.clamp_to(0.0, 2.0), None);
        assert_eq!(TimeSpan::from_start(1.0, 2.5).unwrap().end, 3.5);
    }

    #[test]
    fn frame_rate_conversions() {
        assert!(FrameRate::new(0, 1).is_err());
        let r = FrameRate::new(24, 1).unwrap();
        assert_eq!(r.seconds_to_frame(-1.0), 0);
        assert_eq!(r.seconds_to_frame(f64::NAN), 0);
        assert_eq!(r.seconds_to_frame(1.0 / 24.0 * 10.0), 10);
        assert_eq!(r.seconds_to_frame(0.999 / 24.0), 0);
        for i in [0u64, 1, 17, 10_000, 1_000_000] {
            assert_eq!(r.seconds_to_frame(r.frame_to_seconds(i)), i);
        }
        let n = FrameRate::from_fps(29.97002997).unwrap();
        assert_eq!((n.num, n.den), (30000, 1001));
        let p = FrameRate::from_fps(25.0).unwrap();
        assert_eq!(p.fps(), 25.0);
        assert_eq!(FrameRate::from_fps(0.0), None);
        assert_eq!(FrameRate::from_fps(f64::NAN), None);
    }
}
