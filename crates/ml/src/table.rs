//! Tables loaded from CSV: typed columns with missing values.
//!
//! A column is numeric when every non-empty field parses as a number, otherwise text.
//! Empty fields (and `NA`, `NaN`, `null`) are missing: NaN in numeric columns, `None` in text
//! columns. Quoted fields, embedded commas and newlines, and CRLF line ends are handled by
//! the `csv` crate (RFC 4180).

use crate::MlError;

/// The values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    /// Numbers; missing values are NaN.
    Numeric(Vec<f64>),
    /// Strings; missing values are `None`.
    Text(Vec<Option<String>>),
}

/// A named column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

impl Column {
    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Text(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row` as text (numbers formatted), `None` when missing.
    pub fn text_at(&self, row: usize) -> Option<String> {
        match &self.data {
            ColumnData::Numeric(v) => v[row].is_finite().then(|| format_number(v[row])),
            ColumnData::Text(v) => v[row].clone(),
        }
    }
}

/// Formats a number without a trailing `.0` for integers.
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// A table of equally long columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Where the data came from, for messages.
    pub source: String,
    pub columns: Vec<Column>,
}

fn is_missing(field: &str) -> bool {
    matches!(field.trim(), "" | "NA" | "NaN" | "nan" | "null" | "NULL")
}

impl Table {
    /// Parses CSV bytes with a header line. `source` names the data in messages.
    pub fn from_csv(bytes: &[u8], source: &str) -> Result<Table, MlError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
        let csv_err = |e: csv::Error| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            let reason = match e.kind() {
                csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                    format!("expected {expected_len} fields like the header, found {len}")
                }
                csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8".to_string(),
                _ => e.to_string(),
            };
            MlError::Csv { source_name: source.to_string(), line, reason }
        };
        let headers: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(|h| h.trim().to_string()).collect();
        if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
            return Err(MlError::Empty(source.to_string()));
        }
        let mut raw: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            for (i, field) in record.iter().enumerate() {
                raw[i].push(field.to_string());
            }
        }
        if raw[0].is_empty() {
            return Err(MlError::Empty(source.to_string()));
        }
        let columns = headers
            .into_iter()
            .zip(raw)
            .map(|(name, fields)| {
                let numeric = fields.iter().all(|f| is_missing(f) || f.trim().parse::<f64>().is_ok());
                let data = if numeric {
                    ColumnData::Numeric(
                        fields
                            .iter()
                            .map(|f| if is_missing(f) { f64::NAN } else { f.trim().parse().unwrap_or(f64::NAN) })
                            .collect(),
                    )
                } else {
                    ColumnData::Text(fields.into_iter().map(|f| (!is_missing(&f)).then_some(f)).collect())
                };
                Column { name, data }
            })
            .collect();
        Ok(Table { source: source.to_string(), columns })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map(Column::len).unwrap_or(0)
    }

    /// The column named `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<&Column, MlError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| MlError::MissingColumn {
            column: name.to_string(),
            source_name: self.source.clone(),
            available: self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Numeric(v) => ColumnData::Numeric(indices.iter().map(|&i| v[i]).collect()),
                    ColumnData::Text(v) => ColumnData::Text(indices.iter().map(|&i| v[i].clone()).collect()),
                },
            })
            .collect();
        Table { source: self.source.clone(), columns }
    }

    /// The table as CSV text with a header line; missing values are empty fields.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(self.columns.iter().map(|c| c.name.as_str()));
        for r in 0..self.rows() {
            let _ = w.write_record(self.columns.iter().map(|c| c.text_at(r).unwrap_or_default()));
        }
        w.into_inner().unwrap_or_default()
    }

    /// A seeded shuffle split: `(train, test)` with `test_fraction` of the rows in the test part.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Table, Table) {
        let n = self.rows();
        let mut idx: Vec<usize> = (0..n).collect();
        // SplitMix64-driven Fisher-Yates: the same seed gives the same split on every machine.
        let mut state = seed;
        for i in (1..n).rev() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            idx.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let n_test = ((n as f64) * test_fraction).round() as usize;
        let (test, train) = idx.split_at(n_test.min(n));
        (self.take(train), self.take(test))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_types_quotes_crlf_and_missing() {
        let csv = "id,name,age,cabin\r\n1,\"Braund, Mr. Owen\",22,\r\n2,\"Multi\nline\",,C85\r\n";
        let t = Table::from_csv(csv.as_bytes(), "t.csv").unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.column("id").unwrap().data, ColumnData::Numeric(vec![1.0, 2.0]));
        assert_eq!(t.column("name").unwrap().text_at(0).as_deref(), Some("Braund, Mr. Owen"));
        assert_eq!(t.column("name").unwrap().text_at(1).as_deref(), Some("Multi\nline"));
        match &t.column("age").unwrap().data {
            ColumnData::Numeric(v) => assert!(v[0] == 22.0 && v[1].is_nan()),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.column("cabin").unwrap().data, ColumnData::Text(vec![None, Some("C85".into())]));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Table::from_csv(b"a,b\n1,2\n3\n", "x.csv").unwrap_err().to_string();
        assert!(e.contains("x.csv: malformed CSV at line 3") && e.contains("expected 2 fields"), "{e}");
        let e = Table::from_csv(b"a,b\n", "x.csv").unwrap_err().to_string();
        assert!(e.contains("no data rows"), "{e}");
        let e = Table::from_csv(b"", "x.csv").unwrap_err().to_string();
        assert!(e.contains("no data rows"), "{e}");
        let t = Table::from_csv(b"a,b\n1,2\n", "x.csv").unwrap();
        let e = t.column("c").unwrap_err().to_string();
        assert!(e.contains("its columns are: a, b"), "{e}");
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let csv: String = std::iter::once("v\n".to_string()).chain((0..100).map(|i| format!("{i}\n"))).collect();
        let t = Table::from_csv(csv.as_bytes(), "t").unwrap();
        let (a, b) = t.split(0.2, 7);
        let (a2, _) = t.split(0.2, 7);
        assert_eq!((a.rows(), b.rows()), (80, 20));
        assert_eq!(a, a2);
        assert_eq!(Table::from_csv(&b.to_csv(), "t").unwrap(), Table { source: "t".into(), ..b.clone() });
        let (a3, _) = t.split(0.2, 8);
        assert_ne!(a, a3);
    }
}
