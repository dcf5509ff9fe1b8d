//! Weight files, opened through the shared model layer ([`reelsmith_models::Checkpoint`]),
//! with a check before a safetensors file is mapped, so that a damaged file gets an error
//! that names the problem (and the tensor) rather than a bare deserialisation failure.

use std::io::Read;
use std::path::Path;

use reelsmith_models::{Checkpoint, ModelError};

use crate::EntityError;

/// Validates a safetensors file's header against the file's length. A truncated file is
/// reported with the first tensor whose data lies past its end.
pub(crate) fn check_safetensors(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = f.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| {
        format!("{len} bytes: too short for a safetensors file (truncated or not safetensors)")
    })?;
    let header_len = u64::from_le_bytes(n);
    if header_len > 100 << 20 || 8 + header_len > len {
        return Err(format!(
            "header of {header_len} bytes does not fit in the {len}-byte file (truncated or not safetensors)"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("the header is not JSON ({e}): not a safetensors file"))?;
    let data_len = len - 8 - header_len;
    let mut worst: Option<(u64, &str)> = None;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let end = info
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .ok_or_else(|| format!("tensor {name} has no data_offsets in the header"))?;
        let start = info
            .get("data_offsets")
            .and_then(|o| o.get(0))
            .and_then(|e| e.as_u64())
            .unwrap_or(0);
        if end > data_len && worst.is_none_or(|(s, _)| start < s) {
            worst = Some((start, name));
        }
    }
    if let Some((_, name)) = worst {
        return Err(format!(
            "truncated: the data of tensor {name} (and any after it) lies past the end of the \
             {len}-byte file; download or copy the checkpoint again"
        ));
    }
    Ok(())
}

/// Opens a checkpoint through the shared model layer ([`Checkpoint::open`]:
/// memory-mapped `.safetensors`, a sharded `*.index.json`, or a PyTorch `.pth`/`.pt`/`.bin`
/// pickle, recognised from its first bytes). A safetensors file is first checked against its
/// length ([`check_safetensors`]), so that a truncated file is named with its first cut
/// tensor. `missing` is the advice given when the file does not exist.
pub(crate) fn open_checkpoint(path: &Path, missing: &str) -> Result<Checkpoint, EntityError> {
    let err = |message: String| EntityError::Weights {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(err(format!("no such file; {missing}")));
    }
    let is_safetensors = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_safetensors {
        check_safetensors(path).map_err(err)?;
    }
    Checkpoint::open(path).map_err(|e| model_error(path, e))
}

/// The name and shape of every tensor in a checkpoint, without reading the data.
pub(crate) fn tensor_shapes(ckpt: &Checkpoint) -> Vec<(String, Vec<usize>)> {
    ckpt.names()
        .into_iter()
        .map(|n| {
            let shape = ckpt.shape(&n).unwrap_or_default();
            (n, shape)
        })
        .collect()
}

/// A [`ModelError`] about the checkpoint `path` as an [`EntityError::Weights`] (the path is
/// said once, by the `EntityError`).
pub(crate) fn model_error(path: &Path, e: ModelError) -> EntityError {
    let s = e.to_string();
    let prefix = format!("{}: ", path.display());
    EntityError::Weights {
        path: path.to_path_buf(),
        message: s.strip_prefix(&prefix).unwrap_or(&s).to_string(),
    }
}

/// Builds a model through `build` from `ckpt`'s var builder (`f32` on `device`), then fails
/// with one [`EntityError::Weights`] naming every tensor that was missing or misshapen
/// (`what` names the model and what to check, e.g. "is this an ISNet checkpoint?").
pub(crate) fn build_checked<M>(
    ckpt: &Checkpoint,
    device: &candle_core::Device,
    what: &str,
    build: impl FnOnce(reelsmith_models::VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<M, EntityError> {
    let path = ckpt.path();
    let built = build(ckpt.var_builder(candle_core::DType::F32, device));
    match ckpt.finish() {
        Err(ModelError::Weights {
            missing,
            mismatched,
            ..
        }) => {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!(
                    "{} missing tensor(s): {}",
                    missing.len(),
                    missing.join(", ")
                ));
            }
            if !mismatched.is_empty() {
                parts.push(format!(
                    "{} tensor(s) with a wrong shape: {}",
                    mismatched.len(),
                    mismatched.join("; ")
                ));
            }
            parts.push(what.to_string());
            Err(EntityError::Weights {
                path: path.to_path_buf(),
                message: parts.join("; "),
            })
        }
        Err(e) => Err(model_error(path, e)),
        Ok(()) => built.map_err(|e| EntityError::Weights {
            path: path.to_path_buf(),
            message: format!("{e} ({what})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_names_the_first_cut_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let a =
            candle_core::Tensor::zeros((4, 4), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        let b = candle_core::Tensor::ones((8,), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        let path = dir.path().join("w.safetensors");
        candle_core::safetensors::save(
            &[("a.weight".to_string(), a), ("b.weight".to_string(), b)]
                .into_iter()
                .collect(),
            &path,
        )
        .unwrap();
        assert!(check_safetensors(&path).is_ok());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
        let err = check_safetensors(&path).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        // 16 f32 of a.weight (64 bytes) then 8 f32 of b.weight: the cut hits whichever is
        // stored last; the message names exactly that one.
        assert!(
            err.contains("a.weight") || err.contains("b.weight"),
            "{err}"
        );
        std::fs::write(&path, &bytes[..5]).unwrap();
        assert!(check_safetensors(&path).unwrap_err().contains("too short"));
    }
}
