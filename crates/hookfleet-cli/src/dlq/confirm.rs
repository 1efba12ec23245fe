//! Asking before a destructive or far-reaching step (STYLE habit 8):
//! `--yes` skips the question; without it the question goes to the
//! terminal, and with no terminal to ask the command refuses (exit 2)
//! rather than guess.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;

use crate::context::Failure;

/// What the operator answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go ahead.
    Yes,
    /// Do nothing.
    No,
}

/// Asks `question` (a `[y/N]` prompt on stderr) unless `yes`. `command`
/// names the command in the refusal when stdin is not a terminal.
pub(crate) fn confirm(yes: bool, command: &str, question: &str) -> Result<Answer, Failure> {
    if yes {
        return Ok(Answer::Yes);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "{command} needs confirmation and stdin is not a terminal: pass --yes"
        )));
    }

    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question} [y/N] ")
        .and_then(|()| stderr.flush())
        .context("cannot write the question")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    Ok(parse_answer(&line))
}

/// `y` or `yes` in any case is yes; anything else, an empty line or end
/// of input is no.
fn parse_answer(line: &str) -> Answer {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Yes,
        _ => Answer::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        assert_eq!(parse_answer("y\n"), Answer::Yes);
        assert_eq!(parse_answer(" YES \n"), Answer::Yes);
        assert_eq!(parse_answer("\n"), Answer::No);
        assert_eq!(parse_answer(""), Answer::No);
        assert_eq!(parse_answer("yep\n"), Answer::No);
    }
}
