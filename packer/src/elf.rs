//! What the packer needs to know about a shared object: its SONAME, the libraries it needs, and
//! what the launcher may leave out of its memory file.

use goblin::elf::Elf;

/// The dynamic-linking facts of one ELF shared object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedObject {
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// Whether it exports a `PyInit_*` function: an extension module, not a plain library.
    pub extension_module: bool,
    /// What the launcher may leave out of its memory file (`load_plan.rs`).
    pub load_plan: Option<pyferry_payload::LoadPlan>,
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
        extension_module,
        load_plan: crate::load_plan::load_plan(&elf, bytes.len() as u64),
        glibc_need: glibc_need(&elf),
    })
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
