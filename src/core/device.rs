//! The one place that chooses where inference runs: CUDA or Metal when the binary was built
//! with that feature and a device answers, otherwise the CPU. `LW_DEVICE=cpu` forces the CPU.

use candle_core::Device;
use std::sync::OnceLock;

/// The chosen device and a human name for the status bar and `latent-workbench devices`.
pub struct Chosen {
    pub device: Device,
    pub name: String,
}

static CHOSEN: OnceLock<Chosen> = OnceLock::new();

/// The inference device, chosen once per process.
pub fn device() -> &'static Chosen {
    CHOSEN.get_or_init(choose)
}

fn choose() -> Chosen {
    let force_cpu = std::env::var("LW_DEVICE").is_ok_and(|v| v.eq_ignore_ascii_case("cpu"));
    if !force_cpu {
        #[cfg(feature = "cuda")]
        if let Ok(d) = Device::new_cuda(0) {
            return Chosen {
                device: d,
                name: "CUDA GPU 0".into(),
            };
        }
        #[cfg(feature = "metal")]
        if let Ok(d) = Device::new_metal(0) {
            return Chosen {
                device: d,
                name: "Metal GPU 0".into(),
            };
        }
    }
    Chosen {
        device: Device::Cpu,
        name: format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
    }
}

/// Every backend this build knows, whether compiled in, and whether a device answers.
pub fn backends() -> Vec<(&'static str, bool, bool)> {
    vec![
        ("cpu", true, true),
        ("cuda", cfg!(feature = "cuda"), cuda_available()),
        ("metal", cfg!(feature = "metal"), metal_available()),
    ]
}

fn cuda_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        Device::new_cuda(0).is_ok()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

fn metal_available() -> bool {
    #[cfg(feature = "metal")]
    {
        Device::new_metal(0).is_ok()
    }
    #[cfg(not(feature = "metal"))]
    {
        false
    }
}
