//! Reserving disk blocks ahead of mapped writes. A store into a mapped page the filesystem
//! cannot back raises SIGBUS, so every byte we write through a mapping is allocated first:
//! with fallocate where supported, else by writing zeros (tmpfs, overlay, old filesystems).
//! Appends themselves are positioned vectored writes (`pwritev`) into those reserved blocks.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Where an allocation of `allocated` bytes that must now cover `needed` should reach: steps
/// start at `min_step` and double with the file up to `max_step`, in whole `min_step`s, never
/// past `capacity`. A busy file then makes one `fallocate` per `max_step`, a quiet one holds
/// little more than its data.
pub(crate) fn grown_size(
    allocated: usize,
    needed: usize,
    (min_step, max_step): (usize, usize),
    capacity: usize,
) -> usize {
    let step = allocated.clamp(min_step, max_step);
    needed
        .max(allocated.saturating_add(step))
        .div_ceil(min_step)
        .saturating_mul(min_step)
        .min(capacity)
}

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

/// Writes every byte of `bufs` at `offset` with as few `pwritev` calls as the kernel allows
/// (short writes and EINTR resume where they stopped).
pub(crate) fn write_all_vectored_at(
    file: &File,
    mut bufs: &mut [IoSlice<'_>],
    mut offset: u64,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let count = libc::c_int::try_from(bufs.len().min(1024)).unwrap_or(1024);
        let Ok(at) = libc::off_t::try_from(offset) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write offset exceeds off_t",
            ));
        };
        // SAFETY: std guarantees IoSlice is ABI-compatible with `struct iovec` on Unix; the
        // slices (and the memory they point at) outlive the call, and `count` <= bufs.len().
        #[allow(unsafe_code)]
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count,
                at,
            )
        };
        match usize::try_from(written) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod growth_tests {
    use super::grown_size;

    #[test]
    fn allocation_steps_start_small_and_double_up_to_the_largest() {
        const STEPS: (usize, usize) = (64 * 1024, 16 * 1024 * 1024);
        let cap = 1 << 30;
        // A first small write reserves one small step, not 16 MiB.
        assert_eq!(grown_size(0, 100, STEPS, cap), STEPS.0);
        // A write larger than the step reserves what it needs (whole steps).
        assert_eq!(grown_size(0, 1_000_000, STEPS, cap), 16 * STEPS.0);
        // Steps double with what is allocated...
        assert_eq!(grown_size(1 << 20, (1 << 20) + 1, STEPS, cap), 2 << 20);
        // ...up to the largest step.
        assert_eq!(grown_size(64 << 20, (64 << 20) + 1, STEPS, cap), 80 << 20);
        // Never past the capacity.
        assert_eq!(grown_size(cap - 10, cap - 5, STEPS, cap), cap);
    }
}
