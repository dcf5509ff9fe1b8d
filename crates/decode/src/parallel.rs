//! Parallel decoding over keyframe-aligned chunks.
//!
//! One decoder, even frame-threaded, keeps two cores only about 1.4–1.5 busy on H.264:
//! each frame waits for rows of the frames it references. Chunks that start at keyframes
//! have no such dependency between them, so single-threaded decoders working on different
//! chunks keep every core busy. [`Video::map_frames`] cuts the video at keyframes, decodes
//! the chunks on worker threads, runs a function on every kept frame there, and hands the
//! results back in presentation order with their true frame indices, exactly as one
//! sequential pass over [`Video::frames`] would have produced them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::frames::stream::{nothing_sampled, ChunkStats, Frame, Frames, Pass, Want};
use crate::frames::{DecodeOptions, Sampling};
use crate::probe::demux::{next_packet, seek_target};
use crate::probe::video::Video;

/// Shortest stretch of video worth a chunk of its own, in seconds: each chunk opens its
/// own decoder, and each worker its own demuxer (a few milliseconds). At 1 s rather than
/// 2 s, clips of 2–4 s with a keyframe inside are decoded on all cores too: shot analysis
/// of the corpora I, A and F took 2.7 % less reported time (`benches/shots_ab.py`, two
/// rounds, same transitions). At 0.5 s, once a chunk no longer decodes the next chunk's
/// keyframe again (closed groups of pictures end before it), 1.2–1.3 % less again (A, B,
/// I, F, K and L, two rounds each).
const MIN_CHUNK_SECONDS: f64 = 0.5;

/// Chunks per worker: more than one balances the load when some stretches decode slower,
/// and after the first chunk the chunks are taken longest first, so that the last ones to
/// finish are short.
const CHUNKS_PER_WORKER: usize = 8;

/// Mapped frames a chunk's worker sends to the collecting thread at once, rather than one
/// message (and one wake-up of that thread) per frame: 1–3.5 % less CPU time for shot
/// analysis of chunked videos, the more the busier the machine.
const FRAMES_PER_MESSAGE: usize = 16;

/// The order in which workers take the chunks that `splits` cut a video of `duration`
/// seconds into: the first chunk first, then the longest first (a greedy schedule that
/// leaves short chunks for the end, when a worker that finishes early has nothing else to
/// do), ties in time order. The first chunk reads the demuxer opened when probing, from
/// the start; taken first, it leaves the demuxer that found the splits to the second
/// worker, so neither opens the file again (one did when both began with a chunk that
/// needs a seek).
fn schedule(splits: &[f64], duration: f64) -> Vec<usize> {
    let n = splits.len() + 1;
    let span = |c: usize| {
        let start = if c == 0 { 0.0 } else { splits[c - 1] };
        let end = splits.get(c).copied().unwrap_or(duration.max(start));
        end - start
    };
    let mut order: Vec<usize> = (0..n).collect();
    // Spans within a millisecond count as equal, so that keyframe jitter keeps time order.
    order[1..].sort_by_key(|&c| (std::cmp::Reverse((span(c) * 1000.0).round() as i64), c));
    order
}

/// The CPU cores this process may use (1 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The result of the function [`Video::map_frames`] ran on one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped<T> {
    /// The frame's 0-based index among all decoded frames (as [`Frame::index`] from a
    /// sequential pass).
    pub index: u64,
    /// The frame's presentation time in seconds.
    pub time: f64,
    /// What the function returned.
    pub value: T,
}

/// What a parallel decode gives when its chunks tile the video: the mapped frames in
/// order, and the number of frames decoded.
type ChunkResults<T> = (Vec<Mapped<T>>, u64);

/// Why a chunk stopped early.
enum ChunkFail<E> {
    /// The frame function failed: the whole call fails with this error.
    Map(E),
    /// Decoding failed: the sequential pass decides what that means for the file.
    Decode(DecodeError),
}

/// Messages from the workers to the collecting thread.
enum Msg<T, E> {
    /// Mapped frames of `chunk` in decoding order: `(index in the chunk, time, value)`.
    Frames {
        chunk: usize,
        frames: Vec<(u64, f64, T)>,
    },
    Done {
        chunk: usize,
        stats: ChunkStats,
    },
    Failed {
        chunk: usize,
        fail: ChunkFail<E>,
    },
}

/// Checks the seams of chunk passes (`stats[c]` for the chunk starting at `splits[c − 1]`):
/// every chunk but the last ran into the next one's first frame, every chunk but the first
/// began exactly at its keyframe, and no chunk met a missing or backward timestamp. Then
/// the chunks cover the video exactly as one sequential pass does, and this returns the
/// index of each chunk's first frame and the total; `None` otherwise.
fn chunk_offsets(stats: &[Option<ChunkStats>], splits: &[f64]) -> Option<(Vec<u64>, u64)> {
    let mut offsets = Vec::with_capacity(stats.len());
    let mut total = 0u64;
    for (c, s) in stats.iter().enumerate() {
        let s = (*s)?;
        let starts_right = match (c, s.first_time) {
            (0, _) => true,
            (_, Some(first)) => (first - splits[c - 1]).abs() <= 5e-4,
            (_, None) => false,
        };
        if s.irregular || !starts_right || (c < splits.len() && !s.reached_end) {
            return None;
        }
        offsets.push(total);
        total += s.in_range;
    }
    Some((offsets, total))
}

impl Video {
    /// The exact number of frames a decoder outputs, counted by decoding the whole stream
    /// without converting any frame (keyframe-aligned chunks on all cores, or one
    /// frame-threaded pass). Equals `ffprobe -count_frames`.
    /// [`Video::count_packets`] is much faster and agrees on ordinary files, but not where
    /// an edit list hides frames.
    pub fn count_frames(&self) -> Result<u64, DecodeError> {
        // Keyframe-aligned chunks on all cores where the video splits cleanly (see
        // `Video::map_frames`); one sequential pass otherwise.
        if let Some(n) = self.count_frames_parallel() {
            return Ok(n);
        }
        let opts = DecodeOptions::new();
        Frames::new(
            self.info(),
            self.params(),
            &opts,
            Pass::sequential(),
            Want::Count,
            || self.decoding_input(),
        )?
        .count_rest()
    }

    /// Decodes the video with `opts`, runs `map` on every kept frame on `workers` threads
    /// at once (0 = one per CPU core), and returns the results in presentation order.
    ///
    /// The video is cut at keyframes into chunks that single-threaded decoders work on in
    /// parallel, which keeps the cores busier than one frame-threaded decoder (whose frames
    /// wait for rows of the frames they reference). The results are those of one sequential pass over
    /// [`Video::frames`] (same frames, times and indices): the chunks' seams are checked,
    /// and where they do not tile the video exactly (missing or backward timestamps,
    /// keyframes that are not clean entry points) or a chunk fails to decode, the whole
    /// video is decoded again sequentially. Videos too short to split, a single worker,
    /// and [`Sampling::EveryNth`] (whose choice depends on frames counted from the start)
    /// use the sequential pass directly.
    ///
    /// Inside `map`, [`Frame::index`] counts frames from the start of the frame's chunk;
    /// the true index is in the returned [`Mapped::index`]. `progress` is called on the
    /// calling thread with the number of frames mapped so far. Memory: the results, plus
    /// one demuxer and decoder per worker.
    ///
    /// ```no_run
    /// use reelsmith_decode::{open, DecodeOptions, Sampling, Scale};
    ///
    /// let video = open("movie.mp4")?;
    /// let opts = DecodeOptions::new().scale(Scale::Exact { width: 16, height: 9 });
    /// // Mean brightness of every frame, decoded on all cores.
    /// let means = video.map_frames(&opts, 0, |f| {
    ///     let px = f.image.as_raw();
    ///     Ok::<f64, reelsmith_decode::DecodeError>(
    ///         px.iter().map(|&v| f64::from(v)).sum::<f64>() / px.len() as f64,
    ///     )
    /// }, |_| {})?;
    /// println!("{} frames; first at {:.3}s", means.len(), means[0].time);
    /// # Ok::<(), reelsmith_decode::DecodeError>(())
    /// ```
    pub fn map_frames<T, E, F>(
        &self,
        opts: &DecodeOptions,
        workers: usize,
        map: F,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<Mapped<T>>, E>
    where
        T: Send,
        E: From<DecodeError> + Send,
        F: Fn(Frame) -> Result<T, E> + Sync,
    {
        let workers = if workers == 0 { cores() } else { workers };
        let (splits, seed) = if matches!(opts.sampling, Sampling::EveryNth(_)) {
            (Vec::new(), None)
        } else {
            self.chunk_splits(workers)
        };
        if !splits.is_empty() {
            match self.map_chunks(opts, workers, &splits, seed, &map, &mut progress)? {
                Some((out, decoded)) if out.is_empty() && decoded > 0 => {
                    let info = self.info();
                    let span = info.duration;
                    return Err(nothing_sampled(
                        &info.path,
                        opts.sampling,
                        decoded,
                        span,
                        info.fps,
                    )
                    .into());
                }
                Some((out, _)) => return Ok(out),
                None => tracing::debug!(
                    "{}: chunks did not tile the video; decoding it sequentially",
                    self.path().display()
                ),
            }
        }
        let mut out = Vec::new();
        for frame in self.frames(opts)? {
            let frame = frame?;
            let (index, time) = (frame.index, frame.time);
            out.push(Mapped {
                index,
                time,
                value: map(frame)?,
            });
            progress(out.len() as u64);
        }
        Ok(out)
    }

    /// The exact number of decoded frames, counted by decoding keyframe-aligned chunks on
    /// all cores without converting anything; `None` when the video is too short to split
    /// or the chunks do not tile it exactly (the caller then counts sequentially).
    fn count_frames_parallel(&self) -> Option<u64> {
        let workers = cores();
        let (splits, seed) = self.chunk_splits(workers);
        if splits.is_empty() {
            return None;
        }
        let n = splits.len() + 1;
        let order = schedule(&splits, self.info().duration);
        let opts = DecodeOptions::new().threads(1);
        let next = AtomicUsize::new(0);
        let seed = Mutex::new(seed);
        let stats: Vec<Option<ChunkStats>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers.min(n))
                .map(|_| {
                    let (next, opts, splits, order, seed) = (&next, &opts, &splits, &order, &seed);
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        let mut spare = None;
                        while let Some(&c) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let (start, end) = chunk_bounds(splits, c);
                            if start.is_some() && spare.is_none() {
                                spare = take(seed);
                            }
                            let s = self
                                .chunk_frames(start, end, opts, Want::Count, &mut spare)
                                .and_then(|mut f| {
                                    f.count_rest()?;
                                    let stats = f.chunk_stats();
                                    spare = Some(f.into_input());
                                    Ok(stats)
                                })
                                .ok()
                                .flatten();
                            mine.push((c, s));
                        }
                        mine
                    })
                })
                .collect();
            let mut all = vec![None; n];
            for h in handles {
                for (c, s) in h.join().unwrap_or_default() {
                    all[c] = s;
                }
            }
            all
        });
        chunk_offsets(&stats, &splits).map(|(_, total)| total)
    }

    /// Where to cut the video for `workers` threads: the start times of chunks 1.., or
    /// nothing when one worker, a short video or an unreadable index leaves one chunk;
    /// with the demuxer that found them, for a worker to seek in rather than open the
    /// file again (each opening reads the header, and probes the streams where the header
    /// does not describe them: see `reopen_input`).
    fn chunk_splits(&self, workers: usize) -> (Vec<f64>, Option<ff::format::context::Input>) {
        let wanted = (workers * CHUNKS_PER_WORKER)
            .min((self.info().duration / MIN_CHUNK_SECONDS).floor() as usize);
        if workers < 2 || wanted < 2 {
            return (Vec::new(), None);
        }
        // A file the splitter cannot read is left to the sequential pass to report.
        match self.keyframe_splits(wanted) {
            Ok((splits, input)) if !splits.is_empty() => (splits, Some(input)),
            _ => (Vec::new(), None),
        }
    }

    /// Times of keyframes near `n − 1` evenly spaced points, ascending, without the first
    /// frame: the starts of chunks 1.. of a parallel decode; and the demuxer it read.
    fn keyframe_splits(
        &self,
        n: usize,
    ) -> Result<(Vec<f64>, ff::format::context::Input), DecodeError> {
        let info = self.info();
        let mut input = self.reopen()?;
        let tb = match input.stream(info.stream_index) {
            Some(s) => s.time_base(),
            None => return Ok((Vec::new(), input)),
        };
        let tb = f64::from(tb);
        let origin_ts = (info.start_time / tb).round() as i64;
        let mut packet = ff::Packet::empty();
        let mut splits: Vec<f64> = Vec::with_capacity(n);
        for j in 1..n {
            let t = info.duration * j as f64 / n as f64;
            let target = seek_target(info, t);
            if input.seek(target, ..target).is_err() {
                return Ok((Vec::new(), input));
            }
            let mut found = None;
            while next_packet(&mut input, &mut packet, &info.path, None)? {
                if packet.stream() == info.stream_index {
                    if packet.is_key() {
                        found = packet.pts().map(|pts| (pts - origin_ts) as f64 * tb);
                    }
                    break;
                }
            }
            match found {
                Some(k) if k > 1e-3 && splits.last().is_none_or(|&last| k > last + 1e-3) => {
                    splits.push(k)
                }
                _ => {}
            }
        }
        Ok((splits, input))
    }

    /// Decodes the chunks that `splits` cut the video into; returns the mapped frames and
    /// the number of frames decoded. `Ok(None)` when the chunks do not tile the video
    /// exactly or one fails to decode (the caller then decodes sequentially).
    fn map_chunks<T, E, F>(
        &self,
        opts: &DecodeOptions,
        workers: usize,
        splits: &[f64],
        seed: Option<ff::format::context::Input>,
        map: &F,
        progress: &mut impl FnMut(u64),
    ) -> Result<Option<ChunkResults<T>>, E>
    where
        T: Send,
        E: From<DecodeError> + Send,
        F: Fn(Frame) -> Result<T, E> + Sync,
    {
        let n = splits.len() + 1;
        // One decoder thread per chunk: the chunks themselves are the parallelism.
        let chunk_opts = opts.clone().threads(1);
        let order = schedule(splits, self.info().duration);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let seed = Mutex::new(seed);
        let mut values: Vec<Vec<(u64, f64, T)>> = (0..n).map(|_| Vec::new()).collect();
        let mut stats: Vec<Option<ChunkStats>> = vec![None; n];
        let mut map_error: Option<(usize, E)> = None;
        let mut decode_failed = false;
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<Msg<T, E>>();
            for _ in 0..workers.min(n) {
                let tx = tx.clone();
                let (next, stop, chunk_opts, order, seed) =
                    (&next, &stop, &chunk_opts, &order, &seed);
                scope.spawn(move || {
                    // The first worker to need a seek seeks in the demuxer that found the
                    // splits (the first chunk reads the one opened when probing).
                    let mut spare = None;
                    while let Some(&chunk) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let (start, end) = chunk_bounds(splits, chunk);
                        if start.is_some() && spare.is_none() {
                            spare = take(seed);
                        }
                        let msg = match self
                            .run_chunk(chunk, start, end, chunk_opts, map, &tx, stop, &mut spare)
                        {
                            Ok(stats) => Msg::Done { chunk, stats },
                            Err(fail) => Msg::Failed { chunk, fail },
                        };
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut mapped = 0u64;
            for msg in rx {
                match msg {
                    Msg::Frames { chunk, frames } => {
                        mapped += frames.len() as u64;
                        values[chunk].extend(frames);
                        progress(mapped);
                    }
                    Msg::Done { chunk, stats: s } => stats[chunk] = Some(s),
                    Msg::Failed { chunk, fail } => {
                        stop.store(true, Ordering::Relaxed);
                        match fail {
                            ChunkFail::Map(e) => {
                                if map_error.as_ref().is_none_or(|(c, _)| chunk < *c) {
                                    map_error = Some((chunk, e));
                                }
                            }
                            ChunkFail::Decode(e) => {
                                tracing::debug!(
                                    "{}: chunk {chunk} failed to decode ({e})",
                                    self.path().display()
                                );
                                decode_failed = true;
                            }
                        }
                    }
                }
            }
        });
        if let Some((_, e)) = map_error {
            return Err(e);
        }
        if decode_failed {
            return Ok(None);
        }
        let Some((offsets, decoded)) = chunk_offsets(&stats, splits) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(values.iter().map(Vec::len).sum());
        for (c, chunk) in values.into_iter().enumerate() {
            out.extend(chunk.into_iter().map(|(index, time, value)| Mapped {
                index: offsets[c] + index,
                time,
                value,
            }));
        }
        Ok(Some((out, decoded)))
    }

    /// Decodes chunk `chunk` (frames with times in `[start, end)`) and sends the mapped
    /// frames to the collector, [`FRAMES_PER_MESSAGE`] at a time.
    #[allow(clippy::too_many_arguments)]
    fn run_chunk<T, E, F>(
        &self,
        chunk: usize,
        start: Option<f64>,
        end: Option<f64>,
        opts: &DecodeOptions,
        map: &F,
        tx: &mpsc::Sender<Msg<T, E>>,
        stop: &AtomicBool,
        spare: &mut Option<ff::format::context::Input>,
    ) -> Result<ChunkStats, ChunkFail<E>>
    where
        F: Fn(Frame) -> Result<T, E>,
    {
        let mut frames = self
            .chunk_frames(start, end, opts, Want::Images, spare)
            .map_err(ChunkFail::Decode)?;
        let mut batch = Vec::with_capacity(FRAMES_PER_MESSAGE);
        let send = |batch: &mut Vec<(u64, f64, T)>| {
            let frames = std::mem::replace(batch, Vec::with_capacity(FRAMES_PER_MESSAGE));
            frames.is_empty() || tx.send(Msg::Frames { chunk, frames }).is_ok()
        };
        for frame in frames.by_ref() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let frame = frame.map_err(ChunkFail::Decode)?;
            let (index, time) = (frame.index, frame.time);
            let value = map(frame).map_err(ChunkFail::Map)?;
            batch.push((index, time, value));
            if batch.len() == FRAMES_PER_MESSAGE && !send(&mut batch) {
                break;
            }
        }
        send(&mut batch);
        let stats = frames.chunk_stats().unwrap_or_default();
        *spare = Some(frames.into_input());
        Ok(stats)
    }

    /// The pass over the chunk `[start, end)` (the video's start for `None`): a worker
    /// seeks in the demuxer its last chunk left in `spare` rather than opening the file
    /// again.
    fn chunk_frames(
        &self,
        start: Option<f64>,
        end: Option<f64>,
        opts: &DecodeOptions,
        want: Want,
        spare: &mut Option<ff::format::context::Input>,
    ) -> Result<Frames, DecodeError> {
        let pass = Pass::chunk(start, end);
        match (start, spare.take()) {
            (Some(_), Some(input)) => {
                Frames::new(self.info(), self.params(), opts, pass, want, || Ok(input))
            }
            (Some(_), None) => Frames::new(self.info(), self.params(), opts, pass, want, || {
                self.decoding_input()
            }),
            (None, input) => {
                *spare = input;
                Frames::new(self.info(), self.params(), opts, pass, want, || {
                    self.decoding_input()
                })
            }
        }
    }
}

/// What `seed` holds, taken out (the first caller gets the demuxer, later ones nothing).
fn take(seed: &Mutex<Option<ff::format::context::Input>>) -> Option<ff::format::context::Input> {
    // A poisoned lock only means another worker panicked while taking it.
    match seed.lock() {
        Ok(mut guard) => guard.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

/// Start and end of chunk `c` of a video cut at `splits` (`None`: the video's start or end).
fn chunk_bounds(splits: &[f64], c: usize) -> (Option<f64>, Option<f64>) {
    let start = c.checked_sub(1).map(|p| splits[p]);
    (start, splits.get(c).copied())
}

#[cfg(test)]
mod tests {
    use super::schedule;

    #[test]
    fn chunks_are_taken_first_chunk_first_then_longest_first_ties_in_time_order() {
        // Chunks: [0, 5.3) [5.3, 15.9) [15.9, 21.2) [21.2, 31.7) [31.7, 63.5)
        let splits = [5.3, 15.9, 21.2, 31.7];
        assert_eq!(schedule(&splits, 63.5), [0, 4, 1, 3, 2]);
        // Spans a fraction of a millisecond apart keep their time order.
        assert_eq!(schedule(&[1.0, 2.0004, 3.0], 4.0), [0, 1, 2, 3]);
        // One chunk, and an unknown duration (the last chunk then counts as empty).
        assert_eq!(schedule(&[], 10.0), [0]);
        assert_eq!(schedule(&[4.0, 6.0], 0.0), [0, 1, 2]);
    }
}
