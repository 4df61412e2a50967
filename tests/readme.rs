//! The README's quick start is `examples/quickstart/src/lib.rs`, which the
//! workspace compiles: this keeps the two identical.

#[test]
fn readme_quick_start_is_the_compiled_example() {
    let root = idp_tests::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let example = std::fs::read_to_string(root.join("examples/quickstart/src/lib.rs"))
        .expect("quickstart source");
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("a Quick start section");
    let snippet = section
        .split("```rust\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a rust block in the Quick start section");
    assert_eq!(
        snippet, example,
        "README quick start and examples/quickstart differ"
    );
}
