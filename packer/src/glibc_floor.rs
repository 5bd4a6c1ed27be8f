//! The oldest glibc a packed file runs on, and what sets it: the highest of the launcher's own
//! need, the `GLIBC_2.N` symbol versions of every shared object packed, and the manylinux tag of
//! every packed wheel (read from its `*.dist-info/WHEEL`, so wheels that `pip --target`
//! installed into an application directory count too).

use std::collections::BTreeMap;

use pyferry_payload::GlibcFloor;

use crate::elf::SharedObject;
use crate::target::{self, GlibcVersion, Platform};
use crate::tree::TreeFile;

/// One thing that needs a glibc: what it is, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Need {
    glibc: GlibcVersion,
    what: String,
}

/// Collects needs and keeps the highest (the first found among equals).
#[derive(Debug, Default)]
pub struct FloorBuilder {
    highest: Option<Need>,
}

impl FloorBuilder {
    pub fn add(&mut self, glibc: Option<GlibcVersion>, what: impl FnOnce() -> String) {
        let Some(glibc) = glibc else {
            return;
        };
        if self.highest.as_ref().is_none_or(|need| glibc > need.glibc) {
            self.highest = Some(Need {
                glibc,
                what: what(),
            });
        }
    }

    /// The launcher's own need (from its ELF symbol versions).
    pub fn add_launcher(&mut self, launcher: &[u8]) {
        self.add(crate::elf::executable_glibc_need(launcher), || {
            "the launcher".to_string()
        });
    }

    /// A floor recorded earlier (the runtime's).
    pub fn add_recorded(&mut self, floor: Option<&GlibcFloor>) {
        let Some(floor) = floor else {
            return;
        };
        let mut parts = floor.glibc.split('.').map(str::parse::<u32>);
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            self.add(Some((major, minor)), || floor.set_by.clone());
        }
    }

    /// Every shared object's symbol versions.
    pub fn add_objects(&mut self, objects: &BTreeMap<String, SharedObject>) {
        for (name, object) in objects {
            self.add(object.glibc_need, || format!("`{name}`"));
        }
    }

    /// The manylinux tags in the `WHEEL` files of the packed `*.dist-info` directories.
    pub fn add_wheel_tags(&mut self, files: &[TreeFile]) {
        for file in files {
            let Some(stem) = file.name.strip_suffix(".dist-info/WHEEL") else {
                continue;
            };
            if stem.contains('/') {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file.path) else {
                continue;
            };
            // The wheel's lowest platform tag (it runs on any of them), as its `Tag:` lines say.
            let lowest = text
                .lines()
                .filter_map(|line| line.strip_prefix("Tag:"))
                .filter_map(|tag| tag.trim().rsplit('-').next())
                .flat_map(|platforms| platforms.split('.'))
                .filter_map(|platform| Some((target::wheel_glibc(platform)?, platform.to_string())))
                .min();
            let (name, version) = stem.rsplit_once('-').unwrap_or((stem, ""));
            self.add(lowest.as_ref().map(|(glibc, _)| *glibc), || {
                let tag = lowest.as_ref().map(|(_, tag)| tag.as_str()).unwrap_or("");
                format!("{name} {version} (wheel tag {tag})")
            });
        }
    }

    /// The floor, with the platform the wheels were resolved for (`None` for a runtime).
    pub fn finish(self, requested: Option<&Platform>) -> Option<GlibcFloor> {
        let need = self.highest?;
        Some(GlibcFloor {
            glibc: target::glibc_text(need.glibc),
            set_by: need.what,
            requested: requested.map(Platform::uv_name).unwrap_or_default(),
        })
    }
}
