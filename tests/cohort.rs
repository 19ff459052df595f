//! The synthetic longitudinal cohort (`demo-data cohort`): atrophy that shows in the images,
//! faster with disease; reproducible bytes; intensities in range; a table that matches the files.

use latent_workbench::core::Volume;
use latent_workbench::io::nifti;
use latent_workbench::methods::demo_data::cohort::{self, GridSpec, MONTHS, Prepared, TemplateMaps};
use latent_workbench::methods::demo_data::warp;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

fn asset(name: &str) -> Volume {
    nifti::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo").join(name)).unwrap()
}

/// The template prepared for the demo grid (64×80×64 at 3 mm), shared by the tests.
fn demo_grid() -> &'static Prepared {
    static PREP: OnceLock<Prepared> = OnceLock::new();
    PREP.get_or_init(|| {
        let (t1, gm, wm) = (
            asset("mni152_t1_1.5mm.nii.gz"),
            asset("mni152_gm_1.5mm.nii.gz"),
            asset("mni152_wm_1.5mm.nii.gz"),
        );
        cohort::prepare(
            TemplateMaps {
                t1: &t1,
                gm: &gm,
                wm: &wm,
            },
            GridSpec::Demo,
        )
        .unwrap()
    })
}

#[test]
fn ventricles_grow_every_visit_and_faster_with_alzheimers() {
    let prep = demo_grid();
    let subjects = cohort::subjects(0, 3);
    let (cn, ad) = (&subjects[0], &subjects[2]);
    assert_eq!(cn.diagnosis.as_str(), "CN");
    assert_eq!(ad.diagnosis.as_str(), "AD");
    let volumes = |s| -> Vec<f64> {
        MONTHS
            .iter()
            .map(|&m| cohort::ventricle_csf_ml(&cohort::synthesize(prep, s, m).unwrap()))
            .collect()
    };
    let (v_cn, v_ad) = (volumes(cn), volumes(ad));
    for w in v_ad.windows(2) {
        assert!(w[1] > w[0], "AD ventricles must grow at every visit: {v_ad:?}");
    }
    // Real lateral ventricles hold roughly 10-60 mL; the measure must be in that world.
    assert!(v_cn[0] > 5.0 && v_ad[4] < 120.0, "CN {v_cn:?} AD {v_ad:?}");
    let growth = |v: &[f64]| (v[4] - v[0]) / v[0];
    assert!(
        growth(&v_ad) > 2.0 * growth(&v_cn).max(0.0) && growth(&v_ad) > 0.1,
        "AD growth {:.3} vs CN {:.3}: CN {v_cn:?} AD {v_ad:?}",
        growth(&v_ad),
        growth(&v_cn)
    );
}

#[test]
fn the_ventricle_region_mean_darkens_with_atrophy_and_survives_the_blur_that_empties_the_proxy() {
    let prep = demo_grid();
    let ad = &cohort::subjects(0, 3)[2];
    let (first, last) = (
        cohort::synthesize(prep, ad, 0).unwrap(),
        cohort::synthesize(prep, ad, 24).unwrap(),
    );
    // A blur like the demo autoencoder's (σ 1.5 voxels: SSIM about 0.83), on the same grid.
    let blurred = |v: &Volume| {
        let data = warp::smooth(v.data(), v.dims(), 1.5);
        Volume::new(v.dims(), 1, v.spacing_mm(), *v.world_from_voxel(), data).unwrap()
    };
    let mean = |v: &Volume| cohort::ventricle_region_mean(v).unwrap();
    let (m0, m24) = (mean(&first), mean(&last));
    assert!(
        m0 > 0.0 && m0 < 1.0 && m24 < m0,
        "the region darkens: month 0 {m0:.3}, month 24 {m24:.3}"
    );
    let (b0, b24) = (mean(&blurred(&first)), mean(&blurred(&last)));
    assert!(
        b24 < b0,
        "still darker after the blur: month 0 {b0:.3}, month 24 {b24:.3}"
    );
    // The dark-voxel count loses most of the ventricles to the same blur: why the mean exists.
    let (ml, ml_blurred) = (
        cohort::ventricle_csf_ml(&last),
        cohort::ventricle_csf_ml(&blurred(&last)),
    );
    assert!(ml_blurred < 0.5 * ml, "proxy {ml:.1} mL, blurred {ml_blurred:.1} mL");
}

#[test]
fn intensities_are_in_range_with_a_clean_background_and_brain_contrast() {
    let prep = demo_grid();
    let subject = &cohort::subjects(5, 2)[1];
    let v = cohort::synthesize(prep, subject, 12).unwrap();
    assert_eq!(v.dims(), [64, 80, 64]);
    assert_eq!(v.spacing_mm(), [3.0; 3]);
    let data = v.data();
    assert!(data.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
    // Skull-stripped: the corners are background, and the brain fills a plausible volume.
    assert_eq!(v.get(0, 0, 0, 0), Some(0.0));
    assert_eq!(v.get(63, 79, 63, 0), Some(0.0));
    let brain_ml = data.iter().filter(|&&x| x > 0.0).count() as f64 * 27.0 / 1000.0;
    assert!((1200.0..2800.0).contains(&brain_ml), "brain {brain_ml} mL");
    // White matter sits near 0.75 (gain, bias and contrast vary it by some 20 %).
    let mut brain: Vec<f32> = data.iter().copied().filter(|&x| x > 0.0).collect();
    brain.sort_by(f32::total_cmp);
    let p90 = brain[brain.len() * 9 / 10];
    assert!((0.55..0.95).contains(&p90), "90th percentile {p90}");
    // The output sits in MNI space: world (0, -18, 18) mm, deep in the brain, is not background.
    let inv = latent_workbench::core::volume::invert(v.world_from_voxel()).unwrap();
    let c = latent_workbench::core::volume::apply(&inv, [0.0, -18.0, 18.0]).map(|x| x.round() as usize);
    assert!(v.get(c[0], c[1], c[2], 0).unwrap() > 0.0);
}

#[test]
fn scans_are_deterministic_and_subjects_differ() {
    let prep = demo_grid();
    let a = &cohort::subjects(3, 1)[0];
    let b = &cohort::subjects(4, 1)[0];
    let first = cohort::synthesize(prep, a, 6).unwrap();
    assert_eq!(first, cohort::synthesize(prep, a, 6).unwrap());
    let other = cohort::synthesize(prep, b, 6).unwrap();
    let differ = first.data().iter().zip(other.data()).filter(|(x, y)| x != y).count();
    assert!(differ > 10_000, "{differ} voxels differ between seeds");
}

fn generate(dir: &Path, seed: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args([
            "demo-data",
            "cohort",
            "--subjects",
            "2",
            "--size",
            "demo",
            "--seed",
            seed,
            "--json",
            "-o",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["scans"], 10);
}

#[test]
fn command_writes_identical_bytes_for_a_seed_and_a_table_that_matches_the_files() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(d1.path(), "11");
    generate(d2.path(), "11");
    let mut names: Vec<String> = std::fs::read_dir(d1.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 12, "{names:?}");
    for name in &names {
        let (a, b) = (
            std::fs::read(d1.path().join(name)).unwrap(),
            std::fs::read(d2.path().join(name)).unwrap(),
        );
        assert!(a == b, "{name} differs between two runs with the same seed");
    }

    let csv = std::fs::read_to_string(d1.path().join("cohort.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("subject,month,age,diagnosis,disease_factor,file"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 10);
    let mut listed = Vec::new();
    for row in &rows {
        let [subject, month, age, diagnosis, factor, file] = row[..] else {
            panic!("row {row:?}")
        };
        assert!(file.starts_with(subject) && file.contains(&format!("ses-M{:02}", month.parse::<u32>().unwrap())));
        let age: f32 = age.parse().unwrap();
        let factor: f32 = factor.parse().unwrap();
        assert!((55.0..95.0).contains(&age) && (0.0..=1.0).contains(&factor));
        assert!(["CN", "MCI", "AD"].contains(&diagnosis));
        let v = nifti::read(&d1.path().join(file)).unwrap();
        assert_eq!(v.dims(), [64, 80, 64]);
        listed.push(file.to_string());
    }
    // Ages advance with the month within a subject.
    let age = |i: usize| rows[i][2].parse::<f32>().unwrap();
    assert!((age(4) - age(0) - 2.0).abs() < 0.011);
    // Every NIfTI in the folder is in the table, and nothing else is there but the table and
    // its description.
    listed.sort();
    let on_disk: Vec<&String> = names.iter().filter(|n| n.ends_with(".nii.gz")).collect();
    assert_eq!(on_disk, listed.iter().collect::<Vec<_>>());
    let description: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d1.path().join("cohort.json")).unwrap()).unwrap();
    assert_eq!(description["synthetic"], true);
}
