//! `LatentCollection`: one latent space as an `n × d` matrix of `f32` with a string id per sample
//! and any number of label/metadata columns. Parsing works on text and tensors the caller has
//! read (this layer opens no files); every error names the source it was given.

use super::error::{RelrepsError, Result};
use crate::core::LatentTensor;
use std::collections::HashMap;

/// A named metadata column: one string per sample (class names, factors, file names…).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelColumn {
    pub name: String,
    pub values: Vec<String>,
}

/// Samples × features, row-major, with ids and label columns.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentCollection {
    /// Where it came from (a path or a label), for messages.
    pub source: String,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    ids: Vec<String>,
    columns: Vec<LabelColumn>,
}

impl LatentCollection {
    /// Wraps a row-major matrix; ids default to the row numbers `0..n`.
    pub fn new(
        source: impl Into<String>,
        rows: usize,
        cols: usize,
        values: Vec<f32>,
        ids: Option<Vec<String>>,
    ) -> Result<Self> {
        let source = source.into();
        if values.len() != rows * cols {
            return Err(RelrepsError::Parse {
                source_name: source,
                problem: format!("{} values do not fill {rows} × {cols}", values.len()),
            });
        }
        if rows == 0 || cols == 0 {
            return Err(RelrepsError::Parse {
                source_name: source,
                problem: format!("the latent matrix is empty ({rows} × {cols})"),
            });
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(RelrepsError::NonFinite {
                source_name: source,
                row: k / cols,
                col: k % cols,
            });
        }
        let ids = match ids {
            Some(ids) if ids.len() != rows => {
                return Err(RelrepsError::Parse {
                    source_name: source,
                    problem: format!("{} ids for {rows} samples", ids.len()),
                });
            }
            Some(ids) => ids,
            None => (0..rows).map(|i| i.to_string()).collect(),
        };
        let mut seen = HashMap::with_capacity(rows);
        for (i, id) in ids.iter().enumerate() {
            if let Some(first) = seen.insert(id.as_str(), i) {
                return Err(RelrepsError::Parse {
                    source_name: source,
                    problem: format!("sample id '{id}' appears twice (rows {first} and {i})"),
                });
            }
        }
        Ok(Self {
            source,
            rows,
            cols,
            values,
            ids,
            columns: Vec::new(),
        })
    }

    /// From a loaded array: `n × d`, or `n × …` flattened to `n × (product of the rest)`; a 1-D
    /// array is refused (one sample or one feature is ambiguous).
    pub fn from_tensor(tensor: LatentTensor, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let shape = tensor.shape().to_vec();
        if shape.len() < 2 {
            return Err(RelrepsError::NotAMatrix {
                source_name: source,
                shape,
            });
        }
        let rows = shape[0];
        let cols = shape[1..].iter().product();
        Self::new(source, rows, cols, tensor.into_values(), None)
    }

    /// From CSV text, one sample per line. A header line is recognised by a non-numeric field.
    /// Numeric columns form the vector; a column named `id`/`key` (or, without a header name,
    /// a first column that is not numeric) gives the ids; other non-numeric columns become
    /// label columns.
    pub fn from_csv(text: &str, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let parse_err = |problem: String| RelrepsError::Parse {
            source_name: source.clone(),
            problem,
        };
        let mut records = parse_csv(text).map_err(&parse_err)?;
        if records.is_empty() {
            return Err(parse_err("the CSV holds no rows".into()));
        }
        let has_header = records[0].iter().any(|f| f.trim().parse::<f64>().is_err());
        let header: Vec<String> = if has_header {
            records.remove(0).into_iter().map(|s| s.trim().to_string()).collect()
        } else {
            (0..records[0].len()).map(|j| format!("column_{j}")).collect()
        };
        if records.is_empty() {
            return Err(parse_err("the CSV has a header but no data rows".into()));
        }
        let width = header.len();
        if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(parse_err(format!(
                "line {} has {} fields, the first line has {width}",
                i + 1 + usize::from(has_header),
                r.len()
            )));
        }
        let numeric: Vec<bool> = (0..width)
            .map(|j| records.iter().all(|r| r[j].trim().parse::<f32>().is_ok()))
            .collect();
        let id_col = header
            .iter()
            .position(|h| is_id_name(h))
            .or_else(|| (!numeric[0]).then_some(0));
        let feature_cols: Vec<usize> = (0..width).filter(|&j| numeric[j] && Some(j) != id_col).collect();
        if feature_cols.is_empty() {
            return Err(parse_err("no numeric column to use as latent features".into()));
        }
        let rows = records.len();
        let mut values = Vec::with_capacity(rows * feature_cols.len());
        for r in &records {
            for &j in &feature_cols {
                // Checked numeric above.
                values.push(r[j].trim().parse::<f32>().unwrap_or(f32::NAN));
            }
        }
        let ids = id_col.map(|j| records.iter().map(|r| r[j].trim().to_string()).collect());
        let mut out = Self::new(source, rows, feature_cols.len(), values, ids)?;
        for j in (0..width).filter(|&j| !numeric[j] && Some(j) != id_col) {
            out.columns.push(LabelColumn {
                name: header[j].clone(),
                values: records.iter().map(|r| r[j].trim().to_string()).collect(),
            });
        }
        Ok(out)
    }

    /// Attaches the columns of a labels CSV (header required). With an `id`/`key` column the rows
    /// are matched to sample ids (every sample must be found; extra rows are ignored); without
    /// one, rows are taken in order and must number exactly `n`.
    pub fn attach_labels_csv(&mut self, text: &str, source: &str) -> Result<()> {
        let parse_err = |problem: String| RelrepsError::Parse {
            source_name: source.to_string(),
            problem,
        };
        let mut records = parse_csv(text).map_err(&parse_err)?;
        if records.is_empty() {
            return Err(parse_err("the labels CSV is empty".into()));
        }
        let header: Vec<String> = records.remove(0).into_iter().map(|s| s.trim().to_string()).collect();
        if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.len() != header.len()) {
            return Err(parse_err(format!(
                "line {} has {} fields, the header has {}",
                i + 2,
                r.len(),
                header.len()
            )));
        }
        let id_col = header.iter().position(|h| is_id_name(h));
        let order: Vec<usize> = match id_col {
            Some(j) => {
                let by_id: HashMap<&str, usize> = records.iter().enumerate().map(|(i, r)| (r[j].trim(), i)).collect();
                let mut order = Vec::with_capacity(self.rows);
                let mut missing = Vec::new();
                for id in &self.ids {
                    match by_id.get(id.as_str()) {
                        Some(&i) => order.push(i),
                        None => missing.push(id.clone()),
                    }
                }
                if !missing.is_empty() {
                    return Err(RelrepsError::LabelsMissing {
                        source_name: source.to_string(),
                        missing: missing.len(),
                        total: self.rows,
                        example: missing[0].clone(),
                    });
                }
                order
            }
            None if records.len() == self.rows => (0..self.rows).collect(),
            None => {
                return Err(parse_err(format!(
                    "{} label rows for {} samples and no id column to match them by",
                    records.len(),
                    self.rows
                )));
            }
        };
        for (j, name) in header.iter().enumerate().filter(|&(j, _)| Some(j) != id_col) {
            let values = order.iter().map(|&i| records[i][j].trim().to_string()).collect();
            self.columns.retain(|c| &c.name != name);
            self.columns.push(LabelColumn {
                name: name.clone(),
                values,
            });
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows
    }
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    pub fn dim(&self) -> usize {
        self.cols
    }
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
    pub fn columns(&self) -> &[LabelColumn] {
        &self.columns
    }

    /// The label column called `name`, or an error listing the ones there are.
    pub fn column(&self, name: &str) -> Result<&LabelColumn> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| RelrepsError::NoSuchColumn {
                source_name: self.source.clone(),
                column: name.to_string(),
                available: self.columns.iter().map(|c| c.name.clone()).collect(),
            })
    }

    /// Adds a label column, replacing one of the same name; it must hold one value per sample.
    pub fn set_column(&mut self, column: LabelColumn) -> Result<()> {
        if column.values.len() != self.rows {
            return Err(RelrepsError::Parse {
                source_name: self.source.clone(),
                problem: format!(
                    "label column '{}' has {} values for {} samples",
                    column.name,
                    column.values.len(),
                    self.rows
                ),
            });
        }
        self.columns.retain(|c| c.name != column.name);
        self.columns.push(column);
        Ok(())
    }

    /// The rows `indices`, in that order, with their ids and labels.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut values = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            values.extend_from_slice(self.row(i));
        }
        Self {
            source: self.source.clone(),
            rows: indices.len(),
            cols: self.cols,
            values,
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            columns: self
                .columns
                .iter()
                .map(|c| LabelColumn {
                    name: c.name.clone(),
                    values: indices.iter().map(|&i| c.values[i].clone()).collect(),
                })
                .collect(),
        }
    }

    /// Replaces the vectors (same samples, maybe another width), keeping ids and labels.
    pub fn with_values(&self, cols: usize, values: Vec<f32>) -> Result<Self> {
        let mut out = Self::new(self.source.clone(), self.rows, cols, values, Some(self.ids.clone()))?;
        out.columns = self.columns.clone();
        Ok(out)
    }
}

/// Restricts two spaces to the ids they share, in `a`'s order, so row `i` is the same sample in
/// both. Returns how many samples of each were dropped.
pub fn align_by_ids(
    a: &LatentCollection,
    b: &LatentCollection,
) -> Result<(LatentCollection, LatentCollection, Dropped)> {
    if a.ids == b.ids {
        return Ok((a.clone(), b.clone(), Dropped::default()));
    }
    let b_index: HashMap<&str, usize> = b.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let (ia, ib): (Vec<usize>, Vec<usize>) = a
        .ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| b_index.get(id.as_str()).map(|&j| (i, j)))
        .unzip();
    if ia.is_empty() {
        return Err(RelrepsError::NoCommonIds {
            a: a.source.clone(),
            b: b.source.clone(),
        });
    }
    let dropped = Dropped {
        from_a: a.rows - ia.len(),
        from_b: b.rows - ib.len(),
    };
    let mut b2 = b.select(&ib);
    // Labels usually come with one space only: carry A's over where B lacks them.
    for c in &a.columns {
        if !b2.columns.iter().any(|d| d.name == c.name) {
            b2.columns.push(LabelColumn {
                name: c.name.clone(),
                values: ia.iter().map(|&i| c.values[i].clone()).collect(),
            });
        }
    }
    Ok((a.select(&ia), b2, dropped))
}

/// Samples present in one space only, dropped by [`align_by_ids`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub from_a: usize,
    pub from_b: usize,
}

fn is_id_name(h: &str) -> bool {
    matches!(h.trim().to_ascii_lowercase().as_str(), "id" | "key" | "sample_id")
}

/// A small RFC 4180 reader: commas, double-quoted fields with `""` escapes, `\n` or `\r\n`;
/// blank lines are skipped.
fn parse_csv(text: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut row_has_content = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                row_has_content = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                row_has_content = true;
            }
            '\r' => {}
            '\n' => {
                if row_has_content || !field.is_empty() {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                row_has_content = false;
                line += 1;
            }
            _ => {
                field.push(c);
                row_has_content = true;
            }
        }
    }
    if in_quotes {
        return Err(format!("a quoted field opened before line {line} is never closed"));
    }
    if row_has_content || !field.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_ids_and_labels() {
        let text = "id,x,y,shape\na,1,2,square\n\"b\",3,4.5,\"heart, big\"\n";
        let c = LatentCollection::from_csv(text, "t.csv").unwrap();
        assert_eq!((c.len(), c.dim()), (2, 2));
        assert_eq!(c.ids(), ["a", "b"]);
        assert_eq!(c.values(), [1.0, 2.0, 3.0, 4.5]);
        assert_eq!(c.column("shape").unwrap().values, ["square", "heart, big"]);
        let err = c.column("colour").unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("t.csv"), "{err}");
    }

    #[test]
    fn headerless_csv_and_errors_name_the_file() {
        let c = LatentCollection::from_csv("1,2\n3,4\n", "plain.csv").unwrap();
        assert_eq!(c.ids(), ["0", "1"]);
        let err = LatentCollection::from_csv("1,2\n3\n", "ragged.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ragged.csv") && err.contains("line 2"), "{err}");
        let err = LatentCollection::from_csv("a,b\n", "empty.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty.csv"), "{err}");
        let err = LatentCollection::from_csv("1,nan\n", "nan.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nan.csv") && err.contains("non-finite"), "{err}");
    }

    #[test]
    fn labels_matched_by_id_and_by_order() {
        let mut c = LatentCollection::from_csv("id,x\np,1\nq,2\n", "l.csv").unwrap();
        c.attach_labels_csv("id,class\nq,cat\np,dog\nr,fish\n", "labels.csv")
            .unwrap();
        assert_eq!(c.column("class").unwrap().values, ["dog", "cat"]);
        c.attach_labels_csv("colour\nred\nblue\n", "order.csv").unwrap();
        assert_eq!(c.column("colour").unwrap().values, ["red", "blue"]);
        let err = c
            .attach_labels_csv("id,class\np,dog\n", "short.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("short.csv") && err.contains("'q'"), "{err}");
    }

    #[test]
    fn align_keeps_common_ids_in_a_order() {
        let a = LatentCollection::from_csv("id,x\n1,10\n2,20\n3,30\n", "a").unwrap();
        let b = LatentCollection::from_csv("id,x\n3,3\n1,1\n9,9\n", "b").unwrap();
        let (a2, b2, dropped) = align_by_ids(&a, &b).unwrap();
        assert_eq!(a2.ids(), ["1", "3"]);
        assert_eq!(b2.ids(), ["1", "3"]);
        assert_eq!(b2.values(), [1.0, 3.0]);
        assert_eq!(dropped, Dropped { from_a: 1, from_b: 1 });
        let c = LatentCollection::from_csv("id,x\nz,1\n", "c").unwrap();
        assert!(matches!(align_by_ids(&a, &c), Err(RelrepsError::NoCommonIds { .. })));
    }

    #[test]
    fn tensor_shapes() {
        let t = LatentTensor::new("z", vec![2, 2, 3], vec![0.0; 12]).unwrap();
        let c = LatentCollection::from_tensor(t, "z.npy").unwrap();
        assert_eq!((c.len(), c.dim()), (2, 6));
        let t = LatentTensor::new("z", vec![4], vec![0.0; 4]).unwrap();
        assert!(matches!(
            LatentCollection::from_tensor(t, "v.npy"),
            Err(RelrepsError::NotAMatrix { .. })
        ));
    }
}
