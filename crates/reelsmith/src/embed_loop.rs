//! The one decode → embed loop every pipeline uses: sampled frames are embedded in batches
//! as they stream by, so no frame is held longer than one batch.

use std::path::Path;

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_decode::{DecodeOptions, Frame, Video};
use reelsmith_embed::{EmbedError, Embedder};

use crate::progress::StageGuard;
use crate::Error;

/// Frames per embedding batch unless a pipeline says otherwise.
pub(crate) const DEFAULT_BATCH: usize = 16;

/// What [`embed_frames`] gathered: each kept frame and its embedding row.
pub(crate) struct Sampled {
    pub frames: Vec<FrameRef>,
    pub embeddings: Embeddings,
}

/// The embedder's error as the facade's, naming the input.
pub(crate) fn embed_error(path: &Path) -> impl Fn(EmbedError) -> Error + '_ {
    move |source| Error::Embed {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses embeddings holding NaN or infinite values, which a broken checkpoint gives (an
/// `image_std` of 0, weights that are not finite): they would pass on silently as null
/// embeddings and zero scores.
pub(crate) fn check_finite(e: &Embeddings, path: &Path, model: &str) -> Result<(), Error> {
    if e.as_slice().iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFiniteEmbeddings {
            path: path.to_path_buf(),
            model: model.to_string(),
        })
    }
}

/// Decodes `video` with `opts`, calls `on_frame` on every kept frame (before it is
/// embedded), embeds the frames in batches of `batch` with `embedder`, and advances
/// `stage` by one per frame.
pub(crate) fn embed_frames(
    video: &Video,
    opts: &DecodeOptions,
    embedder: &dyn Embedder,
    batch: usize,
    stage: &StageGuard<'_>,
    mut on_frame: impl FnMut(&Frame) -> Result<(), Error>,
) -> Result<Sampled, Error> {
    let path = video.info().path.clone();
    let err = embed_error(&path);
    let batch = batch.max(1);
    let mut frames = Vec::new();
    let mut embeddings = Embeddings::empty(embedder.dim()).map_err(|e| err(e.into()))?;
    let mut pending: Vec<image::RgbImage> = Vec::with_capacity(batch);
    let mut flush = |pending: &mut Vec<image::RgbImage>| -> Result<(), Error> {
        if !pending.is_empty() {
            let e = embedder.embed_images(pending).map_err(&err)?;
            check_finite(&e, &path, embedder.model_id())?;
            embeddings.extend(&e).map_err(|e| err(e.into()))?;
            stage.advance(pending.len() as u64);
            pending.clear();
        }
        Ok(())
    };
    for frame in video.frames(opts)? {
        let frame = frame?;
        on_frame(&frame)?;
        frames.push(frame.frame_ref());
        pending.push(frame.image);
        if pending.len() == batch {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    Ok(Sampled { frames, embeddings })
}

/// Subtracts the mean row from every row. Weight-free pixel embeddings are non-negative,
/// so their cosine distances crowd near 0; centred on the video's mean they spread like
/// learned embeddings' do, and thresholds chosen for CLIP become meaningful.
pub(crate) fn centre(emb: &Embeddings) -> Embeddings {
    match emb.mean(None) {
        Some(mean) => {
            let centred: Vec<f32> = emb
                .rows()
                .flat_map(|r| r.iter().zip(&mean).map(|(v, m)| v - m))
                .collect();
            Embeddings::new(centred, emb.dim()).unwrap_or_else(|_| emb.clone())
        }
        None => emb.clone(),
    }
}
