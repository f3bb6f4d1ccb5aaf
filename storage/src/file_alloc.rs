//! Reserving disk blocks ahead of mapped writes. A store into a mapped page the filesystem
//! cannot back raises SIGBUS, so every byte we write through a mapping is allocated first:
//! with fallocate where supported, else by writing zeros (tmpfs, overlay, old filesystems).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Grows `file` so that bytes [from, to) are allocated on disk; `from` is the current length.
pub(crate) fn allocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "allocation range exceeds off_t",
        ));
    };
    // SAFETY: fallocate only reads its scalar arguments; the fd is valid while `file` lives.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => write_zeros(file, from, to),
        _ => Err(err),
    }
}

/// Fallback: really write the zeros so the blocks exist (a sparse set_len would not reserve them).
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(CHUNK, |left| left.min(CHUNK));
        file.write_all_at(zeros.get(..n).unwrap_or(&zeros), at)?;
        at += n as u64;
    }
    Ok(())
}
