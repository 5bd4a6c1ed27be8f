//! Which runs of the same application a start descends from: the marker that tells the
//! application's own children apart from a person's command, and the count that stops an
//! application from re-running itself without end.
//!
//! Every start puts its application's identity (the first 16 hex digits of the build id) in
//! `PYFERRY_ANCESTRY`, with the number of times that application ran *as the application*
//! among the processes above, itself included: `3f9c01a2b4d5e6f7:1`. Children inherit the
//! environment, so a child finds there whether this same application (or one of its python
//! children) started it, and how deeply application runs are nested. Entries of other pyferry
//! applications are kept beside ours (`id:n,id:n`), so two applications that start each other
//! are counted too.
//!
//! When a child's environment was replaced (`subprocess.run(..., env={})`) the marker is gone;
//! [`started_by_same_executable`] then looks up the process tree instead (only asked for
//! command lines that look like python's, so an ordinary start never pays for it).

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;

use crate::environment;

/// How many entries `PYFERRY_ANCESTRY` keeps (the most recent ones), so that a long chain of
/// different applications cannot grow the environment without bound.
const MAX_ENTRIES: usize = 16;

/// How many digits of the build id name an application in `PYFERRY_ANCESTRY`.
const IDENTITY_DIGITS: usize = 16;

/// How far up the process tree [`started_by_same_executable`] looks.
const MAX_ANCESTORS: usize = 64;

/// The relationship of this start to the runs above it, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    identity: String,
    /// Entries of other applications, in the order found.
    others: Vec<(String, u32)>,
    /// Our own entry: `None` when no process above belongs to this application (as far as
    /// the environment tells).
    inherited: Option<u32>,
}

/// Started once too often inside itself.
#[derive(Debug, thiserror::Error)]
#[error("{path} re-ran itself recursively ({depth} nested runs of the application, more than {limit}); the likely cause is the application starting `sys.executable` with arguments that are not a python command line (`-c CODE`, `-m MODULE`, a `.py` script), so each child runs the application again; hint: if the nesting is intended, set {variable} to a higher number", variable = environment::MAX_NESTING)]
pub struct RecursionError {
    pub path: String,
    pub depth: u32,
    pub limit: u32,
}

impl Lineage {
    /// Reads `PYFERRY_ANCESTRY` for the application with build id `build_id`.
    pub fn from_environment(build_id: &str) -> Lineage {
        Lineage::parse(build_id, environment::ancestry().as_deref().unwrap_or(""))
    }

    fn parse(build_id: &str, value: &str) -> Lineage {
        let identity: String = build_id.chars().take(IDENTITY_DIGITS).collect();
        let mut others = Vec::new();
        let mut inherited = None;
        for entry in value.split(',') {
            let Some((name, count)) = entry.split_once(':') else {
                continue;
            };
            let Ok(count) = count.parse::<u32>() else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            if name == identity {
                inherited = Some(count);
            } else {
                others.push((name.to_string(), count));
            }
        }
        Lineage {
            identity,
            others,
            inherited,
        }
    }

    /// Whether a process above this one is this same application, according to the
    /// environment.
    pub fn started_by_this_application(&self) -> bool {
        self.inherited.is_some()
    }

    /// How many runs of this application as the application this start makes, counting itself
    /// when it runs the application.
    pub fn depth(&self, runs_application: bool) -> u32 {
        self.inherited.unwrap_or(0) + u32::from(runs_application)
    }

    /// Refuses a start that would nest the application deeper than the limit.
    pub fn check_depth(&self, path: &str) -> Result<(), RecursionError> {
        let depth = self.depth(true);
        let limit = environment::max_nesting();
        if depth > limit {
            return Err(RecursionError {
                path: path.to_string(),
                depth,
                limit,
            });
        }
        Ok(())
    }

    /// The value children inherit: our entry last, with the depth this start makes.
    pub fn value_for_children(&self, runs_application: bool) -> String {
        let skip = (self.others.len() + 1).saturating_sub(MAX_ENTRIES);
        let mut entries: Vec<String> = self
            .others
            .iter()
            .skip(skip)
            .map(|(name, count)| format!("{name}:{count}"))
            .collect();
        entries.push(format!(
            "{}:{}",
            self.identity,
            self.depth(runs_application)
        ));
        entries.join(",")
    }
}

/// Whether a process above this one runs the same executable file: the parent, or a further
/// ancestor (the application may start a child through `sh -c`). Read from `/proc`; processes
/// whose executable cannot be read (another user's) are passed over.
pub fn started_by_same_executable() -> bool {
    let Ok(own) = std::fs::metadata("/proc/self/exe") else {
        return false;
    };
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..MAX_ANCESTORS {
        // Process 1 is looked at too: in a PID namespace the application may be its init.
        if pid == 0 {
            return false;
        }
        if let Ok(metadata) = std::fs::metadata(format!("/proc/{pid}/exe")) {
            if metadata.dev() == own.dev() && metadata.ino() == own.ino() {
                return true;
            }
        }
        match parent_of(pid) {
            Some(parent) if pid != 1 => pid = parent,
            _ => return false,
        }
    }
    false
}

/// The parent of process `pid`, from `/proc/PID/stat` (the field after the state, which
/// follows the command name in parentheses: the name itself may hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `arguments` (without `argv[0]`) are a python command line that runs code: python's
/// options, then `-c CODE`, `-m MODULE`, `-` (standard input) or a script (a name ending in
/// `.py`, `.pyw`, `.pyc` or `.pyz`, or a directory holding `__main__.py`), or `-V`/`--version`.
/// An option python does not know, or a first argument that is not a script, is not python.
pub fn is_python_command_line(arguments: &[OsString]) -> bool {
    let mut rest = arguments.iter().map(|argument| argument.to_string_lossy());
    while let Some(argument) = rest.next() {
        let argument = argument.as_ref();
        match argument {
            "-" => return true,
            "--version" => return true,
            "--" => return rest.next().is_some_and(|script| is_script(&script)),
            "--check-hash-based-pycs" => {
                rest.next();
                continue;
            }
            _ => {}
        }
        let Some(cluster) = argument.strip_prefix('-') else {
            return is_script(argument);
        };
        if cluster.is_empty() || cluster.starts_with('-') {
            return false;
        }
        // A cluster of one-letter options, as python's own parser reads them (`-BSI`,
        // `-Wignore`, `-Bc CODE`).
        for (position, letter) in cluster.char_indices() {
            match letter {
                'c' | 'm' | 'V' => return true,
                'W' | 'X' => {
                    if position + 1 == cluster.len() {
                        rest.next();
                    }
                    break;
                }
                'b' | 'B' | 'd' | 'E' | 'i' | 'I' | 'O' | 'P' | 'q' | 's' | 'S' | 'u' | 'v'
                | 'x' | 'R' => {}
                _ => return false,
            }
        }
    }
    false
}

/// Whether `argument` names a script python would run: by its suffix, or a directory with a
/// `__main__` module.
fn is_script(argument: &str) -> bool {
    const SUFFIXES: &[&str] = &[".py", ".pyw", ".pyc", ".pyz"];
    if SUFFIXES.iter().any(|suffix| argument.ends_with(suffix)) {
        return true;
    }
    let path = std::path::Path::new(argument);
    path.is_dir() && (path.join("__main__.py").is_file() || path.join("__main__.pyc").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn python_command_lines_are_recognized() {
        for line in [
            &["-c", "pass"][..],
            &["-m", "pip", "install", "x"],
            &["-B", "-S", "-I", "-c", "from x import main; main()"],
            &[
                "-E", "-s", "-u", "-O", "-X", "dev", "-W", "ignore", "-m", "mod",
            ],
            &["-Wignore", "-Xutf8", "-c", "1"],
            &["-BSI", "-c", "1"],
            &["-Bc", "1"],
            &["-cprint(1)"],
            &["-mjson.tool"],
            &["-"],
            &["script.py", "--flag"],
            &["-u", "tools/run.pyz"],
            &["--check-hash-based-pycs", "never", "-c", "1"],
            &["-V"],
            &["--version"],
            &["--", "t.py"],
        ] {
            assert!(is_python_command_line(&arguments(line)), "{line:?}");
        }
    }

    #[test]
    fn application_arguments_are_not_python() {
        for line in [
            &[][..],
            &["-u"],
            &["-B", "-S"],
            &["--flag", "-c", "1"],
            &["serve", "-c", "config.toml"],
            &["input.csv"],
            &["-k", "1"],
            &["-W"],
            &["--", "data.txt"],
        ] {
            assert!(!is_python_command_line(&arguments(line)), "{line:?}");
        }
    }

    #[test]
    fn lineage_counts_runs_of_the_same_application() {
        let build_id = "0123456789abcdef0123456789abcdef";
        let fresh = Lineage::parse(build_id, "");
        assert!(!fresh.started_by_this_application());
        assert_eq!(fresh.value_for_children(true), "0123456789abcdef:1");
        // A python child of the application keeps the count and marks its own children.
        let child = Lineage::parse(build_id, "0123456789abcdef:1");
        assert!(child.started_by_this_application());
        assert_eq!(child.value_for_children(false), "0123456789abcdef:1");
        assert_eq!(child.value_for_children(true), "0123456789abcdef:2");
        // Another application's entry is kept, ours goes last.
        let nested = Lineage::parse(build_id, "0123456789abcdef:2,ffffffffffffffff:1,junk,:3");
        assert_eq!(nested.depth(true), 3);
        assert_eq!(
            nested.value_for_children(true),
            "ffffffffffffffff:1,0123456789abcdef:3"
        );
    }

    #[test]
    fn entries_are_bounded() {
        let many: Vec<String> = (0..40).map(|index| format!("{index:016x}:1")).collect();
        let lineage = Lineage::parse("abcdefabcdefabcd", &many.join(","));
        let value = lineage.value_for_children(true);
        assert_eq!(value.split(',').count(), MAX_ENTRIES);
        assert!(value.ends_with("abcdefabcdefabcd:1"));
    }
}
