//! Reading rows of a parquet file (a LeRobotDataset's data and episode tables): only the
//! columns asked for, only the row groups that hold the rows asked for, every value checked
//! for its type on the way out.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use parquet::file::metadata::ParquetMetaData;
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
        let file_len = file.metadata().map_err(|e| DatasetError::io(path, e))?.len();
        let reader = SerializedFileReader::new(file).map_err(|e| format(e.to_string()))?;
        let metadata = reader.metadata();
        let group_rows = footer_rows(metadata, file_len).map_err(format)?;
        let total: usize = group_rows.iter().sum();
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
        let wanted = rows.unwrap_or(0..total);
        if wanted.end > total {
            return Err(format(format!(
                "rows {}..{} are wanted, the file has {total}",
                wanted.start, wanted.end
            )));
        }
        let mut out = Vec::with_capacity(wanted.len().min(MAX_PREALLOCATED_ROWS));
        let mut first_row = 0;
        for (group, &rows_in_group) in group_rows.iter().enumerate() {
            let span = first_row..first_row + rows_in_group;
            first_row = span.end;
            if span.end <= wanted.start || span.start >= wanted.end {
                continue;
            }
            let group_reader = reader.get_row_group(group).map_err(|e| format(e.to_string()))?;
            let iter = group_reader
                .get_row_iter(Some(projection.clone()))
                .map_err(|e| format(e.to_string()))?;
            // The footer's count bounds the rows taken from the group, whatever its pages hold.
            let skip = wanted.start.saturating_sub(span.start);
            let take = wanted.end.min(span.end) - span.start - skip;
            for (offset, row) in iter.enumerate().skip(skip).take(take) {
                let at = span.start + offset;
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

/// Rows reserved before any is read; beyond this the table grows with the rows read.
const MAX_PREALLOCATED_ROWS: usize = 1 << 16;

/// Each row group's row count from the footer, checked: no count is negative, the groups add
/// up to the file's count, and the file holds no more rows than bytes. Every table of a
/// LeRobotDataset has per-row values (a frame's index and timestamp, an episode's index and
/// length) that take a byte or more per row however they are encoded, so a footer claiming
/// more is corrupt, and trusting it would reserve memory for rows that are not there.
fn footer_rows(metadata: &ParquetMetaData, file_len: u64) -> Result<Vec<usize>, String> {
    let claimed = metadata.file_metadata().num_rows();
    let total = u64::try_from(claimed).map_err(|_| format!("the footer claims {claimed} rows"))?;
    if total > file_len {
        return Err(format!(
            "the footer claims {total} rows, more than the file's {file_len} bytes can hold"
        ));
    }
    let mut groups = Vec::with_capacity(metadata.num_row_groups().min(MAX_PREALLOCATED_ROWS));
    let mut sum = 0u64;
    for (group, meta) in metadata.row_groups().iter().enumerate() {
        let rows = meta.num_rows();
        let left = total - sum;
        let rows = u64::try_from(rows)
            .ok()
            .filter(|&rows| rows <= left)
            .ok_or_else(|| format!("row group {group} claims {rows} rows, the footer's {total} leave {left} for it"))?;
        sum += rows;
        groups.push(rows as usize);
    }
    if sum != total {
        return Err(format!("the footer claims {total} rows, its row groups hold {sum}"));
    }
    Ok(groups)
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

#[cfg(test)]
mod tests {
    use parquet::file::metadata::{FileMetaData, ParquetMetaDataReader};

    use super::*;

    /// The reference v3.0 data file's footer with the file's row count and each group's
    /// replaced (a footer the parquet writer would not produce, as a hostile file may hold).
    fn footer(file_rows: i64, group_rows: &[i64]) -> ParquetMetaData {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tools/reference/out/lerobot/v30-images/data/chunk-000/file-000.parquet");
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&File::open(path).unwrap())
            .unwrap();
        let file = metadata.file_metadata();
        let file = FileMetaData::new(file.version(), file_rows, None, None, file.schema_descr_ptr(), None);
        let groups = group_rows
            .iter()
            .map(|&rows| {
                let group = metadata.row_group(0).clone();
                group.into_builder().set_num_rows(rows).build().unwrap()
            })
            .collect();
        ParquetMetaData::new(file, groups)
    }

    #[test]
    fn footer_counts_are_checked_against_each_other_and_the_file() {
        assert_eq!(footer_rows(&footer(30, &[20, 10]), 1000), Ok(vec![20, 10]));
        let billions = footer_rows(&footer(3_000_000_000, &[3_000_000_000]), 1000).unwrap_err();
        assert!(billions.contains("more than the file's 1000 bytes"), "{billions}");
        let over = footer_rows(&footer(30, &[20, 1 << 62]), 1000).unwrap_err();
        assert!(over.contains("row group 1 claims 4611686018427387904 rows"), "{over}");
        let negative = footer_rows(&footer(30, &[-5, 35]), 1000).unwrap_err();
        assert!(negative.contains("row group 0 claims -5 rows"), "{negative}");
        let short = footer_rows(&footer(30, &[20]), 1000).unwrap_err();
        assert!(short.contains("its row groups hold 20"), "{short}");
        let wrapping = footer_rows(&footer(i64::MAX, &[i64::MAX, i64::MAX]), u64::MAX).unwrap_err();
        assert!(wrapping.contains("row group 1 claims"), "{wrapping}");
    }
}
