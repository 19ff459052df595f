//! Contact sheets of search results: one row per candidate, its images side by side (RGB8, row
//! major, ready for a PNG writer). Pure pixels; the caller writes the file.

use super::search::Candidate;

/// Pixels between tiles.
const GAP: usize = 2;

/// Planar RGB `3 × h × w` in [0, 1] → interleaved RGB8.
pub fn planar_to_rgb8(planar: &[f32], h: usize, w: usize) -> Vec<u8> {
    let plane = h * w;
    (0..plane)
        .flat_map(|i| (0..3).map(move |c| (planar[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8))
        .collect()
}

/// `(width, height, rgb8)` of a grid whose row `k` holds candidate `k`'s images; gaps are mid grey
/// so black sprite backgrounds stay apart.
pub fn contact_sheet(candidates: &[&Candidate], h: usize, w: usize) -> Option<(usize, usize, Vec<u8>)> {
    let cols = candidates.iter().map(|c| c.images.len()).max()?;
    if cols == 0 || candidates.is_empty() {
        return None;
    }
    let width = cols * w + (cols + 1) * GAP;
    let height = candidates.len() * h + (candidates.len() + 1) * GAP;
    let mut out = vec![96u8; width * height * 3];
    for (row, cand) in candidates.iter().enumerate() {
        for (col, img) in cand.images.iter().enumerate() {
            let tile = planar_to_rgb8(img, h, w);
            let (x0, y0) = (GAP + col * (w + GAP), GAP + row * (h + GAP));
            for y in 0..h {
                let dst = ((y0 + y) * width + x0) * 3;
                out[dst..dst + w * 3].copy_from_slice(&tile[y * w * 3..(y + 1) * w * 3]);
            }
        }
    }
    Some((width, height, out))
}

/// The images of one contact-sheet row (a candidate's picture, `candidates/NNN.png`) back as
/// planar RGB `3 × h × w` in [0, 1] (quantised to 1/255), for a run folder opened again. None when
/// the picture is not such a row.
pub fn split_row(width: usize, height: usize, rgb: &[u8], h: usize, w: usize) -> Option<Vec<Vec<f32>>> {
    if height != h + 2 * GAP
        || width < w + 2 * GAP
        || !(width - GAP).is_multiple_of(w + GAP)
        || rgb.len() != width * height * 3
    {
        return None;
    }
    let cols = (width - GAP) / (w + GAP);
    let plane = h * w;
    Some(
        (0..cols)
            .map(|col| {
                let x0 = GAP + col * (w + GAP);
                let mut planar = vec![0.0f32; 3 * plane];
                for y in 0..h {
                    for x in 0..w {
                        let src = ((GAP + y) * width + x0 + x) * 3;
                        for c in 0..3 {
                            planar[c * plane + y * w + x] = f32::from(rgb[src + c]) / 255.0;
                        }
                    }
                }
                planar
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planar_pixels_interleave_and_tiles_land_in_their_cells() {
        // 1×2 image: red then blue.
        let planar = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(planar_to_rgb8(&planar, 1, 2), vec![255, 0, 0, 0, 0, 255]);
        let cand = Candidate {
            restart: 0,
            iteration: 0,
            objective_value: 0.0,
            variable: vec![],
            images: vec![planar.to_vec(), planar.to_vec()],
            member_probs: vec![],
            held_out_probs: None,
            auto_success: true,
            held_out_success: None,
            drawn_shares: None,
            generator_failure: None,
            ks_statistic: None,
            ks_p: None,
            non_gaussian: None,
            norm_ratio: None,
            failure_type: "unrelated".into(),
            human: None,
        };
        let (w, h, px) = contact_sheet(&[&cand], 1, 2).unwrap();
        assert_eq!((w, h), (2 * 2 + 3 * GAP, 1 + 2 * GAP));
        let at = |x: usize, y: usize| &px[(y * w + x) * 3..(y * w + x) * 3 + 3];
        assert_eq!(at(GAP, GAP), [255, 0, 0]);
        assert_eq!(at(GAP + 2 + GAP + 1, GAP), [0, 0, 255]);
        assert_eq!(at(0, 0), [96, 96, 96]);
        // And back: the row splits into the candidate's images.
        assert_eq!(split_row(w, h, &px, 1, 2), Some(cand.images.clone()));
        assert_eq!(split_row(w, h, &px, 1, 3), None, "another tile size does not fit");
    }
}
