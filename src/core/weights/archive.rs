//! The little of the zip format that `torch.save` archives need: the central directory (with
//! zip64 records), stored or deflated entries, and CRC-32 checks.
//!
//! Written here rather than taking a zip dependency: the reader only seeks to and reads the
//! records it is asked for, checks every offset and size against the file's length before
//! allocating, and reports a cut-off download as [`WeightsError::Truncated`] naming the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::WeightsError;

const EOCD: [u8; 4] = *b"PK\x05\x06";
const ZIP64_LOCATOR: [u8; 4] = *b"PK\x06\x07";
const ZIP64_EOCD: [u8; 4] = *b"PK\x06\x06";
const CENTRAL: [u8; 4] = *b"PK\x01\x02";
const LOCAL: [u8; 4] = *b"PK\x03\x04";
/// Central directories larger than this are refused (a torch archive has a few entries per tensor).
const MAX_CENTRAL_DIRECTORY: u64 = 256 << 20;

#[derive(Debug, Clone)]
struct Entry {
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// An open zip archive.
pub(crate) struct Archive {
    file: File,
    path: PathBuf,
    len: u64,
    entries: BTreeMap<String, Entry>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Archive {
    pub(crate) fn open(path: &Path) -> Result<Self, WeightsError> {
        let file = File::open(path).map_err(|e| WeightsError::io(path, e))?;
        let len = file.metadata().map_err(|e| WeightsError::io(path, e))?.len();
        let mut archive = Archive {
            file,
            path: path.to_path_buf(),
            len,
            entries: BTreeMap::new(),
        };

        // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
        let tail_len = len.min(22 + 65535);
        let tail = archive.read_at(len - tail_len, tail_len as usize, "the end of the archive")?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| tail[i..i + 4] == EOCD)
            .ok_or_else(|| {
                archive.truncated(format!(
                    "no zip end-of-central-directory record in the last {tail_len} bytes \
                 (the file was cut off, e.g. by an interrupted download, or is not a zip archive)"
                ))
            })?;
        let rec = &tail[eocd..eocd + 22];
        let mut count = u64::from(le16(rec, 10));
        let mut cd_size = u64::from(le32(rec, 12));
        let mut cd_offset = u64::from(le32(rec, 16));

        // zip64: a locator 20 bytes before the record points at the zip64 record.
        let eocd_pos = len - tail_len + eocd as u64;
        if eocd >= 20 && tail[eocd - 20..eocd - 16] == ZIP64_LOCATOR {
            let zip64_at = le64(&tail, eocd - 20 + 8);
            if zip64_at.checked_add(56).is_none_or(|end| end > eocd_pos) {
                return Err(archive.corrupt(format!("zip64 record offset {zip64_at} lies outside the archive")));
            }
            let z = archive.read_at(zip64_at, 56, "the zip64 end-of-central-directory record")?;
            if z[..4] != ZIP64_EOCD {
                return Err(archive.corrupt("zip64 locator does not point at a zip64 record".into()));
            }
            count = le64(&z, 32);
            cd_size = le64(&z, 40);
            cd_offset = le64(&z, 48);
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
            return Err(archive.truncated(format!(
                "the central directory should span bytes {cd_offset}..{} but the file is {len} bytes long",
                cd_offset.saturating_add(cd_size)
            )));
        }
        if cd_size > MAX_CENTRAL_DIRECTORY {
            return Err(archive.corrupt(format!("central directory of {cd_size} bytes is implausibly large")));
        }
        let cd = archive.read_at(cd_offset, cd_size as usize, "the central directory")?;
        let mut at = 0usize;
        for _ in 0..count {
            if at + 46 > cd.len() || cd[at..at + 4] != CENTRAL {
                return Err(archive.corrupt(format!(
                    "central directory entry at byte {} is damaged",
                    cd_offset + at as u64
                )));
            }
            let h = &cd[at..at + 46];
            let name_len = usize::from(le16(h, 28));
            let extra_len = usize::from(le16(h, 30));
            let comment_len = usize::from(le16(h, 32));
            let end = at + 46 + name_len + extra_len + comment_len;
            if end > cd.len() {
                return Err(archive.corrupt("central directory entry runs past the directory".into()));
            }
            let name = String::from_utf8_lossy(&cd[at + 46..at + 46 + name_len]).into_owned();
            let mut entry = Entry {
                method: le16(h, 10),
                crc: le32(h, 16),
                compressed: u64::from(le32(h, 20)),
                size: u64::from(le32(h, 24)),
                local_offset: u64::from(le32(h, 42)),
            };
            // zip64 extended information: the 64-bit values of fields saturated at 0xFFFFFFFF.
            let mut extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
            while extra.len() >= 4 {
                let id = le16(extra, 0);
                let n = usize::from(le16(extra, 2)).min(extra.len() - 4);
                let mut field = &extra[4..4 + n];
                if id == 1 {
                    for slot in [&mut entry.size, &mut entry.compressed, &mut entry.local_offset] {
                        if *slot == u64::from(u32::MAX) && field.len() >= 8 {
                            *slot = le64(field, 0);
                            field = &field[8..];
                        }
                    }
                }
                extra = &extra[4 + n..];
            }
            archive.entries.insert(name, entry);
            at = end;
        }
        Ok(archive)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Uncompressed size of an entry.
    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|e| e.size)
    }

    fn truncated(&self, detail: String) -> WeightsError {
        WeightsError::Truncated {
            path: self.path.clone(),
            detail,
        }
    }

    fn corrupt(&self, detail: String) -> WeightsError {
        WeightsError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn read_at(&mut self, offset: u64, n: usize, what: &str) -> Result<Vec<u8>, WeightsError> {
        if offset.checked_add(n as u64).is_none_or(|end| end > self.len) {
            return Err(self.truncated(format!(
                "{what} needs bytes {offset}..{} but the file is {} bytes long",
                offset.saturating_add(n as u64),
                self.len
            )));
        }
        let mut buf = vec![0u8; n];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| WeightsError::io(&self.path, e))?;
        Ok(buf)
    }

    /// The uncompressed bytes of entry `name`, refusing entries larger than `max` bytes.
    pub(crate) fn read(&mut self, name: &str, max: u64) -> Result<Vec<u8>, WeightsError> {
        let Some(entry) = self.entries.get(name).cloned() else {
            return Err(self.corrupt(format!("record `{name}` is missing from the archive")));
        };
        if entry.size > max {
            return Err(self.corrupt(format!(
                "record `{name}` is {} bytes, more than the {max} accepted",
                entry.size
            )));
        }
        let header = self.read_at(entry.local_offset, 30, &format!("the header of record `{name}`"))?;
        if header[..4] != LOCAL {
            return Err(self.corrupt(format!(
                "record `{name}` has no local header at byte {}",
                entry.local_offset
            )));
        }
        let start = entry.local_offset + 30 + u64::from(le16(&header, 26)) + u64::from(le16(&header, 28));
        if start.checked_add(entry.compressed).is_none_or(|end| end > self.len) {
            return Err(self.truncated(format!(
                "record `{name}` should span bytes {start}..{} but the file is {} bytes long",
                start.saturating_add(entry.compressed),
                self.len
            )));
        }
        let data = match entry.method {
            0 => {
                if entry.compressed != entry.size {
                    return Err(self.corrupt(format!(
                        "stored record `{name}` has compressed size {} but size {}",
                        entry.compressed, entry.size
                    )));
                }
                self.read_at(start, entry.size as usize, &format!("record `{name}`"))?
            }
            8 => {
                // Deflate expands at most ~1032:1; a larger claim is corrupt, not a reason to allocate.
                if entry.size / 1032 > entry.compressed + 1 {
                    return Err(self.corrupt(format!("deflated record `{name}` claims an impossible size")));
                }
                let raw = self.read_at(start, entry.compressed as usize, &format!("record `{name}`"))?;
                let mut out = Vec::with_capacity(entry.size as usize);
                flate2::read::DeflateDecoder::new(&raw[..])
                    .take(entry.size + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| self.corrupt(format!("record `{name}` does not inflate: {e}")))?;
                if out.len() as u64 != entry.size {
                    return Err(self.corrupt(format!(
                        "record `{name}` inflates to {} bytes, not the {} recorded",
                        out.len(),
                        entry.size
                    )));
                }
                out
            }
            m => {
                return Err(self.corrupt(format!(
                    "record `{name}` uses zip compression method {m}, which is not supported"
                )));
            }
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != entry.crc {
            return Err(self.corrupt(format!(
                "record `{name}` fails its CRC-32 check (stored {:08x}, computed {:08x}): the bytes are damaged",
                entry.crc,
                crc.sum()
            )));
        }
        Ok(data)
    }
}
