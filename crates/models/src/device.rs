//! Choice of the compute device and of the floating-point type weights run in.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::ModelError;

/// Where models run: `cpu`, `cuda[:N]`, `metal[:N]` or `auto` (the first GPU compiled in
/// and present, else the CPU).
///
/// CUDA and Metal need this crate's `cuda` or `metal` cargo feature (the stage crates and
/// the facade forward theirs to it).
///
/// ```
/// use reelsmith_models::DeviceChoice;
/// assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
/// assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
/// assert!("tpu".parse::<DeviceChoice>().is_err());
/// assert!(DeviceChoice::Cpu.device().unwrap().is_cpu());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU (the default; always available).
    #[default]
    Cpu,
    /// NVIDIA GPU with this ordinal.
    Cuda(usize),
    /// Apple GPU with this ordinal.
    Metal(usize),
    /// CUDA if compiled in and present, else Metal likewise, else the CPU.
    Auto,
}

impl DeviceChoice {
    /// Opens the device. Fails with [`ModelError::Device`] where the backend is not compiled
    /// in or no such device exists.
    pub fn device(self) -> Result<Device, ModelError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(ModelError::Device(
                        "CUDA support is not compiled in: build with the `cuda` feature".into(),
                    ));
                }
                Device::new_cuda(i).map_err(|e| ModelError::Device(format!("cuda:{i}: {e}")))
            }
            DeviceChoice::Metal(i) => {
                if !candle_core::utils::metal_is_available() {
                    return Err(ModelError::Device(
                        "Metal support is not compiled in: build with the `metal` feature".into(),
                    ));
                }
                Device::new_metal(i).map_err(|e| ModelError::Device(format!("metal:{i}: {e}")))
            }
            DeviceChoice::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(d);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let s = s.trim().to_ascii_lowercase();
        let (name, ordinal) = match s.split_once(':') {
            Some((n, o)) => {
                let o = o.parse::<usize>().map_err(|_| {
                    ModelError::Device(format!("bad device ordinal in {s:?}: expected e.g. cuda:0"))
                })?;
                (n.to_string(), o)
            }
            None => (s.clone(), 0),
        };
        match name.as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(ordinal)),
            "metal" | "mps" => Ok(DeviceChoice::Metal(ordinal)),
            "auto" => Ok(DeviceChoice::Auto),
            _ => Err(ModelError::Device(format!(
                "unknown device {s:?}: use cpu, cuda[:N], metal[:N] or auto"
            ))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Metal(i) => write!(f, "metal:{i}"),
            DeviceChoice::Auto => write!(f, "auto"),
        }
    }
}

/// The floating-point type weights and activations run in: `f32`, `f16`, `bf16` or `auto`
/// (f32 on the CPU, where candle's half-precision kernels are slow; bf16 on CUDA; f16 on
/// Metal).
///
/// Checkpoints stored in another type are converted on load. Norms, softmax and attention
/// scores are computed in f32 whatever the choice (see [`crate::ops`]).
///
/// ```
/// use reelsmith_models::candle_core::{DType, Device};
/// use reelsmith_models::DTypeChoice;
/// assert_eq!("bf16".parse::<DTypeChoice>().unwrap(), DTypeChoice::BF16);
/// assert_eq!(DTypeChoice::Auto.dtype(&Device::Cpu), DType::F32);
/// assert!("f8".parse::<DTypeChoice>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeChoice {
    /// f32 on the CPU, bf16 on CUDA, f16 on Metal (the default).
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl DTypeChoice {
    /// The type to use on `device`.
    pub fn dtype(self, device: &Device) -> DType {
        match self {
            DTypeChoice::F32 => DType::F32,
            DTypeChoice::F16 => DType::F16,
            DTypeChoice::BF16 => DType::BF16,
            DTypeChoice::Auto => {
                if device.is_cuda() {
                    DType::BF16
                } else if device.is_metal() {
                    DType::F16
                } else {
                    DType::F32
                }
            }
        }
    }
}

impl FromStr for DTypeChoice {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DTypeChoice::Auto),
            "f32" | "float32" | "fp32" => Ok(DTypeChoice::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(DTypeChoice::F16),
            "bf16" | "bfloat16" => Ok(DTypeChoice::BF16),
            other => Err(ModelError::InvalidInput(format!(
                "unknown floating-point type {other:?}: use f32, f16, bf16 or auto"
            ))),
        }
    }
}

impl fmt::Display for DTypeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DTypeChoice::Auto => "auto",
            DTypeChoice::F32 => "f32",
            DTypeChoice::F16 => "f16",
            DTypeChoice::BF16 => "bf16",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_round_trip_through_text() {
        for d in [
            DeviceChoice::Cpu,
            DeviceChoice::Cuda(2),
            DeviceChoice::Metal(0),
            DeviceChoice::Auto,
        ] {
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
        }
        for t in [
            DTypeChoice::Auto,
            DTypeChoice::F32,
            DTypeChoice::F16,
            DTypeChoice::BF16,
        ] {
            assert_eq!(t.to_string().parse::<DTypeChoice>().unwrap(), t);
        }
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn gpus_not_compiled_in_are_refused_with_the_feature_to_enable() {
        if !candle_core::utils::cuda_is_available() {
            let e = DeviceChoice::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("`cuda` feature"), "{e}");
        }
        assert!(DeviceChoice::Auto.device().is_ok());
    }
}
