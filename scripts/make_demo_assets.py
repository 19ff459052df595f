"""Builds assets/demo/: the MNI152 2009 (sym, release a) T1, GM and WM templates resampled to 1.5 mm.

The source files ship inside the nilearn wheel on PyPI (nilearn/datasets/data/); nothing is downloaded
at run time. 1.5 mm is the resolution LDAE's preprocessing uses, and keeps the three files near 1 MB each.

    pip install nilearn nibabel scipy
    python scripts/make_demo_assets.py
"""

import os
import pathlib

import nibabel as nib
import nilearn
import numpy as np
from scipy import ndimage

SPACING_MM = 1.5
OUT = pathlib.Path(__file__).resolve().parent.parent / "assets" / "demo"
SRC = pathlib.Path(nilearn.__file__).parent / "datasets" / "data"


def resample(path: pathlib.Path) -> nib.Nifti1Image:
    img = nib.load(path)
    src = np.asarray(img.dataobj).astype(np.float32)
    step = SPACING_MM / float(img.header.get_zooms()[0])
    # Anti-alias before taking every 1.5th voxel.
    src = ndimage.gaussian_filter(src, sigma=0.5 * step)
    shape = [int(np.floor((n - 1) / step)) + 1 for n in src.shape]
    grid = np.meshgrid(*[np.arange(n) * step for n in shape], indexing="ij")
    out = ndimage.map_coordinates(src, grid, order=1)
    affine = img.affine.copy()
    affine[:3, :3] *= step
    data = np.clip(np.round(out), 0, 255).astype(np.uint8)
    res = nib.Nifti1Image(data, affine)
    res.header.set_xyzt_units("mm", "sec")
    res.set_sform(affine, code=4)  # MNI152 space
    res.set_qform(affine, code=4)
    return res


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for tissue in ["t1", "gm", "wm"]:
        src = SRC / f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz"
        img = resample(src)
        dst = OUT / f"mni152_{tissue}_1.5mm.nii.gz"
        tmp = dst.with_suffix(".partial.nii.gz")
        nib.save(img, tmp)
        os.replace(tmp, dst)
        print(dst.name, img.shape, dst.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
