//! The checkpoint file format.
//!
//! Format 1, for plain offsets:
//!
//! ```text
//! offset  size  field
//! 0       8     magic "RIPRAPCK"
//! 8       2     format version, little-endian (1)
//! 10      4     payload length n, little-endian (at most 64 KiB)
//! 14      n     payload: the offset's `Offset::encode` bytes
//! 14+n    4     CRC-32 (IEEE) of bytes 0..14+n, little-endian
//! ```
//!
//! Format 2, for offsets bound to a version of their source ([`Versioned`](super::Versioned)):
//! the same frame with format version 2, and a payload that starts with the source's version:
//!
//! ```text
//! offset  size  field
//! 14      2     source version length v, little-endian (at most `SourceVersion::MAX_LEN`)
//! 16      v     the source version (an object's entity tag...); empty if none was recorded
//! 16+v    n-2-v the position's `Offset::encode` bytes
//! ```
//!
//! The magic and version come first and stay where they are in every future version, so an
//! old build meeting a new file says [`CheckpointError::UnsupportedVersion`] instead of
//! misreading it. That is why bound positions get a format of their own: a build that
//! predates them refuses the file rather than resuming at the byte position in whatever the
//! source has become. Plain offsets are still written in format 1, which every build reads.
//!
//! Reading format 1 as a `Versioned` offset gives a position with no version, which matches
//! no version of the source (so a source refuses to resume from it); reading format 2 as a
//! plain offset is refused. Everything else is verified before the payload is believed.

use super::error::{CheckpointError, Corruption};
use super::offset::Offset;
use super::versioned::SourceVersion;

/// The first eight bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"RIPRAPCK";
/// The format of plain offsets.
pub const FORMAT_PLAIN: u16 = 1;
/// The format of offsets bound to a version of their source ([`Versioned`](super::Versioned)).
pub const FORMAT_VERSIONED: u16 = 2;
/// The newest format version this build writes and reads; it reads every older one.
pub const VERSION: u16 = FORMAT_VERSIONED;
/// The largest payload a checkpoint may carry: an offset is small, and a length read from a
/// damaged file must not make the reader allocate gigabytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;

const HEADER: usize = 8 + 2 + 4;
const TRAILER: usize = 4;

/// Encode `offset` as a checkpoint.
///
/// Fails only if the offset encodes to more than [`MAX_PAYLOAD`] bytes.
///
/// ```
/// use riprap::stream::codec::{decode, encode};
///
/// let bytes = encode(&1234u64)?;
/// assert_eq!(decode::<u64>(&bytes)?, 1234);
/// # Ok::<(), riprap::stream::CheckpointError>(())
/// ```
pub fn encode<O: Offset>(offset: &O) -> Result<Vec<u8>, CheckpointError> {
    let format = if O::VERSIONED {
        FORMAT_VERSIONED
    } else {
        FORMAT_PLAIN
    };
    let mut buf = Vec::with_capacity(HEADER + 16 + TRAILER);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&format.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    offset.encode(&mut buf);
    let len = buf.len() - HEADER;
    if len > MAX_PAYLOAD {
        return Err(CheckpointError::Corrupt(Corruption::TooLong {
            declared: u32::try_from(len).unwrap_or(u32::MAX),
        }));
    }
    if O::VERSIONED && version_framing(&buf[HEADER..]).is_none() {
        // An `Offset` that claims to be versioned but does not lay out its payload so.
        return Err(CheckpointError::Corrupt(Corruption::Offset));
    }
    // `len <= MAX_PAYLOAD` fits in a u32.
    buf[10..14].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Decode a checkpoint written by [`encode`] (in any format this build knows), verifying
/// magic, version, length and checksum.
///
/// Every damaged input gives [`CheckpointError::Corrupt`] (or
/// [`CheckpointError::UnsupportedVersion`]); it never panics and never guesses. A format-1
/// checkpoint read as a [`Versioned`](super::Versioned) offset is a position with no
/// version; a format-2 checkpoint read as a plain offset is [`Corruption::Offset`].
///
/// ```
/// use riprap::stream::codec::{decode, encode};
/// use riprap::stream::{CheckpointError, Corruption};
///
/// let mut bytes = encode(&7u64)?;
/// bytes[15] ^= 0x01; // flip a bit in the payload
/// assert!(matches!(
///     decode::<u64>(&bytes),
///     Err(CheckpointError::Corrupt(Corruption::Checksum { .. }))
/// ));
/// assert!(matches!(
///     decode::<u64>(&bytes[..10]),
///     Err(CheckpointError::Corrupt(Corruption::Truncated { .. }))
/// ));
/// # Ok::<(), riprap::stream::CheckpointError>(())
/// ```
pub fn decode<O: Offset>(bytes: &[u8]) -> Result<O, CheckpointError> {
    let corrupt = |c| Err(CheckpointError::Corrupt(c));
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return corrupt(Corruption::BadMagic);
    }
    if bytes.len() < HEADER {
        return corrupt(Corruption::Truncated {
            expected: HEADER + TRAILER,
            found: bytes.len(),
        });
    }
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format != FORMAT_PLAIN && format != FORMAT_VERSIONED {
        return Err(CheckpointError::UnsupportedVersion { found: format });
    }
    let declared = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let len = declared as usize;
    if len > MAX_PAYLOAD {
        return corrupt(Corruption::TooLong { declared });
    }
    let total = HEADER + len + TRAILER;
    if bytes.len() < total {
        return corrupt(Corruption::Truncated {
            expected: total,
            found: bytes.len(),
        });
    }
    if bytes.len() > total {
        return corrupt(Corruption::TrailingBytes {
            extra: bytes.len() - total,
        });
    }
    let body = &bytes[..HEADER + len];
    let t = &bytes[HEADER + len..];
    let stored = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let computed = crc32(body);
    if stored != computed {
        return corrupt(Corruption::Checksum { stored, computed });
    }
    let payload = &body[HEADER..];
    let decoded = match (format, O::VERSIONED) {
        (FORMAT_VERSIONED, true) => version_framing(payload).and_then(|()| O::decode(payload)),
        // Written before the version was recorded: the same position, bound to no version.
        (_, true) => O::decode(&[&[0u8, 0][..], payload].concat()),
        (FORMAT_VERSIONED, false) => None,
        (_, false) => O::decode(payload),
    };
    match decoded {
        Some(o) => Ok(o),
        None => corrupt(Corruption::Offset),
    }
}

/// `Some` if a format-2 payload starts with a well-formed source version.
fn version_framing(payload: &[u8]) -> Option<()> {
    let len = usize::from(u16::from_le_bytes(payload.get(..2)?.try_into().ok()?));
    (len <= SourceVersion::MAX_LEN && payload.len() >= 2 + len).then_some(())
}

/// CRC-32 (IEEE 802.3, reflected, as in zlib and PNG).
///
/// ```
/// assert_eq!(riprap::stream::codec::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};
