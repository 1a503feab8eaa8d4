//! The file a serving process keeps its [statistics](crate::stats) in when
//! another process (its supervisor) reads them too.
//!
//! A header, then the counters, page-aligned. The header: the magic
//! `SPKSTAT\0`, the layout version (u32), the number of routes (u32), the
//! length of the names block (u64) and the offset of the counters (u64), all
//! little-endian; then each route name as its length (u32) and UTF-8 bytes.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;

use memmap2::MmapRaw;

const MAGIC: &[u8; 8] = b"SPKSTAT\0";
const LAYOUT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
const PAGE: usize = 4096;

/// A mapped statistics file: its routes, the map, where the counters start.
pub(crate) struct Mapped {
    pub routes: Vec<String>,
    pub map: MmapRaw,
    pub offset: usize,
}

/// Creates the file at `path` for `routes` with `counters_len` bytes of
/// zeroed counters. It is made whole under another name and then linked into
/// place, so that a reader never sees part of one, and an existing file is
/// never replaced.
pub(crate) fn create(path: &Path, routes: Vec<String>, counters_len: usize) -> io::Result<Mapped> {
    let mut names = Vec::new();
    for route in &routes {
        names.extend_from_slice(&(route.len() as u32).to_le_bytes());
        names.extend_from_slice(route.as_bytes());
    }
    let offset = (HEADER_LEN + names.len()).div_ceil(PAGE) * PAGE;
    let mut header = Vec::with_capacity(HEADER_LEN + names.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
    header.extend_from_slice(&(routes.len() as u32).to_le_bytes());
    header.extend_from_slice(&(names.len() as u64).to_le_bytes());
    header.extend_from_slice(&(offset as u64).to_le_bytes());
    header.extend_from_slice(&names);
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = Path::new(&partial);
    let made = (|| -> io::Result<MmapRaw> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(partial)?;
        file.write_all(&header)?;
        // The counters: a sparse file, zero until written.
        file.set_len((offset + counters_len) as u64)?;
        let map = MmapRaw::map_raw(&file)?;
        // Fails if `path` exists, unlike a rename.
        std::fs::hard_link(partial, path)?;
        Ok(map)
    })();
    let _ = std::fs::remove_file(partial);
    Ok(Mapped {
        routes,
        map: made?,
        offset,
    })
}

/// Maps the file at `path` that another process created; `counters_len(n)`
/// is how many bytes of counters `n` routes have.
pub(crate) fn open(path: &Path, counters_len: impl Fn(usize) -> usize) -> io::Result<Mapped> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let size = file.metadata()?.len();
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)?;
    if &header[..8] != MAGIC {
        return Err(invalid("not a spikard statistics file"));
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let long = |at: usize| u64::from(word(at)) | u64::from(word(at + 4)) << 32;
    if word(8) != LAYOUT_VERSION {
        return Err(invalid("written by another version of spikard"));
    }
    let (count, names_len, offset) = (word(12) as usize, long(16), long(24));
    // Checked against the file's size before anything is allocated for them.
    let names_end = (HEADER_LEN as u64).checked_add(names_len);
    let laid_out = offset % PAGE as u64 == 0 && names_end.is_some_and(|end| end <= offset);
    let end = offset.checked_add(counters_len(count) as u64);
    if !laid_out || end != Some(size) {
        return Err(invalid("truncated or malformed"));
    }
    let mut names = vec![0u8; names_len as usize];
    file.read_exact(&mut names)?;
    let routes = read_names(&names, count).ok_or_else(|| invalid("malformed route names"))?;
    Ok(Mapped {
        routes,
        map: MmapRaw::map_raw(&file)?,
        offset: offset as usize,
    })
}

fn read_names(mut block: &[u8], count: usize) -> Option<Vec<String>> {
    let mut routes = Vec::with_capacity(count.min(block.len() / 4));
    for _ in 0..count {
        let (len, rest) = block.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let name = rest.get(..len)?;
        routes.push(String::from_utf8(name.to_vec()).ok()?);
        block = &rest[len..];
    }
    block.is_empty().then_some(routes)
}

/// The file a process's statistics get in `directory`, for its supervisor:
/// `PID.stats`.
pub fn worker_file(directory: &Path, pid: u32) -> std::path::PathBuf {
    directory.join(format!("{pid}.stats"))
}

/// Whether `path` names a statistics file (not one being made or retired).
pub fn is_stats_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "stats")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("spikard-stats-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn any_route_name_survives_the_round_trip() {
        let dir = scratch("names");
        let path = worker_file(&dir, 7);
        let routes = vec![
            "GET /a\nb".to_owned(),
            String::new(),
            "POST /ü/{id}".to_owned(),
        ];
        create(&path, routes.clone(), 4096).unwrap();
        assert!(is_stats_file(&path));
        let opened = open(&path, |_| 4096).unwrap();
        assert_eq!(opened.routes, routes);
        assert_eq!(opened.offset % PAGE, 0);
        assert!(
            create(&path, routes, 4096).is_err(),
            "an existing file is never replaced"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no partial file is left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lying_header_is_refused_before_anything_is_allocated_for_it() {
        let dir = scratch("lies");
        let path = dir.join("bad.stats");
        create(&path, vec!["GET /".into()], 4096).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Four billion routes and a names block larger than the file.
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let error = open(&path, |n| n * 4096).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        std::fs::write(&path, b"not statistics").unwrap();
        assert!(open(&path, |_| 0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
