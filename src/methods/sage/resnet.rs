//! A user's torchvision ResNet (18/34/50/101/152) as a classifier of the ensemble or as the
//! held-out judge, for generators whose images are photographs (Stable Diffusion): the folder
//! holds the state dict torchvision saves (`.pth`, `.pt` or `.safetensors`, torchvision's key
//! names: `conv1`, `bn1`, `layer1.0.conv1`, …, `fc`) and `labels.txt`, one class name per line in
//! the order of the network's outputs (a line may list synonyms separated by commas, as ImageNet's
//! class names do).
//!
//! The network is written here rather than taken from candle-transformers, whose ResNet cannot
//! be differentiated: candle's max-pool backward needs the kernel to equal the stride, and
//! ResNet's stem pools 3×3 with stride 2. Here that pool is the maximum of nine strided views,
//! which autograd handles. Batch norm runs in eval mode (running statistics).
//!
//! Input handling is torchvision's evaluation transform for its ImageNet weights: images in
//! [0, 1] are resized (antialiased bilinear, differentiable: [`crate::core::ops::resize`]) to
//! 224×224 and normalised with ImageNet's mean and std. Every step is differentiable, so the
//! search can push gradients through the classifier.

use super::classifier::ImageClassifier;
use super::error::{Result, SageError};
use crate::core::manifest::sha256_file;
use crate::core::ops::resize_bilinear_antialias;
use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};
use std::path::{Path, PathBuf};

/// The labels file of a classifier folder.
pub const LABELS_FILE: &str = "labels.txt";
/// torchvision's evaluation size and ImageNet normalisation.
pub const INPUT_SIZE: usize = 224;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
const WEIGHT_EXTENSIONS: [&str; 4] = ["safetensors", "pth", "pt", "bin"];

pub struct TorchvisionResNet {
    name: String,
    depth: usize,
    net: ResNet,
    labels: Vec<String>,
    mean: Tensor,
    std: Tensor,
}

/// Whether `dir` looks like a torchvision classifier folder (a labels file and no model.toml).
pub fn is_resnet_folder(dir: &Path) -> bool {
    dir.join(LABELS_FILE).is_file() && !dir.join(crate::core::manifest::MANIFEST_FILE).is_file()
}

/// The one weights file of a classifier folder.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| SageError::model(dir, format!("cannot be listed ({e})")))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| WEIGHT_EXTENSIONS.contains(&x))
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(SageError::model(
            dir,
            format!("no weights file (.{})", WEIGHT_EXTENSIONS.join(", .")),
        )),
        _ => Err(SageError::model(
            dir,
            format!(
                "more than one weights file ({}); keep one",
                found
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The class names of `labels.txt`: one per line, blank lines refused.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| SageError::model(path, format!("cannot be read ({e})")))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    let labels = match labels.iter().rposition(|l| !l.is_empty()) {
        Some(last) => labels[..=last].to_vec(),
        None => Vec::new(),
    };
    if labels.is_empty() {
        return Err(SageError::model(path, "lists no class names"));
    }
    if let Some(i) = labels.iter().position(String::is_empty) {
        return Err(SageError::model(path, format!("line {} is blank", i + 1)));
    }
    Ok(labels)
}

/// torchvision's depth from the blocks per stage and the block kind.
fn depth_of(blocks: [usize; 4], bottleneck: bool) -> Option<usize> {
    match (blocks, bottleneck) {
        ([2, 2, 2, 2], false) => Some(18),
        ([3, 4, 6, 3], false) => Some(34),
        ([3, 4, 6, 3], true) => Some(50),
        ([3, 4, 23, 3], true) => Some(101),
        ([3, 8, 36, 3], true) => Some(152),
        _ => None,
    }
}

impl TorchvisionResNet {
    /// Loads a classifier folder (see the module doc).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let labels = read_labels(&dir.join(LABELS_FILE))?;
        let file = weights_file(dir)?;
        let checkpoint = load_checkpoint(&file, &LoadOptions::default())?;
        let keys = &checkpoint.tensors;
        let blocks = [1, 2, 3, 4].map(|l| {
            (0..)
                .take_while(|i| keys.contains_key(&format!("layer{l}.{i}.conv1.weight")))
                .count()
        });
        let bottleneck = keys.contains_key("layer1.0.conv3.weight");
        let depth = depth_of(blocks, bottleneck).ok_or_else(|| {
            SageError::model(
                &file,
                format!(
                    "not a torchvision ResNet-18/34/50/101/152 state dict ({blocks:?} {} blocks per stage)",
                    if bottleneck { "bottleneck" } else { "basic" }
                ),
            )
        })?;
        let classes = keys
            .get("fc.weight")
            .map(|w| w.dims()[0])
            .ok_or_else(|| SageError::model(&file, "has no fc.weight (a classifier head)"))?;
        if classes != labels.len() {
            return Err(SageError::model(
                &dir.join(LABELS_FILE),
                format!(
                    "lists {} class names but the network has {classes} outputs",
                    labels.len()
                ),
            ));
        }
        let (net, _) = build_model(&checkpoint, DType::F32, device, false, |vb| {
            ResNet::new(vb, blocks, bottleneck, classes)
        })?;
        let column = |v: [f32; 3]| {
            Tensor::from_vec(v.to_vec(), (1, 3, 1, 1), device).map_err(SageError::compute("ImageNet normalisation"))
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("resnet{depth}"));
        Ok(Self {
            name,
            depth,
            net,
            labels,
            mean: column(MEAN)?,
            std: column(STD)?,
        })
    }

    /// 18, 34, 50, 101 or 152.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The sha256 of a folder's weights file, as the report records it.
    pub fn weights_sha256(dir: &Path) -> Result<String> {
        Ok(sha256_file(&weights_file(dir)?)?)
    }
}

impl ImageClassifier for TorchvisionResNet {
    fn name(&self) -> &str {
        &self.name
    }
    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }
    fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let x = resize_bilinear_antialias(images, INPUT_SIZE, INPUT_SIZE)?;
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        self.net.forward(&x)
    }
}

/// torchvision's `BatchNorm2d` in eval mode, folded into a per-channel scale and shift.
struct FrozenBatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl FrozenBatchNorm {
    fn new(channels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        let mean = vb.get(channels, "running_mean")?;
        let var = vb.get(channels, "running_var")?;
        let scale = weight.div(&(var + 1e-5)?.sqrt()?)?;
        let shift = (bias - mean.mul(&scale)?)?;
        Ok(Self {
            scale: scale.reshape((1, channels, 1, 1))?,
            shift: shift.reshape((1, channels, 1, 1))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> candle_core::Result<Conv2d> {
    let cfg = Conv2dConfig {
        stride,
        padding: k / 2,
        ..Default::default()
    };
    candle_nn::conv2d_no_bias(c_in, c_out, k, cfg, vb)
}

/// A basic (two 3×3) or bottleneck (1×1, 3×3 with the stride, 1×1 ×4) block, torchvision's keys.
struct Block {
    convs: Vec<(Conv2d, FrozenBatchNorm)>,
    downsample: Option<(Conv2d, FrozenBatchNorm)>,
}

impl Block {
    fn new(c_in: usize, width: usize, stride: usize, bottleneck: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let c_out = if bottleneck { width * 4 } else { width };
        let shapes: Vec<(usize, usize, usize, usize)> = if bottleneck {
            vec![(c_in, width, 1, 1), (width, width, 3, stride), (width, c_out, 1, 1)]
        } else {
            vec![(c_in, width, 3, stride), (width, width, 3, 1)]
        };
        let convs = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (a, b, k, s))| {
                Ok((
                    conv(a, b, k, s, vb.pp(format!("conv{}", i + 1)))?,
                    FrozenBatchNorm::new(b, vb.pp(format!("bn{}", i + 1)))?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        let downsample = (stride != 1 || c_in != c_out)
            .then(|| -> candle_core::Result<_> {
                Ok((
                    conv(c_in, c_out, 1, stride, vb.pp("downsample.0"))?,
                    FrozenBatchNorm::new(c_out, vb.pp("downsample.1"))?,
                ))
            })
            .transpose()?;
        Ok(Self { convs, downsample })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        let last = self.convs.len() - 1;
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            y = bn.forward(&c.forward(&y)?)?;
            if i < last {
                y = y.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some((c, bn)) => bn.forward(&c.forward(x)?)?,
            None => x.clone(),
        };
        (y + identity)?.relu()
    }
}

/// torchvision's ResNet: 7×7/2 stem, 3×3/2 max pool, four stages of blocks (widths 64–512),
/// global average pool, `fc`.
struct ResNet {
    stem: (Conv2d, FrozenBatchNorm),
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    fn new(vb: VarBuilder, counts: [usize; 4], bottleneck: bool, classes: usize) -> candle_core::Result<Self> {
        let stem = (
            conv(3, 64, 7, 2, vb.pp("conv1"))?,
            FrozenBatchNorm::new(64, vb.pp("bn1"))?,
        );
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, &count) in counts.iter().enumerate() {
            let width = 64 << stage;
            for i in 0..count {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let block = Block::new(
                    c_in,
                    width,
                    stride,
                    bottleneck,
                    vb.pp(format!("layer{}.{i}", stage + 1)),
                )?;
                c_in = if bottleneck { width * 4 } else { width };
                blocks.push(block);
            }
        }
        let fc = candle_nn::linear(c_in, classes, vb.pp("fc"))?;
        Ok(Self { stem, blocks, fc })
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (c, bn) = &self.stem;
        let mut x = max_pool_3x3_stride2(&bn.forward(&c.forward(x)?)?.relu()?)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        self.fc.forward(&x.mean(D::Minus1)?.mean(D::Minus1)?)
    }
}

/// `nn.MaxPool2d(3, stride=2, padding=1)` of non-negative maps (after a ReLU, so zero padding
/// acts as torch's −∞), as the maximum of nine strided views: differentiable by candle.
pub fn max_pool_3x3_stride2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    // Pad one before and enough after that every view `[d, d + 2·out)` fits.
    let x = x
        .pad_with_zeros(2, 1, 2 * ho + 1 - h)?
        .pad_with_zeros(3, 1, 2 * wo + 1 - w)?;
    let view = |dy: usize, dx: usize| -> candle_core::Result<Tensor> {
        // Rows dy, dy + 2, …: split the 2·out rows into (out, 2) and keep the first of each pair;
        // the same for columns.
        let rows = x
            .narrow(2, dy, 2 * ho)?
            .reshape((n, c, ho, 2, 2 * wo + 2))?
            .narrow(3, 0, 1)?;
        let cols = rows.narrow(4, dx, 2 * wo)?.reshape((n, c, ho, wo, 2))?;
        cols.narrow(4, 0, 1)?.squeeze(4)
    };
    let mut out = view(0, 0)?;
    for (dy, dx) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dy, dx))).skip(1) {
        out = out.maximum(&view(dy, dx)?)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_the_maximum_over_padded_3x3_windows_with_stride_2() {
        for (h, w) in [(7, 6), (8, 5), (1, 2)] {
            let v: Vec<f32> = (0..2 * h * w).map(|i| ((i * 37 % 23) as f32).sqrt()).collect();
            let x = Tensor::from_vec(v.clone(), (1, 2, h, w), &Device::Cpu).unwrap();
            let got = max_pool_3x3_stride2(&x).unwrap();
            let (ho, wo) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
            assert_eq!(got.dims(), [1, 2, ho, wo]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for ch in 0..2 {
                for i in 0..ho {
                    for j in 0..wo {
                        let mut m = f32::MIN;
                        for y in (2 * i).saturating_sub(1)..(2 * i + 2).min(h) {
                            for x in (2 * j).saturating_sub(1)..(2 * j + 2).min(w) {
                                m = m.max(v[ch * h * w + y * w + x]);
                            }
                        }
                        assert_eq!(got[(ch * ho + i) * wo + j], m, "{h}×{w} at {ch},{i},{j}");
                    }
                }
            }
        }
    }

    #[test]
    fn depths_follow_torchvision_and_anything_else_is_refused() {
        assert_eq!(depth_of([2, 2, 2, 2], false), Some(18));
        assert_eq!(depth_of([3, 4, 6, 3], true), Some(50));
        assert_eq!(depth_of([3, 4, 6, 3], false), Some(34));
        assert_eq!(depth_of([2, 2, 2, 2], true), None);
        assert_eq!(depth_of([1, 1, 1, 1], false), None);
    }

    #[test]
    fn labels_files_are_read_line_by_line_and_blank_ones_refused() {
        let dir = std::env::temp_dir().join(format!("lw-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(LABELS_FILE);
        std::fs::write(&p, "tabby, tabby cat\n golden retriever \n\n").unwrap();
        assert_eq!(read_labels(&p).unwrap(), ["tabby, tabby cat", "golden retriever"]);
        std::fs::write(&p, "cat\n\ndog\n").unwrap();
        assert!(read_labels(&p).unwrap_err().to_string().contains("line 2 is blank"));
        std::fs::write(&p, "\n").unwrap();
        assert!(read_labels(&p).unwrap_err().to_string().contains("no class names"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
