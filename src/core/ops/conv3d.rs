//! 3D convolution, transposed 3D convolution and zero padding on `(B, C, D, H, W)` tensors, with
//! torch's argument conventions (`torch.nn.functional.conv3d` / `conv_transpose3d`, weights
//! `(Cout, Cin/groups, kD, kH, kW)` and `(Cin, Cout/groups, kD, kH, kW)`).
//!
//! Two implementations, both differentiable through candle's autograd:
//!
//! * **CPU, f32** (the default there): a custom op (`conv3d_cpu.rs`) — a direct convolution with
//!   an AVX-512 or AVX2+FMA register-blocked kernel on a padded channels-last copy of the input,
//!   or tiled im2col + gemm on CPUs without them. Its backward runs on the same kernels.
//! * **Composite** (every other device or dtype): the sum over kernel depth of candle `conv2d`s
//!   on the `(B·D', Cin, H, W)` depth slices (or of one-row `conv2d`s over (depth, row) slices when the
//!   H/W stride, dilation or padding differ), so autograd and the device's conv2d do the work.
//!
//! The transposed convolution is the convolution of the zero-inserted input with the flipped,
//! in/out-swapped kernel, so it reuses whichever conv3d the device gets.

use super::conv3d_cpu::{Conv3dCpuOp, CpuKernel, Geom, detect_isa};
use candle_core::{DType, Module, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};

/// Parameters of [`conv3d`], per spatial axis (D, H, W), as in `torch.nn.Conv3d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dConfig {
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
    pub groups: usize,
}

impl Default for Conv3dConfig {
    fn default() -> Self {
        Self {
            stride: [1; 3],
            padding: [0; 3],
            dilation: [1; 3],
            groups: 1,
        }
    }
}

impl Conv3dConfig {
    /// The same stride and padding on all three axes, no dilation, one group.
    pub fn uniform(stride: usize, padding: usize) -> Self {
        Self {
            stride: [stride; 3],
            padding: [padding; 3],
            ..Self::default()
        }
    }
}

/// Parameters of [`conv_transpose3d`], as in `torch.nn.ConvTranspose3d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose3dConfig {
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub output_padding: [usize; 3],
    pub dilation: [usize; 3],
    pub groups: usize,
}

impl Default for ConvTranspose3dConfig {
    fn default() -> Self {
        Self {
            stride: [1; 3],
            padding: [0; 3],
            output_padding: [0; 3],
            dilation: [1; 3],
            groups: 1,
        }
    }
}

/// Which implementation [`conv3d_with`] uses. `Auto` is what [`conv3d`] does: the CPU custom op
/// for f32 tensors on the CPU (direct SIMD kernel when the CPU has AVX2+FMA or AVX-512, else
/// im2col + gemm), the composite of candle convolutions otherwise. The others exist for tests and
/// benchmarks; the `Cpu*` ones fail off the CPU or for other dtypes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Conv3dImpl {
    #[default]
    Auto,
    /// Sum over kernel depth (and rows) of candle `conv2d` calls: any device, any float dtype.
    Composite,
    /// Tiled im2col of a padded channels-last copy, then candle's matmul (CPU, f32).
    CpuIm2col,
    /// Direct convolution with an AVX-512 / AVX2+FMA micro-kernel (CPU, f32, x86_64).
    CpuDirect,
}

/// The instruction set of the direct CPU kernel on this machine (`"avx512f"`, `"avx2+fma"`), or
/// `None` when [`conv3d`] falls back to im2col + gemm on the CPU.
pub fn conv3d_cpu_kernel() -> Option<&'static str> {
    detect_isa().map(|i| i.name())
}

/// Output length of a convolution along one axis, or an error when the kernel does not fit.
fn conv_out_len(len: usize, k: usize, stride: usize, pad: usize, dil: usize, axis: usize) -> Result<usize> {
    let reach = dil * (k - 1) + 1;
    if len + 2 * pad < reach {
        bail!("conv3d: kernel extent {reach} exceeds the padded input ({len} + 2·{pad}) on axis {axis}")
    }
    Ok((len + 2 * pad - reach) / stride + 1)
}

fn geometry(x: &Tensor, w: &Tensor, cfg: &Conv3dConfig) -> Result<Geom> {
    let (b, cin, d, h, wd) = x.dims5()?;
    let (cout, cg, kd, kh, kw) = w.dims5()?;
    let g = cfg.groups;
    if g == 0 || !cin.is_multiple_of(g) || !cout.is_multiple_of(g) {
        bail!("conv3d: {g} groups must divide the input ({cin}) and output ({cout}) channels")
    }
    if cg * g != cin {
        bail!("conv3d: weight takes {cg} channels per group but the input has {cin} in {g} groups")
    }
    if cfg.stride.contains(&0) || cfg.dilation.contains(&0) || [kd, kh, kw].contains(&0) {
        bail!("conv3d: stride, dilation and kernel sizes must be positive ({cfg:?})")
    }
    let inp = [d, h, wd];
    let k = [kd, kh, kw];
    let mut out = [0; 3];
    for i in 0..3 {
        out[i] = conv_out_len(inp[i], k[i], cfg.stride[i], cfg.padding[i], cfg.dilation[i], i)?;
    }
    Ok(Geom {
        b,
        cin,
        cout,
        groups: g,
        inp,
        k,
        stride: cfg.stride,
        pad: cfg.padding,
        dil: cfg.dilation,
        out,
    })
}

/// 3D convolution as `torch.nn.functional.conv3d(x, w, bias, stride, padding, dilation, groups)`.
///
/// `x`: `(B, Cin, D, H, W)`; `w`: `(Cout, Cin/groups, kD, kH, kW)`; `bias`: `(Cout)`.
/// Returns `(B, Cout, D', H', W')` with `D' = (D + 2p - d(k-1) - 1)/s + 1` per axis.
pub fn conv3d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: &Conv3dConfig) -> Result<Tensor> {
    conv3d_with(x, w, bias, cfg, Conv3dImpl::Auto)
}

/// [`conv3d`] with an explicit implementation (see [`Conv3dImpl`]).
pub fn conv3d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: &Conv3dConfig,
    imp: Conv3dImpl,
) -> Result<Tensor> {
    let geom = geometry(x, w, cfg)?;
    if let Some(b) = bias
        && b.dims() != [geom.cout]
    {
        bail!("conv3d: bias of shape {:?} for {} output channels", b.dims(), geom.cout)
    }
    let cpu_f32 = x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && bias.is_none_or(|b| b.device().is_cpu() && b.dtype() == DType::F32);
    let kernel = match imp {
        Conv3dImpl::Composite => None,
        Conv3dImpl::Auto if !cpu_f32 => None,
        Conv3dImpl::Auto => Some(detect_isa().map_or(CpuKernel::Im2col, CpuKernel::Direct)),
        Conv3dImpl::CpuIm2col | Conv3dImpl::CpuDirect if !cpu_f32 => {
            bail!("conv3d: {imp:?} needs f32 tensors on the cpu")
        }
        Conv3dImpl::CpuIm2col => Some(CpuKernel::Im2col),
        Conv3dImpl::CpuDirect => match detect_isa() {
            Some(isa) => Some(CpuKernel::Direct(isa)),
            None => bail!("conv3d: this cpu has no AVX2+FMA/AVX-512 for the direct kernel"),
        },
    };
    match kernel {
        Some(kernel) => {
            let op = Conv3dCpuOp { geom, kernel };
            match bias {
                None => x.apply_op2(w, op),
                Some(b) => x.apply_op3(w, b, op),
            }
        }
        None => composite(x, w, bias, &geom),
    }
}

/// Indices `start, start + step, …` (`n` of them) as a u32 tensor on `x`'s device.
fn strided_ids(x: &Tensor, start: usize, step: usize, n: usize) -> Result<Tensor> {
    let ids: Vec<u32> = (0..n).map(|i| (start + i * step) as u32).collect();
    Tensor::from_vec(ids, n, x.device())
}

/// `n` entries of axis `dim` starting at `start` with stride `step` (narrow when `step == 1`).
fn take_strided(x: &Tensor, dim: usize, start: usize, step: usize, n: usize) -> Result<Tensor> {
    if step == 1 || n == 1 {
        x.narrow(dim, start, n)
    } else {
        x.contiguous()?.index_select(&strided_ids(x, start, step, n)?, dim)
    }
}

/// The composite conv3d: candle conv2d per kernel depth (one-row conv2d per depth and row when
/// the H/W parameters differ). Works on every device and is differentiable by candle's autograd.
fn composite(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &Geom) -> Result<Tensor> {
    let [dout, hout, wout] = g.out;
    // candle's conv2d needs equal H/W stride and dilation; otherwise one-row convs per kernel row.
    let square = g.stride[1] == g.stride[2] && g.dil[1] == g.dil[2];
    // Voxels at the far end that no kernel tap reaches. candle's conv2d backward derives one
    // output padding for both H and W from H, so let it pad only when nothing is left over;
    // otherwise pad explicitly and crop those voxels (they get zero gradient either way).
    let leftover = |i: usize| g.inp[i] + 2 * g.pad[i] - ((g.out[i] - 1) * g.stride[i] + g.dil[i] * (g.k[i] - 1) + 1);
    let implicit_hw = square && g.pad[1] == g.pad[2] && leftover(1) == 0 && leftover(2) == 0;
    let conv_pad = if implicit_hw { g.pad[1] } else { 0 };
    let mut xp = x.clone();
    for i in 0..3 {
        if i > 0 && implicit_hw {
            continue;
        }
        if g.pad[i] > 0 {
            xp = xp.pad_with_zeros(2 + i, g.pad[i], g.pad[i])?;
        }
        if leftover(i) > 0 {
            xp = xp.narrow(2 + i, 0, g.inp[i] + 2 * g.pad[i] - leftover(i))?;
        }
    }
    let (_, _, _, hp, wp) = xp.dims5()?;
    let mut acc: Option<Tensor> = None;
    for kd in 0..g.k[0] {
        // (B, Cin, D', Hp, Wp) → (B·D', Cin, Hp, Wp)
        let xs = take_strided(&xp, 2, kd * g.dil[0], g.stride[0], dout)?
            .permute((0, 2, 1, 3, 4))?
            .reshape((g.b * dout, g.cin, hp, wp))?;
        let wk = w.narrow(2, kd, 1)?.squeeze(2)?.contiguous()?;
        let y = if square {
            xs.conv2d(&wk, conv_pad, g.stride[1], g.dil[1], g.groups)?
        } else {
            // Sum over kernel rows of 1-row conv2ds along W on the (B·D'·H', Cin, 1, Wp) row
            // slices (candle's conv1d backward gives wrong input gradients here).
            let mut rows_acc: Option<Tensor> = None;
            for kh in 0..g.k[1] {
                let xr = take_strided(&xs, 2, kh * g.dil[1], g.stride[1], hout)?
                    .permute((0, 2, 1, 3))?
                    .reshape((g.b * dout * hout, g.cin, 1, wp))?;
                let wr = wk.narrow(2, kh, 1)?.contiguous()?;
                let yr = xr.conv2d(&wr, 0, g.stride[2], g.dil[2], g.groups)?.squeeze(2)?;
                rows_acc = Some(match rows_acc {
                    None => yr,
                    Some(a) => (a + yr)?,
                });
            }
            let yr = rows_acc.expect("kernel height is positive");
            yr.reshape((g.b * dout, hout, g.cout, wout))?.permute((0, 2, 1, 3))?
        };
        acc = Some(match acc {
            None => y,
            Some(a) => (a + y)?,
        });
    }
    let y = acc.expect("kernel depth is positive");
    let y = y.reshape((g.b, dout, g.cout, hout, wout))?.permute((0, 2, 1, 3, 4))?;
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, g.cout, 1, 1, 1))?)?,
        None => y,
    };
    y.contiguous()
}

/// Zero padding of the three spatial axes of a `(B, C, D, H, W)` tensor: `pads[i] = [before,
/// after]` for axis D, H, W (torch's `F.pad(x, (w0, w1, h0, h1, d0, d1))` lists them in reverse).
pub fn pad3d(x: &Tensor, pads: [[usize; 2]; 3]) -> Result<Tensor> {
    if x.rank() != 5 {
        bail!("pad3d: expected (B, C, D, H, W), got {:?}", x.dims())
    }
    let mut y = x.clone();
    for (i, [before, after]) in pads.into_iter().enumerate() {
        if before > 0 || after > 0 {
            y = y.pad_with_zeros(2 + i, before, after)?;
        }
    }
    Ok(y)
}

/// Inserts `s - 1` zeros between consecutive entries of axis `dim`.
fn zero_insert(x: &Tensor, dim: usize, s: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    if s == 1 || n <= 1 {
        return Ok(x.clone());
    }
    let mut dims = x.dims().to_vec();
    let y = x.unsqueeze(dim + 1)?.pad_with_zeros(dim + 1, 0, s - 1)?;
    dims[dim] = n * s;
    y.reshape(dims)?.narrow(dim, 0, (n - 1) * s + 1)
}

/// Transposed 3D convolution as `torch.nn.functional.conv_transpose3d(x, w, bias, stride,
/// padding, output_padding, groups, dilation)`.
///
/// `x`: `(B, Cin, D, H, W)`; `w`: `(Cin, Cout/groups, kD, kH, kW)`; `bias`: `(Cout)`. Output
/// length per axis `(L-1)s - 2p + d(k-1) + op + 1`. Unlike torch, any `output_padding` is
/// accepted (the extra voxels get only the bias).
pub fn conv_transpose3d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, cfg: &ConvTranspose3dConfig) -> Result<Tensor> {
    conv_transpose3d_with(x, w, bias, cfg, Conv3dImpl::Auto)
}

/// [`conv_transpose3d`] with an explicit conv3d implementation.
pub fn conv_transpose3d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: &ConvTranspose3dConfig,
    imp: Conv3dImpl,
) -> Result<Tensor> {
    let (_, cin, _, _, _) = x.dims5()?;
    let (wcin, cog, kd, kh, kw) = w.dims5()?;
    let g = cfg.groups;
    if g == 0 || wcin != cin || !cin.is_multiple_of(g) {
        bail!(
            "conv_transpose3d: weight {:?} for {cin} input channels in {g} groups",
            w.dims()
        )
    }
    if cfg.stride.contains(&0) || cfg.dilation.contains(&0) || [kd, kh, kw].contains(&0) {
        bail!("conv_transpose3d: stride, dilation and kernel sizes must be positive ({cfg:?})")
    }
    let k = [kd, kh, kw];
    // Zero-insert, then pad by d(k-1) - p before and d(k-1) - p + op after (cropping if negative).
    let mut xi = x.clone();
    for (i, &ki) in k.iter().enumerate() {
        let dim = 2 + i;
        xi = zero_insert(&xi, dim, cfg.stride[i])?;
        let full = (cfg.dilation[i] * (ki - 1)) as isize;
        let before = full - cfg.padding[i] as isize;
        let after = before + cfg.output_padding[i] as isize;
        let len = xi.dim(dim)? as isize;
        let start = (-before).max(0);
        let stop = len - (-after).max(0);
        if stop - start + before.max(0) + after.max(0) < full + 1 {
            bail!(
                "conv_transpose3d: padding {:?} leaves no output on axis {i}",
                cfg.padding
            )
        }
        if start > 0 || stop < len {
            xi = xi.narrow(dim, start as usize, (stop - start) as usize)?;
        }
        if before > 0 || after > 0 {
            xi = xi.pad_with_zeros(dim, before.max(0) as usize, after.max(0) as usize)?;
        }
    }
    // (Cin, Cout/g, k…) → (Cout, Cin/g, k…), flipped in space.
    let cig = cin / g;
    let wt = w
        .reshape((g, cig, cog, kd * kh * kw))?
        .transpose(1, 2)?
        .reshape((g * cog, cig, kd, kh, kw))?
        .flip(&[2, 3, 4])?;
    let conv_cfg = Conv3dConfig {
        stride: [1; 3],
        padding: [0; 3],
        dilation: cfg.dilation,
        groups: g,
    };
    conv3d_with(&xi, &wt, bias, &conv_cfg, imp)
}

/// Torch's default initialisation of conv weights and biases: U(±1/√fan_in) (kaiming uniform
/// with a = √5 gives exactly this bound).
fn torch_default_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// `torch.nn.Conv3d`: `weight` `(out, in/groups, kD, kH, kW)` and optional `bias` `(out)`.
#[derive(Clone, Debug)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv3dConfig,
}

impl Conv3d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv3dConfig) -> Self {
        Self { weight, bias, cfg }
    }

    /// Reads `weight` (and `bias` when `bias` is true) under `vb`, with torch's shapes; missing
    /// tensors of a `VarMap`-backed builder get torch's default initialisation.
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 3],
        cfg: Conv3dConfig,
        bias: bool,
    ) -> Result<Self> {
        if cfg.groups == 0 || !in_channels.is_multiple_of(cfg.groups) {
            bail!(
                "Conv3d: {} groups do not divide {in_channels} input channels",
                cfg.groups
            )
        }
        let cg = in_channels / cfg.groups;
        let init = torch_default_init(cg * kernel.iter().product::<usize>());
        let weight = vb.get_with_hints((out_channels, cg, kernel[0], kernel[1], kernel[2]), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, cfg))
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> &Conv3dConfig {
        &self.cfg
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv3d(x, &self.weight, self.bias.as_ref(), &self.cfg)
    }
}

/// `torch.nn.ConvTranspose3d`: `weight` `(in, out/groups, kD, kH, kW)` and optional `bias` `(out)`.
#[derive(Clone, Debug)]
pub struct ConvTranspose3d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: ConvTranspose3dConfig,
}

impl ConvTranspose3d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: ConvTranspose3dConfig) -> Self {
        Self { weight, bias, cfg }
    }

    /// Reads `weight` (and `bias`) under `vb` with torch's shapes and default initialisation.
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 3],
        cfg: ConvTranspose3dConfig,
        bias: bool,
    ) -> Result<Self> {
        if cfg.groups == 0 || !out_channels.is_multiple_of(cfg.groups) {
            bail!(
                "ConvTranspose3d: {} groups do not divide {out_channels} output channels",
                cfg.groups
            )
        }
        let cog = out_channels / cfg.groups;
        // torch computes fan_in from weight.size(1) · kernel for transposed convs too.
        let init = torch_default_init(cog * kernel.iter().product::<usize>());
        let weight = vb.get_with_hints((in_channels, cog, kernel[0], kernel[1], kernel[2]), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_channels, "bias", init)?)
        } else {
            None
        };
        Ok(Self::new(weight, bias, cfg))
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> &ConvTranspose3dConfig {
        &self.cfg
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv_transpose3d(x, &self.weight, self.bias.as_ref(), &self.cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // Small deterministic values without an RNG dependency.
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let m = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        d / m.max(1e-6)
    }

    /// Plain 7-loop reference.
    fn naive(x: &Tensor, w: &Tensor, b: Option<&Tensor>, c: &Conv3dConfig) -> Tensor {
        let g = geometry(x, w, c).unwrap();
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bv = b.map(|b| b.to_vec1::<f32>().unwrap());
        let [d, h, wd] = g.inp;
        let [od_n, oh_n, ow_n] = g.out;
        let (cg, cog) = (g.cin / g.groups, g.cout / g.groups);
        let mut out = vec![0f32; g.b * g.cout * od_n * oh_n * ow_n];
        let mut i = 0;
        for bi in 0..g.b {
            for co in 0..g.cout {
                let grp = co / cog;
                for od in 0..od_n {
                    for oh in 0..oh_n {
                        for ow in 0..ow_n {
                            let mut s = bv.as_ref().map_or(0.0, |v| v[co]) as f64;
                            for c in 0..cg {
                                for kd in 0..g.k[0] {
                                    for kh in 0..g.k[1] {
                                        for kw in 0..g.k[2] {
                                            let z = (od * g.stride[0] + kd * g.dil[0]) as isize - g.pad[0] as isize;
                                            let y = (oh * g.stride[1] + kh * g.dil[1]) as isize - g.pad[1] as isize;
                                            let xx = (ow * g.stride[2] + kw * g.dil[2]) as isize - g.pad[2] as isize;
                                            if z < 0
                                                || y < 0
                                                || xx < 0
                                                || z >= d as isize
                                                || y >= h as isize
                                                || xx >= wd as isize
                                            {
                                                continue;
                                            }
                                            let ci = grp * cg + c;
                                            let xi = (((bi * g.cin + ci) * d + z as usize) * h + y as usize) * wd
                                                + xx as usize;
                                            let wi = (((co * cg + c) * g.k[0] + kd) * g.k[1] + kh) * g.k[2] + kw;
                                            s += xv[xi] as f64 * wv[wi] as f64;
                                        }
                                    }
                                }
                            }
                            out[i] = s as f32;
                            i += 1;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(out, (g.b, g.cout, od_n, oh_n, ow_n), &Device::Cpu).unwrap()
    }

    #[test]
    fn every_implementation_matches_a_naive_loop() {
        let cases = [
            (
                vec![2, 4, 5, 6, 7],
                vec![6, 4, 3, 3, 3],
                Conv3dConfig::uniform(1, 1),
                true,
            ),
            (
                vec![1, 4, 7, 6, 9],
                vec![6, 2, 3, 2, 3],
                Conv3dConfig {
                    stride: [2, 1, 2],
                    padding: [1, 0, 2],
                    dilation: [1, 2, 1],
                    groups: 2,
                },
                false,
            ),
            (vec![1, 3, 6, 6, 6], vec![40, 3, 1, 1, 1], Conv3dConfig::default(), true),
            (
                vec![1, 2, 9, 8, 8],
                vec![33, 2, 3, 3, 3],
                Conv3dConfig {
                    stride: [2; 3],
                    padding: [0; 3],
                    dilation: [2; 3],
                    groups: 1,
                },
                true,
            ),
        ];
        for (i, (xs, ws, cfg, with_bias)) in cases.iter().enumerate() {
            let x = rand(xs, 1 + i as u64);
            let w = rand(ws, 100 + i as u64);
            let b = rand(&[ws[0]], 200 + i as u64);
            let b = with_bias.then_some(&b);
            let want = naive(&x, &w, b, cfg);
            let mut imps = vec![Conv3dImpl::Composite, Conv3dImpl::CpuIm2col];
            if conv3d_cpu_kernel().is_some() {
                imps.push(Conv3dImpl::CpuDirect);
            }
            for imp in imps {
                let got = conv3d_with(&x, &w, b, cfg, imp).unwrap();
                assert_eq!(got.dims(), want.dims(), "case {i} {imp:?}");
                let e = max_rel(&got, &want);
                assert!(e < 1e-5, "case {i} {imp:?}: rel err {e}");
            }
        }
    }

    #[test]
    fn transposed_matches_the_adjoint_of_conv() {
        // <conv(x), y> = <x, conv_transpose(y)> for the same weight.
        let cfg = Conv3dConfig {
            stride: [2, 1, 2],
            padding: [1, 1, 0],
            dilation: [1, 1, 2],
            groups: 2,
        };
        let x = rand(&[1, 4, 7, 6, 8], 7);
        let w = rand(&[6, 2, 3, 3, 2], 8);
        let y = conv3d(&x, &w, None, &cfg).unwrap();
        let gy = rand(y.dims(), 9);
        let g = geometry(&x, &w, &cfg).unwrap();
        let op: [usize; 3] = std::array::from_fn(|i| {
            g.inp[i] + 2 * g.pad[i] - ((g.out[i] - 1) * g.stride[i] + g.dil[i] * (g.k[i] - 1) + 1)
        });
        let tcfg = ConvTranspose3dConfig {
            stride: cfg.stride,
            padding: cfg.padding,
            output_padding: op,
            dilation: cfg.dilation,
            groups: 2,
        };
        for imp in [Conv3dImpl::Composite, Conv3dImpl::Auto] {
            let xt = conv_transpose3d_with(&gy, &w, None, &tcfg, imp).unwrap();
            assert_eq!(xt.dims(), x.dims());
            let lhs = (&y * &gy).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            let rhs = (&x * &xt).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{imp:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn cpu_op_gradients_match_the_composite() {
        use candle_core::Var;
        let cfg = Conv3dConfig {
            stride: [1, 2, 1],
            padding: [1, 1, 0],
            dilation: [1, 1, 1],
            groups: 1,
        };
        let x0 = rand(&[2, 3, 5, 6, 5], 11);
        let w0 = rand(&[4, 3, 3, 3, 2], 12);
        let b0 = rand(&[4], 13);
        let mut grads = vec![];
        for imp in [Conv3dImpl::Composite, Conv3dImpl::CpuIm2col, Conv3dImpl::Auto] {
            let (x, w, b) = (
                Var::from_tensor(&x0).unwrap(),
                Var::from_tensor(&w0).unwrap(),
                Var::from_tensor(&b0).unwrap(),
            );
            let y = conv3d_with(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), &cfg, imp).unwrap();
            let r = rand(y.dims(), 14);
            let gs = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
            grads.push([x.as_tensor(), w.as_tensor(), b.as_tensor()].map(|t| gs.get(t).unwrap().clone()));
        }
        for (i, g) in grads.iter().enumerate().skip(1) {
            for (j, (a, b)) in g.iter().zip(&grads[0]).enumerate() {
                assert!(max_rel(a, b) < 1e-5, "impl {i} grad {j}: {}", max_rel(a, b));
            }
        }
    }

    #[test]
    fn pad3d_pads_each_axis() {
        let x = rand(&[1, 1, 2, 3, 4], 3);
        let y = pad3d(&x, [[0, 1], [2, 0], [1, 1]]).unwrap();
        assert_eq!(y.dims(), &[1, 1, 3, 5, 6]);
        let inner = y
            .narrow(2, 0, 2)
            .unwrap()
            .narrow(3, 2, 3)
            .unwrap()
            .narrow(4, 1, 4)
            .unwrap();
        assert_eq!(max_rel(&inner, &x), 0.0);
        let total = |t: &Tensor| t.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((total(&y) - total(&x)).abs() < 1e-5);
    }
}
