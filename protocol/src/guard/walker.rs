//! Steps through a frame following a `Message` shape without building anything, and rejects it
//! as soon as a count or length promises more bytes than remain. Only after it passes does the
//! kafka-protocol codec (which trusts those counts for `Vec::with_capacity`) see the bytes.

use super::dsl::{Field, Prim, Ty};
use super::GuardError;

/// A read position in a frame plus the version rules that pick each field's encoding.
pub(crate) struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize, version: i16, flexible: bool) -> Self {
        Walker {
            buf,
            pos,
            version,
            flexible,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], GuardError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(GuardError::Truncated {
                field,
                offset: self.pos,
                needed: n as u64,
                remaining: self.remaining(),
            }),
        }
    }

    fn skip_len(&mut self, field: &'static str, n: u64) -> Result<(), GuardError> {
        if n > self.remaining() as u64 {
            return Err(GuardError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        // n <= remaining, so it fits in usize.
        self.pos += n as usize;
        Ok(())
    }

    fn int16(&mut self, field: &'static str) -> Result<i16, GuardError> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    fn int32(&mut self, field: &'static str) -> Result<i32, GuardError> {
        let b = self.take(field, 4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(i32::from_be_bytes(a))
    }

    /// Kafka's unsigned varint: at most 5 bytes, and the 5th may only carry the top 4 bits.
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, GuardError> {
        let start = self.pos;
        let mut value: u32 = 0;
        for i in 0..5u32 {
            let b = *self.take(field, 1)?.first().unwrap_or(&0);
            if i == 4 && b > 0x0f {
                return Err(GuardError::BadVarint {
                    field,
                    offset: start,
                });
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(GuardError::BadVarint {
            field,
            offset: start,
        })
    }

    /// Reads a length prefix: `Ok(None)` for null, `Ok(Some(n))` otherwise.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<u64>, GuardError> {
        let offset = self.pos;
        if self.flexible {
            return Ok(match self.uvarint(field)? {
                0 => None,
                n => Some(u64::from(n) - 1),
            });
        }
        let n = if wide {
            self.int32(field)?
        } else {
            i32::from(self.int16(field)?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(GuardError::NegativeLength {
                field,
                offset,
                length: n,
            }),
            n => Ok(Some(n as u64)),
        }
    }

    /// Walks the in-line fields present in this version, then the tagged section.
    pub(crate) fn fields(&mut self, fields: &'static [Field]) -> Result<(), GuardError> {
        for field in fields {
            if field.tag.is_none() && field.versions.contains(self.version) {
                self.value(field.name, field.ty)?;
            }
        }
        if self.flexible {
            self.tagged_section(fields)?;
        }
        Ok(())
    }

    /// A tagged-field section: a count, then (tag, size, bytes) triples. Known tags are walked
    /// by their shape and must fill exactly their declared size; unknown ones are skipped.
    pub(crate) fn tagged_section(&mut self, fields: &'static [Field]) -> Result<(), GuardError> {
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tagged field tag")?;
            let size = self.uvarint("tagged field size")?;
            let offset = self.pos;
            self.skip_len("tagged field", u64::from(size))?;
            let end = self.pos;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.versions.contains(self.version));
            if let Some(field) = known {
                let window = self.buf.get(..end).unwrap_or_default();
                let mut inner = Walker::new(window, offset, self.version, self.flexible);
                inner.value(field.name, field.ty)?;
                if inner.pos != end {
                    return Err(GuardError::TaggedSizeMismatch {
                        field: field.name,
                        tag,
                        offset,
                        declared: size,
                        used: inner.pos.saturating_sub(offset),
                    });
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, field: &'static str, ty: Ty) -> Result<(), GuardError> {
        match ty {
            Ty::One(prim) => self.prim(field, prim),
            Ty::Struct(fields) => self.fields(fields),
            Ty::NullableStruct(fields) => {
                let marker_at = self.pos;
                self.prim(field, Prim::Int8)?;
                match self.buf.get(marker_at) {
                    Some(marker) if (*marker as i8) < 0 => Ok(()),
                    _ => self.fields(fields),
                }
            }
            Ty::Array(prim) => {
                let min = min_prim_size(prim, self.flexible);
                for _ in 0..self.array_count(field, min)? {
                    self.prim(field, prim)?;
                }
                Ok(())
            }
            Ty::Structs(fields) => {
                let min = min_struct_size(fields, self.version, self.flexible);
                for _ in 0..self.array_count(field, min)? {
                    self.fields(fields)?;
                }
                Ok(())
            }
        }
    }

    /// An array's element count, refused unless `count * min_element` bytes remain: this is
    /// the check that keeps the codec's `Vec::with_capacity(count)` proportional to the frame.
    fn array_count(&mut self, field: &'static str, min_element: usize) -> Result<u64, GuardError> {
        let offset = self.pos;
        let Some(count) = self.length(field, true)? else {
            return Ok(0);
        };
        let min_element = min_element.max(1) as u64;
        if count.saturating_mul(min_element) > self.remaining() as u64 {
            return Err(GuardError::ArrayTooLong {
                field,
                offset,
                count,
                min_element,
                remaining: self.remaining(),
            });
        }
        Ok(count)
    }

    fn prim(&mut self, field: &'static str, prim: Prim) -> Result<(), GuardError> {
        match prim.fixed_size() {
            Some(n) => self.take(field, n).map(|_| ()),
            None => {
                let wide = !matches!(prim, Prim::String);
                match self.length(field, wide)? {
                    Some(n) => self.skip_len(field, n),
                    None => Ok(()),
                }
            }
        }
    }
}

fn min_prim_size(prim: Prim, flexible: bool) -> usize {
    match (prim.fixed_size(), flexible, prim) {
        (Some(n), _, _) => n,
        (None, true, _) => 1,
        (None, false, Prim::String) => 2,
        (None, false, _) => 4,
    }
}

/// The fewest bytes one struct can take in this version (tagged fields are optional).
fn min_struct_size(fields: &'static [Field], version: i16, flexible: bool) -> usize {
    let inline: usize = fields
        .iter()
        .filter(|f| f.tag.is_none() && f.versions.contains(version))
        .map(|f| match f.ty {
            Ty::One(prim) => min_prim_size(prim, flexible),
            Ty::Array(_) | Ty::Structs(_) => {
                if flexible {
                    1
                } else {
                    4
                }
            }
            Ty::Struct(inner) => min_struct_size(inner, version, flexible),
            Ty::NullableStruct(_) => 1,
        })
        .sum();
    inline + usize::from(flexible)
}
