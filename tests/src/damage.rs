//! Damaged and foreign files for the fuzz tests (`tests/fuzz/`): a seeded generator, the
//! layout of a zip appended to an executable (every region and every header field), mutations
//! of those regions applied in place and undone, and a zip writer that can be made to lie.
//!
//! Everything is deterministic: case `i` of seed `s` is generated from `Rng::for_case(s, i)`
//! alone, so a failing case is rebuilt from the two numbers the test prints.

use std::io::Write;
use std::ops::Range;

/// SplitMix64: small, fast, and good enough to choose damage.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of case `case` of run `seed`, independent of every other case.
    pub fn for_case(seed: u64, case: u64) -> Rng {
        let mut rng = Rng(seed ^ case.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True `percent` times out of 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A byte that is not zero (an XOR mask that changes something).
    pub fn nonzero_byte(&mut self) -> u8 {
        1 + self.below(255) as u8
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(
        bytes[at..at + 4].try_into().expect("4 bytes"),
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// One header field: where it is, how wide, what it is.
#[derive(Debug, Clone)]
pub struct Field {
    pub at: usize,
    pub width: usize,
    pub what: String,
}

/// An entry's local header and data.
#[derive(Debug, Clone)]
pub struct Local {
    pub name: String,
    pub header: usize,
    pub data: usize,
    pub end: usize,
}

/// An entry's central directory header (with its name, extra field and comment).
#[derive(Debug, Clone)]
pub struct Central {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

/// Where everything is in a well-formed zip at the end of a file (absolute offsets, as
/// pyferry and [`ZipWriter`] write them).
#[derive(Debug, Clone)]
pub struct Layout {
    pub len: usize,
    /// The first local header: everything before it is the executable.
    pub payload_start: usize,
    pub locals: Vec<Local>,
    pub centrals: Vec<Central>,
    pub central_start: usize,
    pub zip64_record: Option<usize>,
    pub zip64_locator: Option<usize>,
    pub end_record: usize,
}

impl Layout {
    /// The layout of `bytes`, which must end with a well-formed zip (test input, so anything
    /// else panics).
    pub fn of(bytes: &[u8]) -> Layout {
        let end_record = (0..=bytes.len() - 22)
            .rev()
            .find(|&at| {
                bytes[at..at + 4] == *b"PK\x05\x06"
                    && u16_at(bytes, at + 20) as usize == bytes.len() - at - 22
            })
            .expect("an end of central directory record");
        let mut count = u16_at(bytes, end_record + 10);
        let mut central_start = u32_at(bytes, end_record + 16);
        let (mut zip64_record, mut zip64_locator) = (None, None);
        if end_record >= 20 && bytes[end_record - 20..end_record - 16] == *b"PK\x06\x07" {
            let record = u64_at(bytes, end_record - 12) as usize;
            assert_eq!(&bytes[record..record + 4], b"PK\x06\x06");
            count = u64_at(bytes, record + 32);
            central_start = u64_at(bytes, record + 48);
            zip64_record = Some(record);
            zip64_locator = Some(end_record - 20);
        }
        let mut centrals = Vec::new();
        let mut locals = Vec::new();
        let mut at = central_start as usize;
        for _ in 0..count {
            assert_eq!(&bytes[at..at + 4], b"PK\x01\x02", "central header at {at}");
            let name_len = u16_at(bytes, at + 28) as usize;
            let extra_len = u16_at(bytes, at + 30) as usize;
            let comment_len = u16_at(bytes, at + 32) as usize;
            let name = String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]).into_owned();
            let mut compressed = u32_at(bytes, at + 20);
            let mut size = u32_at(bytes, at + 24);
            let mut offset = u32_at(bytes, at + 42);
            let mut extra = at + 46 + name_len;
            let extra_end = extra + extra_len;
            while extra + 4 <= extra_end {
                let (id, len) = (u16_at(bytes, extra), u16_at(bytes, extra + 2) as usize);
                if id == 1 {
                    let mut value = extra + 4;
                    for field in [&mut size, &mut compressed, &mut offset] {
                        if *field == 0xffff_ffff {
                            *field = u64_at(bytes, value);
                            value += 8;
                        }
                    }
                }
                extra += 4 + len;
            }
            let end = extra_end + comment_len;
            let header = offset as usize;
            let data = header
                + 30
                + u16_at(bytes, header + 26) as usize
                + u16_at(bytes, header + 28) as usize;
            locals.push(Local {
                name: name.clone(),
                header,
                data,
                end: data + compressed as usize,
            });
            centrals.push(Central {
                name,
                start: at,
                end,
            });
            at = end;
        }
        let payload_start = locals
            .iter()
            .map(|local| local.header)
            .min()
            .unwrap_or(central_start as usize);
        Layout {
            len: bytes.len(),
            payload_start,
            locals,
            centrals,
            central_start: central_start as usize,
            zip64_record,
            zip64_locator,
            end_record,
        }
    }

    pub fn local(&self, name: &str) -> Option<&Local> {
        self.locals.iter().find(|local| local.name == name)
    }

    pub fn central(&self, name: &str) -> Option<&Central> {
        self.centrals.iter().find(|central| central.name == name)
    }

    /// Every offset where one region of the file ends and the next begins, with its name.
    pub fn boundaries(&self) -> Vec<(usize, String)> {
        let mut all = vec![
            (0, "start of file".to_string()),
            (
                self.payload_start / 2,
                "middle of the executable".to_string(),
            ),
            (self.payload_start, "start of the zip".to_string()),
            (
                self.central_start,
                "start of the central directory".to_string(),
            ),
            (self.end_record, "end record".to_string()),
            (
                self.end_record + 4,
                "end record: after the signature".to_string(),
            ),
            (self.end_record + 10, "end record: entry count".to_string()),
            (
                self.end_record + 12,
                "end record: directory size".to_string(),
            ),
            (
                self.end_record + 16,
                "end record: directory offset".to_string(),
            ),
            (
                self.end_record + 20,
                "end record: comment length".to_string(),
            ),
            (self.end_record + 22, "end record: comment".to_string()),
            (self.len - 1, "last byte".to_string()),
        ];
        if let (Some(record), Some(locator)) = (self.zip64_record, self.zip64_locator) {
            all.push((record, "zip64 end record".to_string()));
            all.push((record + 32, "zip64 end record: count".to_string()));
            all.push((locator, "zip64 locator".to_string()));
            all.push((locator + 8, "zip64 locator: record offset".to_string()));
        }
        for local in &self.locals {
            all.push((local.header, format!("local header of {}", local.name)));
            all.push((
                local.header + 30,
                format!("name in the local header of {}", local.name),
            ));
            all.push((local.data, format!("data of {}", local.name)));
            if local.end > local.data {
                all.push((local.end - 1, format!("last data byte of {}", local.name)));
            }
        }
        for central in &self.centrals {
            all.push((central.start, format!("central header of {}", central.name)));
            all.push((
                central.start + 46,
                format!("name in the central header of {}", central.name),
            ));
            all.push((
                central.end - 1,
                format!("end of the central header of {}", central.name),
            ));
        }
        all.retain(|(at, _)| *at < self.len);
        all.sort();
        all.dedup_by_key(|(at, _)| *at);
        all
    }

    /// The header fields of the end records.
    pub fn end_fields(&self) -> Vec<Field> {
        let field = |at: usize, width: usize, what: &str| Field {
            at,
            width,
            what: what.to_string(),
        };
        let end = self.end_record;
        let mut fields = vec![
            field(end, 4, "end record signature"),
            field(end + 4, 2, "end record disk number"),
            field(end + 6, 2, "end record directory disk"),
            field(end + 8, 2, "end record entries on disk"),
            field(end + 10, 2, "end record entry count"),
            field(end + 12, 4, "end record directory size"),
            field(end + 16, 4, "end record directory offset"),
            field(end + 20, 2, "end record comment length"),
        ];
        if let (Some(record), Some(locator)) = (self.zip64_record, self.zip64_locator) {
            fields.extend([
                field(record, 4, "zip64 record signature"),
                field(record + 24, 8, "zip64 record entries on disk"),
                field(record + 32, 8, "zip64 record entry count"),
                field(record + 40, 8, "zip64 record directory size"),
                field(record + 48, 8, "zip64 record directory offset"),
                field(locator, 4, "zip64 locator signature"),
                field(locator + 8, 8, "zip64 locator record offset"),
            ]);
        }
        fields
    }

    /// The fields of central header `index`.
    pub fn central_fields(&self, index: usize) -> Vec<Field> {
        let central = &self.centrals[index];
        let at = central.start;
        let name = &central.name;
        let mut fields: Vec<Field> = [
            (0, 4, "signature"),
            (10, 2, "method"),
            (16, 4, "crc32"),
            (20, 4, "compressed size"),
            (24, 4, "size"),
            (28, 2, "name length"),
            (30, 2, "extra length"),
            (32, 2, "comment length"),
            (34, 2, "disk"),
            (42, 4, "local header offset"),
        ]
        .iter()
        .map(|&(offset, width, what)| Field {
            at: at + offset,
            width,
            what: format!("central {what} of {name}"),
        })
        .collect();
        // A zip64 extra field's values.
        let name_end = at + 46 + name.len();
        if central.end >= name_end + 4 && central.end - name_end >= 28 {
            for (offset, what) in [
                (4, "zip64 size"),
                (12, "zip64 compressed size"),
                (20, "zip64 offset"),
            ] {
                if name_end + offset + 8 <= central.end {
                    fields.push(Field {
                        at: name_end + offset,
                        width: 8,
                        what: format!("central {what} of {name}"),
                    });
                }
            }
        }
        fields
    }

    /// The fields of local header `index`.
    pub fn local_fields(&self, index: usize) -> Vec<Field> {
        let local = &self.locals[index];
        [
            (0, 4, "signature"),
            (8, 2, "method"),
            (14, 4, "crc32"),
            (18, 4, "compressed size"),
            (22, 4, "size"),
            (26, 2, "name length"),
            (28, 2, "extra length"),
        ]
        .iter()
        .map(|&(offset, width, what)| Field {
            at: local.header + offset,
            width,
            what: format!("local {what} of {}", local.name),
        })
        .collect()
    }
}

/// A change to a file: bytes overwritten at offsets, then the file cut to `len`.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub what: String,
    pub patches: Vec<(usize, Vec<u8>)>,
    pub len: usize,
}

impl Mutation {
    /// Applies the patches to `bytes` in place and returns what they replaced, for [`undo`].
    pub fn apply(&self, bytes: &mut [u8]) -> Vec<(usize, Vec<u8>)> {
        let mut saved = Vec::with_capacity(self.patches.len());
        for (at, patch) in &self.patches {
            let end = (*at + patch.len()).min(bytes.len());
            if *at >= end {
                continue;
            }
            saved.push((*at, bytes[*at..end].to_vec()));
            bytes[*at..end].copy_from_slice(&patch[..end - at]);
        }
        saved
    }

    /// Every offset this mutation touches (for choosing which entries to read afterwards).
    pub fn touches(&self, range: Range<usize>) -> bool {
        self.patches
            .iter()
            .any(|(at, patch)| *at < range.end && at + patch.len() > range.start)
            || self.len < range.end
    }
}

/// Restores what [`Mutation::apply`] overwrote (in reverse order, for overlapping patches).
pub fn undo(bytes: &mut [u8], saved: Vec<(usize, Vec<u8>)>) {
    for (at, original) in saved.into_iter().rev() {
        bytes[at..at + original.len()].copy_from_slice(&original);
    }
}

/// Which entries damage should aim at (the ones a run reads; empty means any), and how short a
/// truncation may make the file (`keep` bytes at least: a run cannot start an executable cut
/// inside its own image).
#[derive(Debug, Clone, Default)]
pub struct Focus {
    pub names: Vec<String>,
    pub keep: usize,
}

fn interesting_value(rng: &mut Rng, current: u64, width: usize, layout: &Layout) -> u64 {
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let len = layout.len as u64;
    let candidates = [
        0,
        1,
        max,
        max - 1,
        max >> 1,
        (max >> 1) + 1,
        current.wrapping_add(1),
        current.wrapping_sub(1),
        current.wrapping_add(1 + rng.below(64)),
        current.wrapping_sub(1 + rng.below(64)),
        current ^ (1 << rng.below(8 * width as u64)),
        len,
        len + 1,
        len - 1,
        layout.payload_start as u64,
        layout.payload_start as u64 - 1,
        layout.central_start as u64,
        layout.end_record as u64,
        rng.next_u64(),
        0xffff,
        0xffff_ffff,
        8,
        12,
        99,
    ];
    *rng.pick(&candidates) & max
}

fn field_value(bytes: &[u8], field: &Field) -> u64 {
    match field.width {
        2 => u16_at(bytes, field.at),
        4 => u32_at(bytes, field.at),
        _ => u64_at(bytes, field.at),
    }
}

/// One random change to a well-formed file with layout `layout`, which has at least one entry.
pub fn mutate(bytes: &[u8], layout: &Layout, focus: &Focus, rng: &mut Rng) -> Mutation {
    assert!(!layout.locals.is_empty(), "damage needs a zip with entries");
    let focused: Vec<usize> = if focus.names.is_empty() {
        (0..layout.locals.len()).collect()
    } else {
        (0..layout.locals.len())
            .filter(|&index| focus.names.contains(&layout.locals[index].name))
            .collect()
    };
    let entry = if focused.is_empty() || rng.chance(15) {
        rng.index(layout.locals.len())
    } else {
        *rng.pick(&focused)
    };
    let local = &layout.locals[entry];
    let central = layout
        .central(&local.name)
        .cloned()
        .unwrap_or_else(|| layout.centrals[entry].clone());
    let manifest = layout.local(pyferry_payload::MANIFEST_PATH);
    let mut mutation = Mutation {
        what: String::new(),
        patches: Vec::new(),
        len: layout.len,
    };
    let kinds = 1 + usize::from(rng.chance(20));
    let mut descriptions = Vec::new();
    for _ in 0..kinds {
        match rng.below(100) {
            // Truncation at a region boundary, or a few bytes around it.
            0..=14 => {
                let boundaries = layout.boundaries();
                let (at, name) = rng.pick(&boundaries).clone();
                let at = at.max(focus.keep);
                let delta = *rng.pick(&[0i64, 0, 0, 1, -1, 2, -2, 4, -4, 21, -21, 63]);
                let len =
                    (at as i64 + delta).clamp(focus.keep as i64, layout.len as i64 - 1) as usize;
                mutation.len = mutation.len.min(len);
                descriptions.push(format!("truncated to {len} bytes ({name} {delta:+})"));
            }
            // Flipped bytes in one region.
            15..=54 => {
                let mut regions: Vec<(Range<usize>, String)> = vec![
                    (layout.end_record..layout.len, "the end record".to_string()),
                    (
                        central.start..central.end,
                        format!("the central header of {}", central.name),
                    ),
                    (
                        local.header..local.data,
                        format!("the local header of {}", local.name),
                    ),
                ];
                // Entry data, except shared objects': the launcher hands their bytes to the
                // dynamic loader unchecked (docs/security.md says why).
                if local.data < local.end && !pyferry_payload::is_shared_object(&local.name) {
                    regions.push((local.data..local.end, format!("the data of {}", local.name)));
                }
                if let Some(manifest) = manifest {
                    regions.push((manifest.data..manifest.end, "the manifest".to_string()));
                    regions.push((
                        manifest.header..manifest.data,
                        "the manifest's local header".to_string(),
                    ));
                }
                if let Some(record) = layout.zip64_record {
                    regions.push((record..layout.end_record, "the zip64 records".to_string()));
                }
                if rng.chance(10) {
                    regions.push((
                        layout.central_start..layout.end_record,
                        "the central directory".to_string(),
                    ));
                }
                let (range, name) = rng.pick(&regions).clone();
                let flips = 1 + rng.index(4);
                let mut positions = Vec::new();
                for _ in 0..flips {
                    let at = range.start + rng.index(range.len());
                    let original = bytes[at];
                    mutation
                        .patches
                        .push((at, vec![original ^ rng.nonzero_byte()]));
                    positions.push(at);
                }
                descriptions.push(format!(
                    "{flips} byte(s) flipped in {name} at {positions:?}"
                ));
            }
            // A header field set to a value chosen to hurt.
            55..=84 => {
                let mut fields = layout.end_fields();
                let central_index = layout
                    .centrals
                    .iter()
                    .position(|candidate| candidate.start == central.start)
                    .unwrap_or(0);
                fields.extend(layout.central_fields(central_index));
                fields.extend(layout.local_fields(entry));
                let field = rng.pick(&fields).clone();
                let current = field_value(bytes, &field);
                let value = interesting_value(rng, current, field.width, layout);
                mutation
                    .patches
                    .push((field.at, value.to_le_bytes()[..field.width].to_vec()));
                descriptions.push(format!("{} set from {current} to {value}", field.what));
            }
            // A run of bytes overwritten: random, zeros, or a record signature.
            _ => {
                let structural = [
                    layout.central_start..layout.len,
                    local.header..local.data,
                    central.start..central.end,
                ];
                let range = rng.pick(&structural).clone();
                let at = range.start + rng.index(range.len());
                let len = 1 + rng.index(32);
                let patch = match rng.below(4) {
                    0 => vec![0; len],
                    1 => b"PK\x05\x06".repeat(len / 4 + 1)[..len].to_vec(),
                    2 => b"PK\x01\x02".repeat(len / 4 + 1)[..len].to_vec(),
                    _ => rng.bytes(len),
                };
                descriptions.push(format!("{len} bytes overwritten at {at}"));
                mutation.patches.push((at, patch));
            }
        }
    }
    mutation.what = descriptions.join(", then ");
    mutation
}

/// An entry for [`ZipWriter::add_raw`]: every field is written as given, true or not.
#[derive(Debug, Clone)]
pub struct RawEntry<'a> {
    pub name: &'a [u8],
    pub method: u16,
    pub crc32: u32,
    /// The bytes as they lie in the file (compressed when `method` is 8).
    pub data: &'a [u8],
    /// The uncompressed size the headers claim.
    pub size: u64,
}

/// A zip writer for crafted archives: absolute offsets after a prefix, optional zip64
/// records for every entry, and no opinion about what is written.
pub struct ZipWriter {
    bytes: Vec<u8>,
    central: Vec<u8>,
    count: u64,
    zip64: bool,
}

impl ZipWriter {
    /// Starts a zip after `prefix` (an executable, or nothing).
    pub fn new(prefix: Vec<u8>, zip64: bool) -> ZipWriter {
        ZipWriter {
            bytes: prefix,
            central: Vec::new(),
            count: 0,
            zip64,
        }
    }

    /// Writes a local header and data, and the matching central header; returns the local
    /// header's offset.
    pub fn add_raw(&mut self, entry: &RawEntry<'_>) -> u64 {
        let offset = self.bytes.len() as u64;
        let compressed = entry.data.len() as u64;
        let (small_compressed, small_size) = if self.zip64 {
            (0xffff_ffffu32, 0xffff_ffffu32)
        } else {
            (compressed as u32, entry.size as u32)
        };
        let mut local = Vec::new();
        local.extend_from_slice(b"PK\x03\x04");
        local.extend_from_slice(&(if self.zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        local.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
        local.extend_from_slice(&entry.method.to_le_bytes());
        local.extend_from_slice(&[0, 0, 0x21, 0]); // 1980-01-01 00:00
        local.extend_from_slice(&entry.crc32.to_le_bytes());
        local.extend_from_slice(&small_compressed.to_le_bytes());
        local.extend_from_slice(&small_size.to_le_bytes());
        local.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        let local_extra: Vec<u8> = if self.zip64 {
            let mut extra = vec![1, 0, 16, 0];
            extra.extend_from_slice(&entry.size.to_le_bytes());
            extra.extend_from_slice(&compressed.to_le_bytes());
            extra
        } else {
            Vec::new()
        };
        local.extend_from_slice(&(local_extra.len() as u16).to_le_bytes());
        local.extend_from_slice(entry.name);
        local.extend_from_slice(&local_extra);
        self.bytes.extend_from_slice(&local);
        self.bytes.extend_from_slice(entry.data);
        self.add_central(entry, offset);
        offset
    }

    /// A central header only, for an entry whose local header is at `offset` (another
    /// entry's, to make overlapping entries).
    pub fn add_central(&mut self, entry: &RawEntry<'_>, offset: u64) {
        let compressed = entry.data.len() as u64;
        let central = &mut self.central;
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: Unix, 3.0
        central.extend_from_slice(&(if self.zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        central.extend_from_slice(&0x0800u16.to_le_bytes());
        central.extend_from_slice(&entry.method.to_le_bytes());
        central.extend_from_slice(&[0, 0, 0x21, 0]);
        central.extend_from_slice(&entry.crc32.to_le_bytes());
        let extra: Vec<u8> = if self.zip64 {
            central.extend_from_slice(&[0xff; 8]);
            let mut extra = vec![1, 0, 24, 0];
            extra.extend_from_slice(&entry.size.to_le_bytes());
            extra.extend_from_slice(&compressed.to_le_bytes());
            extra.extend_from_slice(&offset.to_le_bytes());
            extra
        } else {
            central.extend_from_slice(&(compressed as u32).to_le_bytes());
            central.extend_from_slice(&(entry.size as u32).to_le_bytes());
            Vec::new()
        };
        central.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // comment length, disk, internal
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        let small_offset = if self.zip64 {
            0xffff_ffff
        } else {
            offset as u32
        };
        central.extend_from_slice(&small_offset.to_le_bytes());
        central.extend_from_slice(entry.name);
        central.extend_from_slice(&extra);
        self.count += 1;
    }

    /// Adds `data` stored, with true headers.
    pub fn add_stored(&mut self, name: &str, data: &[u8]) -> u64 {
        self.add_raw(&RawEntry {
            name: name.as_bytes(),
            method: 0,
            crc32: crc32fast::hash(data),
            data,
            size: data.len() as u64,
        })
    }

    /// Adds `data` deflated, with true headers.
    pub fn add_deflated(&mut self, name: &str, data: &[u8]) -> u64 {
        let compressed = deflate(data);
        self.add_raw(&RawEntry {
            name: name.as_bytes(),
            method: 8,
            crc32: crc32fast::hash(data),
            data: &compressed,
            size: data.len() as u64,
        })
    }

    /// Writes the central directory and the end records.
    pub fn finish(mut self) -> Vec<u8> {
        let start = self.bytes.len() as u64;
        let size = self.central.len() as u64;
        self.bytes.extend_from_slice(&self.central);
        if self.zip64 {
            let record = self.bytes.len() as u64;
            let out = &mut self.bytes;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&[0; 8]); // disk, directory disk
            out.extend_from_slice(&self.count.to_le_bytes());
            out.extend_from_slice(&self.count.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(b"PK\x06\x07");
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let out = &mut self.bytes;
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        let (count, size, start) = if self.zip64 {
            (0xffffu16, 0xffff_ffffu32, 0xffff_ffffu32)
        } else {
            (self.count as u16, size as u32, start as u32)
        };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        self.bytes
    }
}

/// Raw deflate (no zlib header), as zip entries hold it.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("deflate in memory");
    encoder.finish().expect("deflate in memory")
}

/// An entry of an existing archive, raw (compressed bytes as stored).
#[derive(Debug, Clone)]
pub struct CopiedEntry {
    pub name: String,
    pub method: u16,
    pub crc32: u32,
    pub size: u64,
    pub data: Range<usize>,
}

/// Every entry of the zip at the end of `bytes`, in archive order, for copying raw.
pub fn entries_of(bytes: &[u8]) -> Vec<CopiedEntry> {
    let directory = pyferry_payload::central_directory::read(bytes).expect("a readable zip");
    directory
        .entries
        .iter()
        .map(|entry| CopiedEntry {
            name: entry.name.to_string(),
            method: entry.method,
            crc32: entry.crc32,
            size: entry.size,
            data: pyferry_payload::central_directory::data_range(bytes, entry, directory.start)
                .expect("entry data"),
        })
        .collect()
}

/// Rewrites the archive at the end of `bytes` behind `prefix`, entry by entry through
/// `edit` (which may write zero, one or several entries for each), with or without zip64.
pub fn rewrite(
    bytes: &[u8],
    prefix: &[u8],
    zip64: bool,
    mut edit: impl FnMut(&mut ZipWriter, &CopiedEntry, &[u8]),
) -> Vec<u8> {
    let mut writer = ZipWriter::new(prefix.to_vec(), zip64);
    for entry in entries_of(bytes) {
        let data = &bytes[entry.data.clone()];
        edit(&mut writer, &entry, data);
    }
    writer.finish()
}

/// Copies an entry unchanged.
pub fn copy_entry(writer: &mut ZipWriter, entry: &CopiedEntry, data: &[u8]) {
    writer.add_raw(&RawEntry {
        name: entry.name.as_bytes(),
        method: entry.method,
        crc32: entry.crc32,
        data,
        size: entry.size,
    });
}
