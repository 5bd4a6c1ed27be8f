//! What the packer shows while it works: a spinner per step on a terminal, plain lines
//! otherwise (logs, CI), nothing with `-q`. Data (inspect's report) goes to stdout; this goes
//! to stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// One step of the work, shown until it is dropped.
pub struct Step {
    spinner: Option<ProgressBar>,
}

impl Step {
    /// Starts a step. On a terminal a spinner shows `message` and the elapsed time; otherwise
    /// the message is logged once.
    pub fn start(message: impl Into<String>) -> Step {
        let message = message.into();
        let quiet = !tracing::enabled!(tracing::Level::INFO);
        if quiet {
            return Step { spinner: None };
        }
        if !std::io::stderr().is_terminal() {
            tracing::info!("{message}");
            return Step { spinner: None };
        }
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(message);
        spinner.enable_steady_tick(Duration::from_millis(100));
        Step {
            spinner: Some(spinner),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }
}
