//! Reading rows of a parquet file (a LeRobotDataset's data and episode tables): only the
//! columns asked for, only the row groups that hold the rows asked for, every value checked
//! for its type on the way out.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use super::DatasetError;

/// Rows of one parquet file, each a value per requested column, in the order asked.
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Field>>,
}

impl Table {
    /// Reads `columns` of rows `rows` (all rows when `None`). A column the file lacks is an
    /// error unless it is in `optional`, where it reads as `Field::Null`.
    pub fn read(
        path: &Path,
        columns: &[&str],
        optional: &[&str],
        rows: Option<Range<usize>>,
    ) -> Result<Self, DatasetError> {
        let format = |reason: String| DatasetError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| format(e.to_string()))?;
        let metadata = reader.metadata();
        let schema = metadata.file_metadata().schema();
        let present: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| schema.get_fields().iter().any(|f| f.name() == *c))
            .collect();
        if let Some(missing) = columns.iter().find(|c| !present.contains(c) && !optional.contains(c)) {
            let found: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
            return Err(DatasetError::Schema {
                path: path.to_path_buf(),
                reason: format!("no column `{missing}`; the file has {found:?}"),
            });
        }
        let projection = Type::group_type_builder(schema.name())
            .with_fields(
                schema
                    .get_fields()
                    .iter()
                    .filter(|f| present.contains(&f.name()))
                    .cloned()
                    .collect(),
            )
            .build()
            .map_err(|e| format(e.to_string()))?;
        let total = metadata.file_metadata().num_rows().max(0) as usize;
        let wanted = rows.unwrap_or(0..total);
        if wanted.end > total {
            return Err(format(format!(
                "rows {}..{} are wanted, the file has {total}",
                wanted.start, wanted.end
            )));
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut first_row = 0;
        for group in 0..metadata.num_row_groups() {
            let group_rows = metadata.row_group(group).num_rows().max(0) as usize;
            let span = first_row..first_row + group_rows;
            first_row += group_rows;
            if span.end <= wanted.start || span.start >= wanted.end {
                continue;
            }
            let group_reader = reader.get_row_group(group).map_err(|e| format(e.to_string()))?;
            let iter = group_reader
                .get_row_iter(Some(projection.clone()))
                .map_err(|e| format(e.to_string()))?;
            for (offset, row) in iter.enumerate() {
                let at = span.start + offset;
                if !wanted.contains(&at) {
                    continue;
                }
                let row = row.map_err(|e| format(format!("row {at}: {e}")))?;
                out.push(pick(&row, columns));
            }
        }
        if out.len() != wanted.len() {
            return Err(format(format!(
                "{} rows were read of the {} wanted",
                out.len(),
                wanted.len()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: out,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn value(&self, row: usize, column: usize) -> &Field {
        &self.rows[row][column]
    }

    fn mismatch(&self, row: usize, column: usize, expected: &str) -> DatasetError {
        DatasetError::Schema {
            path: self.path.clone(),
            reason: format!(
                "column `{}` row {row}: expected {expected}, found {}",
                self.columns[column],
                describe(self.value(row, column))
            ),
        }
    }

    pub fn int(&self, row: usize, column: usize) -> Result<i64, DatasetError> {
        match self.value(row, column) {
            Field::Long(v) => Ok(*v),
            Field::Int(v) => Ok(i64::from(*v)),
            Field::ULong(v) => i64::try_from(*v).map_err(|_| self.mismatch(row, column, "an integer")),
            Field::UInt(v) => Ok(i64::from(*v)),
            _ => Err(self.mismatch(row, column, "an integer")),
        }
    }

    /// A non-negative integer, as an index or count.
    pub fn index(&self, row: usize, column: usize) -> Result<usize, DatasetError> {
        let value = self.int(row, column)?;
        usize::try_from(value).map_err(|_| self.mismatch(row, column, "a non-negative integer"))
    }

    pub fn float(&self, row: usize, column: usize) -> Result<f64, DatasetError> {
        match self.value(row, column) {
            Field::Float(v) => Ok(f64::from(*v)),
            Field::Double(v) => Ok(*v),
            _ => Err(self.mismatch(row, column, "a float")),
        }
    }

    pub fn is_null(&self, row: usize, column: usize) -> bool {
        matches!(self.value(row, column), Field::Null)
    }

    /// A list of `len` floats (a state or action row).
    pub fn vector(&self, row: usize, column: usize, len: usize) -> Result<Vec<f32>, DatasetError> {
        let expected = format!("a list of {len} floats");
        let Field::ListInternal(list) = self.value(row, column) else {
            return Err(self.mismatch(row, column, &expected));
        };
        let values: Option<Vec<f32>> = list
            .elements()
            .iter()
            .map(|v| match v {
                Field::Float(x) => Some(*x),
                Field::Double(x) => Some(*x as f32),
                _ => None,
            })
            .collect();
        match values {
            Some(values) if values.len() == len => Ok(values),
            _ => Err(self.mismatch(row, column, &expected)),
        }
    }

    pub fn strings(&self, row: usize, column: usize) -> Result<Vec<String>, DatasetError> {
        let Field::ListInternal(list) = self.value(row, column) else {
            return Err(self.mismatch(row, column, "a list of strings"));
        };
        list.elements()
            .iter()
            .map(|v| match v {
                Field::Str(s) => Ok(s.clone()),
                _ => Err(self.mismatch(row, column, "a list of strings")),
            })
            .collect()
    }

    /// An image cell: the `bytes` of a `{bytes, path}` struct (PNG, as lerobot stores them).
    pub fn image_bytes(&self, row: usize, column: usize) -> Result<Vec<u8>, DatasetError> {
        let Field::Group(group) = self.value(row, column) else {
            return Err(self.mismatch(row, column, "an image struct {bytes, path}"));
        };
        group
            .get_column_iter()
            .find_map(|(name, value)| match (name.as_str(), value) {
                ("bytes", Field::Bytes(bytes)) => Some(bytes.data().to_vec()),
                _ => None,
            })
            .ok_or_else(|| self.mismatch(row, column, "an image struct with its PNG `bytes`"))
    }
}

fn pick(row: &Row, columns: &[&str]) -> Vec<Field> {
    columns
        .iter()
        .map(|c| {
            row.get_column_iter()
                .find(|(name, _)| name.as_str() == *c)
                .map(|(_, value)| value.clone())
                .unwrap_or(Field::Null)
        })
        .collect()
}

fn describe(value: &Field) -> String {
    match value {
        Field::Null => "null".into(),
        Field::ListInternal(list) => format!("a list of {}", list.len()),
        Field::Group(_) => "a struct".into(),
        Field::Bytes(bytes) => format!("{} bytes", bytes.len()),
        Field::Str(s) => format!("the string {s:?}"),
        other => other.to_string(),
    }
}
