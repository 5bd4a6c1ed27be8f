//! The names in a shared object's dynamic section (`DT_SONAME`, `DT_NEEDED`) and where each
//! `DT_NEEDED` string lies in the file: what loading libraries that need each other rewrites
//! (`shared_objects.rs`).

use goblin::elf::dynamic::DT_NEEDED;
use goblin::elf::Elf;

/// The dynamic names of one object.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DynamicNames {
    pub soname: Option<String>,
    /// Each `DT_NEEDED` name, with the file offset of its string and the room it has there
    /// (its length plus the terminating NUL).
    pub needed: Vec<Needed>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Needed {
    pub name: String,
    pub offset: u64,
    pub room: usize,
}

/// Reads the dynamic names of the ELF object `bytes`.
pub fn read(bytes: &[u8]) -> Result<DynamicNames, String> {
    let elf = Elf::parse(bytes).map_err(|error| format!("not a readable ELF object: {error}"))?;
    let dynamic = elf
        .dynamic
        .as_ref()
        .ok_or_else(|| "no dynamic section".to_string())?;
    // goblin gives the string table's file offset (it converts `DT_STRTAB`'s address, and
    // gives 0 when no segment holds it). `patchelf`, which auditwheel runs, often moves the
    // table to a segment of its own at the end of the file.
    let strtab_offset = dynamic.info.strtab as u64;
    if strtab_offset == 0 {
        return Err("its string table lies in no loaded segment".to_string());
    }
    let mut needed = Vec::new();
    for entry in dynamic.dyns.iter().filter(|entry| entry.d_tag == DT_NEEDED) {
        let name = elf.dynstrtab.get_at(entry.d_val as usize).ok_or_else(|| {
            format!(
                "DT_NEEDED points outside the string table ({})",
                entry.d_val
            )
        })?;
        let offset = strtab_offset + entry.d_val;
        let found = usize::try_from(offset)
            .ok()
            .and_then(|at| bytes.get(at..at.checked_add(name.len() + 1)?));
        if found.and_then(|found| found.split_last()) != Some((&0, name.as_bytes())) {
            return Err(format!(
                "DT_NEEDED `{name}` is not at offset {offset} of the file"
            ));
        }
        needed.push(Needed {
            name: name.to_string(),
            offset,
            room: name.len() + 1,
        });
    }
    Ok(DynamicNames {
        soname: elf.soname.map(str::to_string),
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of a system library, with each string found where its offset says. (Pillow's
    /// libraries, whose string tables `patchelf` moved, are read by
    /// `native::pillow_13_libraries_that_need_each_other_load_together`.)
    #[test]
    fn needed_strings_are_where_the_offsets_say() {
        let path = [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("libz.so.1 (zlib1g) is installed");
        let bytes = std::fs::read(std::fs::canonicalize(path).expect("resolve")).expect("read");
        let names = read(&bytes).expect("an ELF object");
        assert_eq!(names.soname.as_deref(), Some("libz.so.1"));
        assert!(names.needed.iter().any(|needed| needed.name == "libc.so.6"));
        for needed in &names.needed {
            let at = needed.offset as usize;
            assert_eq!(&bytes[at..at + needed.room - 1], needed.name.as_bytes());
            assert_eq!(bytes[at + needed.room - 1], 0);
        }
        assert!(read(b"not an object").is_err());
    }
}
