//! View definitions: the files under `views/`, read into typed [`ViewDef`]s.
//!
//! Reading is offline and pure ([`load_views`], [`parse_view`]): YAML syntax,
//! the format, key templates, `where` paths. Checking tables and columns needs
//! the live database's [`Catalog`] ([`check_against_catalog`]). Both report
//! every error at once, each with its file, line and field path ([`ViewError`]);
//! [`ViewDef::locations`] keeps the lines for the checks that come later.
//!
//! Modules: `node` (YAML → tree with lines), `shape` (key and value checks),
//! `document` (common keys, kind dispatch), `cache` (`kind: cache`), `fields`
//! (its nested fields), `key_template`, `search` (`kind: search`),
//! `search_fields` (its typed fields), `aggregate` (`kind: aggregate`),
//! `measure` (its `function(expression)` texts), `joins` (named `one` joins),
//! `filter` (`where`), `table` (table names), `catalog` (with
//! `catalog_joins` for named joins, `catalog_search` and `catalog_aggregate`).

mod aggregate;
mod cache;
mod catalog;
mod document;
mod error;
mod fields;
mod filter;
mod joins;
pub mod key_collisions;
mod key_template;
mod measure;
pub mod model;
mod node;
mod search;
mod search_fields;
mod shape;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use catalog::{Catalog, ColumnInfo, TableInfo, check_against_catalog};
pub use document::{definition_hash, parse_view};
pub use error::{ViewError, ViewErrors};
pub use key_template::parse_key_template;
pub use model::ViewDef;
pub use search_fields::SEARCH_ID_FIELD;
pub use table::display_table;

/// Reads every `*.yaml` and `*.yml` file of `dir`, in file-name order, and
/// returns their views, or every error of every file. View names must be
/// unique across files, and the directory must hold at least one view.
pub fn load_views(dir: &Path) -> Result<Vec<ViewDef>, ViewErrors> {
    let (views, errors) = load_views_reporting(dir)?;
    if errors.is_empty() {
        Ok(views)
    } else {
        Err(ViewErrors(errors))
    }
}

/// The views of the files in `dir` that read, and the errors of those that
/// do not (and of duplicate names): `check` then checks the views that
/// read against the database too, so one run reports every error. `Err`
/// only when the directory itself cannot be read or holds no view file.
pub fn load_views_reporting(dir: &Path) -> Result<(Vec<ViewDef>, Vec<ViewError>), ViewErrors> {
    let files = view_files(dir).map_err(|error| ViewErrors(vec![error]))?;
    let mut views = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match read_file(file) {
            Ok(view) => views.push(view),
            Err(mut file_errors) => errors.append(&mut file_errors),
        }
    }
    errors.extend(duplicate_names(&views));
    Ok((views, errors))
}

fn view_files(dir: &Path) -> Result<Vec<PathBuf>, ViewError> {
    // A relative directory is the working directory's, not the config
    // file's: the absolute path says which was tried.
    let tried = match std::path::absolute(dir) {
        // Trial 40 ran `--config ../viewkeeper.yaml` from a subdirectory.
        Ok(absolute) if dir.is_relative() => format!(
            " {} (a relative path is read from the working directory, not from the config \
             file's)",
            absolute.display()
        ),
        _ => String::new(),
    };
    let unreadable = |error: std::io::Error| {
        ViewError::whole_file(
            dir,
            format!("cannot read the views directory{tried}: {error}"),
        )
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let is_yaml = path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        let message = "no view files (*.yaml, *.yml) in this directory";
        return Err(ViewError::whole_file(dir, message));
    }
    files.sort();
    Ok(files)
}

fn read_file(file: &Path) -> Result<ViewDef, Vec<ViewError>> {
    let bytes = std::fs::read(file)
        .map_err(|error| vec![ViewError::whole_file(file, format!("cannot read: {error}"))])?;
    let text = String::from_utf8(bytes)
        .map_err(|_| vec![ViewError::whole_file(file, "the file is not valid UTF-8")])?;
    parse_view(file, &text)
}

/// A name used twice is reported at each file that uses it, naming the
/// others: which of them is the new one, the files do not tell (trial 40:
/// only the second in name order was named, which was the old file).
fn duplicate_names(views: &[ViewDef]) -> Vec<ViewError> {
    let mut files: HashMap<&str, Vec<&Path>> = HashMap::new();
    for view in views {
        files.entry(&view.name).or_default().push(&view.file);
    }
    let mut errors = Vec::new();
    for view in views {
        let others: Vec<String> = files[view.name.as_str()]
            .iter()
            .filter(|file| **file != view.file)
            .map(|file| file.display().to_string())
            .collect();
        if others.is_empty() {
            continue;
        }
        errors.push(ViewError {
            file: view.file.clone(),
            line: view.locations.line("view"),
            field: "view".to_owned(),
            message: format!(
                "view name \"{}\" is also used by {}: each view needs a name of its own",
                view.name,
                others.join(", ")
            ),
        });
    }
    errors
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schema_tests;
