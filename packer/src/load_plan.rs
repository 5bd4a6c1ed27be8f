//! Which parts of a shared object the launcher may leave out of its memory file.
//!
//! The launcher maps a loaded object's read-only segments (code, constants) from the executable
//! (`launcher/src/native/page_sharing.rs`). Those bytes need not be copied into the memory file
//! at all, as long as nothing reads them between the dynamic loader's `mmap` and that remapping.
//! The loader itself reads headers, dynamic section, symbol and relocation tables, notes and the
//! TLS image, and writes the writable segments; code runs only in `IFUNC` resolvers and
//! constructors. So an object gets a [`LoadPlan`] when it has no `IFUNC` and no text
//! relocations, and the plan leaves out only pages of read-only segments (never the first, which
//! holds the headers) that none of those touch; its constructors are hidden from the loader and
//! run by the launcher after the remapping.

use goblin::elf::dynamic::{
    DF_TEXTREL, DT_FINI, DT_FLAGS, DT_INIT, DT_INIT_ARRAY, DT_INIT_ARRAYSZ, DT_TEXTREL,
};
use goblin::elf::header::EM_X86_64;
use goblin::elf::program_header::{
    ProgramHeader, PF_R, PF_W, PT_DYNAMIC, PT_GNU_RELRO, PT_INTERP, PT_LOAD, PT_NOTE, PT_PHDR,
    PT_TLS,
};
use goblin::elf::reloc::R_X86_64_IRELATIVE;
use goblin::elf::sym::STT_GNU_IFUNC;
use goblin::elf::Elf;
use pyferry_payload::ranges::subtract;
use pyferry_payload::LoadPlan;
use std::ops::Range;

/// The page size the plan is made for (x86_64's).
const PAGE: u64 = 4096;

/// `PT_GNU_PROPERTY` (`<elf.h>`): read by glibc from memory while loading.
const PT_GNU_PROPERTY: u32 = 0x6474_e553;

/// Dynamic tags that hold an address the loader does not read while loading: the constructor
/// and destructor code (constructors are run by the launcher, destructors at exit).
const CODE_TAGS: [u64; 2] = [DT_INIT, DT_FINI];

/// The tags of the entries that name constructors.
const INIT_TAGS: [u64; 3] = [DT_INIT, DT_INIT_ARRAY, DT_INIT_ARRAYSZ];

/// Dynamic tags whose value is a size, a count, flags or a string offset, not an address.
fn is_address_tag(tag: u64) -> bool {
    use goblin::elf::dynamic::*;
    matches!(
        tag,
        DT_PLTGOT
            | DT_HASH
            | DT_STRTAB
            | DT_SYMTAB
            | DT_RELA
            | DT_REL
            | DT_JMPREL
            | DT_INIT_ARRAY
            | DT_FINI_ARRAY
            | DT_PREINIT_ARRAY
            | DT_GNU_HASH
            | DT_VERSYM
            | DT_VERDEF
            | DT_VERNEED
            | DT_DEBUG
    ) || tag == 36 // DT_RELR
        || tag == 34 // DT_SYMTAB_SHNDX
}

/// The plan for an object of `len` bytes, or `None` when every byte must be copied.
pub fn load_plan(elf: &Elf, len: u64) -> Option<LoadPlan> {
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
        return None;
    }
    let dynamic = elf.dynamic.as_ref()?;
    let dynamic_header = elf
        .program_headers
        .iter()
        .find(|header| header.p_type == PT_DYNAMIC)?;
    let text_relocations = dynamic.dyns.iter().any(|entry| {
        entry.d_tag == DT_TEXTREL || (entry.d_tag == DT_FLAGS && entry.d_val & DF_TEXTREL != 0)
    });
    let irelative = elf
        .dynrelas
        .iter()
        .chain(elf.pltrelocs.iter())
        .any(|reloc| reloc.r_type == R_X86_64_IRELATIVE);
    let ifunc = elf
        .dynsyms
        .iter()
        .any(|symbol| symbol.st_type() == STT_GNU_IFUNC && symbol.st_shndx != 0);
    if text_relocations || irelative || ifunc {
        return None;
    }

    let loads: Vec<&ProgramHeader> = elf
        .program_headers
        .iter()
        .filter(|header| header.p_type == PT_LOAD)
        .collect();
    let first_offset = loads.iter().map(|header| header.p_offset).min()?;
    let file_pages =
        |header: &ProgramHeader| floor(header.p_offset)..ceil(header.p_offset + header.p_filesz);
    let memory_pages =
        |header: &ProgramHeader| floor(header.p_vaddr)..ceil(header.p_vaddr + header.p_memsz);
    // Read-only segments, not the first, mapped byte for byte (what page sharing remaps).
    let mut candidate: Vec<bool> = loads
        .iter()
        .map(|header| {
            header.p_flags & PF_W == 0
                && header.p_flags & PF_R != 0
                && header.p_offset != first_offset
                && header.p_offset >= PAGE
                && header.p_filesz > 0
                && header.p_filesz == header.p_memsz
                && header.p_vaddr % PAGE == header.p_offset % PAGE
                && header.p_offset + header.p_filesz <= len
        })
        .collect();
    // A segment the loader reads through a dynamic-section address (symbol tables placed in a
    // later segment, say) is copied whole: the extent of those tables is not recorded.
    for entry in &dynamic.dyns {
        if !is_address_tag(entry.d_tag) || CODE_TAGS.contains(&entry.d_tag) {
            continue;
        }
        for (index, header) in loads.iter().enumerate() {
            if (header.p_vaddr..header.p_vaddr + header.p_memsz).contains(&entry.d_val) {
                candidate[index] = false;
            }
        }
    }
    // Nor may a candidate share a page of memory with a segment that is copied.
    let overlaps = |a: &Range<u64>, b: &Range<u64>| a.start < b.end && b.start < a.end;
    let shares_a_page: Vec<bool> = loads
        .iter()
        .enumerate()
        .map(|(index, header)| {
            loads.iter().enumerate().any(|(other, other_header)| {
                other != index
                    && !candidate[other]
                    && overlaps(&memory_pages(header), &memory_pages(other_header))
            })
        })
        .collect();
    for (index, shares) in shares_a_page.into_iter().enumerate() {
        candidate[index] &= !shares;
    }

    let mut kept: Vec<Range<u64>> = loads
        .iter()
        .zip(&candidate)
        .filter(|(_, candidate)| !**candidate)
        .map(|(header, _)| file_pages(header))
        .collect();
    kept.extend(
        elf.program_headers
            .iter()
            .filter(|header| {
                [
                    PT_DYNAMIC,
                    PT_NOTE,
                    PT_TLS,
                    PT_INTERP,
                    PT_PHDR,
                    PT_GNU_RELRO,
                    PT_GNU_PROPERTY,
                ]
                .contains(&header.p_type)
            })
            .map(file_pages),
    );
    let wanted: Vec<Range<u64>> = loads
        .iter()
        .zip(&candidate)
        .filter(|(_, candidate)| **candidate)
        .map(|(header, _)| file_pages(header))
        .collect();
    let mapped = subtract(&wanted, &kept);
    if mapped.is_empty() {
        return None;
    }

    let entry_offset = |index: usize| dynamic_header.p_offset + 16 * index as u64;
    let hidden_init_tags = dynamic
        .dyns
        .iter()
        .enumerate()
        .filter(|(_, entry)| INIT_TAGS.contains(&entry.d_tag))
        .map(|(index, _)| entry_offset(index))
        .collect();
    let value_of = |tag: u64| {
        dynamic
            .dyns
            .iter()
            .find(|entry| entry.d_tag == tag)
            .map(|entry| entry.d_val)
    };
    let init_array = match (value_of(DT_INIT_ARRAY), value_of(DT_INIT_ARRAYSZ)) {
        (Some(address), Some(size)) if size >= 8 => Some([address, size / 8]),
        _ => None,
    };
    Some(LoadPlan {
        mapped: mapped
            .iter()
            .map(|range| [range.start, range.end])
            .collect(),
        hidden_init_tags,
        init: value_of(DT_INIT),
        init_array,
    })
}

fn floor(value: u64) -> u64 {
    value & !(PAGE - 1)
}

fn ceil(value: u64) -> u64 {
    value.div_ceil(PAGE) * PAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C compiler's own runtime library, as a shared object every Debian machine has:
    /// a plan leaves out code but never the first segment or the dynamic section.
    #[test]
    fn a_system_library_gets_a_plan_that_keeps_its_headers() {
        let path = "/lib/x86_64-linux-gnu/libstdc++.so.6";
        let Ok(bytes) = std::fs::read(path) else {
            panic!("{path} is missing (the tests need Debian's libstdc++6)");
        };
        let elf = Elf::parse(&bytes).expect("an ELF file");
        let plan = load_plan(&elf, bytes.len() as u64).expect("a plan");
        let first = elf
            .program_headers
            .iter()
            .filter(|header| header.p_type == PT_LOAD)
            .map(|header| header.p_offset + header.p_filesz)
            .next()
            .unwrap();
        let dynamic = elf
            .program_headers
            .iter()
            .find(|header| header.p_type == PT_DYNAMIC)
            .unwrap();
        for [start, end] in &plan.mapped {
            assert!(start % PAGE == 0 && end % PAGE == 0 && start < end);
            assert!(*start >= first, "{start:#x} is in the first segment");
            assert!(
                *end <= dynamic.p_offset || *start >= dynamic.p_offset + dynamic.p_filesz,
                "the dynamic section is left out"
            );
        }
        assert!(plan.init_array.is_some());
        assert_eq!(plan.hidden_init_tags.len(), 3);
    }
}
