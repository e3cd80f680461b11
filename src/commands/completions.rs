//! `sfx completions <shell>`: the completion script, the same text `completions/` holds.

use crate::cli::CompletionsArgs;

pub fn run(args: &CompletionsArgs) -> String {
    crate::generate::completion(args.shell)
}
