//! The UMT5 text encoder of Wan (`google/umt5-xxl`'s encoder), its tokenizer, and the prompt
//! embeddings exactly as the diffusers Wan pipelines build them: the cleaned prompt tokenized
//! to at most 512 tokens (with `</s>`), encoded, trimmed to its true length and zero-padded
//! back to 512.
//!
//! UMT5 differs from T5 in that every layer has its own relative-position bias (T5 shares the
//! first layer's), so the encoder is written here rather than taken from candle-transformers.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{DiffusionError, Result};
use crate::layers::{compute_dtype, rms_normalize, softmax_last_dim, Linear};
use crate::loading::{load_weights, read_json};

/// Wan's default negative prompt (the original release's `sample_neg_prompt`), used for
/// classifier-free guidance when none is given.
pub const WAN_NEGATIVE_PROMPT: &str = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

/// Prompt tokens the Wan pipelines encode (and pad the embeddings to).
pub const MAX_SEQUENCE_LENGTH: usize = 512;

fn default_buckets() -> usize {
    32
}
fn default_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_ffp() -> String {
    "gated-gelu".into()
}

/// The text encoder's `config.json` (transformers' `UMT5Config` field names).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Umt5Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Width per head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which relative positions share a bucket.
    #[serde(default = "default_distance")]
    pub relative_attention_max_distance: usize,
    /// Epsilon of the RMS norms.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Feed-forward activation (`gelu_new`, the tanh approximation, for UMT5).
    #[serde(default = "default_act")]
    pub dense_act_fn: String,
    /// `gated-gelu` (UMT5) or a plain activation.
    #[serde(default = "default_ffp")]
    pub feed_forward_proj: String,
}

impl Umt5Config {
    fn gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    fn check(&self, path: &Path) -> Result<()> {
        let act = self.dense_act_fn.as_str();
        if !matches!(act, "gelu_new" | "gelu_pytorch_tanh" | "relu") {
            return Err(DiffusionError::config(
                path,
                format!("activation {act:?} is not supported (UMT5 uses gelu_new)"),
            ));
        }
        if self.num_heads == 0 || self.relative_attention_num_buckets < 4 {
            return Err(DiffusionError::config(
                path,
                "num_heads and relative_attention_num_buckets are too small",
            ));
        }
        Ok(())
    }

    /// Parameter count (computed from the configuration).
    pub fn parameter_count(&self) -> u64 {
        let d = self.d_model as u64;
        let inner = (self.num_heads * self.d_kv) as u64;
        let ff = self.d_ff as u64 * d * if self.gated() { 3 } else { 2 };
        let layer = 4 * d * inner
            + (self.relative_attention_num_buckets * self.num_heads) as u64
            + ff
            + 2 * d;
        self.vocab_size as u64 * d + self.num_layers as u64 * layer + d
    }
}

/// The bidirectional T5 relative-position bucket of `memory - query` (as transformers
/// computes it, in f32).
pub(crate) fn relative_bucket(rel: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if rel > 0 { half } else { 0 };
    let n = rel.abs();
    let max_exact = half / 2;
    if n < max_exact {
        bucket += n;
    } else {
        let ratio = (n as f32 / max_exact as f32).ln()
            / ((max_distance as f64 / max_exact as f64).ln() as f32);
        let large = max_exact + (ratio * (half - max_exact) as f32) as i64;
        bucket += large.min(half - 1);
    }
    bucket as usize
}

struct Layer {
    ln1: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// `[buckets, heads]`.
    rel_bias: Tensor,
    ln2: Tensor,
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

/// The UMT5 encoder stack.
pub struct Umt5Encoder {
    cfg: Umt5Config,
    embed: Tensor,
    layers: Vec<Layer>,
    final_norm: Tensor,
    device: Device,
}

impl Umt5Encoder {
    /// Builds the encoder from a [`VarBuilder`] with transformers' `UMT5EncoderModel` names.
    pub fn new(vb: VarBuilder, cfg: &Umt5Config) -> Result<Self> {
        let d = cfg.d_model;
        let inner = cfg.num_heads * cfg.d_kv;
        let embed = if !vb.contains_tensor("shared.weight")
            && vb.contains_tensor("encoder.embed_tokens.weight")
        {
            vb.get((cfg.vocab_size, d), "encoder.embed_tokens.weight")?
        } else {
            vb.get((cfg.vocab_size, d), "shared.weight")?
        };
        let enc = vb.pp("encoder");
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let b = enc.pp(format!("block.{i}"));
                let sa = b.pp("layer.0.SelfAttention");
                let ff = b.pp("layer.1.DenseReluDense");
                let gated = cfg.gated();
                Ok(Layer {
                    ln1: b.get(d, "layer.0.layer_norm.weight")?,
                    q: Linear::new(sa.pp("q"), d, inner, false)?,
                    k: Linear::new(sa.pp("k"), d, inner, false)?,
                    v: Linear::new(sa.pp("v"), d, inner, false)?,
                    o: Linear::new(sa.pp("o"), inner, d, false)?,
                    rel_bias: sa.get(
                        (cfg.relative_attention_num_buckets, cfg.num_heads),
                        "relative_attention_bias.weight",
                    )?,
                    ln2: b.get(d, "layer.1.layer_norm.weight")?,
                    wi_0: Linear::new(
                        ff.pp(if gated { "wi_0" } else { "wi" }),
                        d,
                        cfg.d_ff,
                        false,
                    )?,
                    wi_1: if gated {
                        Some(Linear::new(ff.pp("wi_1"), d, cfg.d_ff, false)?)
                    } else {
                        None
                    },
                    wo: Linear::new(ff.pp("wo"), cfg.d_ff, d, false)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed,
            layers,
            final_norm: enc.get(d, "final_layer_norm.weight")?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
        })
    }

    /// Loads a `text_encoder` folder (`config.json` + `model.safetensors` or shards).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: Umt5Config = read_json(&cfg_path)?;
        cfg.check(&cfg_path)?;
        let w = load_weights(
            dir,
            &["model", "diffusion_pytorch_model"],
            dtype,
            device,
            None,
        )?;
        let m = Self::new(w.vb(), &cfg)?;
        w.finish()?;
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &Umt5Config {
        &self.cfg
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(rms_normalize(x, self.cfg.layer_norm_epsilon)?.broadcast_mul(w)?)
    }

    /// `[heads, n, n]` bias of one layer for `n` tokens.
    fn position_bias(&self, layer: &Layer, n: usize) -> Result<Tensor> {
        let mut idx = Vec::with_capacity(n * n);
        for q in 0..n as i64 {
            for k in 0..n as i64 {
                idx.push(relative_bucket(
                    k - q,
                    self.cfg.relative_attention_num_buckets,
                    self.cfg.relative_attention_max_distance,
                ) as u32);
            }
        }
        let idx = Tensor::from_vec(idx, n * n, &self.device)?;
        let bias = layer.rel_bias.index_select(&idx, 0)?; // [n*n, heads]
        Ok(bias.t()?.reshape((self.cfg.num_heads, n, n))?)
    }

    /// Hidden states `[1, n, d_model]` of the final layer for token ids (no padding: padded
    /// positions would be masked out and cut off anyway).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let n = ids.len();
        if n == 0 {
            return Err(DiffusionError::InvalidInput("no tokens to encode".into()));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab_size) {
            return Err(DiffusionError::InvalidInput(format!(
                "token id {bad} is outside the text encoder's vocabulary of {}; the tokenizer does not belong to this text encoder",
                self.cfg.vocab_size
            )));
        }
        let h = self.cfg.num_heads;
        let dk = self.cfg.d_kv;
        let ids_t = Tensor::from_vec(ids.to_vec(), n, &self.device)?;
        let mut x = self.embed.index_select(&ids_t, 0)?.unsqueeze(0)?;
        let dtype = x.dtype();
        for layer in &self.layers {
            let hn = self.norm(&x, &layer.ln1)?;
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((1, n, h, dk))?.transpose(1, 2)?.contiguous()?)
            };
            let q = split(layer.q.forward(&hn)?)?;
            let k = split(layer.k.forward(&hn)?)?;
            let v = split(layer.v.forward(&hn)?)?;
            // T5 attention has no 1/sqrt(d) scaling; the position bias is added instead.
            let scores = q.matmul(&k.t()?)?;
            let bias = self.position_bias(layer, n)?.unsqueeze(0)?;
            let scores = scores
                .broadcast_add(&bias)?
                .to_dtype(compute_dtype(dtype))?;
            let p = softmax_last_dim(&scores)?.to_dtype(dtype)?;
            let o = p.matmul(&v)?.transpose(1, 2)?.reshape((1, n, h * dk))?;
            x = (x + layer.o.forward(&o)?)?;

            let hn = self.norm(&x, &layer.ln2)?;
            let a = layer.wi_0.forward(&hn)?;
            let a = match self.cfg.dense_act_fn.as_str() {
                "relu" => a.relu()?,
                _ => a.gelu()?,
            };
            let a = match &layer.wi_1 {
                Some(w) => (a * w.forward(&hn)?)?,
                None => a,
            };
            x = (x + layer.wo.forward(&a)?)?;
        }
        self.norm(&x, &self.final_norm)
    }
}

/// Cleans a prompt the way the diffusers Wan pipelines do before tokenizing
/// (`prompt_clean`: ftfy's `fix_text`, HTML unescaping twice, whitespace collapsed).
///
/// Of ftfy this does what matters for ordinary prompts: HTML entities (the common named ones
/// and numeric ones), full-width ASCII to ASCII, curly quotes to straight ones, Latin
/// ligatures, control characters. It does not repair mojibake.
///
/// ```
/// use reelsmith_diffusion::clean_prompt;
/// assert_eq!(clean_prompt("  a “red”  ball &amp;amp; a cat\n"), "a \"red\" ball & a cat");
/// assert_eq!(clean_prompt("静态，字幕"), "静态,字幕");
/// ```
pub fn clean_prompt(text: &str) -> String {
    // ftfy unescapes HTML itself when the text has no tags, then diffusers unescapes twice.
    let passes = if text.contains('<') { 2 } else { 3 };
    let mut s = text.to_string();
    for i in 0..passes {
        s = html_unescape(&s);
        if i == 0 {
            s = fix_text(&s);
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fix_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            '\u{3000}' => out.push(' '),
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => out.push('"'),
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB06}' => out.push_str("st"),
            '\r' => out.push('\n'),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 1..];
        let end = tail
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|e| {
            let name = &tail[..e];
            let c = if let Some(num) = name.strip_prefix('#') {
                let v = if let Some(hex) = num.strip_prefix(['x', 'X']) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    num.parse::<u32>().ok()
                };
                v.and_then(char::from_u32)
            } else {
                match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some('\u{A0}'),
                    "hellip" => Some('…'),
                    "mdash" => Some('—'),
                    "ndash" => Some('–'),
                    "lsquo" => Some('‘'),
                    "rsquo" => Some('’'),
                    "ldquo" => Some('“'),
                    "rdquo" => Some('”'),
                    "copy" => Some('©'),
                    "reg" => Some('®'),
                    "trade" => Some('™'),
                    "deg" => Some('°'),
                    "times" => Some('×'),
                    _ => None,
                }
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The tokenizer and text encoder of a Wan model, producing prompt embeddings as the
/// pipelines do.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    model: Umt5Encoder,
}

impl TextEncoder {
    /// Loads `tokenizer/tokenizer.json` and the `text_encoder` folder of a Wan model folder.
    pub fn load(model_dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load_parts(
            &model_dir.join("tokenizer"),
            &model_dir.join("text_encoder"),
            dtype,
            device,
        )
    }

    /// Loads a tokenizer folder (with `tokenizer.json`) and a text encoder folder.
    pub fn load_parts(
        tokenizer_dir: &Path,
        encoder_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer_path = tokenizer_dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(DiffusionError::Tokenizer {
                path: tokenizer_path,
                message: "missing; the Wan tokenizer (google/umt5-xxl) needs tokenizer.json — save it with transformers: AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)".into(),
            });
        }
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| DiffusionError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let model = Umt5Encoder::load(encoder_dir, dtype, device)?;
        Ok(Self {
            tokenizer,
            tokenizer_path,
            model,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &Umt5Encoder {
        &self.model
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.model.cfg.d_model
    }

    /// Token ids of a prompt after [`clean_prompt`], with `</s>`, truncated to `max_len`.
    pub fn token_ids(&self, prompt: &str, max_len: usize) -> Result<Vec<u32>> {
        let mut tok = self.tokenizer.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| DiffusionError::Tokenizer {
            path: self.tokenizer_path.clone(),
            message: e.to_string(),
        })?;
        tok.with_padding(None);
        let enc =
            tok.encode(clean_prompt(prompt), true)
                .map_err(|e| DiffusionError::Tokenizer {
                    path: self.tokenizer_path.clone(),
                    message: e.to_string(),
                })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Prompt embeddings `[1, max_len, dim]` as the Wan pipelines build them: the encoder's
    /// output for the prompt's tokens followed by zeros.
    pub fn encode(&self, prompt: &str, max_len: usize) -> Result<Tensor> {
        let ids = self.token_ids(prompt, max_len)?;
        let h = self.model.forward(&ids)?;
        pad_embeddings(&h, max_len)
    }
}

/// Zero-pads `[1, n, d]` embeddings to `[1, len, d]` (or truncates).
pub(crate) fn pad_embeddings(h: &Tensor, len: usize) -> Result<Tensor> {
    let (b, n, d) = h.dims3()?;
    if n >= len {
        return Ok(h.narrow(1, 0, len)?);
    }
    let z = Tensor::zeros((b, len - n, d), h.dtype(), h.device())?;
    Ok(Tensor::cat(&[h, &z], 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_buckets_match_transformers() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/refs/text.safetensors");
        let r = candle_core::safetensors::load(p, &Device::Cpu).unwrap();
        let want: Vec<f32> = r["buckets"].to_vec1().unwrap();
        for (i, w) in want.iter().enumerate() {
            let rel = i as i64 - 600;
            assert_eq!(relative_bucket(rel, 32, 128) as f32, *w, "offset {rel}");
        }
    }

    #[test]
    fn html_entities_and_widths() {
        assert_eq!(
            clean_prompt("a &lt;b&gt; &#233;&#x41; &unknown; & x"),
            "a <b> éA &unknown; & x"
        );
        assert_eq!(clean_prompt("ＡＢＣ　ｘ"), "ABC x");
        assert_eq!(clean_prompt("\u{FB01}ne\t\tday"), "fine day");
    }
}
