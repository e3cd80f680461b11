//! `sfx completions <shell>`: the completion script, generated from the clap definition.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// The script text (also what `completions/` holds).
pub fn render(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sfx", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub fn run(args: &CompletionsArgs) -> String {
    render(args.shell)
}
