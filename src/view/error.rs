//! Errors in view files: what went wrong, in which file, on which line, at which
//! field — and the collector that gathers them while a file is read, so that
//! every error of every file is reported at once.

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::Locations;

/// One error in one view file.
///
/// Displays as `views/order_cache.yaml:14: fields.customer.on: column
/// "customer_idd" does not exist in table orders`; the line and the field are
/// left out when unknown (an unreadable file, an empty directory).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ViewError {
    /// The file as the caller named it (`views/order_cache.yaml`).
    pub file: PathBuf,
    /// 1-based line.
    pub line: Option<usize>,
    /// Dotted path of the offending field (`fields.customer.on`), or empty when
    /// the error is about the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ViewError {
    /// An error about a file or directory as a whole.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> ViewError {
        ViewError {
            file: file.to_path_buf(),
            line: None,
            field: String::new(),
            message: message.into(),
        }
    }
}

/// Every error found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ViewErrors(pub Vec<ViewError>);

impl fmt::Display for ViewErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// What reading one file gathers besides the typed view: its errors and the
/// line of every field path.
#[derive(Debug)]
pub(crate) struct FileReport {
    pub file: PathBuf,
    pub errors: Vec<ViewError>,
    pub locations: Locations,
}

impl FileReport {
    pub fn new(file: &Path) -> FileReport {
        FileReport {
            file: file.to_path_buf(),
            errors: Vec::new(),
            locations: Locations::default(),
        }
    }

    pub fn error(&mut self, line: usize, field: &str, message: impl Into<String>) {
        self.errors.push(ViewError {
            file: self.file.clone(),
            line: Some(line),
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// An error about the file as a whole, with no line to point at.
    pub fn file_error(&mut self, message: impl Into<String>) {
        self.errors.push(ViewError::whole_file(&self.file, message));
    }

    pub fn locate(&mut self, path: &str, line: usize) {
        self.locations.insert(path, line);
    }

    /// The errors in file order, which is how a person fixes them.
    pub fn into_sorted_errors(mut self) -> Vec<ViewError> {
        self.errors.sort_by_key(|error| error.line);
        self.errors
    }
}
