//! Which decoded frames a [`Sampling`] keeps: a pure state machine over `(index, time)`,
//! with FFmpeg's `fps`-filter slot rules written once. It holds the frames it has not
//! settled yet (one at most) and knows nothing of FFmpeg, so it is tested on plain
//! numbers.
//!
//! Slot rules of [`Sampling::Fps`] at rate `r` (those of FFmpeg's `fps` filter):
//! - slot `k` holds the frames whose time `t` rounds to it: `round(t · r) = k`;
//! - a slot keeps the last frame that falls in it, so a slot is settled only when a frame of
//!   a later slot arrives ([`Sampler::offer`]), or when the next chunk's first frame shows
//!   where this chunk ends ([`Sampler::boundary`]);
//! - slots that no frame falls in are skipped (no duplicates), and a slot is never kept
//!   twice, even where timestamps run backwards;
//! - at the end of the stream the open slot is kept only when the stream lasts past it:
//!   when the last frame's time plus its duration rounds to a later slot, or the duration
//!   is unknown ([`Sampler::finish`]).

use crate::frames::options::Sampling;

/// A frame the sampling keeps, with its index and time as they were offered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Kept<T> {
    /// The frame.
    pub item: T,
    /// Its index.
    pub index: u64,
    /// Its time in seconds.
    pub time: f64,
}

/// The frame of the fps slot that is still open.
#[derive(Debug)]
struct Open<T> {
    kept: Kept<T>,
    slot: i64,
}

/// Decides which frames a [`Sampling`] keeps, in the order they are offered.
#[derive(Debug)]
pub(crate) struct Sampler<T> {
    sampling: Sampling,
    /// [`Sampling::Fps`]: the last frame offered, which keeps its slot unless a later
    /// frame falls in the same slot.
    open: Option<Open<T>>,
    /// [`Sampling::Fps`]: the last slot kept.
    last_slot: Option<i64>,
}

impl<T> Sampler<T> {
    /// A sampler for `sampling` (already checked: `EveryNth(n)` with `n > 0`, `Fps(r)`
    /// with `r` positive and finite).
    pub(crate) fn new(sampling: Sampling) -> Self {
        Self {
            sampling,
            open: None,
            last_slot: None,
        }
    }

    /// The sampling this sampler applies.
    pub(crate) fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Offers the next decoded frame. Returns the frame this settles as kept: the frame
    /// itself for [`Sampling::All`] and [`Sampling::EveryNth`], the last frame of the slot
    /// this one closes for [`Sampling::Fps`].
    pub(crate) fn offer(&mut self, item: T, index: u64, time: f64) -> Option<Kept<T>> {
        let kept = Kept { item, index, time };
        match self.sampling {
            Sampling::All => Some(kept),
            Sampling::EveryNth(n) => index.is_multiple_of(u64::from(n)).then_some(kept),
            Sampling::Fps(rate) => {
                let slot = slot_of(time, rate);
                let closed = self.close_before(slot);
                self.open = Some(Open { kept, slot });
                closed
            }
        }
    }

    /// A frame at `time` that lies beyond this pass (the first frame of the next chunk of
    /// a parallel decode): it settles the open slot without being kept itself.
    pub(crate) fn boundary(&mut self, time: f64) -> Option<Kept<T>> {
        match self.sampling {
            Sampling::Fps(rate) => {
                let closed = self.close_before(slot_of(time, rate));
                self.open = None;
                closed
            }
            Sampling::All | Sampling::EveryNth(_) => None,
        }
    }

    /// The end of the stream: settles the open slot, kept when the stream lasts past it.
    /// `duration` tells how long the last frame lasts (seconds; 0 when unknown, and then
    /// the slot is kept).
    pub(crate) fn finish(&mut self, duration: impl FnOnce(&T) -> f64) -> Option<Kept<T>> {
        let Sampling::Fps(rate) = self.sampling else {
            return None;
        };
        let open = self.open.take()?;
        let dur = duration(&open.kept.item);
        let end_slot = slot_of(open.kept.time + dur, rate);
        if open.slot < end_slot || dur == 0.0 {
            self.keep_slot(open)
        } else {
            None
        }
    }

    /// Takes the open slot when a frame of `slot` closes it (a later slot); an earlier or
    /// equal slot leaves it to be replaced.
    fn close_before(&mut self, slot: i64) -> Option<Kept<T>> {
        match self.open.take() {
            Some(open) if slot > open.slot => self.keep_slot(open),
            _ => None,
        }
    }

    /// Keeps a settled slot unless a slot at or after it was kept already (timestamps that
    /// run backwards never emit a slot twice).
    fn keep_slot(&mut self, open: Open<T>) -> Option<Kept<T>> {
        if self.last_slot.is_some_and(|last| open.slot <= last) {
            return None;
        }
        self.last_slot = Some(open.slot);
        Some(open.kept)
    }
}

/// The fps slot of a frame at `time`: slot `k` is centred on `k / rate`.
fn slot_of(time: f64, rate: f64) -> i64 {
    (time * rate).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds frames at `times` (indices 0..), the end of the stream with every frame
    /// lasting `dur`, and returns the indices kept.
    fn run(sampling: Sampling, times: &[f64], dur: f64) -> Vec<u64> {
        let mut s = Sampler::new(sampling);
        let mut kept: Vec<u64> = times
            .iter()
            .enumerate()
            .filter_map(|(i, &t)| s.offer(i, i as u64, t))
            .map(|k| k.index)
            .collect();
        kept.extend(s.finish(|_| dur).map(|k| k.index));
        kept
    }

    fn cfr(n: usize, fps: f64) -> Vec<f64> {
        (0..n).map(|k| k as f64 / fps).collect()
    }

    #[test]
    fn all_and_every_nth_keep_by_index() {
        let t = cfr(10, 25.0);
        assert_eq!(run(Sampling::All, &t, 0.04), (0..10).collect::<Vec<_>>());
        assert_eq!(run(Sampling::EveryNth(3), &t, 0.04), [0, 3, 6, 9]);
        assert_eq!(run(Sampling::EveryNth(1), &t, 0.04).len(), 10);
    }

    #[test]
    fn fps_keeps_the_last_frame_of_each_slot() {
        // 25 fps to 5 fps: slot k holds round(t * 5) == k, i.e. frames 5k-2 ..= 5k+2; its
        // last frame is 5k+2 (what `ffmpeg -vf fps=5` keeps).
        let kept = run(Sampling::Fps(5.0), &cfr(60, 25.0), 0.04);
        assert_eq!(kept, (2..59).step_by(5).collect::<Vec<_>>());
        // The same rate: every frame.
        assert_eq!(run(Sampling::Fps(25.0), &cfr(20, 25.0), 0.04).len(), 20);
    }

    #[test]
    fn fps_skips_empty_slots_and_never_duplicates() {
        // Frames at 0, 0.1, then a gap to 1.0: at 10 fps slots 2..9 are empty.
        let kept = run(Sampling::Fps(10.0), &[0.0, 0.1, 1.0, 1.1], 0.1);
        assert_eq!(kept, [0, 1, 2, 3]);
        // A rate above the frame rate never keeps a frame twice.
        let kept = run(Sampling::Fps(100.0), &cfr(5, 10.0), 0.1);
        assert_eq!(kept, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn fps_last_slot_is_kept_only_when_the_stream_lasts_past_it() {
        // At 3 fps slot 1 covers [1/6, 1/2) s. 12 frames at 25 fps end at 0.48 s, inside
        // slot 1: it is dropped. 13 frames end at 0.52 s, past it: it is kept.
        assert_eq!(run(Sampling::Fps(3.0), &cfr(12, 25.0), 0.04), [4]);
        assert_eq!(run(Sampling::Fps(3.0), &cfr(13, 25.0), 0.04), [4, 12]);
        // One frame lasting 0.04 s at 3 fps ends inside slot 0: nothing is kept.
        assert_eq!(run(Sampling::Fps(3.0), &[0.0], 0.04), Vec::<u64>::new());
        // Unknown duration: the last slot is kept.
        assert_eq!(run(Sampling::Fps(3.0), &[0.0], 0.0), [0]);
    }

    #[test]
    fn fps_times_running_backwards_keep_each_slot_once() {
        // Slots at 4 fps: 0, 1, 2, then 0.1 s goes back to slot 0 and replaces the open
        // slot 2; 0.6 s closes that slot 0, which is not kept again; 0.6 s keeps slot 2
        // and 0.75 s slot 3.
        let kept = run(Sampling::Fps(4.0), &[0.0, 0.25, 0.5, 0.1, 0.6, 0.75], 0.25);
        assert_eq!(kept, [0, 1, 4, 5]);
    }

    #[test]
    fn boundary_settles_the_open_slot_without_keeping_itself() {
        let mut s = Sampler::new(Sampling::Fps(5.0));
        // Frames 0.36 and 0.40 (slot 2): open slot 2 holds 0.40.
        assert!(s.offer('a', 9, 0.36).is_none());
        assert!(s.offer('b', 10, 0.40).is_none());
        // The next chunk starts at 0.44 (still slot 2): the slot stays open there, so
        // this chunk keeps nothing.
        assert!(s.boundary(0.44).is_none());
        let mut s = Sampler::new(Sampling::Fps(5.0));
        assert!(s.offer('b', 10, 0.40).is_none());
        // The next chunk starts at 0.52 (slot 3): slot 2 ends here, with frame 'b'.
        let k = s.boundary(0.52).unwrap();
        assert_eq!((k.item, k.index, k.time), ('b', 10, 0.40));
        assert!(s.finish(|_| 0.04).is_none());
        // Other samplings ignore boundaries.
        assert!(Sampler::<()>::new(Sampling::All).boundary(1.0).is_none());
    }
}
