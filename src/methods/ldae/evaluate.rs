//! Evaluation of missing-scan synthesis on held-out cohort subjects: SSIM/MSE by gap, model against baselines.
