//! On-disk cache of a video's embeddings: one safetensors file per (source, model,
//! sampling, size), reused when present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use reelsmith_core::FrameRef;

use crate::{EmbedError, Embeddings};

/// What a cached result depends on. Two keys with equal fields name the same file.
///
/// ```
/// use reelsmith_embed::CacheKey;
/// let k = CacheKey::new("clip.mp4", "openai/clip-vit-base-patch32@c237dc4", "fps=2", "224x224");
/// assert_eq!(k.file_name(), k.clone().file_name());
/// let other = CacheKey::new("clip.mp4", "facebook/dinov2-small@150c8e7", "fps=2", "224x224");
/// assert_ne!(k.file_name(), other.file_name());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The source, e.g. a video's canonical path with its length and modification time
    /// (see [`CacheKey::for_file`]).
    pub source: String,
    /// [`crate::Embedder::model_id`].
    pub model: String,
    /// How frames were sampled (`fps=2`, `every=10`, `scenes`, ...).
    pub sampling: String,
    /// The frame size fed to the model (`640x360`, `native`, ...).
    pub size: String,
}

impl CacheKey {
    /// A key from its parts.
    pub fn new(
        source: impl Into<String>,
        model: impl Into<String>,
        sampling: impl Into<String>,
        size: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            model: model.into(),
            sampling: sampling.into(),
            size: size.into(),
        }
    }

    /// A key whose source is a file's canonical path, length and modification time, so a
    /// changed or replaced file misses the cache.
    pub fn for_file(
        path: &Path,
        model: impl Into<String>,
        sampling: impl Into<String>,
        size: impl Into<String>,
    ) -> Result<Self, EmbedError> {
        let io = |source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        };
        let canon = path.canonicalize().map_err(io)?;
        let meta = std::fs::metadata(&canon).map_err(io)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Self::new(
            format!("{}|{}|{}", canon.display(), meta.len(), mtime),
            model,
            sampling,
            size,
        ))
    }

    fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("source", &self.source),
            ("model", &self.model),
            ("sampling", &self.sampling),
            ("size", &self.size),
        ]
    }

    /// The cache file name: a readable model tag and a 64-bit FNV-1a hash of all fields.
    pub fn file_name(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in self.fields() {
            for b in k.bytes().chain([0]).chain(v.bytes()).chain([0xff]) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        let tag: String = self
            .model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        format!("{tag}-{h:016x}.safetensors")
    }
}

/// Embeddings read back from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedEmbeddings {
    /// One row per sampled frame.
    pub embeddings: Embeddings,
    /// The frame of each row (empty when none were stored).
    pub frames: Vec<FrameRef>,
}

/// A folder of cached embeddings.
///
/// ```
/// use reelsmith_embed::{CacheKey, EmbeddingCache, Embeddings, FrameRef};
/// let dir = tempfile::tempdir().unwrap();
/// let cache = EmbeddingCache::new(dir.path());
/// let key = CacheKey::new("a.mp4|1|2", "pixel", "fps=1", "64x36");
/// assert!(cache.get(&key).unwrap().is_none());
/// let e = Embeddings::from_rows(&[[1.0f32, 2.0], [3.0, 4.0]]).unwrap();
/// let frames = [FrameRef { index: 0, time: 0.0 }, FrameRef { index: 25, time: 1.0 }];
/// cache.put(&key, &e, &frames).unwrap();
/// let back = cache.get(&key).unwrap().unwrap();
/// assert_eq!(back.embeddings, e);
/// assert_eq!(back.frames, frames);
/// // another sampling is another entry
/// assert!(cache.get(&CacheKey::new("a.mp4|1|2", "pixel", "fps=2", "64x36")).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// A cache in this folder (created on the first [`EmbeddingCache::put`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a key maps to.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached embeddings for `key`, or `None` when absent. A file whose stored key
    /// differs (a hash collision) or that cannot be parsed counts as absent.
    pub fn get(&self, key: &CacheKey) -> Result<Option<CachedEmbeddings>, EmbedError> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EmbedError::Io { path, source }),
        };
        let Ok((_, meta)) = SafeTensors::read_metadata(&bytes) else {
            return Ok(None);
        };
        let stored = meta.metadata().clone().unwrap_or_default();
        if key
            .fields()
            .iter()
            .any(|(k, v)| stored.get(*k).map(String::as_str) != Some(*v))
        {
            return Ok(None);
        }
        let Ok(st) = SafeTensors::deserialize(&bytes) else {
            return Ok(None);
        };
        let Ok(e) = st.tensor("embeddings") else {
            return Ok(None);
        };
        if e.dtype() != Dtype::F32 || e.shape().len() != 2 {
            return Ok(None);
        }
        let (n, d) = (e.shape()[0], e.shape()[1]);
        let data: Vec<f32> = e
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let embeddings = if n == 0 {
            Embeddings::empty(d.max(1))?
        } else {
            Embeddings::new(data, d)?
        };
        let times: Vec<f64> = match st.tensor("times") {
            Ok(t) if t.dtype() == Dtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            _ => Vec::new(),
        };
        let indices: Vec<u64> = match st.tensor("indices") {
            Ok(t) if t.dtype() == Dtype::U64 => t
                .data()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            _ => Vec::new(),
        };
        if times.len() != indices.len() || (!times.is_empty() && times.len() != n) {
            return Ok(None);
        }
        let frames = indices
            .into_iter()
            .zip(times)
            .map(|(index, time)| FrameRef { index, time })
            .collect();
        Ok(Some(CachedEmbeddings { embeddings, frames }))
    }

    /// Stores embeddings (and their frames, none or one per row) under `key`, writing a
    /// temporary file and renaming it into place.
    pub fn put(
        &self,
        key: &CacheKey,
        embeddings: &Embeddings,
        frames: &[FrameRef],
    ) -> Result<PathBuf, EmbedError> {
        if !frames.is_empty() && frames.len() != embeddings.len() {
            return Err(EmbedError::InvalidInput(format!(
                "{} frames for {} embedding rows",
                frames.len(),
                embeddings.len()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| EmbedError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path(key);
        let ebytes: Vec<u8> = embeddings
            .as_slice()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let tbytes: Vec<u8> = frames.iter().flat_map(|f| f.time.to_le_bytes()).collect();
        let ibytes: Vec<u8> = frames.iter().flat_map(|f| f.index.to_le_bytes()).collect();
        let bad = |e: safetensors::SafeTensorError| EmbedError::InvalidInput(e.to_string());
        let mut tensors = vec![(
            "embeddings",
            TensorView::new(
                Dtype::F32,
                vec![embeddings.len(), embeddings.dim()],
                &ebytes,
            )
            .map_err(bad)?,
        )];
        if !frames.is_empty() {
            tensors.push((
                "times",
                TensorView::new(Dtype::F64, vec![frames.len()], &tbytes).map_err(bad)?,
            ));
            tensors.push((
                "indices",
                TensorView::new(Dtype::U64, vec![frames.len()], &ibytes).map_err(bad)?,
            ));
        }
        let meta: HashMap<String, String> = key
            .fields()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = safetensors::serialize(tensors, Some(meta)).map_err(bad)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|source| EmbedError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| EmbedError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}
