//! Which mode a start is: the application (the default), or the embedded interpreter with
//! python's own command line.
//!
//! The application owns its command line, so interpreter mode is chosen only where no person's
//! arguments for the application can be mistaken for it, in this order:
//! - `PYFERRY_PYTHON=1` in the environment: the interpreter; `PYFERRY_PYTHON=0`: the
//!   application, whatever follows;
//! - the executable started under the name `python`, `python3` or `python3.11` (a symlink);
//! - the command lines that `multiprocessing` gives its helper processes: python options, then
//!   `-c` and code starting with `from multiprocessing.` (spawn children, the forkserver and the
//!   resource tracker), which no application's own arguments look like;
//! - a python command line (`-c CODE`, `-m MODULE`, `-`, a `.py` script, after python's
//!   options) from a process that **this same application started**, directly, through a shell
//!   or through its own python children: the application's `sys.executable` is the
//!   application, and libraries start "python" that way (joblib's loky workers, `pip`, test
//!   runners). The launcher leaves a marker in its children's environment (`lineage.rs`); when
//!   a child's environment was replaced, the process tree is looked up instead. A person who
//!   types `./myapp -m x` or `./myapp t.py` has neither, and gets the application.
use std::ffi::OsString;
use std::path::Path;

use super::lineage::{self, Lineage};
use crate::environment::{self, PythonModeRequest};

/// How this start runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchMode {
    /// The packed application's entry point, with the command line as its `sys.argv`.
    App,
    /// CPython's own `main`, with python's command line (`-c`, `-m`, a script, the REPL...).
    Interpreter,
}

/// Names under which the executable behaves as `python`.
const PYTHON_NAMES: &[&str] = &["python", "python3", "python3.11"];

/// Python options that take no argument, as `multiprocessing` passes them on.
const FLAGS: &[&str] = &[
    "-B", "-S", "-I", "-E", "-s", "-P", "-b", "-bb", "-d", "-O", "-OO", "-q", "-u", "-v", "-vv",
];

/// Whether `arguments` (without `argv[0]`) are a multiprocessing helper's command line.
fn is_multiprocessing_child(arguments: &[OsString]) -> bool {
    let mut rest = arguments.iter().map(|argument| argument.to_string_lossy());
    while let Some(argument) = rest.next() {
        match argument.as_ref() {
            "-c" => {
                return rest
                    .next()
                    .is_some_and(|code| code.trim_start().starts_with("from multiprocessing."))
            }
            "-W" | "-X" => {
                rest.next();
            }
            flag if FLAGS.contains(&flag) => {}
            _ => return false,
        }
    }
    false
}

/// Decides the mode from the command line, the environment and the lineage of this start.
pub fn launch_mode(argv: &[OsString], lineage: &Lineage) -> LaunchMode {
    match environment::python_mode_request() {
        PythonModeRequest::Interpreter => return LaunchMode::Interpreter,
        PythonModeRequest::Application => return LaunchMode::App,
        PythonModeRequest::Decide => {}
    }
    let name = argv
        .first()
        .and_then(|argument| Path::new(argument).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if PYTHON_NAMES.contains(&name.as_str()) {
        return LaunchMode::Interpreter;
    }
    let arguments = argv.get(1..).unwrap_or_default();
    if is_multiprocessing_child(arguments) {
        return LaunchMode::Interpreter;
    }
    if lineage::is_python_command_line(arguments)
        && (lineage.started_by_this_application() || lineage::started_by_same_executable())
    {
        return LaunchMode::Interpreter;
    }
    LaunchMode::App
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(arguments: &[&str]) -> Vec<OsString> {
        arguments.iter().map(OsString::from).collect()
    }

    fn launch_mode(argv: &[OsString]) -> LaunchMode {
        super::launch_mode(argv, &Lineage::from_environment("0123456789abcdef"))
    }

    #[test]
    fn multiprocessing_children_are_recognized() {
        let spawn = argv(&[
            "/opt/app",
            "-B",
            "-S",
            "-I",
            "-c",
            "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
            "--multiprocessing-fork",
        ]);
        assert_eq!(launch_mode(&spawn), LaunchMode::Interpreter);
        let forkserver = argv(&[
            "/opt/app",
            "-W",
            "ignore",
            "-c",
            "from multiprocessing.forkserver import main; main(3, 4, [], **{})",
        ]);
        assert_eq!(launch_mode(&forkserver), LaunchMode::Interpreter);
    }

    #[test]
    fn application_arguments_stay_the_application() {
        for arguments in [
            &["/opt/app", "-c", "print(1)"][..],
            &[
                "/opt/app",
                "--flag",
                "-c",
                "from multiprocessing.x import y",
            ],
            &["/opt/app"],
            &["/opt/app", "-B"],
        ] {
            assert_eq!(
                launch_mode(&argv(arguments)),
                LaunchMode::App,
                "{arguments:?}"
            );
        }
    }

    #[test]
    fn python_names_start_the_interpreter() {
        assert_eq!(
            launch_mode(&argv(&["/usr/local/bin/python3", "-c", "1"])),
            LaunchMode::Interpreter
        );
        assert_eq!(launch_mode(&argv(&["python"])), LaunchMode::Interpreter);
    }
}
