//! The `hermes-kanban` binary: logging to stderr (coloured only on a terminal), then the CLI.

fn main() {
    use std::io::IsTerminal;
    // Colour only on a terminal: `serve 2>file` and journald get plain text.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERMES_KANBAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    std::process::exit(hermes_kanban::cli::main());
}
