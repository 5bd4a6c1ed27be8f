//! `.pyferry/RECORD`: the SHA-256 and size of every entry and of the launcher, written at pack
//! time and read by `pyferry verify` (never by the launcher).

/// Where the record lives in the zip.
pub const RECORD_PATH: &str = ".pyferry/RECORD";

/// The name standing for the executable bytes in front of the zip.
pub const LAUNCHER: &str = "<launcher>";

/// One line: `name,sha256=HEX,SIZE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLine {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// Parses a record; malformed lines are an error naming the line.
pub fn parse(text: &str) -> Result<Vec<RecordLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| {
            let mut fields = line.rsplitn(3, ',');
            let size = fields.next().and_then(|size| size.parse().ok());
            let sha256 = fields.next().and_then(|hash| hash.strip_prefix("sha256="));
            let name = fields.next();
            match (name, sha256, size) {
                (Some(name), Some(sha256), Some(size)) => Ok(RecordLine {
                    name: name.to_string(),
                    sha256: sha256.to_string(),
                    size,
                }),
                _ => Err(format!("line {} is malformed", number + 1)),
            }
        })
        .collect()
}

/// Formats record lines.
pub fn format(lines: &[RecordLine]) -> String {
    lines
        .iter()
        .map(|line| format!("{},sha256={},{}\n", line.name, line.sha256, line.size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_commas_in_names() {
        let lines = vec![
            RecordLine {
                name: LAUNCHER.into(),
                sha256: "ab".into(),
                size: 3,
            },
            RecordLine {
                name: "odd,name.txt".into(),
                sha256: "cd".into(),
                size: 0,
            },
        ];
        assert_eq!(parse(&format(&lines)).unwrap(), lines);
        assert!(parse("no fields\n").is_err());
    }
}
