//! Where a Fetch response's records lie in segment files, so that a plaintext connection
//! can send them with sendfile instead of copying them through the broker.

use bytes::Bytes;
use strata_storage::FileRegion;

/// The file region of each non-empty records slice of a response, so the connection can send
/// those bytes with sendfile. A slice is recognised by its address and length when the
/// encoder hands it back as a chunk of its own; the encoder emits records in the order they
/// were read, so the search resumes where the last match was (linear over a response).
#[derive(Default)]
pub struct FileRegions {
    regions: Vec<(usize, usize, FileRegion)>,
    next: usize,
}

impl FileRegions {
    pub(super) fn add(&mut self, records: &Bytes, region: Option<FileRegion>) {
        if let Some(region) = region.filter(|_| !records.is_empty()) {
            self.regions
                .push((records.as_ptr() as usize, records.len(), region));
        }
    }

    /// The file region whose records are exactly `chunk`, if any.
    pub fn region_of(&mut self, chunk: &Bytes) -> Option<FileRegion> {
        let key = (chunk.as_ptr() as usize, chunk.len());
        let found = (self.next..self.regions.len())
            .chain(0..self.next)
            .find(|&i| {
                self.regions
                    .get(i)
                    .is_some_and(|(ptr, len, _)| (*ptr, *len) == key)
            })?;
        self.next = found + 1;
        self.regions.get(found).map(|(_, _, region)| region.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn file_regions_match_records_chunks_by_address_in_any_order() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let region = |position| FileRegion {
            file: Arc::clone(&file),
            position,
        };
        let data = Bytes::from(vec![7u8; 64]);
        let (a, b) = (data.slice(0..16), data.slice(16..48));
        let mut regions = FileRegions::default();
        regions.add(&a, Some(region(100)));
        regions.add(&b, Some(region(200)));
        regions.add(&Bytes::new(), Some(region(300))); // no records: nothing to send
        assert_eq!(regions.region_of(&a).map(|r| r.position), Some(100));
        assert_eq!(regions.region_of(&b).map(|r| r.position), Some(200));
        // Same address, other length (a merged piece): not a region.
        assert!(regions.region_of(&data.slice(0..8)).is_none());
        assert!(regions.region_of(&Bytes::from_static(b"header")).is_none());
        // Out of order still matches (the search wraps).
        assert_eq!(regions.region_of(&a).map(|r| r.position), Some(100));
    }
}
