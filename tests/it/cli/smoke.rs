use crate::helpers::Cli;

#[test]
fn version_and_help() {
    let cli = Cli::new();
    assert!(
        cli.run(&["--version"])
            .ok()
            .contains(env!("CARGO_PKG_VERSION"))
    );
    cli.run(&["no-such-verb"]).code(2);
}
