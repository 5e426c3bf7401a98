//! Bundles: zip and unpack round trips, determinism, every way an entry could escape, the
//! caps, and task roots made once per bundle, with requirements installed by a real pip in
//! the (unconfined) sandbox from a wheel shipped in the bundle, so no network is needed.

use std::io::Write;
use std::os::unix::fs::symlink;

use base64::Engine;
use nimbus_meta::Db;

use super::*;

fn write(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A code directory with an executable, an empty directory, links inside it and everything
/// `zip_dir` leaves out.
fn code_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "app.py", b"def handler(event, context):\n    return event\n", 0o644);
    write(d, "lib/util.py", b"X = 1\n", 0o600);
    write(d, "bin/run", b"#!/bin/sh\necho run\n", 0o700);
    fs::create_dir_all(d.join("empty")).unwrap();
    symlink("lib/util.py", d.join("util.py")).unwrap();
    symlink("../app.py", d.join("lib/app.py")).unwrap();
    for skipped in ["__pycache__/app.cpython-311.pyc", "app.pyc", ".git/HEAD", ".DS_Store", ".nimbus/credentials"] {
        write(d, skipped, b"leave me out", 0o644);
    }
    dir
}

#[test]
fn a_directory_round_trips_with_its_executable_bits_and_links() {
    let src = code_dir();
    let zip = zip_dir(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("root");
    unpack(&zip, &dest).unwrap();

    assert_eq!(fs::read(dest.join("app.py")).unwrap(), fs::read(src.path().join("app.py")).unwrap());
    assert_eq!(fs::read(dest.join("lib/util.py")).unwrap(), b"X = 1\n");
    assert_eq!(mode(&dest.join("app.py")), 0o444);
    assert_eq!(mode(&dest.join("bin/run")), 0o555, "the executable bit is kept");
    for d in ["", "lib", "bin", "empty"] {
        assert_eq!(mode(&dest.join(d)), 0o555, "directory {d:?} is read-only");
    }
    assert_eq!(fs::read_link(dest.join("util.py")).unwrap(), Path::new("lib/util.py"));
    assert_eq!(fs::read(dest.join("lib/app.py")).unwrap(), fs::read(dest.join("app.py")).unwrap());
    for skipped in ["__pycache__", "app.pyc", ".git", ".DS_Store", ".nimbus"] {
        assert!(!dest.join(skipped).exists(), "{skipped} is left out");
    }
    unseal(out.path());
}

#[test]
fn the_same_directory_zips_to_the_same_bytes() {
    let src = code_dir();
    let first = zip_dir(src.path()).unwrap();
    assert_eq!(first, zip_dir(src.path()).unwrap(), "two zips of one directory are identical");

    // Times and permission bits other than "executable" do not count.
    let app = src.path().join("app.py");
    let f = fs::File::options().write(true).open(&app).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap();
    fs::set_permissions(&app, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(first, zip_dir(src.path()).unwrap(), "mtime and mode 0600 vs 0644 change nothing");

    fs::write(&app, b"def handler(event, context):\n    return 2\n").unwrap();
    assert_ne!(first, zip_dir(src.path()).unwrap(), "a changed file changes the bytes");
}

#[test]
fn links_out_of_the_directory_are_refused() {
    for (link, target) in [("out", "../elsewhere"), ("abs", "/etc/passwd"), ("sub/twice", "../../x"), ("mid", "a/../b")]
    {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "app.py", b"", 0o644);
        fs::create_dir_all(dir.path().join("sub")).unwrap();
        symlink(target, dir.path().join(link)).unwrap();
        let e = zip_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains(link) && e.contains(target) && e.contains("replace the link"), "{link} -> {target}: {e}");
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    let e = zip_dir(file.path()).unwrap_err().to_string();
    assert!(e.contains("is not a directory") && e.contains(".zip"), "{e}");
}

/// An entry of a handmade zip.
enum E {
    File(&'static str, &'static [u8]),
    Link(&'static str, &'static str),
}

fn zip_of(entries: &[E]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().unix_permissions(0o644);
    for e in entries {
        match e {
            E::File(name, bytes) => {
                zip.start_file(*name, opts).unwrap();
                zip.write_all(bytes).unwrap();
            }
            E::Link(name, target) => zip.add_symlink(*name, *target, opts).unwrap(),
        }
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn entries_that_would_escape_are_refused_before_anything_is_written() {
    use E::*;
    let cases: Vec<(&str, Vec<E>, &str)> = vec![
        ("parent", vec![File("../evil.txt", b"x")], "contains `..`"),
        ("absolute", vec![File("/tmp/evil.txt", b"x")], "absolute path"),
        ("deep parent", vec![File("a/../../evil.txt", b"x")], "contains `..`"),
        ("backslashes", vec![File("a\\..\\..\\evil.txt", b"x")], "uses \\"),
        ("link out", vec![Link("l", "../outside")], "leads outside"),
        ("absolute link", vec![Link("l", "/etc")], "absolute path"),
        ("through a link", vec![Link("l", "sub"), File("l/x.txt", b"x")], "lies under the symbolic link \"l\""),
        ("a link through a link", vec![Link("d/a", ".."), Link("d/a/l", "../x")], "lies under the symbolic link"),
        ("climb after a name", vec![Link("l", "a/../../x")], "`..` after a name"),
        ("under a file", vec![File("f", b"x"), File("f/x.txt", b"x")], "lies under the file"),
    ];
    for (label, entries, reason) in cases {
        let zip = zip_of(&entries);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("root");
        let e = unpack(&zip, &dest).unwrap_err().to_string();
        let last = match entries.last().unwrap() {
            File(n, _) | Link(n, _) => *n,
        };
        let named = e.contains(last) || e.contains(&last.replace("\\", "\\\\"));
        assert!(named && e.contains(reason), "{label}: {e}");
        assert!(!dest.exists(), "{label}: nothing is written");
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0, "{label}: nothing beside dest either");
    }
    let e = unpack(b"not a zip at all", &tempfile::tempdir().unwrap().path().join("r")).unwrap_err().to_string();
    assert!(e.contains("not a readable zip"), "{e}");
}

#[test]
fn size_and_entry_caps_hold() {
    let small = Limits { bytes: 1000, entries: 3 };
    // Unpacking: the declared size, then the count.
    let big = zip_of(&[E::File("zeros.bin", &[0u8; 2000])]);
    let e = extract(&big, &tempfile::tempdir().unwrap().path().join("r"), small).unwrap_err().to_string();
    assert!(e.contains("more than 1000 bytes"), "{e}");
    let many = zip_of(&[E::File("a", b""), E::File("b", b""), E::File("c", b""), E::File("d", b"")]);
    let e = extract(&many, &tempfile::tempdir().unwrap().path().join("r"), small).unwrap_err().to_string();
    assert!(e.contains("more than 3 files"), "{e}");
    let ok = zip_of(&[E::File("a", b"1"), E::File("b", b"2")]);
    extract(&ok, &tempfile::tempdir().unwrap().path().join("r"), small).unwrap();

    // Zipping: the real limit, measured before any byte is read (the file is sparse).
    let dir = tempfile::tempdir().unwrap();
    fs::File::create(dir.path().join("huge.bin")).unwrap().set_len(MAX_UNZIPPED_BYTES + 1).unwrap();
    let e = zip_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("250 MiB") && e.contains(&dir.path().display().to_string()), "{e}");
    let dir = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c", "d"] {
        write(dir.path(), n, b"", 0o644);
    }
    let e = zip_dir_with(dir.path(), small).unwrap_err().to_string();
    assert!(e.contains("more than 3 files"), "{e}");
}

#[test]
fn python_comes_from_the_command_when_it_is_python() {
    let cmd = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(python_of(&cmd(&["python3", "-m", "awslambdaric"])), "python3");
    assert_eq!(python_of(&cmd(&["/opt/venv/bin/python3.12", "-m", "awslambdaric"])), "/opt/venv/bin/python3.12");
    assert_eq!(python_of(&cmd(&["/usr/bin/node", "index.js"])), "python3");
    assert_eq!(python_of(&[]), "python3");
}

#[test]
fn code_keys_name_the_function_and_the_digest() {
    let sha = "ab".repeat(32);
    let key = code_key("hello", &sha);
    assert_eq!(key, format!("hello/sha256-{sha}.zip"));
    assert_eq!(parse_code_key(&key), Some(("hello", sha.as_str())));
    for bad in
        ["hello/x.zip", "hello/sha256-ABC.zip", &format!("../sha256-{sha}.zip"), &format!("a/b/sha256-{sha}.zip")]
    {
        assert_eq!(parse_code_key(bad), None, "{bad}");
    }
}

/// A store holding `zip` as a function's bundle; returns the URI and digest.
async fn stored(dir: &Path, zip: Vec<u8>) -> (Store, String, String) {
    let db = Db::open_sqlite(&dir.join("meta.db")).await.unwrap();
    let store = Store::local(db, &dir.join("objects")).unwrap();
    store.ensure_bucket(CODE_BUCKET).await.unwrap();
    let sha = hex::encode(Sha256::digest(&zip));
    let info = store.put(CODE_BUCKET, &code_key("hello", &sha), zip.into(), "application/zip").await.unwrap();
    (store, info.uri(), sha)
}

fn sandbox(dir: &Path) -> Sandbox {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    Sandbox::detect(&data, None, true)
}

#[tokio::test]
async fn a_bundle_is_prepared_once_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (store, uri, sha) = stored(dir.path(), zip_dir(code_dir().path()).unwrap()).await;
    let roots = TaskRoots::new(dir.path().join("code"));
    let sandbox = sandbox(dir.path());

    let racing: Vec<_> = (0..8)
        .map(|_| {
            let (roots, store, uri, sha, sandbox) =
                (roots.clone(), store.clone(), uri.clone(), sha.clone(), sandbox.clone());
            tokio::spawn(async move { roots.prepare(&store, &uri, &sha, None, "python3", &sandbox).await.unwrap() })
        })
        .collect();
    let mut paths = Vec::new();
    for r in racing {
        paths.push(r.await.unwrap());
    }
    assert!(paths.iter().all(|p| *p == paths[0]), "every caller gets the same task root: {paths:?}");
    let root = &paths[0];
    assert_eq!(*root, roots.path_of(&sha, None, "python3"));
    assert_eq!(fs::read_dir(roots.root()).unwrap().count(), 1, "one task root, nothing unfinished left");
    assert_eq!(mode(root), 0o555);
    assert_eq!(mode(&root.join("bin/run")), 0o555);
    let again = roots.prepare(&store, &uri, &sha, None, "python3", &sandbox).await.unwrap();
    assert_eq!(again, *root);
    assert!(roots.inner.flights.lock().unwrap().is_empty(), "no flight outlives its build");

    // Another interpreter is another task root; another digest is refused by the store.
    let other = roots.prepare(&store, &uri, &sha, None, "python3.12", &sandbox).await.unwrap();
    assert_ne!(other, *root);
    let e = roots.prepare(&store, &uri, &"0".repeat(64), None, "python3", &sandbox).await.unwrap_err().to_string();
    assert!(e.contains(&uri) && e.contains("not the"), "{e}");
    let e = roots.prepare(&store, "hello.zip", &sha, None, "python3", &sandbox).await.unwrap_err().to_string();
    assert!(e.contains("s3://bucket/key"), "{e}");
    unseal(roots.root());
}

/// The real interpreter (not a shim) when python3 with pip is on PATH.
fn python_with_pip() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, pip; print(sys.executable)"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A wheel of a one-module package `tinypkg` that pip can install offline.
fn tiny_wheel() -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("tinypkg/__init__.py".into(), b"VALUE = 42\n".to_vec()),
        ("tinypkg-1.0.dist-info/METADATA".into(), b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n".to_vec()),
        (
            "tinypkg-1.0.dist-info/WHEEL".into(),
            b"Wheel-Version: 1.0\nGenerator: nimbus-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    let mut record = String::new();
    for (name, bytes) in &files {
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
        record.push_str(&format!("{name},sha256={digest},{}\n", bytes.len()));
    }
    record.push_str("tinypkg-1.0.dist-info/RECORD,,\n");
    files.push(("tinypkg-1.0.dist-info/RECORD".into(), record.into_bytes()));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(name, SimpleFileOptions::default()).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A bundle whose requirements file installs `wheel` from the bundle itself, offline.
fn bundle_with_requirements(wheel: &str) -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "app.py", b"import tinypkg\n", 0o644);
    write(src.path(), "wheels/tinypkg-1.0-py3-none-any.whl", &tiny_wheel(), 0o644);
    write(src.path(), "requirements.txt", format!("--no-index\n./wheels/{wheel}\n").as_bytes(), 0o644);
    zip_dir(src.path()).unwrap()
}

#[tokio::test]
async fn requirements_are_installed_into_the_task_root_in_the_sandbox() {
    let Some(python) = python_with_pip() else {
        eprintln!("skipped: no python3 with pip on PATH to install requirements with");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, uri, sha) = stored(dir.path(), bundle_with_requirements("tinypkg-1.0-py3-none-any.whl")).await;
    let roots = TaskRoots::new(dir.path().join("code"));
    let root =
        roots.prepare(&store, &uri, &sha, Some("requirements.txt"), &python, &sandbox(dir.path())).await.unwrap();
    assert_eq!(fs::read(root.join("tinypkg/__init__.py")).unwrap(), b"VALUE = 42\n");
    assert!(root.join("tinypkg-1.0.dist-info").is_dir());
    assert_eq!(mode(&root.join("tinypkg")), 0o555, "what pip installed is read-only too");
    assert_eq!(mode(&root.join("tinypkg/__init__.py")), 0o444);
    let imported = std::process::Command::new(&python)
        .args(["-c", "import tinypkg; print(tinypkg.VALUE)"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&imported.stdout).trim(), "42");
    unseal(roots.root());
}

#[tokio::test]
async fn a_pip_failure_names_the_requirements_file_and_shows_pips_output() {
    let Some(python) = python_with_pip() else {
        eprintln!("skipped: no python3 with pip on PATH to install requirements with");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, uri, sha) = stored(dir.path(), bundle_with_requirements("missing-1.0-py3-none-any.whl")).await;
    let roots = TaskRoots::new(dir.path().join("code"));
    let sandbox = sandbox(dir.path());
    let e = roots.prepare(&store, &uri, &sha, Some("requirements.txt"), &python, &sandbox).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("requirements = \"requirements.txt\"") && text.contains("exited with status"), "{text}");
    assert!(text.contains("missing-1.0-py3-none-any.whl"), "pip's own words are shown: {text}");
    assert!(text.len() < PIP_TAIL_BYTES + 1024, "the output shown is bounded");

    let e = roots.prepare(&store, &uri, &sha, Some("nope.txt"), &python, &sandbox).await.unwrap_err().to_string();
    assert!(e.contains("\"nope.txt\" is not a file in the code bundle"), "{e}");

    // The unfinished trees are removed (off the async threads, so give it a moment).
    for _ in 0..100 {
        if fs::read_dir(roots.root()).unwrap().count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("unfinished task roots were left: {:?}", fs::read_dir(roots.root()).unwrap().collect::<Vec<_>>());
}
