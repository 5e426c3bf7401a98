//! The README's reference of `nimbus serve` options cannot drift from `--help`.

#[test]
fn readme_lists_every_serve_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nimbus")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let reference = readme.split("## Reference: `nimbus serve`").nth(1).expect("README has the serve reference");
    let mut checked = 0;
    for word in help.split_whitespace() {
        let flag = word.trim_end_matches(',').split('=').next().unwrap();
        if !flag.starts_with("--") || ["--help", "--version", "--endpoint", "--profile", "--output"].contains(&flag) {
            continue;
        }
        let listed = reference.contains(&format!("`{flag} ")) || reference.contains(&format!("`{flag}`"));
        assert!(listed, "README's serve reference lacks {flag}");
        checked += 1;
    }
    assert!(checked >= 5, "found only {checked} options in:\n{help}");
}
