//! A parameter source for a stage that trains some of a model's tensors and keeps others fixed.
//!
//! LDAE's representation learning (PDAE) trains the semantic encoder and the decoder's shift branch
//! while the pretrained ε-UNet inside the same `ShiftUNet` stays frozen. The networks build themselves
//! from one `VarBuilder`, so this backend answers each name either with a fixed tensor (no `Var`, hence
//! no gradient and no optimiser slot) or with a trainable one created by [`SeededParams`].

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::Init;
use candle_nn::var_builder::{SimpleBackend, VarBuilder};
use std::collections::HashMap;
use std::sync::Arc;

use crate::core::train::SeededParams;

#[derive(Clone)]
pub(super) struct FrozenAndTrainable {
    frozen: Arc<HashMap<String, Tensor>>,
    trainable: SeededParams,
}

impl FrozenAndTrainable {
    pub(super) fn new(frozen: HashMap<String, Tensor>, trainable: SeededParams) -> Self {
        Self {
            frozen: Arc::new(frozen),
            trainable,
        }
    }

    pub(super) fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, device.clone())
    }
}

impl SimpleBackend for FrozenAndTrainable {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.frozen.get(name) {
            Some(t) if t.shape() != &s => {
                candle_core::bail!("frozen tensor {name}: asked {s:?}, have {:?}", t.shape())
            }
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => SimpleBackend::get(&self.trainable, s, name, h, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.frozen.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => self.trainable.get_unchecked(name, dtype, dev),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.frozen.contains_key(name) || self.trainable.contains_tensor(name)
    }
}
