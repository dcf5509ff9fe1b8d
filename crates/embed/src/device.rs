//! Choice of the compute device.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::EmbedError;

/// Where the models run: `cpu`, `cuda[:N]`, `metal[:N]` or `auto` (the first GPU compiled in
/// and present, else the CPU).
///
/// CUDA and Metal need the crate's `cuda` or `metal` cargo feature.
///
/// ```
/// use reelsmith_embed::DeviceChoice;
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
    /// Opens the device. Fails with [`EmbedError::Device`] where the backend is not compiled
    /// in or no such device exists.
    pub fn device(self) -> Result<Device, EmbedError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(EmbedError::Device(
                        "CUDA support is not compiled in: build with the `cuda` feature".into(),
                    ));
                }
                Device::new_cuda(i).map_err(|e| EmbedError::Device(format!("cuda:{i}: {e}")))
            }
            DeviceChoice::Metal(i) => {
                if !candle_core::utils::metal_is_available() {
                    return Err(EmbedError::Device(
                        "Metal support is not compiled in: build with the `metal` feature".into(),
                    ));
                }
                Device::new_metal(i).map_err(|e| EmbedError::Device(format!("metal:{i}: {e}")))
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
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self, EmbedError> {
        let s = s.trim().to_ascii_lowercase();
        let (name, ordinal) = match s.split_once(':') {
            Some((n, o)) => {
                let o = o.parse::<usize>().map_err(|_| {
                    EmbedError::Device(format!("bad device ordinal in {s:?}: expected e.g. cuda:0"))
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
            _ => Err(EmbedError::Device(format!(
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
