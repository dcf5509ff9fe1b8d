//! The decode → embed loop the pipelines share: sampled frames are embedded in batches as
//! they stream by, so no frame is held longer than one batch.

use reelsmith_core::Embeddings;
use reelsmith_decode::{DecodeError, DecodeOptions, Frame, Video};
use reelsmith_embed::{EmbedError, Embedder};

use crate::progress::{Progress, Stage};

/// Frames per embedding batch.
const BATCH: usize = 16;

/// What [`embed_sampled`] gathered: each kept frame's (index, time) and its embedding row.
pub(crate) struct Sampled {
    pub refs: Vec<(u64, f64)>,
    pub embeddings: Embeddings,
}

/// Decodes `video` with `opts`, calls `on_frame` on every kept frame (before it is
/// embedded), embeds the frames in batches with `embedder`, and reports progress as `stage`.
pub(crate) fn embed_sampled<E: From<DecodeError>>(
    video: &Video,
    opts: &DecodeOptions,
    embedder: &dyn Embedder,
    progress: Option<(&dyn Progress, Stage, u64)>,
    embed_err: impl Fn(EmbedError) -> E,
    mut on_frame: impl FnMut(&Frame) -> Result<(), E>,
) -> Result<Sampled, E> {
    if let Some((p, stage, total)) = progress {
        p.start(stage, total);
    }
    let mut refs = Vec::new();
    let mut embeddings = Embeddings::empty(embedder.dim()).map_err(|e| embed_err(e.into()))?;
    let mut batch: Vec<image::RgbImage> = Vec::with_capacity(BATCH);
    let flush = |batch: &mut Vec<image::RgbImage>, embeddings: &mut Embeddings| -> Result<(), E> {
        if !batch.is_empty() {
            let e = embedder.embed_images(batch).map_err(&embed_err)?;
            embeddings.extend(&e).map_err(|e| embed_err(e.into()))?;
            batch.clear();
        }
        Ok(())
    };
    for frame in video.frames(opts)? {
        let frame = frame?;
        on_frame(&frame)?;
        refs.push((frame.index, frame.time));
        batch.push(frame.image);
        if batch.len() == BATCH {
            flush(&mut batch, &mut embeddings)?;
        }
        if let Some((p, stage, _)) = progress {
            p.advance(stage, 1);
        }
    }
    flush(&mut batch, &mut embeddings)?;
    if let Some((p, stage, _)) = progress {
        p.finish(stage);
    }
    Ok(Sampled { refs, embeddings })
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
