//! The invalid view-file corpus: every file in `tests/views_invalid/` starts
//! with `# expect: <text>`, and loading that file alone must fail with an
//! error whose display contains the text (which includes its line number).

use std::path::{Path, PathBuf};

use viewkeeper::view::load_views;

const EXPECT_PREFIX: &str = "# expect: ";

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/views_invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect();
    files.sort();
    files
}

fn expected_error(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("readable corpus file");
    let first_line = text.lines().next().unwrap_or_default();
    first_line
        .strip_prefix(EXPECT_PREFIX)
        .unwrap_or_else(|| panic!("{} must start with `{EXPECT_PREFIX}`", file.display()))
        .to_owned()
}

/// The errors of loading `file` as the only file of a views directory.
fn load_alone(file: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = file.file_name().expect("file name");
    std::fs::copy(file, dir.path().join(name)).expect("copy");
    load_views(dir.path())
        .map(|_| ())
        .map_err(|errors| errors.to_string())
}

#[test]
fn every_invalid_view_file_fails_with_its_expected_error() {
    let files = corpus_files();
    assert!(files.len() >= 12, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let expected = expected_error(file);
        match load_alone(file) {
            Ok(()) => failures.push(format!("{}: loaded without error", file.display())),
            Err(errors) if !errors.contains(&expected) => failures.push(format!(
                "{}: expected an error containing\n    {expected}\n  got\n    {}",
                file.display(),
                errors.replace('\n', "\n    ")
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
