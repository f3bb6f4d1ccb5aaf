//! The vocabulary for request and response shapes: which fields a message has in which
//! versions, and how each is laid out on the wire. Only layout matters here (nullability and
//! defaults are the codec's business); the walker uses it to bound every length before the
//! codec allocates.

use kafka_protocol::messages::ApiKey;

/// An inclusive range of message versions in which a field is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions {
    pub(crate) min: i16,
    pub(crate) max: i16,
}

impl Versions {
    pub(crate) const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Present from `min` on ("3+" in Kafka's schemas).
pub(crate) const fn from(min: i16) -> Versions {
    Versions { min, max: i16::MAX }
}

/// Present in `min..=max` ("0-14" in Kafka's schemas).
pub(crate) const fn range(min: i16, max: i16) -> Versions {
    Versions { min, max }
}

/// Never present ("none").
#[allow(dead_code)] // part of the vocabulary even when no current shape needs it
pub(crate) const NEVER: Versions = Versions { min: 1, max: 0 };

/// `flexible_from` for messages that never use compact encodings and tagged fields.
#[allow(dead_code)]
pub(crate) const NO_FLEXIBLE: i16 = i16::MAX;

/// Fixed-size and length-prefixed scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    Int8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    Float64,
    Uuid,
    Bool,
    /// int16 length (-1 = null), or unsigned varint length+1 in flexible versions.
    String,
    /// int32 length (-1 = null), or unsigned varint length+1 in flexible versions.
    Bytes,
    /// A record-batch blob; laid out exactly like `Bytes`.
    Records,
}

impl Prim {
    /// Bytes taken on the wire by the fixed-size scalars; `None` for length-prefixed ones.
    pub(crate) const fn fixed_size(self) -> Option<usize> {
        match self {
            Prim::Int8 | Prim::Bool => Some(1),
            Prim::Int16 | Prim::UInt16 => Some(2),
            Prim::Int32 | Prim::UInt32 => Some(4),
            Prim::Int64 | Prim::Float64 => Some(8),
            Prim::Uuid => Some(16),
            Prim::String | Prim::Bytes | Prim::Records => None,
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    One(Prim),
    /// An array of scalars (`[]int32`, `[]string`...).
    Array(Prim),
    /// A nested struct (its own tagged-field section in flexible versions).
    Struct(&'static [Field]),
    /// A nullable nested struct: an int8 marker (negative: null), then the struct if present.
    NullableStruct(&'static [Field]),
    /// An array of structs.
    Structs(&'static [Field]),
}

pub(crate) const INT8: Ty = Ty::One(Prim::Int8);
pub(crate) const INT16: Ty = Ty::One(Prim::Int16);
#[allow(dead_code)]
pub(crate) const UINT16: Ty = Ty::One(Prim::UInt16);
pub(crate) const INT32: Ty = Ty::One(Prim::Int32);
#[allow(dead_code)]
pub(crate) const UINT32: Ty = Ty::One(Prim::UInt32);
pub(crate) const INT64: Ty = Ty::One(Prim::Int64);
#[allow(dead_code)]
pub(crate) const FLOAT64: Ty = Ty::One(Prim::Float64);
pub(crate) const UUID: Ty = Ty::One(Prim::Uuid);
pub(crate) const BOOL: Ty = Ty::One(Prim::Bool);
pub(crate) const STRING: Ty = Ty::One(Prim::String);
pub(crate) const BYTES: Ty = Ty::One(Prim::Bytes);
pub(crate) const RECORDS: Ty = Ty::One(Prim::Records);

pub(crate) const fn array(of: Prim) -> Ty {
    Ty::Array(of)
}

pub(crate) const fn strukt(fields: &'static [Field]) -> Ty {
    Ty::Struct(fields)
}

pub(crate) const fn nullable_strukt(fields: &'static [Field]) -> Ty {
    Ty::NullableStruct(fields)
}

pub(crate) const fn structs(fields: &'static [Field]) -> Ty {
    Ty::Structs(fields)
}

/// One field of a message or struct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) versions: Versions,
    pub(crate) ty: Ty,
    /// `Some(tag)` when the field travels in the tagged-field section instead of in line.
    pub(crate) tag: Option<u32>,
}

pub(crate) const fn f(name: &'static str, versions: Versions, ty: Ty) -> Field {
    Field {
        name,
        versions,
        ty,
        tag: None,
    }
}

impl Field {
    /// Moves the field into the tagged section under `tag` (Kafka's `taggedVersions` are the
    /// field's `versions` for every request we accept; the generator checks that).
    pub(crate) const fn tagged(self, tag: u32) -> Field {
        Field {
            tag: Some(tag),
            ..self
        }
    }
}

/// The shape of one request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message {
    pub(crate) api_key: ApiKey,
    /// First version that uses compact lengths and tagged fields.
    pub(crate) flexible_from: i16,
    pub(crate) fields: &'static [Field],
}

pub(crate) const fn message(
    api_key: ApiKey,
    flexible_from: i16,
    fields: &'static [Field],
) -> Message {
    Message {
        api_key,
        flexible_from,
        fields,
    }
}

/// The shape of one response body or consumer-protocol message, and the versions it has been
/// proven for (a response's version is the one the client asked for, so anything outside
/// them is refused rather than walked by a guess).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Kafka's name for the message, for errors.
    pub(crate) name: &'static str,
    pub(crate) versions: Versions,
    /// First version that uses compact lengths and tagged fields.
    pub(crate) flexible_from: i16,
    pub(crate) fields: &'static [Field],
}

pub(crate) const fn shape(
    name: &'static str,
    versions: Versions,
    flexible_from: i16,
    fields: &'static [Field],
) -> Shape {
    Shape {
        name,
        versions,
        flexible_from,
        fields,
    }
}
