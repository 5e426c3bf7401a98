//! Tables from and to Parquet.
//!
//! Reading accepts flat schemas (one value per column per row) with any of Parquet's
//! compressions that nimbus builds in (Snappy, LZ4, Zstandard, gzip). Integer, floating-point,
//! decimal and boolean columns become numeric (booleans as 0/1); strings, binary, dates and
//! timestamps become text. Nulls are missing values, exactly as empty CSV fields are.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Repetition, Type as PhysicalType, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::Type;

use crate::MlError;
use crate::table::{Column, ColumnData, Table};

/// The four bytes every Parquet file starts (and ends) with.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// Whether `bytes` look like a Parquet file.
pub fn is_parquet(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.starts_with(MAGIC) && bytes.ends_with(MAGIC)
}

/// One cell as read, before the column's type is decided.
enum Cell {
    Missing,
    Number(f64),
    Text(String),
}

fn cell(column: &str, field: &Field) -> Result<Cell, MlError> {
    let number = |v: f64| Ok(Cell::Number(v));
    match field {
        Field::Null => Ok(Cell::Missing),
        Field::Bool(b) => number(if *b { 1.0 } else { 0.0 }),
        Field::Byte(v) => number(f64::from(*v)),
        Field::Short(v) => number(f64::from(*v)),
        Field::Int(v) => number(f64::from(*v)),
        Field::Long(v) => number(*v as f64),
        Field::UByte(v) => number(f64::from(*v)),
        Field::UShort(v) => number(f64::from(*v)),
        Field::UInt(v) => number(f64::from(*v)),
        Field::ULong(v) => number(*v as f64),
        Field::Float16(v) => number(f64::from(*v)),
        Field::Float(v) => number(f64::from(*v)),
        Field::Double(v) => number(*v),
        Field::Decimal(_) => match field.to_string().parse::<f64>() {
            Ok(v) => number(v),
            Err(_) => Ok(Cell::Text(field.to_string())),
        },
        Field::Str(s) => Ok(Cell::Text(s.clone())),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Ok(Cell::Text(s.to_string())),
            Err(_) => Err(MlError::Column {
                column: column.to_string(),
                reason: "holds binary values that are not UTF-8 text; store it as a string column".into(),
            }),
        },
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => Ok(Cell::Text(field.to_string().trim_matches('"').to_string())),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => Err(MlError::Column {
            column: column.to_string(),
            reason: "is a nested (struct, list or map) column; flatten it to one value per row".into(),
        }),
    }
}

impl Table {
    /// Parses a Parquet file. `source` names the data in messages.
    pub fn from_parquet(bytes: &[u8], source: &str) -> Result<Table, MlError> {
        let bad = |e: parquet::errors::ParquetError| MlError::Parquet {
            source_name: source.to_string(),
            reason: e.to_string(),
        };
        let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes)).map_err(bad)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let names: Vec<String> = schema.root_schema().get_fields().iter().map(|f| f.name().to_string()).collect();
        if names.is_empty() {
            return Err(MlError::Empty(source.to_string()));
        }
        let mut cells: Vec<Vec<Cell>> = names.iter().map(|_| Vec::new()).collect();
        for row in reader.get_row_iter(None).map_err(bad)? {
            let row = row.map_err(bad)?;
            for (i, (name, field)) in row.get_column_iter().enumerate() {
                cells[i].push(cell(name, field)?);
            }
        }
        if cells[0].is_empty() {
            return Err(MlError::Empty(source.to_string()));
        }
        let columns = names
            .into_iter()
            .zip(cells)
            .map(|(name, cells)| {
                let numeric = cells.iter().all(|c| !matches!(c, Cell::Text(_)));
                let data = if numeric {
                    ColumnData::Numeric(
                        cells.iter().map(|c| if let Cell::Number(v) = c { *v } else { f64::NAN }).collect(),
                    )
                } else {
                    ColumnData::Text(
                        cells
                            .into_iter()
                            .map(|c| match c {
                                Cell::Missing => None,
                                Cell::Number(v) => Some(crate::table::format_number(v)),
                                Cell::Text(s) => Some(s),
                            })
                            .collect(),
                    )
                };
                Column { name, data }
            })
            .collect();
        Ok(Table { source: source.to_string(), columns })
    }

    /// Parses CSV or Parquet, told apart by Parquet's magic bytes.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Table, MlError> {
        if is_parquet(bytes) { Table::from_parquet(bytes, source) } else { Table::from_csv(bytes, source) }
    }

    /// The table as a Zstandard-compressed Parquet file: numeric columns as optional
    /// doubles, text columns as optional UTF-8 strings, missing values as nulls.
    pub fn to_parquet(&self) -> Result<Vec<u8>, MlError> {
        let fail = |e: parquet::errors::ParquetError| MlError::Input(format!("writing Parquet: {e}"));
        let fields = self
            .columns
            .iter()
            .map(|c| {
                let builder = match c.data {
                    ColumnData::Numeric(_) => Type::primitive_type_builder(&c.name, PhysicalType::DOUBLE),
                    ColumnData::Text(_) => Type::primitive_type_builder(&c.name, PhysicalType::BYTE_ARRAY)
                        .with_logical_type(Some(parquet::basic::LogicalType::String)),
                };
                builder.with_repetition(Repetition::OPTIONAL).build().map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let schema = Type::group_type_builder("table").with_fields(fields).build().map_err(fail)?;
        let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let mut writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props)).map_err(fail)?;
        let mut group = writer.next_row_group().map_err(fail)?;
        for column in &self.columns {
            let mut out = group.next_column().map_err(fail)?.ok_or_else(|| MlError::Input("schema mismatch".into()))?;
            match &column.data {
                ColumnData::Numeric(v) => {
                    let values: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
                    let levels: Vec<i16> = v.iter().map(|x| i16::from(!x.is_nan())).collect();
                    out.typed::<DoubleType>().write_batch(&values, Some(&levels), None).map_err(fail)?;
                }
                ColumnData::Text(v) => {
                    let values: Vec<ByteArray> = v.iter().flatten().map(|s| ByteArray::from(s.as_str())).collect();
                    let levels: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                    out.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None).map_err(fail)?;
                }
            }
            out.close().map_err(fail)?;
        }
        group.close().map_err(fail)?;
        writer.into_inner().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "id,name,age,flag\n1,\"Braund, Mr. Owen\",22,1\n2,,,0\n3,Heikkinen,26.5,\n";

    #[test]
    fn round_trips_a_table_with_missing_values() {
        let table = Table::from_csv(CSV.as_bytes(), "t").unwrap();
        let bytes = table.to_parquet().unwrap();
        assert!(is_parquet(&bytes));
        let back = Table::from_bytes(&bytes, "t").unwrap();
        assert_eq!(back.rows(), 3);
        assert_eq!(back.to_csv(), table.to_csv());
        assert_eq!(back.column("name").unwrap().data, table.column("name").unwrap().data);
    }

    #[test]
    fn errors_name_the_file() {
        let e = Table::from_parquet(b"PAR1 not really PAR1", "x.parquet").unwrap_err().to_string();
        assert!(e.starts_with("x.parquet: ") && e.contains("Parquet"), "{e}");
        let empty = Table::from_csv(b"a\n1\n", "t").unwrap().take(&[]).to_parquet().unwrap();
        let e = Table::from_parquet(&empty, "e.parquet").unwrap_err().to_string();
        assert!(e.contains("no data rows"), "{e}");
    }

    #[test]
    fn csv_is_still_csv() {
        assert!(!is_parquet(CSV.as_bytes()));
        // Compared as CSV text: missing numbers are NaN, which never equals itself.
        assert_eq!(Table::from_bytes(CSV.as_bytes(), "t").unwrap().to_csv(), CSV.as_bytes());
    }
}
