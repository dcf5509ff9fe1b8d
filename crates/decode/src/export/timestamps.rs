//! Timestamps the MP4 muxer accepts, whatever the source's are.
//!
//! FFmpeg decodes streams whose timestamps repeat or run backwards (a time base of one
//! second, a damaged `moov`), but the muxer refuses such packets ("Invalid argument"). Each
//! output stream's packets pass through a [`TimestampFixer`] in the muxer's time base:
//! decode timestamps strictly increasing, presentation timestamps never before them, both
//! present. Packets of a valid stream pass unchanged.

/// Keeps one output stream's packet timestamps valid for the muxer.
#[derive(Debug, Default)]
pub(super) struct TimestampFixer {
    /// The last decode timestamp written.
    last_dts: Option<i64>,
    /// Packets whose timestamps were changed.
    fixed: u64,
}

impl TimestampFixer {
    /// The `(pts, dts)` to write for a packet with these timestamps (muxer time base),
    /// lasting `duration`. With both present, a decode timestamp that does not increase
    /// becomes the last plus a tick, and the presentation timestamp is at least the decode
    /// one. Without either, both become one duration (at least a tick) after the last. A
    /// packet with only a presentation timestamp keeps it and no decode timestamp: the
    /// muxer derives that from the presentation order (Matroska leaves it out). With only
    /// a decode timestamp, the presentation one is the same.
    pub(super) fn fix(
        &mut self,
        pts: Option<i64>,
        dts: Option<i64>,
        duration: i64,
    ) -> (Option<i64>, Option<i64>) {
        let after_last = |step: i64| self.last_dts.map_or(0, |last| last.saturating_add(step));
        let (new_pts, new_dts) = match (pts, dts) {
            (Some(_), None) => return (pts, None),
            (None, None) => {
                let t = after_last(duration.max(1));
                (t, t)
            }
            (pts, Some(dts)) => {
                let dts = match self.last_dts {
                    Some(last) if dts <= last => after_last(1),
                    _ => dts,
                };
                (pts.unwrap_or(dts).max(dts), dts)
            }
        };
        if (Some(new_pts), Some(new_dts)) != (pts, dts) {
            self.fixed += 1;
        }
        self.last_dts = Some(new_dts);
        (Some(new_pts), Some(new_dts))
    }

    /// How many packets had their timestamps changed.
    pub(super) fn fixed(&self) -> u64 {
        self.fixed
    }

    /// Fixes `packet`'s timestamps in place (they must be in the muxer's time base).
    pub(super) fn fix_packet(&mut self, packet: &mut ffmpeg_next::Packet) {
        let (pts, dts) = self.fix(packet.pts(), packet.dts(), packet.duration());
        packet.set_pts(pts);
        packet.set_dts(dts);
    }
}

/// A presentation timestamp strictly after the last one given, for frames sent to an
/// encoder (which refuses repeated ones).
#[derive(Debug, Default)]
pub(super) struct IncreasingPts {
    last: Option<i64>,
    /// Timestamps that had to be moved.
    fixed: u64,
}

impl IncreasingPts {
    /// `pts`, or the last one plus a tick when it does not increase.
    pub(super) fn next(&mut self, pts: i64) -> i64 {
        let pts = match self.last {
            Some(last) if pts <= last => {
                self.fixed += 1;
                last.saturating_add(1)
            }
            _ => pts,
        };
        self.last = Some(pts);
        pts
    }

    /// How many timestamps had to be moved.
    pub(super) fn fixed(&self) -> u64 {
        self.fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_streams_pass_unchanged() {
        // B-frames: dts increasing, pts reordered but never before dts.
        let packets = [(0, -2), (3, -1), (1, 0), (2, 1), (6, 2), (4, 3), (5, 4)];
        let mut f = TimestampFixer::default();
        for (pts, dts) in packets {
            assert_eq!(f.fix(Some(pts), Some(dts), 1), (Some(pts), Some(dts)));
        }
        // Matroska: no decode timestamp on the first packet; the muxer derives it.
        assert_eq!(f.fix(Some(7), None, 1), (Some(7), None));
        assert_eq!(f.fixed(), 0);
    }

    #[test]
    fn repeated_and_backward_dts_become_increasing() {
        let mut f = TimestampFixer::default();
        // A damaged stts: every packet at dts 0, pts from ctts.
        let got: Vec<_> = [(0, 0), (2, 0), (1, 0), (0, 0)]
            .into_iter()
            .map(|(p, d)| f.fix(Some(p), Some(d), 0))
            .collect();
        let want = [(0, 0), (2, 1), (2, 2), (3, 3)].map(|(p, d)| (Some(p), Some(d)));
        assert_eq!(got, want);
        assert_eq!(f.fixed(), 3);
        // Backwards after that.
        assert_eq!(f.fix(Some(1), Some(1), 0), (Some(4), Some(4)));
    }

    #[test]
    fn missing_timestamps_are_synthesised() {
        let mut f = TimestampFixer::default();
        let both = |t: i64| (Some(t), Some(t));
        assert_eq!(f.fix(None, None, 10), both(0));
        assert_eq!(f.fix(None, None, 10), both(10));
        assert_eq!(f.fix(None, Some(30), 10), both(30));
        assert_eq!(f.fix(None, None, 0), both(31));
        assert_eq!(f.fix(None, Some(31), 0), both(32));
    }

    #[test]
    fn encoder_pts_strictly_increase() {
        let mut p = IncreasingPts::default();
        let got: Vec<i64> = [0, 1, 1, 1, 5, 3, 6]
            .into_iter()
            .map(|t| p.next(t))
            .collect();
        assert_eq!(got, [0, 1, 2, 3, 5, 6, 7]);
        assert_eq!(p.fixed(), 4);
    }
}
