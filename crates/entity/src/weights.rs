//! Checks on weight files before they are mapped, so that a damaged file gets an error that
//! names the problem (and the tensor) rather than a bare deserialisation failure.

use std::io::Read;
use std::path::Path;

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

/// The name and shape of every tensor in a checkpoint (`.safetensors` from its header,
/// PyTorch `.pth`/`.pt`/`.bin`/`.ckpt` from its pickle), without reading the data.
pub(crate) fn tensor_shapes(path: &Path) -> Result<Vec<(String, Vec<usize>)>, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => {
            check_safetensors(path)?;
            let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
            let mut n = [0u8; 8];
            f.read_exact(&mut n)
                .map_err(|e| format!("cannot read the header: {e}"))?;
            let mut header = vec![0u8; u64::from_le_bytes(n) as usize];
            f.read_exact(&mut header)
                .map_err(|e| format!("cannot read the header: {e}"))?;
            let header: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&header)
                    .map_err(|e| format!("the header is not JSON ({e})"))?;
            Ok(header
                .into_iter()
                .filter(|(name, _)| name != "__metadata__")
                .map(|(name, info)| {
                    let shape = info
                        .get("shape")
                        .and_then(|s| s.as_array())
                        .map(|a| a.iter().map(|d| d.as_u64().unwrap_or(0) as usize).collect())
                        .unwrap_or_default();
                    (name, shape)
                })
                .collect())
        }
        "pth" | "pt" | "bin" | "ckpt" => {
            candle_core::pickle::read_pth_tensor_info(path, false, None)
                .map(|infos| {
                    infos
                        .into_iter()
                        .map(|t| (t.name, t.layout.shape().dims().to_vec()))
                        .collect()
                })
                .map_err(|e| format!("cannot read as a PyTorch checkpoint: {e}"))
        }
        other => Err(format!(
            "unknown weights format '.{other}'; use .safetensors or a PyTorch .pth/.pt"
        )),
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
