//! Decode → embed pipeline with an optional on-disk embedding cache.

use std::path::Path;

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_decode::DecodeOptions;
use reelsmith_embed::{CacheKey, EmbedError, Embedder, EmbeddingCache};

use crate::Error;

/// One embedding row per sampled frame of a video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoEmbeddings {
    /// Rows in presentation order.
    pub embeddings: Embeddings,
    /// The frame each row comes from (index and presentation time).
    pub frames: Vec<FrameRef>,
    /// Whether the rows came from the cache.
    pub from_cache: bool,
}

/// Decodes `video` with `opts`, embeds the frames in batches of `batch`, and returns one row
/// per kept frame. `progress` is called with the number of frames embedded so far.
///
/// With a `cache`, the result is stored under a key made of the file (path, length,
/// modification time), the model id, the sampling and the scaling, and read back instead of
/// decoding when present.
///
/// ```no_run
/// use reelsmith::decode::{DecodeOptions, Sampling};
/// use reelsmith::embed::{load_pretrained, DeviceChoice, EmbeddingCache, HubOptions};
///
/// let model = load_pretrained("clip-b32", &HubOptions::default(), DeviceChoice::Auto)?;
/// let cache = EmbeddingCache::new(".reelsmith-cache");
/// let opts = DecodeOptions::new().sampling(Sampling::Fps(1.0));
/// let out = reelsmith::embed_video("holiday.mp4", &model, &opts, 16, Some(&cache), |_| {})?;
/// println!("{} rows of width {}", out.embeddings.len(), out.embeddings.dim());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn embed_video(
    video: impl AsRef<Path>,
    embedder: &dyn Embedder,
    opts: &DecodeOptions,
    batch: usize,
    cache: Option<&EmbeddingCache>,
    mut progress: impl FnMut(u64),
) -> Result<VideoEmbeddings, Error> {
    let path = video.as_ref();
    let embed_err = |source: EmbedError| Error::Embed {
        path: path.to_path_buf(),
        source,
    };
    let key = match cache {
        Some(_) => Some(
            CacheKey::for_file(
                path,
                embedder.model_id(),
                format!("{:?}", opts.sampling),
                format!("{:?}", opts.scale),
            )
            .map_err(embed_err)?,
        ),
        None => None,
    };
    if let (Some(c), Some(k)) = (cache, &key) {
        if let Some(hit) = c.get(k).map_err(embed_err)? {
            if hit.frames.len() == hit.embeddings.len() && hit.embeddings.dim() == embedder.dim() {
                progress(hit.frames.len() as u64);
                return Ok(VideoEmbeddings {
                    embeddings: hit.embeddings,
                    frames: hit.frames,
                    from_cache: true,
                });
            }
        }
    }
    let v = reelsmith_decode::open(path)?;
    let batch = batch.max(1);
    let mut rows: Vec<f32> = Vec::new();
    let mut frames = Vec::new();
    let mut pending = Vec::with_capacity(batch);
    let mut done = 0u64;
    let mut flush = |pending: &mut Vec<reelsmith_decode::Frame>,
                     rows: &mut Vec<f32>,
                     frames: &mut Vec<FrameRef>|
     -> Result<(), Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let imgs: Vec<_> = pending.iter().map(|f| f.image.clone()).collect();
        let e = embedder.embed_images(&imgs).map_err(embed_err)?;
        rows.extend_from_slice(e.as_slice());
        frames.extend(pending.iter().map(|f| f.frame_ref()));
        done += pending.len() as u64;
        progress(done);
        pending.clear();
        Ok(())
    };
    for frame in v.frames(opts)? {
        pending.push(frame?);
        if pending.len() == batch {
            flush(&mut pending, &mut rows, &mut frames)?;
        }
    }
    flush(&mut pending, &mut rows, &mut frames)?;
    let embeddings = if rows.is_empty() {
        Embeddings::empty(embedder.dim()).map_err(|e| embed_err(e.into()))?
    } else {
        Embeddings::new(rows, embedder.dim()).map_err(|e| embed_err(e.into()))?
    };
    if let (Some(c), Some(k)) = (cache, &key) {
        c.put(k, &embeddings, &frames).map_err(embed_err)?;
    }
    Ok(VideoEmbeddings {
        embeddings,
        frames,
        from_cache: false,
    })
}
