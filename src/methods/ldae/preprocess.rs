//! LDAE preprocessing as the reference: resample to the model's spacing, pad/crop about the centre as MONAI's ResizeWithPadOrCrop, min-max to [0,1].
