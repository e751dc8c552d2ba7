//! Where burn runs: its Flex CPU backend, always built, or libtorch (CPU or CUDA) when aetrain
//! is built with `--features tch`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// A compute device for training and for the trainer's burn-side transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainDevice {
    /// burn's Flex backend on the CPU.
    #[default]
    Cpu,
    /// libtorch on the CPU.
    LibTorch,
    /// libtorch on CUDA GPU number N.
    Cuda(usize),
}

/// Why a device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}': expected cpu, libtorch, cuda or cuda:N")]
    Unknown(String),
    #[error(
        "device '{0}' runs on libtorch, and this aetrain was built without it \
         (build with `--features tch`; scripts/gpu-build does)"
    )]
    NotBuilt(TrainDevice),
    #[error("device '{device}' is not there: libtorch sees {found} CUDA device(s)")]
    Missing { device: TrainDevice, found: i64 },
}

impl FromStr for TrainDevice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" | "flex" => Ok(Self::Cpu),
            "libtorch" | "tch" => Ok(Self::LibTorch),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for TrainDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::LibTorch => write!(f, "libtorch"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl TrainDevice {
    /// The burn device, or why this build cannot run it.
    pub fn burn(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            // burn marks burn-tch deprecated in favour of CubeCL; libtorch is the path the
            // GPU machines here are set up for (PyTorch installed, no Rust toolchain).
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::LibTorch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::Cuda(n) => {
                // libtorch panics on its first tensor when the GPU is missing: ask first.
                let found = tch::Cuda::device_count();
                if (n as i64) < found {
                    // Fixed crop sizes: let cuDNN pick its fastest kernels once.
                    tch::Cuda::cudnn_set_benchmark(true);
                    Ok(Device::libtorch_cuda(n))
                } else {
                    Err(DeviceError::Missing {
                        device: self,
                        found,
                    })
                }
            }
            #[cfg(not(feature = "tch"))]
            other => Err(DeviceError::NotBuilt(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (name, device) in [
            ("cpu", TrainDevice::Cpu),
            ("libtorch", TrainDevice::LibTorch),
            ("cuda:0", TrainDevice::Cuda(0)),
            ("cuda:3", TrainDevice::Cuda(3)),
        ] {
            assert_eq!(name.parse::<TrainDevice>().unwrap(), device);
            assert_eq!(device.to_string(), name);
        }
        assert_eq!("cuda".parse::<TrainDevice>().unwrap(), TrainDevice::Cuda(0));
        assert!(matches!(
            "tpu".parse::<TrainDevice>(),
            Err(DeviceError::Unknown(_))
        ));
        assert!(matches!(
            "cuda:x".parse::<TrainDevice>(),
            Err(DeviceError::Unknown(_))
        ));
    }

    #[test]
    fn the_cpu_device_is_always_there_and_libtorch_only_with_the_feature() {
        assert!(TrainDevice::Cpu.burn().is_ok());
        let libtorch = TrainDevice::LibTorch.burn();
        assert_eq!(libtorch.is_ok(), cfg!(feature = "tch"));
        if let Err(e) = libtorch {
            assert!(e.to_string().contains("--features tch"), "{e}");
        }
    }
}
