//! Invariants of the checkpoint decoder: any bytes decode to a value or a typed error, never a
//! panic; whatever decodes re-encodes to the same bytes; every truncation and every single-bit
//! flip of a valid checkpoint is rejected.

use riprap::stream::{BytePosition, CheckpointError, Offset, ResumeToken, codec};

fn decodes_canonically<O: Offset>(data: &[u8]) {
    match codec::decode::<O>(data) {
        Ok(offset) => {
            let again = codec::encode(&offset).expect("a decoded offset re-encodes");
            assert_eq!(again, data, "decoding is canonical");
        }
        Err(CheckpointError::Corrupt(_) | CheckpointError::UnsupportedVersion { .. }) => {}
        Err(other) => panic!("decoding reported a non-format error: {other}"),
    }
}

pub fn run(data: &[u8]) {
    decodes_canonically::<u64>(data);
    decodes_canonically::<u32>(data);
    decodes_canonically::<i64>(data);
    decodes_canonically::<BytePosition>(data);
    decodes_canonically::<ResumeToken>(data);

    // Treat the input as a token: a valid checkpoint of it must round-trip, and damage to it
    // must never decode.
    let token = ResumeToken::new(&data[..data.len().min(256)]);
    let encoded = codec::encode(&token).expect("a short token encodes");
    assert_eq!(codec::decode::<ResumeToken>(&encoded).ok(), Some(token));
    for cut in 0..encoded.len() {
        assert!(
            codec::decode::<ResumeToken>(&encoded[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let flips = data.iter().take(16).enumerate();
    for (i, b) in flips {
        let pos = (usize::from(*b) * 31 + i * 7) % encoded.len();
        let mut damaged = encoded.clone();
        damaged[pos] ^= 1 << (b % 8);
        assert!(
            codec::decode::<ResumeToken>(&damaged).is_err(),
            "bit flip at byte {pos}"
        );
    }
}
