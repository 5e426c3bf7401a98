//! Property tests of the project file parser (`nimbus.toml`, [`crate::project::load`]), which
//! reads whatever a checkout holds: arbitrary text, TOML-shaped text made of the grammar's own
//! tables and keys, and one, two or three changes to the Titanic example never panic, and a
//! file that loads holds what `apply` relies on (every route's function and `up`'s API and
//! stage are declared).
//!
//! `NIMBUS_PROPTEST_CASES` sets the cases per property (`bench/fuzz.sh` runs many),
//! `PROPTEST_RNG_SEED` the seed; without it the seed is fixed, so `cargo test` is repeatable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use crate::CliError;
use crate::project::{Project, load};

/// The seed of a plain `cargo test` run.
const SEED: u64 = 0x746f_6d6c;

/// `default_cases` cases, unless `NIMBUS_PROPTEST_CASES` says otherwise; a counterexample is
/// printed (and belongs in a named unit test), not written into the source tree.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = match std::env::var("NIMBUS_PROPTEST_CASES") {
        Ok(v) => v.parse().expect("NIMBUS_PROPTEST_CASES must be a whole number"),
        Err(_) => default_cases,
    };
    let mut config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config
}

const TITANIC: &str = include_str!("../../../examples/titanic/nimbus.toml");

/// A project directory holding the files the Titanic example uploads and sends (empty: only
/// their existence is checked). One per test, removed when it ends.
fn project_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(dir.path().join("data")).expect("data/");
    for f in ["train.csv", "test.csv", "sample_request.json"] {
        std::fs::write(dir.path().join("data").join(f), "").expect("a data file");
    }
    dir
}

/// Loads `text` as the `nimbus.toml` of `dir`. Each case writes a new file and removes it
/// after: a file truncated and rewritten is flushed to disk on close (ext4), which made the
/// cases 20 times slower.
fn load_text(dir: &Path, text: &str) -> Result<Project, CliError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file: PathBuf = dir.join(format!("nimbus-{}.toml", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&file, text).expect("writes the project file");
    let loaded = load(&file);
    std::fs::remove_file(&file).expect("removes the project file");
    loaded
}

/// What `apply` and `up` take for granted of a project that loaded.
fn check_loaded(dir: &Path, text: &str) -> Result<(), TestCaseError> {
    let Ok(project) = load_text(dir, text) else { return Ok(()) };
    for (name, api) in &project.apis {
        for (key, route) in &api.routes {
            prop_assert!(project.functions.contains_key(&route.function), "apis.{}.routes.{:?}", name, key);
        }
    }
    if let Some(up) = &project.up {
        let api = project.apis.get(&up.api);
        prop_assert!(api.is_some_and(|a| a.stages.contains_key(&up.stage)), "up names a declared API and stage");
        if let Some(p) = &up.pipeline {
            prop_assert!(project.pipelines.contains_key(p), "up.pipeline is declared");
        }
    }
    for u in &project.uploads {
        prop_assert!(u.to.starts_with("s3://"), "{}", u.to);
    }
    Ok(())
}

/// A value the grammar may or may not expect where it is put.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\"titanic\"",
            "\"predict\"",
            "\"train\"",
            "\"evaluate\"",
            "\"condition\"",
            "\"register\"",
            "\"transform\"",
            "\"process\"",
            "\"model\"",
            "\"latest-approved\"",
            "\"s3://titanic/data/train.csv\"",
            "\"s3://nimbus-models/x\"",
            "\"data/train.csv\"",
            "\"${train_file}\"",
            "\"${steps.train.model}\"",
            "\"${steps.evaluate.auc} >= ${min_auc}\"",
            "\"${\"",
            "\"${steps.}\"",
            "\"integer\"",
            "\"float\"",
            "\"string\"",
            "\"boolean\"",
            "[\"check\"]",
            "[\"train\", \"train\"]",
            "{ type = \"integer\", default = 4 }",
            "{ type = \"float\", default = \"x\" }",
            "{ function = \"predict\" }",
            "{ objective = \"${objective}\", max_depth = 3 }",
            "true",
            "0",
            "-1",
            "18446744073709551615",
            "9223372036854775807",
            "1e400",
            "nan",
            "inf",
            "[]",
            "{}",
            "\"\"",
        ])
        .prop_map(str::to_string),
        "-?[0-9]{1,20}",
        "\"[^\"\\\\\\x00-\\x1f\\x7f]{0,12}\"",
    ]
}

fn toml_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "description",
            "file",
            "to",
            "model_group",
            "kind",
            "data",
            "target",
            "feature_columns",
            "categorical_columns",
            "test_fraction",
            "seed",
            "num_round",
            "params",
            "model",
            "evaluation",
            "when",
            "after",
            "selector",
            "memory_mb",
            "timeout_s",
            "max_concurrency",
            "idle_s",
            "default",
            "hosts",
            "\"POST /predict\"",
            "\"GET /items/{id}\"",
            "\"ANY /{proxy+}\"",
            "\"$default\"",
            "pipeline",
            "auto_approve",
            "api",
            "stage",
            "path",
            "sample",
            "variables",
            "max_depth",
            "command",
            "args",
            "outputs",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

fn toml_table() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "[project]",
            "[[uploads]]",
            "[pipelines.titanic]",
            "[pipelines.titanic.parameters]",
            "[pipelines.titanic.steps.train]",
            "[pipelines.titanic.steps.check]",
            "[pipelines.p.steps.t]",
            "[functions.predict]",
            "[functions.other]",
            "[apis.titanic]",
            "[apis.titanic.routes]",
            "[apis.titanic.stages.prod]",
            "[apis.v2]",
            "[apis.v2.routes]",
            "[up]",
            "[[pipelines]]",
            "[",
        ])
        .prop_map(str::to_string),
        "\\[[a-z._]{1,20}\\]",
    ]
}

/// TOML-shaped text: up to `lines` table headers and `key = value` lines drawn from the
/// grammar, one line in `1 + clean` arbitrary text.
fn tomlish(lines: usize, clean: u32) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            2 * clean + 2 => toml_table(),
            8 * clean + 8 => (toml_key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
            1 => ".{0,20}",
        ],
        0..lines,
    )
    .prop_map(|lines| lines.join("\n"))
}

/// One change to a file: a line removed, repeated or moved, a value replaced, or a character
/// replaced, inserted or removed.
#[derive(Clone, Debug)]
enum Change {
    DropLine(prop::sample::Index),
    RepeatLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    ReplaceValue(prop::sample::Index, String),
    ReplaceChar(prop::sample::Index, char),
    InsertChar(prop::sample::Index, char),
    RemoveChar(prop::sample::Index),
}

fn change() -> impl Strategy<Value = Change> {
    let at = any::<prop::sample::Index>;
    let ch = || {
        prop_oneof![
            prop::sample::select(vec!['"', '[', ']', '{', '}', '=', ',', '.', '\n', '$', '#', ' ']),
            any::<char>()
        ]
    };
    prop_oneof![
        1 => at().prop_map(Change::DropLine),
        1 => at().prop_map(Change::RepeatLine),
        1 => (at(), at()).prop_map(|(a, b)| Change::SwapLines(a, b)),
        3 => (at(), toml_value()).prop_map(|(a, v)| Change::ReplaceValue(a, v)),
        1 => (at(), ch()).prop_map(|(a, c)| Change::ReplaceChar(a, c)),
        1 => (at(), ch()).prop_map(|(a, c)| Change::InsertChar(a, c)),
        1 => at().prop_map(Change::RemoveChar),
    ]
}

fn apply(text: &str, change: &Change) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut chars: Vec<char> = text.chars().collect();
    match change {
        Change::DropLine(i) if !lines.is_empty() => {
            lines.remove(i.index(lines.len()));
        }
        Change::RepeatLine(i) if !lines.is_empty() => {
            let i = i.index(lines.len());
            lines.insert(i, lines[i].clone());
        }
        Change::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }
        Change::ReplaceValue(i, value) => {
            // The value of one `key = value` line.
            let assignments: Vec<usize> = (0..lines.len()).filter(|&l| lines[l].contains(" = ")).collect();
            if !assignments.is_empty() {
                let l = assignments[i.index(assignments.len())];
                let key = lines[l].split(" = ").next().unwrap_or_default().to_string();
                lines[l] = format!("{key} = {value}");
            }
        }
        Change::ReplaceChar(i, c) if !chars.is_empty() => {
            let i = i.index(chars.len());
            chars[i] = *c;
            return chars.into_iter().collect();
        }
        Change::InsertChar(i, c) => {
            chars.insert(i.index(chars.len() + 1), *c);
            return chars.into_iter().collect();
        }
        Change::RemoveChar(i) if !chars.is_empty() => {
            chars.remove(i.index(chars.len()));
            return chars.into_iter().collect();
        }
        _ => {}
    }
    lines.join("\n")
}

/// Cases per property: each writes and reads a file.
const CASES: u32 = 2000;

#[test]
fn the_titanic_example_loads_from_the_test_directory() {
    // The base the changes start from must be valid, or they would only test error paths.
    let dir = project_dir();
    let project = load_text(dir.path(), TITANIC).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project.uploads.len(), 2);
    assert!(project.apis.contains_key("titanic") && project.pipelines.contains_key("titanic"));
}

#[test]
fn arbitrary_text_never_panics() {
    let dir = project_dir();
    proptest!(config(CASES), |(text in prop_oneof![".{0,200}", "[\\[\\]{}=\"'.,#\\n a-z0-9$]{0,120}"])| {
        check_loaded(dir.path(), &text)?;
    });
}

#[test]
fn toml_shaped_text_never_panics() {
    let dir = project_dir();
    proptest!(config(CASES), |(text in tomlish(30, 2))| {
        check_loaded(dir.path(), &text)?;
    });
}

#[test]
fn changes_to_the_titanic_example_never_panic() {
    let dir = project_dir();
    proptest!(config(CASES), |(changes in prop::collection::vec(change(), 1..4))| {
        let text = changes.iter().fold(TITANIC.to_string(), |t, c| apply(&t, c));
        check_loaded(dir.path(), &text)?;
    });
}

#[test]
fn toml_appended_to_the_titanic_example_never_panics() {
    let dir = project_dir();
    proptest!(config(CASES), |(extra in tomlish(8, 20))| {
        check_loaded(dir.path(), &format!("{TITANIC}\n{extra}"))?;
    });
}
