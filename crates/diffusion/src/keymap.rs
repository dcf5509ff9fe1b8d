//! Tensor-name layouts of Wan transformer checkpoints.
//!
//! diffusers names (`blocks.0.attn1.to_q.weight`) are what the model code asks for. The
//! original Wan release, ComfyUI's single files and the LoRA/adapter tooling built on them
//! (FFGo's VideoX-Fun, DiffSynth-Studio) use the original names (`blocks.0.self_attn.q.weight`),
//! sometimes under a `model.diffusion_model.` or `diffusion_model.` prefix. The map below
//! turns a diffusers name into the original one; it is the inverse of diffusers'
//! `convert_wan_transformer_to_diffusers` (the fixtures check it against that converter).

use std::sync::Arc;

use crate::loading::KeyMap;

/// How the tensors of a transformer checkpoint are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLayout {
    /// diffusers names.
    Diffusers,
    /// Original Wan names, every key starting with `prefix` (may be empty).
    Original {
        /// Common prefix such as `model.diffusion_model.`.
        prefix: String,
    },
}

impl KeyLayout {
    /// The map from diffusers names to the names stored in this layout.
    pub fn map(&self) -> KeyMap {
        match self {
            KeyLayout::Diffusers => Arc::new(|n: &str| n.to_string()),
            KeyLayout::Original { prefix } => {
                let prefix = prefix.clone();
                Arc::new(move |n: &str| format!("{prefix}{}", diffusers_to_original(n)))
            }
        }
    }
}

/// Recognises the layout from the stored names: original if a self-attention query weight is
/// stored as `…blocks.N.self_attn.q.weight`.
pub fn detect_layout(names: &[String]) -> KeyLayout {
    for n in names {
        if let Some(pos) = n.find("blocks.") {
            if n.ends_with(".self_attn.q.weight") {
                return KeyLayout::Original {
                    prefix: n[..pos].to_string(),
                };
            }
        }
    }
    KeyLayout::Diffusers
}

/// The original Wan name of a diffusers transformer tensor name.
///
/// ```
/// use reelsmith_diffusion::keymap::diffusers_to_original;
/// assert_eq!(diffusers_to_original("blocks.3.attn1.to_q.weight"), "blocks.3.self_attn.q.weight");
/// assert_eq!(diffusers_to_original("blocks.3.norm2.bias"), "blocks.3.norm3.bias");
/// assert_eq!(diffusers_to_original("scale_shift_table"), "head.modulation");
/// ```
pub fn diffusers_to_original(name: &str) -> String {
    if name == "scale_shift_table" {
        return "head.modulation".into();
    }
    let mut n = name.to_string();
    for (a, b) in [
        (
            "condition_embedder.time_embedder.linear_1",
            "time_embedding.0",
        ),
        (
            "condition_embedder.time_embedder.linear_2",
            "time_embedding.2",
        ),
        (
            "condition_embedder.text_embedder.linear_1",
            "text_embedding.0",
        ),
        (
            "condition_embedder.text_embedder.linear_2",
            "text_embedding.2",
        ),
        ("condition_embedder.time_proj", "time_projection.1"),
        (".attn1.", ".self_attn."),
        (".attn2.", ".cross_attn."),
        (".to_out.0.", ".o."),
        (".to_q.", ".q."),
        (".to_k.", ".k."),
        (".to_v.", ".v."),
        (".ffn.net.0.proj.", ".ffn.0."),
        (".ffn.net.2.", ".ffn.2."),
        (".scale_shift_table", ".modulation"),
        (".norm2.", ".norm3."),
    ] {
        n = n.replace(a, b);
    }
    if let Some(rest) = n.strip_prefix("proj_out.") {
        n = format!("head.head.{rest}");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_kind_of_name() {
        for (d, o) in [
            ("patch_embedding.weight", "patch_embedding.weight"),
            (
                "condition_embedder.time_embedder.linear_1.bias",
                "time_embedding.0.bias",
            ),
            (
                "condition_embedder.text_embedder.linear_2.weight",
                "text_embedding.2.weight",
            ),
            (
                "condition_embedder.time_proj.weight",
                "time_projection.1.weight",
            ),
            (
                "blocks.12.attn2.to_out.0.weight",
                "blocks.12.cross_attn.o.weight",
            ),
            (
                "blocks.0.attn1.norm_k.weight",
                "blocks.0.self_attn.norm_k.weight",
            ),
            ("blocks.1.ffn.net.0.proj.bias", "blocks.1.ffn.0.bias"),
            ("blocks.1.ffn.net.2.weight", "blocks.1.ffn.2.weight"),
            ("blocks.1.scale_shift_table", "blocks.1.modulation"),
            ("blocks.1.norm2.weight", "blocks.1.norm3.weight"),
            ("proj_out.bias", "head.head.bias"),
            ("scale_shift_table", "head.modulation"),
        ] {
            assert_eq!(diffusers_to_original(d), o, "{d}");
        }
    }

    #[test]
    fn detects_prefix() {
        let names = vec![
            "model.diffusion_model.head.head.weight".to_string(),
            "model.diffusion_model.blocks.0.self_attn.q.weight".to_string(),
        ];
        let l = detect_layout(&names);
        assert_eq!(
            l,
            KeyLayout::Original {
                prefix: "model.diffusion_model.".into()
            }
        );
        assert_eq!(
            (l.map())("blocks.0.attn1.to_q.weight"),
            "model.diffusion_model.blocks.0.self_attn.q.weight"
        );
        assert_eq!(
            detect_layout(&["blocks.0.attn1.to_q.weight".to_string()]),
            KeyLayout::Diffusers
        );
    }
}
