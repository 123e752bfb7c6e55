//! Invariants of the checkpoint decoder, in both formats: any bytes decode to a value or a
//! typed error, never a panic; whatever decodes re-encodes to the same bytes (or, for a
//! format-1 checkpoint read as a versioned position, to a format-2 one that decodes to the
//! same value); every truncation and every single-bit flip of a valid checkpoint is
//! rejected; a versioned checkpoint is never read as a plain offset.

use riprap::stream::{
    BytePosition, CheckpointError, Offset, ResumeToken, SourceVersion, Versioned, codec,
};

fn decodes_canonically<O: Offset>(data: &[u8]) {
    match codec::decode::<O>(data) {
        Ok(offset) => {
            let again = codec::encode(&offset).expect("a decoded offset re-encodes");
            let format = data.get(8..10).map(|f| u16::from_le_bytes([f[0], f[1]]));
            if O::VERSIONED && format == Some(codec::FORMAT_PLAIN) {
                // Upgraded: a position with no version, written back in format 2.
                assert_eq!(&again[8..10], &codec::FORMAT_VERSIONED.to_le_bytes());
                let back = codec::decode::<O>(&again).expect("the upgrade decodes");
                assert_eq!(back, offset, "the upgrade keeps the position");
            } else {
                assert_eq!(again, data, "decoding is canonical");
            }
        }
        Err(CheckpointError::Corrupt(_) | CheckpointError::UnsupportedVersion { .. }) => {}
        Err(other) => panic!("decoding reported a non-format error: {other}"),
    }
}

/// A valid checkpoint of `offset` round-trips, and no truncation or bit flip of it decodes.
fn damage_is_caught<O: Offset>(offset: &O, flips: &[u8]) {
    let encoded = codec::encode(offset).expect("a short offset encodes");
    assert_eq!(codec::decode::<O>(&encoded).ok().as_ref(), Some(offset));
    for cut in 0..encoded.len() {
        assert!(
            codec::decode::<O>(&encoded[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    for (i, b) in flips.iter().take(16).enumerate() {
        let pos = (usize::from(*b) * 31 + i * 7) % encoded.len();
        let mut damaged = encoded.clone();
        damaged[pos] ^= 1 << (b % 8);
        assert!(
            codec::decode::<O>(&damaged).is_err(),
            "bit flip at byte {pos}"
        );
    }
}

pub fn run(data: &[u8]) {
    decodes_canonically::<u64>(data);
    decodes_canonically::<u32>(data);
    decodes_canonically::<i64>(data);
    decodes_canonically::<BytePosition>(data);
    decodes_canonically::<ResumeToken>(data);
    decodes_canonically::<Versioned<BytePosition>>(data);
    decodes_canonically::<Versioned<u64>>(data);
    decodes_canonically::<Versioned<ResumeToken>>(data);

    // A format-2 checkpoint is never a plain offset, even for tokens, which read any bytes.
    let format_2 = data.get(8..10) == Some(&codec::FORMAT_VERSIONED.to_le_bytes()[..]);
    if format_2 && codec::decode::<Versioned<ResumeToken>>(data).is_ok() {
        assert!(codec::decode::<ResumeToken>(data).is_err());
        assert!(codec::decode::<u64>(data).is_err());
    }

    // Treat the input as a token: a valid checkpoint of it must round-trip, and damage to it
    // must never decode.
    let token = ResumeToken::new(&data[..data.len().min(256)]);
    damage_is_caught(&token, data);

    // And as a version and a token, split at the first byte's value.
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (version, rest) = data.split_at(split);
    if let Some(version) = SourceVersion::new(version) {
        let bound = Versioned::new(version, ResumeToken::new(&rest[..rest.len().min(256)]));
        damage_is_caught(&bound, data);
    }
}
