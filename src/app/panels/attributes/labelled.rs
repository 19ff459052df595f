//! A labelled set: a CSV with a column of scan paths (`file`, `path`, … or the first column holding
//! NIfTI names; relative paths are taken from the CSV's folder) and label columns. A column of two
//! values (or of classes, two of which are picked) is a binary label; a column of numbers a
//! continuous one. `demo-data cohort` writes such a CSV (`subject,month,age,diagnosis,…,file`).

use crate::methods::ldae::probe::Labels;
use std::path::{Path, PathBuf};

const PATH_HEADERS: [&str; 6] = ["file", "path", "filename", "scan", "image", "nifti"];
const GROUP_HEADERS: [&str; 4] = ["subject", "subject_id", "participant_id", "participant"];

#[derive(Clone, Debug)]
pub struct LabelledSet {
    pub csv: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub path_column: usize,
}

/// How one label column is read.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnKind {
    /// Numbers with more than two distinct values.
    Continuous,
    /// Distinct values, sorted (two or more).
    Classes(Vec<String>),
}

fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

impl LabelledSet {
    pub fn read(csv: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
        Self::parse(&text, csv)
    }

    pub fn parse(text: &str, csv: &Path) -> Result<Self, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let headers = split_line(lines.next().ok_or_else(|| format!("{}: empty file", csv.display()))?);
        let rows: Vec<Vec<String>> = lines.map(split_line).collect();
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != headers.len()) {
            return Err(format!(
                "{}: row {} has {} fields, the header {}",
                csv.display(),
                i + 2,
                r.len(),
                headers.len()
            ));
        }
        let by_name = headers
            .iter()
            .position(|h| PATH_HEADERS.contains(&h.to_lowercase().as_str()));
        let by_value = || {
            (0..headers.len()).find(|&c| {
                rows.first()
                    .is_some_and(|r| r[c].ends_with(".nii") || r[c].ends_with(".nii.gz"))
            })
        };
        let path_column = by_name.or_else(by_value).ok_or_else(|| {
            format!(
                "{}: no column of scan paths (name it one of {})",
                csv.display(),
                PATH_HEADERS.join(", ")
            )
        })?;
        if rows.is_empty() {
            return Err(format!("{}: no rows", csv.display()));
        }
        Ok(Self {
            csv: csv.to_path_buf(),
            headers,
            rows,
            path_column,
        })
    }

    /// Columns that can be labels (all but the path column).
    pub fn label_columns(&self) -> Vec<String> {
        (0..self.headers.len())
            .filter(|&c| c != self.path_column)
            .map(|c| self.headers[c].clone())
            .collect()
    }

    fn column(&self, name: &str) -> Result<usize, String> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no column {name:?}", self.csv.display()))
    }

    /// The scan path of `row`, relative paths taken from the CSV's folder.
    pub fn scan_path(&self, row: usize) -> PathBuf {
        let p = PathBuf::from(&self.rows[row][self.path_column]);
        if p.is_absolute() {
            p
        } else {
            self.csv.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// Subject of each row, when the CSV has a subject column (keeps a subject's scans in one CV fold).
    pub fn groups(&self) -> Option<Vec<String>> {
        let c = self
            .headers
            .iter()
            .position(|h| GROUP_HEADERS.contains(&h.to_lowercase().as_str()))?;
        Some(self.rows.iter().map(|r| r[c].clone()).collect())
    }

    pub fn kind(&self, name: &str) -> Result<ColumnKind, String> {
        let c = self.column(name)?;
        let mut values: Vec<String> = self
            .rows
            .iter()
            .map(|r| r[c].clone())
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        let numeric = values.iter().all(|v| v.parse::<f64>().is_ok_and(f64::is_finite));
        match values.len() {
            0 | 1 => Err(format!(
                "column {name:?} has {} distinct value(s); a probe needs two",
                values.len()
            )),
            2 => Ok(ColumnKind::Classes(values)),
            _ if numeric => Ok(ColumnKind::Continuous),
            _ => Ok(ColumnKind::Classes(values)),
        }
    }

    /// Rows used and their labels: for classes, rows of `positive` (true) and `negative` (false) only;
    /// for numbers, every row with a value.
    pub fn labels(&self, name: &str, classes: Option<(&str, &str)>) -> Result<(Vec<usize>, Labels), String> {
        let c = self.column(name)?;
        match (self.kind(name)?, classes) {
            (ColumnKind::Continuous, _) => {
                let rows: Vec<usize> = (0..self.rows.len()).filter(|&i| !self.rows[i][c].is_empty()).collect();
                let values = rows
                    .iter()
                    .map(|&i| self.rows[i][c].parse::<f64>().unwrap_or(f64::NAN))
                    .collect();
                Ok((rows, Labels::Continuous(values)))
            }
            (ColumnKind::Classes(all), picked) => {
                let (positive, negative) = match picked {
                    Some((p, n)) => (p.to_string(), n.to_string()),
                    // LDAE's convention for its cohort labels: CN positive, AD negative.
                    None if all.iter().any(|v| v == "CN") && all.iter().any(|v| v == "AD") => {
                        ("CN".to_string(), "AD".to_string())
                    }
                    None => (all[all.len() - 1].clone(), all[0].clone()),
                };
                if positive == negative {
                    return Err("pick two different classes".into());
                }
                let rows: Vec<usize> = (0..self.rows.len())
                    .filter(|&i| self.rows[i][c] == positive || self.rows[i][c] == negative)
                    .collect();
                let values = rows.iter().map(|&i| self.rows[i][c] == positive).collect();
                Ok((
                    rows,
                    Labels::Binary {
                        values,
                        positive,
                        negative,
                    },
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COHORT: &str = "subject,month,age,diagnosis,disease_factor,file\n\
        sub-000,0,70.1,CN,0.1,sub-000_ses-M00_T1w.nii.gz\n\
        sub-001,0,71.0,MCI,0.5,sub-001_ses-M00_T1w.nii.gz\n\
        sub-002,0,72.3,AD,0.9,sub-002_ses-M00_T1w.nii.gz\n";

    #[test]
    fn cohort_csv_reads_paths_groups_and_both_label_kinds() {
        let set = LabelledSet::parse(COHORT, Path::new("/data/cohort.csv")).unwrap();
        assert_eq!(set.headers[set.path_column], "file");
        assert_eq!(set.scan_path(1), PathBuf::from("/data/sub-001_ses-M00_T1w.nii.gz"));
        assert_eq!(set.groups().unwrap()[2], "sub-002");
        assert_eq!(set.kind("age").unwrap(), ColumnKind::Continuous);
        // Three classes: AD (negative) against CN (positive) by default, as LDAE's classifier; MCI dropped.
        let (rows, labels) = set.labels("diagnosis", None).unwrap();
        assert_eq!(rows, vec![0, 2]);
        assert_eq!(
            labels,
            Labels::Binary {
                values: vec![true, false],
                positive: "CN".into(),
                negative: "AD".into()
            }
        );
        assert!(set.kind("month").is_err(), "one value is not a label");
    }
}
