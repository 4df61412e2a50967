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

/// The README's performance section is what `scripts/bench-readme` renders
/// from the kept report, not figures typed by hand.
#[test]
fn readme_performance_section_is_rendered_from_the_kept_report() {
    use idp_tests::report;
    let root = idp_tests::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let kept = std::fs::read_to_string(root.join("docs/bench-report.json"))
        .expect("docs/bench-report.json (written by scripts/bench-readme)");
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("report JSON");
    let section = report::section(&readme).expect("README.md has the bench markers");
    assert_eq!(
        section,
        report::render(&kept),
        "README performance section differs from docs/bench-report.json: run scripts/bench-readme"
    );
}
