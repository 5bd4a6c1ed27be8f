//! What the packer needs to know about a shared object: its SONAME, the libraries it needs (and
//! where their names lie in the file), its architecture and the newest glibc it needs, and what
//! the launcher may leave out of its memory file.

use goblin::elf::dynamic::DT_NEEDED;
use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_S390, EM_X86_64};
use goblin::elf::Elf;

/// The dynamic-linking facts of one ELF shared object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedObject {
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// For each entry of `needed`: `[file offset, length]` of the name in the dynamic string
    /// table, when it can be overwritten in place (it is not the tail of a longer string that
    /// shares its bytes). A pyz loads a cycle of libraries by overwriting these names.
    pub needed_positions: Vec<Option<[u64; 2]>>,
    /// Whether it exports a `PyInit_*` function: an extension module, not a plain library.
    pub extension_module: bool,
    /// What the launcher may leave out of its memory file (`load_plan.rs`).
    pub load_plan: Option<pyferry_payload::LoadPlan>,
    /// The architecture as wheel tags name it (`x86_64`, `aarch64`...).
    pub architecture: Option<&'static str>,
    /// The newest glibc symbol version it needs (`GLIBC_2.N`), if any.
    pub glibc_need: Option<crate::target::GlibcVersion>,
}

/// Reads `bytes` as an ELF shared object; `None` when it is not one.
pub fn read_shared_object(bytes: &[u8]) -> Option<SharedObject> {
    if !bytes.starts_with(b"\x7fELF") {
        return None;
    }
    let elf = Elf::parse(bytes).ok()?;
    let extension_module = elf.dynsyms.iter().any(|symbol| {
        symbol.st_shndx != 0
            && elf
                .dynstrtab
                .get_at(symbol.st_name)
                .is_some_and(|name| name.starts_with("PyInit_"))
    });
    Some(SharedObject {
        soname: elf.soname.map(str::to_string),
        needed: elf.libraries.iter().map(|name| name.to_string()).collect(),
        needed_positions: needed_positions(&elf, bytes),
        extension_module,
        load_plan: crate::load_plan::load_plan(&elf, bytes.len() as u64),
        architecture: architecture(&elf),
        glibc_need: glibc_need(&elf),
    })
}

fn architecture(elf: &Elf<'_>) -> Option<&'static str> {
    Some(match elf.header.e_machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_386 => "i686",
        EM_PPC64 if elf.little_endian => "ppc64le",
        EM_S390 => "s390x",
        EM_ARM => "armv7l",
        _ => return None,
    })
}

/// Where each `DT_NEEDED` name lies in the file, in `DT_NEEDED` order (as `Elf::libraries`).
fn needed_positions(elf: &Elf<'_>, bytes: &[u8]) -> Vec<Option<[u64; 2]>> {
    let Some(dynamic) = &elf.dynamic else {
        return Vec::new();
    };
    // goblin has already turned DT_STRTAB's address into a file offset (0 when it could not).
    let table_offset = Some(dynamic.info.strtab as u64).filter(|offset| *offset != 0);
    dynamic
        .dyns
        .iter()
        .filter(|entry| entry.d_tag == DT_NEEDED)
        .map(|entry| {
            let start = table_offset?.checked_add(entry.d_val)?;
            let start_index = usize::try_from(start).ok()?;
            let length = bytes
                .get(start_index..)?
                .iter()
                .position(|&byte| byte == 0)?;
            // A name that is the tail of a longer string (linkers merge them) cannot be
            // overwritten without changing the other one.
            let alone = entry.d_val == 0 || bytes.get(start_index - 1) == Some(&0);
            alone.then_some([start, length as u64])
        })
        .collect()
}

/// The newest `GLIBC_2.N` version an ELF file's symbols need (`GLIBC_PRIVATE` and other
/// libraries' versions aside): the oldest glibc it loads on.
pub fn glibc_need(elf: &Elf<'_>) -> Option<crate::target::GlibcVersion> {
    let verneed = elf.verneed.as_ref()?;
    let mut newest = None;
    for file in verneed.iter() {
        for version in file.iter() {
            let Some(name) = elf.dynstrtab.get_at(version.vna_name) else {
                continue;
            };
            let Some(number) = name.strip_prefix("GLIBC_") else {
                continue;
            };
            let mut parts = number.split('.').map(str::parse::<u32>);
            let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
                continue;
            };
            newest = newest.max(Some((major, minor)));
        }
    }
    newest
}

/// What the executable part of a file (a launcher, with or without a payload after it) needs.
pub fn executable_glibc_need(bytes: &[u8]) -> Option<crate::target::GlibcVersion> {
    glibc_need(&Elf::parse(bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_positions_point_at_the_names() {
        // The test binary itself: an ELF with DT_NEEDED entries (libc at least).
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let object = read_shared_object(&bytes).unwrap();
        assert!(!object.needed.is_empty());
        assert_eq!(object.needed.len(), object.needed_positions.len());
        for (name, position) in object.needed.iter().zip(&object.needed_positions) {
            let [offset, length] = position.expect("an unshared name");
            let (offset, length) = (offset as usize, length as usize);
            assert_eq!(&bytes[offset..offset + length], name.as_bytes());
            assert_eq!(bytes[offset + length], 0);
        }
        assert!(object.glibc_need.is_some_and(|need| need >= (2, 2)));
        assert_eq!(object.architecture, Some(std::env::consts::ARCH));
    }
}
